"""The legacy pipeline, defined once: each stage of `model.stages` and the step that makes it from
the stage before. Everything that runs the pipeline runs these steps and nothing else:

- parity's chained replay (`run_steps` from a clip to `input`) and isolated replay (each step fed
  legacy's own tensor of the stage before, one step of the config's chain at a time);
- the Detector: `prefix` steps once per second (shared by the clips overlapping it), the
  waveform steps per clip, the spectrogram steps per clip on a CPU or per batch on a GPU;
- fastai_audio's own predict (model/predict.py): the same steps on a whole file, where a fan-out
  step (silence "split", segment_size) turns it into several items;
- bench's training data and the real-data check (parity/upstream.py).

A config's chain is the steps of `STEPS` whose option it sets (`Frontend.chain`), in this order;
OrcaHello's is load, downmix, resample, mel, db, input (the first three and input always run):

    clip         PcmAudio: one window as pydub slices it (or a whole file)  (frames, C) ints
    load         load_clip                                                  (C, N) float32
    downmix      downmix + its cache round trip (when configured)           (1, N)
    resample     resample_poly + its cache round trip (when configured)     (C, N') at resample_to
    silence      remove_silence + cache (model/frontend/silence.py)         fan-out: [(C, n)]
    segment      segment_size pieces + cache (model/frontend/segments.py)   fan-out: [(C, size)]
    pad_signal   max_to_pad (else segment_size) tfm_padtrim_signal          (C, n)
    mel          mel_spectrogram                        (not mfcc)          (..., C, n_mels, T)
    db           amplitude_to_db (when to_db_scale)     (not mfcc)          (..., C, n_mels, T)
    mfcc         torchaudio MFCC (model/frontend/features.py)               (..., C, n_mfcc, T)
    standardize  fastai_audio's [0, 1] scaling per item                     same
    delta        the spectrogram and its two deltas per channel             (3C, H, T)
    input        pad_or_crop to duration, normalize (a waveform: as is)     (..., C', H, width)
    logits       the network                                                (..., classes)
    probs        softmax                                                    (..., classes)
    aggregate    per-hop rolling confidence and decisions of a file         (model/aggregate.py)

Steps are pure functions (x, frontend, rate) -> x; `rate` is the clip's own sample rate (the
steps after resample use `Frontend.rate_after_resample`). With use_spectro=False the spectrogram
steps are not in the chain: the network takes the signal, as fastai_audio's AudioItem.data is then.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from orcaport.model.audio import PcmAudio
from orcaport.model.config import FrontendConfig, ModelConfig, NormalizationConfig, WindowingConfig
from orcaport.model.frontend.features import deltas, mfcc
from orcaport.model.frontend.segments import pad_or_trim_signal, samples_of, segment_signal
from orcaport.model.frontend.silence import remove_silence
from orcaport.model.source import DetectorError
from orcaport.model.spectrogram import (FrontendError, amplitude_to_db, check_supported, mel_spectrogram, pad_or_crop,
                                        standardize)
from orcaport.model.waveform import cache_round_trip, clip_windows, downmix, load_clip, resample


class TooShortError(DetectorError):
    """Audio shorter than one clip: legacy's windowing yields no clip (and legacy fails)."""


@dataclass(frozen=True)
class Frontend:
    """What the frontend steps read: the frontend config, the learner's normalization stats (None:
    fastai had none), and the random offsets legacy drew for one item, to replay them (None: the
    runtime's deterministic offset, model/frontend/offsets.py): `zeros_front` (pad_mode "zeros"),
    `crop_start` (a spectrogram longer than duration), `signal_front` (max_to_pad's padding)."""

    cfg: FrontendConfig
    normalization: NormalizationConfig | None = None
    zeros_front: int | None = None
    crop_start: int | None = None
    signal_front: int | None = None

    @classmethod
    def of(cls, config: ModelConfig) -> "Frontend":
        return cls(check_supported(config.frontend), config.normalization)

    def rate_after_resample(self, rate: int) -> int:
        return self.cfg.resample_to or rate

    @property
    def chain(self) -> tuple[str, ...]:
        """This config's stages, in order (see the module docstring)."""
        return chain_of(self.cfg)

    @property
    def spectral_steps(self) -> tuple[str, ...]:
        """The chain's steps from the signal to the network input (mel/mfcc ... input)."""
        return tuple(n for n in self.chain if n in SPECTRAL)


Step = Callable[[Any, Frontend, int], Any]


def load_step(clip: PcmAudio, fe: Frontend, rate: int) -> np.ndarray:
    return load_clip(clip)


def downmix_step(x: np.ndarray, fe: Frontend, rate: int) -> np.ndarray:
    return cache_round_trip(downmix(x), fe.cfg.cache_subtype) if fe.cfg.downmix else x


