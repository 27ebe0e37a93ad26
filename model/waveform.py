"""Waveform stages of the legacy OrcaHello frontend, per 2 s clip, after model/audio.py decoded
and sliced it:

    load_clip         `export(format="wav")` + `sf.read(dtype="float32")` (channels, samples)
    downmix           `torch.mean(sig, 0, True)`                         (1, samples)
    cache_round_trip  `sf.write` (PCM_16 by default) + `sf.read` float32 (after downmix, resample)
    resample          `scipy.signal.resample_poly` with a gcd-reduced ratio

fastai_audio writes and re-reads a cache only when `downmix` or `resample_to` is on: once after
downmix, once after resample -- the resample cache is written even when the rate already matches.
Every function returns numpy arrays laid out as legacy holds them (a multi-channel float clip is
the transpose of soundfile's (samples, channels) array), so torch reductions see the same strides.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
from scipy.signal import firwin, resample_poly

from orcaport.model.audio import PcmAudio
from orcaport.model.config import CLIP_SECONDS, HOP_SECONDS

CACHE_BITS = {"PCM_16": 16, "PCM_24": 24, "PCM_32": 32}   # plus "FLOAT"


def load_clip(pcm: PcmAudio) -> np.ndarray:
    """pydub `export(format="wav")` then `sf.read(dtype="float32")`.   -> float32 (channels, samples)

    int8 / 128, int16 / 32768, float32(int32) * 2^-31 (the int -> float cast rounds to nearest
    even, as libsndfile's does); an incomplete last frame is dropped. Mono is a (1, samples)
    reshape; more channels are the transpose view of a (samples, channels) array, as legacy's
    patched torchaudio.load returns them.
    """
    x = pcm.samples.astype(np.float32) * np.float32(2.0 ** (1 - 8 * pcm.sample_width))
    return x.reshape(1, -1) if pcm.channels == 1 else x.T


def downmix(x: np.ndarray) -> np.ndarray:
    """fastai_audio tfm_downmix: torch.mean over channels, keepdim.   (C, N) -> (1, N) float32"""
    return torch.mean(torch.from_numpy(x), 0, True).numpy()


def cache_round_trip(x: np.ndarray, subtype: str = "PCM_16") -> np.ndarray:
    """`sf.write(path, x.T, sr)` (soundfile's default WAV subtype: PCM_16) then
    `sf.read(dtype="float32")`, computed without a file.   (C, N) float32/64 -> (C, N) float32

    soundfile turns libsndfile's clipping on, and libsndfile's clipping converters for both float32
    and float64 input scale by 2^31, clip (>= 2^31 - 1 -> max, <= -2^31 -> min), round half to even
    to an int32, then keep the top `bits` bits (an arithmetic shift: floor). NaN becomes the
    minimum. So PCM_16 is floor(x * 32768) clipped to [-32768, 32767] (up to the rounding of tiny
    values), not round(x * 32767). Reading scales by 2^-(bits-1) in float32. "FLOAT" only casts.
    """
    x = np.asarray(x)
    if x.dtype not in (np.float32, np.float64):
        raise TypeError(f"cache_round_trip takes float32/float64 audio, got {x.dtype}")
    if subtype == "FLOAT":
        y = x.astype(np.float32)
    elif subtype in CACHE_BITS:
        bits = CACHE_BITS[subtype]
        s = x.astype(np.float64) * 2.0**31
        q = np.full(s.shape, -(2**31), dtype=np.int64)
        top = s >= 2.0**31 - 1
        mid = ~top & (s > -(2.0**31))           # NaN fails both tests and stays at the minimum
        q[top] = 2**31 - 1
        q[mid] = np.rint(s[mid]).astype(np.int64)
        q >>= 32 - bits
        y = q.astype(np.float32) * np.float32(2.0 ** (1 - bits))
    else:
        raise ValueError(f"cache subtype {subtype!r} is not emulated; use one of "
                         f"{', '.join(list(CACHE_BITS) + ['FLOAT'])}")
    if y.ndim == 2 and y.shape[0] > 1:          # soundfile hands back (samples, channels)
        y = np.ascontiguousarray(y.T).T
    return y


def resample(x: np.ndarray, sr: int, sr_new: int) -> np.ndarray:
    """fastai_audio tfm_resample: resample_poly(x, up, down, axis=-1) with the gcd-reduced ratio;
    the input comes back untouched when the rates are equal. float32 in -> float32 out (scipy
    1.13 and 1.17 agree bit for bit).   (C, N) -> (C, ceil(N * up / down))"""
    if sr == sr_new:
        return x
    g = math.gcd(sr, sr_new)
    up, down = int(sr_new / g), int(sr / g)
    if x.dtype != np.float32:
        return resample_poly(x, up, down, axis=-1)
    return resample_poly(x, up, down, axis=-1, window=_resample_filter(up, down))


@functools.lru_cache(maxsize=16)
def _resample_filter(up: int, down: int) -> np.ndarray:
    """resample_poly's own default low-pass (firwin, Kaiser beta 5, 10 zero crossings per side)
    as it builds it for float32 input, designed once per rate pair instead of once per clip; an
    array window is used as is, so the output is the same bits (the parity references check it)."""
    max_rate = max(up, down)
    h = firwin(2 * 10 * max_rate + 1, 1.0 / max_rate, window=("kaiser", 5.0)).astype(np.float32)
    h.flags.writeable = False           # shared between calls; resample_poly copies it
    return h


def clip_windows(duration_s: float, clip_s: int = CLIP_SECONDS, hop_s: int = HOP_SECONDS) -> list[tuple[int, int]]:
    """Windowed detection's clips: [s, s + clip_s) for s = 0, hop_s, 2 hop_s, ... while
    s + clip_s <= floor(duration) -- production's range(int(floor(duration) - 1)) windows for its
    2 s clips every 1 s (the defaults; config.json's windowing may ask for others).

    `duration_s` is librosa.get_duration(path=...), i.e. soundfile's frames / rate
    (`PcmAudio.duration_s`). Under one clip there is no window at all.
    """
    return [(i, i + clip_s) for i in range(0, int(math.floor(duration_s) - clip_s + 1), hop_s)]
