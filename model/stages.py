"""The one stage vocabulary shared by `model/`, `convert/` capture, `parity/` and `reference_outputs/`.

A stage is named for what its tensor *is* after the step ran, in the order production runs them
(upstream OrcaHello `FastAIModel.predict` on fastai 1.0.61 + fastai_audio 0.1):

    decode       int samples of the whole file as pydub sees them      (frames, channels)
    clip         int samples of one 2 s window as pydub writes it      (frames, channels)
    load         float waveform as soundfile reads the clip back       (channels, samples)
    downmix      mono mean, after its 16-bit cache round-trip          (1, samples)
    resample     resample_poly to the target rate, after its cache     (1, samples @ 20 kHz)
    mel          power mel spectrogram                                 (1, n_mels, frames)
    db           AmplitudeToDB with top_db                             (1, n_mels, frames)
    input        padded/cropped (and normalized) network input         (1, n_mels, width)
    activations  stem, layer1..layer4, pooled features                 per layer
    logits       network output                                        (num_classes,)
    probs        softmax of logits                                     (num_classes,)
    aggregate    per-second confidences and decisions of the file      (rows,) + scalars
"""

from __future__ import annotations

FILE_STAGES: tuple[str, ...] = ("decode",)
CLIP_STAGES: tuple[str, ...] = (
    "clip", "load", "downmix", "resample", "mel", "db", "input", "activations", "logits", "probs",
)
RESULT_STAGES: tuple[str, ...] = ("aggregate",)
# fastai_audio options beyond OrcaHello's (model/frontend/, the chain in model/pipeline.py), between
# resample and input when a config sets them. Replayed against legacy by the tests
# (tests/test_frontend_options_legacy.py, tests/test_predict_legacy.py), by `make parity` (windowed)
# and `make predict-parity` (predict mode: every stage, convert/predict_capture.py); the committed
# references hold OrcaHello's chain only, so parity's tolerance table does not list them yet (each
# is judged under its parent's criterion, parity/metrics.py OPTION_TOLERANCE).
#   silence      remove_silence pieces, each after its PCM_16 cache    fan-out: [(C, n)]
#   segment      segment_size pieces, each after its cache             fan-out: [(C, size)]
#   pad_signal   max_to_pad (else segment_size) padtrim                (C, n)
#   mfcc         torchaudio MFCC (replaces mel + db)                   (C, n_mfcc, frames)
#   standardize  fastai_audio's [0, 1] scaling                         same
#   delta        spectrogram + first and second deltas per channel     (3C, H, frames)
OPTION_STAGES: tuple[str, ...] = ("silence", "segment", "pad_signal", "mfcc", "standardize", "delta")
STAGES: tuple[str, ...] = FILE_STAGES + CLIP_STAGES + RESULT_STAGES

# Network blocks whose outputs make up the `activations` stage, in forward order.
ACTIVATION_LAYERS: tuple[str, ...] = ("stem", "layer1", "layer2", "layer3", "layer4", "pooled")

# Fields of the `aggregate` stage.
AGGREGATE_FIELDS: tuple[str, ...] = (
    "confidence", "local_prediction", "global_prediction", "global_confidence",
)

# Every stage in pipeline order, the option stages where the chain puts them (reports sort by it).
STAGE_ORDER: tuple[str, ...] = (FILE_STAGES + ("clip", "load", "downmix", "resample", "silence", "segment",
                                "pad_signal", "mel", "db", "mfcc", "standardize", "delta", "input")
                                + CLIP_STAGES[CLIP_STAGES.index("input") + 1:] + RESULT_STAGES)
