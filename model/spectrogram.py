"""Spectrogram stages of the legacy frontend: torchaudio MelSpectrogram + AmplitudeToDB, then
fastai_audio's `tfm_crop_time` padding, recomputed with torch only.

    mel_spectrogram   (..., C, N) float32 at 20 kHz   -> (..., C, n_mels, 1 + N // hop)  power mel
    amplitude_to_db   (..., C, n_mels, T)             -> same shape, dB, floored at max - top_db per clip
    standardize       (C, n_mels, T)                  -> (C, n_mels, T)  fastai_audio's [0, 1] scaling
    pad_or_crop       (..., C, n_mels, T)             -> (..., C, n_mels, int(sr * duration / hop))

A leading batch dimension (`...`: clips) runs every clip as its own; tensors stay on their device
(the CUDA detector runs these stages on the GPU).

fastai_audio builds `MelSpectrogram(**mel_args)` without `sample_rate`, so the filterbank is laid
out for torchaudio's default 16 kHz (`FrontendConfig.filterbank_sample_rate`) although the audio is
at 20 kHz: mel bins above 8 kHz are all zero when f_max = 10 kHz. A 2 s clip gives 157 frames,
padded with 0.0 dB (not silence) to 312. Beware: fastai_audio 0.1's AudioConfig.pad_mode defaults
to "zeros", which OrcaHello's fastai_inference.py never overrides, so production puts a random
number (0..155) of those 0.0 columns *in front* of each clip; "zeros-after" (no front pad) is what
upstream's own reference files use. The runtime replaces such draws by the middle of their range
(model/frontend/offsets.py).
"""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np
import torch

from orcaport.model.config import FrontendConfig
from orcaport.model.errors import OrcaportError
from orcaport.model.frontend.offsets import resolve_offset

AMIN = 1e-10                   # AmplitudeToDB clamp
REF_DB = math.log10(1.0)       # log10(max(amin, ref=1.0)) = 0.0
POWER_DB = 10.0                # power (not magnitude) spectrogram
STANDARDIZE_EPS = 1e-6
PAD_MODES = ("zeros", "zeros-after", "repeat")   # tfm_pad_spectro's; "zeros" draws its front (offsets.py)
SILENCE_MODES = ("trim", "split", "all")
CACHE_SUBTYPES = ("PCM_16", "PCM_24", "PCM_32", "FLOAT")


class FrontendError(OrcaportError, ValueError):
    """The frontend config asks for something fastai_audio does that cannot be replayed here."""


def check_supported(cfg: FrontendConfig) -> FrontendConfig:
    """Return `cfg` if this runtime reproduces it, else raise naming the field. Every fastai_audio
    0.1 option is reproduced (model/frontend/); what is refused here is what legacy itself refuses,
    with its reason (an unknown pad_mode or remove_silence, n_mfcc > n_mels, ...)."""
    if cfg.pad_mode.lower() not in PAD_MODES:
        raise FrontendError(f"frontend.pad_mode={cfg.pad_mode!r} is not a fastai_audio pad mode (legacy: "
                            "'only zeros, zeros-after, or repeat'); use one of those")
    if cfg.remove_silence is not None and cfg.remove_silence not in SILENCE_MODES:
        raise FrontendError(f"frontend.remove_silence={cfg.remove_silence!r}: fastai_audio's options are "
                            "None, 'split', 'trim', 'all'")
    if cfg.remove_silence is not None and cfg.silence_threshold <= 0:
        raise FrontendError(f"frontend.silence_threshold={cfg.silence_threshold} dB marks every frame "
                            "silent (legacy fails with IndexError); use a positive threshold")
    if cfg.use_spectro and cfg.mfcc and cfg.n_mfcc > cfg.n_mels:
        raise FrontendError(f"frontend.n_mfcc={cfg.n_mfcc} exceeds n_mels={cfg.n_mels} (torchaudio's "
                            "MFCC: 'Cannot select more MFCC coefficients than # mel bins')")
    if cfg.duration and not cfg.hop_length:
        raise FrontendError("frontend.hop_length=None with a duration: fastai_audio's crop needs a hop")
    if cfg.win_length is not None and cfg.win_length > cfg.n_fft:
        raise FrontendError(f"frontend.win_length={cfg.win_length} exceeds n_fft={cfg.n_fft}")
    if cfg.f_max is not None and cfg.f_min > cfg.f_max:
        raise FrontendError(f"frontend.f_min={cfg.f_min} exceeds f_max={cfg.f_max}")
    if cfg.top_db is not None and cfg.top_db < 0:
        raise FrontendError(f"frontend.top_db={cfg.top_db} must be >= 0 (AmplitudeToDB refuses it)")
    if cfg.cache_subtype not in CACHE_SUBTYPES:
        raise FrontendError(f"frontend.cache_subtype={cfg.cache_subtype!r} is not emulated; "
                            f"one of {', '.join(CACHE_SUBTYPES)}")
    return cfg


