"""OrcaHello production inference (`FastAIModel.predict`, fastai_inference.py), composed as upstream does.

This is the glue production itself runs -- windowing, pydub cutting and export, fastai_audio's
AudioList, per-item `learn.predict`, pandas aggregation -- calling the real legacy libraries for
every numeric step. It is the thing the references record and `make bench` times. Deliberate
differences from upstream, none of which changes a number:
- the frontend config comes from `model.config.FrontendConfig` (the one recorded in config.json);
- the scratch folder is given by the caller (so caches and temp paths can be isolated/sanitised);
- upstream prints the file name and duration; we don't;
- upstream hard-codes class index 1 (OrcaHello's "positive" of two classes); a converted model's
  config names its detection class (`positive_index`, 1 for OrcaHello), and that is used;
- `windows` can restrict a run to some of the file's windows (the references' second, full capture
  of a few sampled clips): each window is cut, cached and predicted on its own, as in a full run;
- a config's `windowing` other than production's 2 s clips every 1 s (config.json) cuts those
  clips instead, by production's rule generalised (`clip_windows`), and places the aggregate's rows
  on the hop grid (start_time_s = row x hop); at 2 s / 1 s both are production's own.
"""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path
from typing import Any, Callable

from orcaport.model.config import AggregationConfig, FrontendConfig, WindowingConfig


def legacy_audio_config(fe: FrontendConfig) -> Any:
    """fastai_audio AudioConfig exactly as OrcaHello production builds it, from `fe`."""
    from audio.data import AudioConfig, SpectrogramConfig

    sg = SpectrogramConfig(f_min=fe.f_min, f_max=fe.f_max, hop_length=fe.hop_length, n_fft=fe.n_fft,
                           n_mels=fe.n_mels, pad=fe.pad, to_db_scale=fe.to_db_scale,
                           top_db=fe.top_db, win_length=fe.win_length, n_mfcc=fe.n_mfcc)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fastai_audio warns on ms-vs-s heuristics
        config = AudioConfig(standardize=fe.standardize, sg_cfg=sg)
        config.duration = fe.duration
        config.resample_to = fe.resample_to
        config.downmix = fe.downmix
        config.pad_mode = fe.pad_mode
        # every other AudioConfig option the frontend config records (model/frontend/): at their
        # fastai_audio defaults for OrcaHello, so its config (and spectrogram cache key) is unchanged
        for name in ("max_to_pad", "segment_size", "remove_silence", "silence_threshold",
                     "silence_padding", "use_spectro", "mfcc", "delta"):
            setattr(config, name, getattr(fe, name))
    return config


def clip_windows(max_length: float, windowing: WindowingConfig | None = None) -> list[list[int]]:
    """Production's `[[i, i + 2] for i in range(int(floor(max_length) - 1))]`, for any whole-second
    clip and hop: [s, s + clip] for s = 0, hop, ... while s + clip <= floor(max_length). Written
    here, not imported from the runtime (model/waveform.py): references must not come from the code
    they check (tests/test_frontend.py holds the two equal)."""
    from numpy import floor

    w = windowing or WindowingConfig()
    return [[i, i + w.clip_seconds] for i in range(0, int(floor(max_length)) - w.clip_seconds + 1, w.hop_seconds)]


def extract_segments(wav_path: Path, windows: list[list[int]], dest: str) -> None:
    from pydub import AudioSegment

    audio_file = AudioSegment.from_wav(str(wav_path))
    for begin, end in windows:
        name = wav_path.name.lower().replace(".wav", "") + "_" + str(begin) + "_" + str(end) + ".wav"
        audio_file[begin * 1000:end * 1000].export(dest + name, format="wav")


def aggregate(wav_name: str, path_list: list[str], predictions: list[float],
              agg: AggregationConfig, hop_seconds: int = 1) -> dict[str, Any]:
    """Production's pandas aggregation, verbatim in behaviour; rows placed every `hop_seconds`."""
    import pandas as pd

    prediction = pd.DataFrame({"FilePath": path_list, "confidence": predictions})
    prediction["confidence"] = prediction.confidence.astype(float)
    prediction["start_time_s"] = prediction.FilePath.apply(lambda x: int(x.split("_")[-2]))
    prediction = prediction.sort_values(["start_time_s"]).reset_index(drop=True)
    submission = pd.DataFrame({
        "wav_filename": wav_name, "duration_s": 1.0,
        "confidence": list(prediction.rolling(2)["confidence"].mean().values),
    }).reset_index().rename(columns={"index": "start_time_s"})
    submission.loc[0, "confidence"] = prediction.confidence[0]
    last = pd.DataFrame({"wav_filename": wav_name, "start_time_s": [submission.start_time_s.max() + 1],
                         "duration_s": 1.0,
                         "confidence": [prediction.confidence[prediction.shape[0] - 1]]})
    submission = pd.concat([submission, last], ignore_index=True)
    submission = submission[["wav_filename", "start_time_s", "duration_s", "confidence"]]
    local = list((submission["confidence"] > agg.threshold).astype(int))
    global_conf = submission.loc[(submission["confidence"] > agg.threshold), "confidence"].mean() * 100
    if pd.isnull(global_conf):
        global_conf = 0
    return {"start_time_s": [int(v) * hop_seconds for v in submission.start_time_s],
            "confidence": [float(v) for v in submission.confidence],
            "local_prediction": [int(v) for v in local],
            "global_prediction": int(sum(local) >= agg.min_positive),
            "global_confidence": float(global_conf),
            "clip_order": [Path(p).stem for p in prediction.FilePath]}


def predict_file(learn: Any, wav_path: Path, scratch: Path, fe: FrontendConfig,
                 agg: AggregationConfig, on_item: Callable[[Any, Any], None] | None = None,
                 windows: list[list[int]] | None = None, positive_index: int = 1,
                 windowing: WindowingConfig | None = None) -> dict[str, Any]:
    """FastAIModel.predict for one file. `on_item(item, predict_output)` sees each clip's result."""
    import pandas as pd
    from audio.data import AudioList
    from librosa import get_duration

    local_dir = str(scratch) + "/"
    if os.path.exists(local_dir):
        shutil.rmtree(local_dir)
    os.makedirs(local_dir)
    try:
        max_length = get_duration(path=str(wav_path))
        all_windows = clip_windows(max_length, windowing)
        if windows is not None and any(w not in all_windows for w in windows):
            raise ValueError(f"windows {windows} are not all windows of {wav_path.name}")
        extract_segments(wav_path, all_windows if windows is None else windows, local_dir)
        config = legacy_audio_config(fe)
        test_data_folder = Path(local_dir)
        test = AudioList.from_folder(test_data_folder, config=config).split_none().label_empty()
        testdb = test.transform(None).databunch(bs=32)
        path_list = list(pd.Series(test_data_folder.ls()).astype("str"))
        predictions = []
        for item in testdb.x:
            out = learn.predict(item)
            if on_item is not None:
                on_item(item, out)
            predictions.append(out[2][positive_index])
        return aggregate(wav_path.name, path_list, predictions, agg, (windowing or WindowingConfig()).hop_seconds)
    finally:
        shutil.rmtree(local_dir, ignore_errors=True)