def resample_step(x: np.ndarray, fe: Frontend, rate: int) -> np.ndarray:
    # fastai_audio writes the resample cache even when the rate already matches
    if not fe.cfg.resample_to:
        return x
    return cache_round_trip(resample(x, rate, fe.cfg.resample_to), fe.cfg.cache_subtype)


def silence_step(x: np.ndarray, fe: Frontend, rate: int) -> list[np.ndarray]:
    """remove_silence; each piece goes through its own cache file (empty ones are never written)."""
    c = fe.cfg
    pieces = remove_silence(np.asarray(x), fe.rate_after_resample(rate), c.remove_silence,
                            c.silence_threshold, c.silence_padding)
    return [cache_round_trip(p, c.cache_subtype) for p in pieces if p.shape[-1] >= 1]


def segment_step(x: np.ndarray, fe: Frontend, rate: int) -> list[np.ndarray]:
    """segment_size; each segment goes through its own cache file."""
    pieces = segment_signal(np.asarray(x), fe.rate_after_resample(rate), fe.cfg.segment_size)
    return [cache_round_trip(p, fe.cfg.cache_subtype) for p in pieces]


def pad_signal_step(x: np.ndarray, fe: Frontend, rate: int) -> np.ndarray:
    """max_to_pad, else segment_size: the signal padded or trimmed as fastai_audio opens it."""
    ms = fe.cfg.max_to_pad if fe.cfg.max_to_pad is not None else fe.cfg.segment_size
    return pad_or_trim_signal(np.asarray(x), samples_of(ms, fe.rate_after_resample(rate)), fe.signal_front)


def mel_step(x: np.ndarray | torch.Tensor, fe: Frontend, rate: int) -> torch.Tensor:
    return mel_spectrogram(x, fe.cfg)


def db_step(mel: np.ndarray | torch.Tensor, fe: Frontend, rate: int) -> torch.Tensor:
    mel = torch.as_tensor(mel)
    return amplitude_to_db(mel, fe.cfg.top_db) if fe.cfg.to_db_scale else mel


def mfcc_step(x: np.ndarray | torch.Tensor, fe: Frontend, rate: int) -> torch.Tensor:
    return mfcc(x, fe.cfg, fe.rate_after_resample(rate))


def standardize_step(x: np.ndarray | torch.Tensor, fe: Frontend, rate: int) -> torch.Tensor:
    x = torch.as_tensor(x)         # over each item's whole spectrogram, before padding
    return standardize(x) if x.dim() == 3 else torch.stack([standardize(d) for d in x])


def delta_step(x: np.ndarray | torch.Tensor, fe: Frontend, rate: int) -> torch.Tensor:
    x = torch.as_tensor(x)
    return deltas(x) if x.dim() == 3 else torch.stack([deltas(d) for d in x])


def input_step(x: np.ndarray | torch.Tensor, fe: Frontend, rate: int) -> torch.Tensor:
    x = torch.as_tensor(x)
    if not fe.cfg.use_spectro:      # a waveform learner gets the signal itself (AudioItem.data)
        return normalize(x[..., None], fe.normalization)[..., 0]
    x = pad_or_crop(x, fe.cfg, fe.rate_after_resample(rate), fe.zeros_front, fe.crop_start)
    return normalize(x, fe.normalization)


def _spectro(c: FrontendConfig) -> bool:
    return c.use_spectro


# (name, step, in the chain when, fans out). Order is legacy's: the preprocessing caches (downmix,
# resample, silence, segment), AudioList.open's padtrim, create_spectro, tfm_crop_time.
STEPS: tuple[tuple[str, Step, Callable[[FrontendConfig], bool], bool], ...] = (
    ("load", load_step, lambda c: True, False),
    ("downmix", downmix_step, lambda c: True, False),
    ("resample", resample_step, lambda c: True, False),
    ("silence", silence_step, lambda c: c.remove_silence is not None, True),
    ("segment", segment_step, lambda c: c.segment_size is not None, True),
    ("pad_signal", pad_signal_step, lambda c: c.max_to_pad is not None or c.segment_size is not None, False),
    ("mel", mel_step, lambda c: c.use_spectro and not c.mfcc, False),
    ("db", db_step, lambda c: c.use_spectro and not c.mfcc, False),
    ("mfcc", mfcc_step, lambda c: c.use_spectro and c.mfcc, False),
    ("standardize", standardize_step, lambda c: c.use_spectro and c.standardize, False),
    ("delta", delta_step, lambda c: c.use_spectro and c.delta, False),
    ("input", input_step, lambda c: True, False),
)
STEP_OF: dict[str, Step] = {name: step for name, step, _, _ in STEPS}
FANS_OUT = frozenset(name for name, _, _, fans in STEPS if fans)
SPECTRAL = frozenset(("mel", "db", "mfcc", "standardize", "delta", "input"))


def chain_of(cfg: FrontendConfig) -> tuple[str, ...]:
    """The stages `cfg` runs, in order."""
    return tuple(name for name, _, used, _ in STEPS if used(cfg))


