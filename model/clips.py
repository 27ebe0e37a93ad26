"""A file's clips up to the spectrogram: the waveform steps of the pipeline (model/pipeline.py) as
the detector schedules them, with no network attached, so a CPU-only worker (the many-file feeder's
processes, a Ray task) prepares clips without loading the model's weights.

    clip_inputs    each second decoded, loaded and downmixed ONCE, shared by the two clips
                   overlapping it (per-sample steps: bit for bit the same as per clip)
    clip_waveform  resample (+ its cache round trip) per clip: resample_poly's edges differ on a
                   longer signal, so this step is never shared
    waveforms      both, for clips first..first+count-1   -> (count, C, N') float32
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from orcaport.model.audio import PcmAudio
from orcaport.model.pipeline import Frontend, run_steps, windows_of
from orcaport.model.source import AudioSource


class ClipWaveforms:
    """The waveform steps of one model's frontend (`Frontend.of(config)`)."""

    def __init__(self, fe: Frontend) -> None:
        self.fe = fe

    def prefix(self, seg: np.ndarray, src: AudioSource) -> np.ndarray:
        """The per-second steps (load, downmix), run once per second: both are per sample, so a
        clip's prefix is its two seconds' prefixes side by side (tested bit for bit).
        (frames, C) ints -> (1, frames) float32"""
        pcm = PcmAudio(seg, src.sample_rate, src.sample_width)
        return run_steps(pcm, self.fe, src.sample_rate, "load", "downmix")["downmix"]

    def clip_waveform(self, clip: np.ndarray, src: AudioSource) -> np.ndarray:
        """The waveform steps after the shared prefix (resample), per clip. `clip` is a (1, N)
        prefix when the frontend downmixes, else (N, C) raw ints, run from `load` as legacy does.
        -> (C, N') float32 at the spectrogram's rate"""
        if not self.fe.cfg.downmix:
            pcm = PcmAudio(clip, src.sample_rate, src.sample_width)
            return run_steps(pcm, self.fe, src.sample_rate, "load", "resample")["resample"]
        return run_steps(clip, self.fe, src.sample_rate, "resample", "resample")["resample"]

    def clip_inputs(self, src: AudioSource, first: int = 0, count: int | None = None) -> Iterator[np.ndarray]:
        """Clips first..first+count-1 (default: all) as their shared prefix (before `clip_waveform`)."""
        count = len(windows_of(src.duration_s, src.path)) - first if count is None else count
        downmix = self.fe.cfg.downmix
        prev: np.ndarray | None = None
        for seg in src.segments(count + 1, first):
            cur = self.prefix(seg, src) if downmix else seg
            if prev is not None:
                yield np.concatenate([prev, cur], axis=1 if downmix else 0)
            prev = cur

    def waveforms(self, src: AudioSource, first: int = 0, count: int | None = None) -> np.ndarray:
        """Clips first..first+count-1 (default: all) ready for the spectrogram steps.
        -> (count, C, N') float32"""
        return np.stack([self.clip_waveform(c, src) for c in self.clip_inputs(src, first, count)])
