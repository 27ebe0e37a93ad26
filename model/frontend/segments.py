"""fastai_audio's signal-length options, on one signal.

    segment_signal      segment_size: the signal cut into segments of int(rate * ms / 1000) samples,
                        the last one zero-padded (`segment_items`). Quirk kept: a signal whose length
                        is an exact multiple still gets one more, all-zero segment.
                        (C, N) float32 -> list of (C, size) float32
    pad_or_trim_signal  max_to_pad (else segment_size): `tfm_padtrim_signal` to int(rate * ms / 1000)
                        samples with pad_mode "zeros": longer signals keep their start, shorter ones
                        get `front` zeros before (random in legacy, see offsets.py) and the rest after.
                        (C, N) -> (C, n)
"""

from __future__ import annotations

import numpy as np

from orcaport.model.frontend.offsets import resolve_offset


def samples_of(ms: float, rate: int) -> int:
    """fastai_audio's ms -> samples: int(rate * ms / 1000)."""
    return int(rate * ms / 1000)


def segment_signal(sig: np.ndarray, rate: int, segment_ms: float) -> list[np.ndarray]:
    """segment_items: N // size + 1 segments of `size` samples, the last zero-padded."""
    size = samples_of(segment_ms, rate)
    if size < 1:
        raise ValueError(f"segment_size={segment_ms} ms is under one sample at {rate} Hz")
    channels, n = sig.shape
    out = []
    for start in range(0, (n // size + 1) * size, size):
        piece = sig[:, start:start + size]
        if piece.shape[-1] < size:
            piece = np.concatenate([piece, np.zeros((channels, size - piece.shape[-1]), np.float32)], axis=-1)
        out.append(piece)
    return out


def padtrim_span(n: int, width: int) -> int:
    """The range of legacy's random front padding for a signal of n samples: randint(0, span)."""
    return width - n if n < width else 0


def pad_or_trim_signal(sig: np.ndarray, width: int, front: int | None = None) -> np.ndarray:
    """tfm_padtrim_signal(sig, width, "zeros"). `front`: the zero samples legacy drew in front
    (None: the runtime's centered offset).   (C, N) -> (C, width)"""
    channels, n = sig.shape
    if n >= width:
        return sig[:, :width]
    front = resolve_offset(width - n, front, "signal_front")
    return np.concatenate([np.zeros((channels, front), np.float32), sig,
                           np.zeros((channels, width - n - front), np.float32)], axis=-1)
