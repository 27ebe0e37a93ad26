"""The legacy pipeline, defined once: each stage of `model.stages` and the step that makes it from
the stage before. Everything that runs the pipeline runs these steps and nothing else:

- parity's chained replay (`run_steps` from a clip to `input`) and isolated replay (each step fed
  legacy's own tensor of the stage before, one `FRONTEND_STEPS` entry at a time);
- the Detector: `prefix` steps once per second (shared by the two clips overlapping it), the
  `resample` step per clip, the spectrogram steps per clip on a CPU or per batch on a GPU;
- bench's training data and the real-data check (parity/upstream.py).

    clip      PcmAudio: one 2 s window as pydub slices it             (frames, C) ints
    load      load_clip                                                (C, N) float32
    downmix   downmix + its cache round trip (when configured)         (1, N)
    resample  resample_poly + its cache round trip (when configured)   (C, N') at resample_to
    mel       mel_spectrogram                                          (..., C, n_mels, T)
    db        amplitude_to_db (when to_db_scale)                       (..., C, n_mels, T)
    input     standardize (when configured), pad_or_crop, normalize    (..., C, n_mels, width)
    logits    the network                                              (..., classes)
    probs     softmax                                                  (..., classes)
    aggregate per-second rolling confidence and decisions of a file    (model/aggregate.py)

Steps are pure functions (x, frontend, rate) -> x; `rate` is the clip's own sample rate.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from orcaport.model.audio import PcmAudio
from orcaport.model.config import FrontendConfig, ModelConfig, NormalizationConfig
from orcaport.model.source import DetectorError
from orcaport.model.spectrogram import amplitude_to_db, check_supported, mel_spectrogram, pad_or_crop, standardize
from orcaport.model.waveform import cache_round_trip, clip_windows, downmix, load_clip, resample


class TooShortError(DetectorError):
    """Audio shorter than one 2 s clip: legacy's windowing yields no clip (and legacy fails)."""


@dataclass(frozen=True)
class Frontend:
    """What the frontend steps read: the frontend config, the learner's normalization stats (None:
    fastai had none), and for pad_mode "zeros" the random pad offset legacy drew (see pad_or_crop)."""

    cfg: FrontendConfig
    normalization: NormalizationConfig | None = None
    zeros_front: int | None = None

    @classmethod
    def of(cls, config: ModelConfig) -> "Frontend":
        return cls(check_supported(config.frontend), config.normalization)

    def rate_after_resample(self, rate: int) -> int:
        return self.cfg.resample_to or rate


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


def mel_step(x: np.ndarray | torch.Tensor, fe: Frontend, rate: int) -> torch.Tensor:
    return mel_spectrogram(x, fe.cfg)


def db_step(mel: np.ndarray | torch.Tensor, fe: Frontend, rate: int) -> torch.Tensor:
    mel = torch.as_tensor(mel)
    return amplitude_to_db(mel, fe.cfg.top_db) if fe.cfg.to_db_scale else mel


def input_step(db: np.ndarray | torch.Tensor, fe: Frontend, rate: int) -> torch.Tensor:
    db = torch.as_tensor(db)
    if fe.cfg.standardize:          # over each clip's whole spectrogram, before padding
        db = standardize(db) if db.dim() == 3 else torch.stack([standardize(d) for d in db])
    x = pad_or_crop(db, fe.cfg, fe.rate_after_resample(rate), fe.zeros_front)
    return normalize(x, fe.normalization)


FRONTEND_STEPS: tuple[tuple[str, Step], ...] = (
    ("load", load_step), ("downmix", downmix_step), ("resample", resample_step),
    ("mel", mel_step), ("db", db_step), ("input", input_step),
)
STEP_OF = dict(FRONTEND_STEPS)
STAGE_NAMES = tuple(name for name, _ in FRONTEND_STEPS)
PREVIOUS = dict(zip(STAGE_NAMES, ("clip",) + STAGE_NAMES[:-1]))     # each step's input stage


def run_steps(x: Any, fe: Frontend, rate: int, first: str = "load", last: str = "input") -> dict[str, Any]:
    """Feed `x` (the stage before `first`) through the steps first..last, in order.
    -> {stage: its output} for each step run."""
    out: dict[str, Any] = {}
    for name in STAGE_NAMES[STAGE_NAMES.index(first):STAGE_NAMES.index(last) + 1]:
        x = out[name] = STEP_OF[name](x, fe, rate)
    return out


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


def windows_of(duration_s: float, name: object) -> list[tuple[int, int]]:
    """The clip windows of a file, or TooShortError (one message for every caller)."""
    windows = clip_windows(duration_s)
    if not windows:
        raise TooShortError(f"{name}: {duration_s:.2f} s of audio is shorter than one 2 s clip; give the "
                            "detector at least 2 s (legacy fails on it too)")
    return windows


def frontend_stages(clip: PcmAudio, cfg: FrontendConfig | Frontend,
                    zeros_front: int | None = None) -> dict[str, torch.Tensor]:
    """One clip (a `slice_ms` result) through the whole frontend: every stage from "load" to
    "input" as float32 tensors. `cfg`: a FrontendConfig (no normalization) or a Frontend.
    `zeros_front`: the random pad offset legacy drew, to replay pad_mode="zeros" (see pad_or_crop)."""
    fe = cfg if isinstance(cfg, Frontend) else Frontend(cfg)
    if zeros_front is not None:
        fe = dataclasses.replace(fe, zeros_front=zeros_front)
    replay = fe.zeros_front is not None and fe.cfg.pad_mode.lower() == "zeros"
    check_supported(dataclasses.replace(fe.cfg, pad_mode="zeros-after") if replay else fe.cfg)
    return {k: torch.as_tensor(v) for k, v in run_steps(clip, fe, clip.sample_rate).items()}