# OrcaHello's chain: the stages every committed reference holds.
FRONTEND_STEPS: tuple[tuple[str, Step], ...] = tuple((n, STEP_OF[n]) for n in chain_of(FrontendConfig()))
STAGE_NAMES = tuple(name for name, _ in FRONTEND_STEPS)
PREVIOUS = dict(zip(STAGE_NAMES, ("clip",) + STAGE_NAMES[:-1]))     # each step's input stage


def previous_stages(fe: Frontend) -> dict[str, str]:
    """Each step of `fe`'s chain -> the stage it reads ("clip" for load)."""
    return dict(zip(fe.chain, ("clip",) + fe.chain[:-1]))


def run_items(x: Any, fe: Frontend, rate: int, first: str = "load", last: str = "input") -> list[dict[str, Any]]:
    """Feed `x` (the stage before `first`) through the chain's steps first..last, in order; a
    fan-out step (silence, segment) makes one item per piece, each going on alone.
    -> one {stage: its output} per item, in legacy's item order (stages before a fan-out shared)."""
    chain = fe.chain
    items: list[tuple[dict[str, Any], Any]] = [({}, x)]
    for name in chain[chain.index(first):chain.index(last) + 1]:
        step, nxt = STEP_OF[name], []
        for stages, value in items:
            out = step(value, fe, rate)
            if name in FANS_OUT:
                nxt += [({**stages, name: piece}, piece) for piece in out]
            else:
                stages[name] = out
                nxt.append((stages, out))
        items = nxt
    return [stages for stages, _ in items]


def run_steps(x: Any, fe: Frontend, rate: int, first: str = "load", last: str = "input") -> dict[str, Any]:
    """`run_items` for one item: a fan-out step must leave exactly one piece (silence "trim" /
    "all"); more raise (windowed detection pairs one prediction with each clip).
    -> {stage: its output} for each step run"""
    items = run_items(x, fe, rate, first, last)
    if len(items) != 1:
        raise FrontendError(f"this frontend makes {len(items)} items of one clip (segment_size / "
                            "remove_silence='split'); windowed detection takes one per clip: use "
                            "`orcaport predict`")
    return items[0]


def check_windowed(fe: Frontend) -> Frontend:
    """Windowed (OrcaHello) detection needs one item per clip: OrcaHello's FastAIModel.predict
    zips one confidence per clip file into its DataFrame, which fails when fastai_audio makes
    several (pandas: 'All arrays must be of the same length')."""
    many = (["segment_size"] if fe.cfg.segment_size is not None else []) + \
        (["remove_silence"] if fe.cfg.remove_silence == "split" else [])
    if many:
        raise FrontendError(f"frontend.{many[0]}={getattr(fe.cfg, many[0])!r} makes several items per "
                            "clip, and OrcaHello's windowed predict pairs one confidence with each clip "
                            "(its DataFrame fails); run fastai_audio's own predict: `orcaport predict`")
    return fe


def normalize(x: torch.Tensor, stats: NormalizationConfig | None) -> torch.Tensor:
    """fastai `normalize` per channel of (..., C, H, W), when the learner had stats."""
    if stats is None:
        return x
    mean = torch.tensor(stats.mean, dtype=x.dtype, device=x.device)[..., None, None]
    std = torch.tensor(stats.std, dtype=x.dtype, device=x.device)[..., None, None]
    return (x - mean) / std


def probabilities(logits: torch.Tensor) -> torch.Tensor:
    """The probs stage: softmax over the classes. (..., classes) -> (..., classes)"""
    return torch.softmax(logits, dim=-1)


def windows_of(duration_s: float, name: object, windowing: WindowingConfig | None = None) -> list[tuple[int, int]]:
    """The clip windows of a file, or TooShortError (one message for every caller)."""
    w = windowing or WindowingConfig()
    windows = clip_windows(duration_s, w.clip_seconds, w.hop_seconds)
    if not windows:
        raise TooShortError(f"{name}: {duration_s:.2f} s of audio is shorter than one {w.clip_seconds} s "
                            f"clip; give the detector at least {w.clip_seconds} s (legacy fails on it too)")
    return windows


def frontend_stages(clip: PcmAudio, cfg: FrontendConfig | Frontend,
                    zeros_front: int | None = None) -> dict[str, torch.Tensor]:
    """One clip (a `slice_ms` result) through the whole frontend: every stage of the chain from
    "load" to "input" as float32 tensors. `cfg`: a FrontendConfig (no normalization) or a Frontend.
    `zeros_front`: the random pad offset legacy drew, to replay pad_mode="zeros" (see pad_or_crop)."""
    fe = cfg if isinstance(cfg, Frontend) else Frontend(cfg)
    if zeros_front is not None:
        fe = dataclasses.replace(fe, zeros_front=zeros_front)
    check_supported(fe.cfg)
    return {k: torch.as_tensor(v) for k, v in run_steps(clip, fe, clip.sample_rate).items()}
