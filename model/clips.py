"""A file's clips up to the spectrogram: the waveform steps of the pipeline (model/pipeline.py) as
the detector schedules them, with no network attached, so a CPU-only worker (the many-file feeder's
processes, a Ray task) prepares clips without loading the model's weights.

    clip_inputs    each second decoded, loaded and downmixed ONCE, shared by the clips
                   overlapping it (per-sample steps: bit for bit the same as per clip)
    clip_waveform  resample (+ its cache round trip) and the other signal steps of the chain
                   (silence, pad_signal) per clip: resample_poly's edges differ on a longer
                   signal, so these are never shared
    waveforms      both, for clips first..first+count-1   -> (count, C, N') float32
"""

from __future__ import annotations

from collections import deque
from typing import Iterator

import numpy as np

from orcaport.model.audio import PcmAudio
from orcaport.model.config import WindowingConfig
from orcaport.model.pipeline import Frontend, run_steps, windows_of
from orcaport.model.source import AudioSource


class ClipWaveforms:
    """The waveform steps of one model's frontend (`Frontend.of(config)`) over its windows."""

    def __init__(self, fe: Frontend, windowing: WindowingConfig | None = None) -> None:
        self.fe = fe
        self.windowing = windowing or WindowingConfig()
        self.last_signal_step = [n for n in fe.chain if n not in fe.spectral_steps][-1]

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
        last = self.last_signal_step
        if not self.fe.cfg.downmix:
            pcm = PcmAudio(clip, src.sample_rate, src.sample_width)
            return run_steps(pcm, self.fe, src.sample_rate, "load", last)[last]
        return run_steps(clip, self.fe, src.sample_rate, "resample", last)[last]

    def clip_inputs(self, src: AudioSource, first: int = 0, count: int | None = None) -> Iterator[np.ndarray]:
        """Clips first..first+count-1 (default: all) as their shared prefix (before `clip_waveform`):
        clip k spans seconds k * hop .. k * hop + clip_seconds - 1, each second's prefix made once."""
        w = self.windowing
        count = len(windows_of(src.duration_s, src.path, w)) - first if count is None else count
        if count <= 0:
            return
        downmix = self.fe.cfg.downmix
        lo = first * w.hop_seconds
        held: deque[np.ndarray] = deque()          # prefixes of seconds lo, lo + 1, ...
        n_seconds = (count - 1) * w.hop_seconds + w.clip_seconds
        for k, seg in enumerate(src.segments(n_seconds, lo)):
            held.append(self.prefix(seg, src) if downmix else seg)
            start = k + 1 - w.clip_seconds           # the clip ending with this second, if any
            if start >= 0 and start % w.hop_seconds == 0:
                yield np.concatenate(list(held)[-w.clip_seconds:], axis=1 if downmix else 0)
            while len(held) > w.clip_seconds:
                held.popleft()

    def waveforms(self, src: AudioSource, first: int = 0, count: int | None = None) -> np.ndarray:
        """Clips first..first+count-1 (default: all) ready for the spectrogram steps.
        -> (count, C, N') float32"""
        return np.stack([self.clip_waveform(c, src) for c in self.clip_inputs(src, first, count)])
