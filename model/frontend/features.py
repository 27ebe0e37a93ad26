"""fastai_audio's `mfcc` and `delta` options.

    mfcc    torchaudio MFCC(sample_rate=rate, n_mfcc, melkwargs=mel_args) as `create_spectro` builds
            it: the mel spectrogram with the filterbank at the audio's OWN rate (unlike the plain
            mel path, MFCC passes sample_rate), AmplitudeToDB("power", top_db=80) -- MFCC's fixed
            80, not the config's top_db -- then the orthonormal DCT-II over mels.
            (C, N) float32 -> (C, n_mfcc, T)
    deltas  per channel, the spectrogram and its first and second derivatives, stacked:
            librosa.feature.delta(m, order, width=9) = scipy's Savitzky-Golay filter (polyorder =
            deriv = order, mode "interp") along time, which fastai_audio's `torchdelta` calls.
            (C, H, T) -> (3C, H, T); needs T >= 9 (legacy raises below)
"""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np
import torch
from scipy.signal import savgol_filter

from orcaport.model.config import FrontendConfig
from orcaport.model.errors import OrcaportError
from orcaport.model.spectrogram import amplitude_to_db, mel_spectrogram

MFCC_TOP_DB = 80.0           # torchaudio.transforms.MFCC hard-codes it
DELTA_WIDTH = 9              # fastai_audio's torchdelta passes width=9 to librosa


class FeatureError(OrcaportError, ValueError):
    """mfcc / delta cannot run on this input (legacy refuses it too)."""


@functools.lru_cache(maxsize=8)
def dct_matrix(n_mfcc: int, n_mels: int) -> torch.Tensor:
    """DCT-II, orthonormal, as torchaudio.functional.create_dct(n_mfcc, n_mels, "ortho") builds it
    in float32.   -> (n_mels, n_mfcc)"""
    n = torch.arange(float(n_mels))
    k = torch.arange(float(n_mfcc)).unsqueeze(1)
    basis = torch.cos(math.pi / float(n_mels) * (n + 0.5) * k)         # (n_mfcc, n_mels)
    basis[0] *= 1.0 / math.sqrt(2.0)
    basis *= math.sqrt(2.0 / float(n_mels))
    return basis.t()


def mfcc(wave: np.ndarray | torch.Tensor, cfg: FrontendConfig, rate: int) -> torch.Tensor:
    """torchaudio MFCC at `rate` (the signal's rate).   (..., C, N) -> (..., C, n_mfcc, T)"""
    if cfg.n_mfcc > cfg.n_mels:
        raise FeatureError(f"n_mfcc={cfg.n_mfcc} exceeds n_mels={cfg.n_mels} (torchaudio's MFCC: "
                           "'Cannot select more MFCC coefficients than # mel bins')")
    mel = mel_spectrogram(wave, dataclasses.replace(cfg, filterbank_sample_rate=rate))
    db = amplitude_to_db(mel, MFCC_TOP_DB)
    return torch.matmul(db.transpose(-1, -2), dct_matrix(cfg.n_mfcc, cfg.n_mels).to(db.device)).transpose(-1, -2)


def deltas(spec: torch.Tensor) -> torch.Tensor:
    """[m, delta(m), delta2(m)] for each channel m, concatenated.   (C, H, T) -> (3C, H, T)"""
    if spec.shape[-1] < DELTA_WIDTH:
        raise FeatureError(f"delta needs at least {DELTA_WIDTH} spectrogram columns, got "
                           f"{spec.shape[-1]} (fastai_audio: 'Delta not possible with current "
                           "settings'); set max_to_pad or segment_size so inputs are longer")
    x = spec.detach().cpu().numpy()
    out = []
    for m in x:
        out += [m, savgol_filter(m, DELTA_WIDTH, polyorder=1, deriv=1, axis=-1, mode="interp"),
                savgol_filter(m, DELTA_WIDTH, polyorder=2, deriv=2, axis=-1, mode="interp")]
    return torch.from_numpy(np.stack(out)).to(spec.device)