@functools.lru_cache(maxsize=8)
def mel_filterbank(n_freqs: int, f_min: float, f_max: float, n_mels: int,
                   sample_rate: int) -> torch.Tensor:
    """HTK triangular filterbank, no norm, as torchaudio.functional.melscale_fbanks builds it in
    float32 (same ops, same order, so the same bits).   -> (n_freqs, n_mels)
    Cached per configuration (every clip uses the same one): treat the result as read-only."""
    def hz_to_mel(hz: float) -> float:
        return 2595.0 * math.log10(1.0 + hz / 700.0)

    bin_hz = torch.linspace(0, sample_rate // 2, n_freqs)                       # (F,)
    mel_pts = torch.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2)   # (M + 2,)
    edge_hz = 700.0 * (10.0 ** (mel_pts / 2595.0) - 1.0)
    width = edge_hz[1:] - edge_hz[:-1]                                          # (M + 1,)
    dist = edge_hz.unsqueeze(0) - bin_hz.unsqueeze(1)                           # (F, M + 2)
    rising = (-1.0 * dist[:, :-2]) / width[:-1]
    falling = dist[:, 2:] / width[1:]
    return torch.minimum(rising, falling).clamp(min=0.0)


@functools.lru_cache(maxsize=8)
def _hann_window(length: int) -> torch.Tensor:
    return torch.hann_window(length)


def _as_wave(wave: np.ndarray | torch.Tensor) -> torch.Tensor:
    x = torch.from_numpy(np.asarray(wave)) if not isinstance(wave, torch.Tensor) else wave
    if x.dtype != torch.float32:
        raise TypeError(f"mel_spectrogram takes float32 audio (legacy reads it so), got {x.dtype}")
    return x


def mel_spectrogram(wave: np.ndarray | torch.Tensor, cfg: FrontendConfig) -> torch.Tensor:
    """torchaudio MelSpectrogram(f_min, f_max, hop_length, n_fft, n_mels, pad, win_length) with
    the default 16 kHz filterbank rate: periodic Hann window of win_length (default n_fft), centred
    frames with reflect padding, `pad` zeros each side first, |STFT|^2, onesided.
    (C, N) float32 -> (C, n_mels, 1 + (N + 2 * pad) // hop) float32"""
    x = _as_wave(wave)
    win_length = cfg.win_length or cfg.n_fft
    hop = cfg.hop_length or win_length // 2
    f_max = cfg.f_max if cfg.f_max is not None else float(cfg.filterbank_sample_rate // 2)
    if cfg.pad > 0:
        x = torch.nn.functional.pad(x, (cfg.pad, cfg.pad), "constant")
    lead = x.shape[:-1]
    spec = torch.stft(x.reshape(-1, x.shape[-1]), n_fft=cfg.n_fft, hop_length=hop,
                      win_length=win_length, window=_hann_window(win_length).to(x.device), center=True,
                      pad_mode="reflect", normalized=False, onesided=True, return_complex=True)
    power = spec.reshape(lead + spec.shape[-2:]).abs().pow(2.0)                 # (..., C, F, T)
    fb = mel_filterbank(cfg.n_fft // 2 + 1, cfg.f_min, f_max, cfg.n_mels, cfg.filterbank_sample_rate)
    return torch.matmul(power.transpose(-1, -2), fb.to(x.device)).transpose(-1, -2)


def amplitude_to_db(mel: torch.Tensor, top_db: float | None) -> torch.Tensor:
    """torchaudio AmplitudeToDB(stype="power", top_db): 10 * log10(max(x, 1e-10)), then floored at
    (max over the last three dims) - top_db, per item when there are more than three dims."""
    db = POWER_DB * torch.log10(torch.clamp(mel, min=AMIN))
    db = db - POWER_DB * REF_DB
    if top_db is None:
        return db
    shape = db.shape
    items = db.reshape(-1, shape[-3] if db.dim() > 2 else 1, shape[-2], shape[-1])
    floor = items.amax(dim=(-3, -2, -1)) - top_db
    return torch.max(items, floor.view(-1, 1, 1, 1)).reshape(shape)


def standardize(db: torch.Tensor) -> torch.Tensor:
    """fastai_audio `standardize` (applied before padding, when AudioConfig.standardize): z-score
    with the whole tensor's mean and unbiased std (+1e-6), then min-max scaled to [0, 1]; all
    zeros when the z-scores span no more than 1e-6."""
    z = (db - db.mean()) / (db.std() + STANDARDIZE_EPS)
    lo, hi = z.min(), z.max()
    if (hi - lo) > STANDARDIZE_EPS:
        return (z - lo) / (hi - lo)
    return torch.zeros_like(z)


def input_width(cfg: FrontendConfig, sample_rate: int) -> int | None:
    """Columns of the network input `pad_or_crop` makes from a spectrogram at `sample_rate` (the
    resample_to rate): int(sample_rate * duration_s / hop). None without a duration: the input is
    then the spectrogram as it is, as wide as the clip."""
    if not cfg.duration:
        return None
    return int(sample_rate * (cfg.duration / 1000) / cfg.hop_length)


def pad_or_crop(db: torch.Tensor, cfg: FrontendConfig, sample_rate: int,
                zeros_front: int | None = None, crop_start: int | None = None) -> torch.Tensor:
    """fastai_audio `tfm_crop_time` + `tfm_pad_spectro` to `cfg.duration` ms at `sample_rate`
    (the resample_to rate).   (..., C, H, T) -> (..., C, H, int(sample_rate * duration_s / hop))

    A spectrogram that spans no more than `duration` is padded with 0.0 (loud in dB, not silence):
    "zeros-after" appends it, "repeat" tiles the spectrogram instead, and "zeros" -- fastai_audio
    0.1's default, hence what OrcaHello production runs -- puts random.randint(0, width - T)
    columns in front and the rest behind. A longer one is cropped to `width` columns from
    random.randint(0, T - width). Parity passes the draws legacy made (`zeros_front`,
    `crop_start`); None takes the runtime's deterministic offset, the middle of the range
    (model/frontend/offsets.py). No `duration` leaves the spectrogram as it is.
    """
    if not cfg.duration:
        return db
    *lead, channels, n_mels, frames = db.shape
    width = input_width(cfg, sample_rate)
    if cfg.duration / 1000 < (cfg.hop_length * frames) / sample_rate:
        start = resolve_offset(frames - width, crop_start, "crop_start")
        return db[..., start:start + width]
    mode = cfg.pad_mode.lower()
    if mode == "repeat":
        return db.repeat(*[1] * (db.dim() - 1), width // frames + 1)[..., :width]
    if mode not in ("zeros", "zeros-after"):
        raise FrontendError(f"pad_mode {cfg.pad_mode!r} is not a fastai_audio pad mode")
    front = resolve_offset(width - frames, zeros_front, "zeros_front") if mode == "zeros" else 0
    zeros = functools.partial(torch.zeros, dtype=db.dtype, device=db.device)
    return torch.cat((zeros((*lead, channels, n_mels, front)), db,
                      zeros((*lead, channels, n_mels, width - frames - front))), -1)
