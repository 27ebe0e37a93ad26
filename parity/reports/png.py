"""Dependency-free heatmap PNGs for the parity reports: an 8-bit RGB encoder and a viridis-like map.

The clean env has no matplotlib or PIL, and the HTML report must be one self-contained file, so
heatmaps are encoded here (zlib + struct) and embedded as data: URIs.

Conventions the reports rely on:
  * row 0 of a (n_mels, frames) array is the lowest mel bin; it is drawn at the *bottom*, as in any
    spectrogram plot, so the image is flipped vertically before encoding;
  * non-finite values (NaN, +-inf: a diverged clean pipeline) are drawn in magenta, a colour the
    map never produces, and are ignored when the colour limits are chosen;
  * small arrays are scaled up by an integer nearest-neighbour factor: a 256 x 312 mel map becomes
    512 x 624, and no value is ever blended with its neighbour, so every pixel is a real value.
"""

from __future__ import annotations

import math
import struct
import zlib

import numpy as np

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
NONFINITE_RGB = (255, 0, 255)
TARGET_LONG_SIDE = 512      # upscale until the long side reaches about this many pixels...
MAX_SCALE = 16              # ...but never blow a tiny test array up beyond this factor
LOG_FLOOR = 1e-12           # log scale: values at or below this (power is >= 0) are clamped here
LOG_DECADES = 8.0           # log scale autoscaling shows at most 80 dB below the peak (top_db-like):
                            # the floor values of a power map would otherwise wash out the structure

# 16 anchors of viridis (evenly spaced on its 256-entry LUT); interpolated linearly in sRGB.
# Viridis is chosen because its lightness rises monotonically, so a greyscale print or a
# colour-blind reader still sees the order of the values.
VIRIDIS_ANCHORS: tuple[str, ...] = (
    "440154", "481a6c", "472f7d", "414487", "39568c", "31688e", "2a788e", "23888e",
    "1f988b", "22a884", "35b779", "54c568", "7ad151", "a5db36", "d2e21b", "fde725",
)
_ANCHORS = np.array([[int(h[i:i + 2], 16) for i in (0, 2, 4)] for h in VIRIDIS_ANCHORS], float)
_ANCHOR_POS = np.linspace(0.0, 1.0, len(_ANCHORS))


def _chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, type, data, CRC-32 over type + data."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def encode_png(rgb: np.ndarray, level: int = 6) -> bytes:
    """(height, width, 3) uint8 -> PNG bytes (8-bit truecolour, no interlace, filter 0 per row).

    Deterministic: the same pixels always give the same bytes (no timestamps, no text chunks)."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"need a (height, width, 3) uint8 array, got {rgb.dtype} {rgb.shape}")
    height, width = rgb.shape[:2]
    if height == 0 or width == 0:
        raise ValueError(f"PNG needs at least one pixel, got {width}x{height}")
    # Each scanline is prefixed by its filter type byte (0 = None).
    raw = np.concatenate([np.zeros((height, 1), np.uint8), rgb.reshape(height, width * 3)], axis=1)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (PNG_SIGNATURE + _chunk(b"IHDR", ihdr)
            + _chunk(b"IDAT", zlib.compress(raw.tobytes(), level)) + _chunk(b"IEND", b""))


def colormap(values: np.ndarray) -> np.ndarray:
    """Values in [0, 1] (clipped) -> uint8 RGB of shape values.shape + (3,); NaN -> magenta."""
    v = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(v)
    t = np.clip(np.where(finite, v, 0.0), 0.0, 1.0)
    rgb = np.stack([np.interp(t, _ANCHOR_POS, _ANCHORS[:, c]) for c in range(3)], axis=-1)
    rgb = np.rint(rgb).astype(np.uint8)
    rgb[~finite] = NONFINITE_RGB
    return rgb


def _as_2d(array2d: np.ndarray) -> np.ndarray:
    """Accept (n_mels, frames) or the stage layout (1, n_mels, frames); refuse anything else."""
    a = np.asarray(array2d)
    while a.ndim > 2 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 2 or a.size == 0:
        raise ValueError(f"heatmap needs a non-empty 2-D array, got shape {np.shape(array2d)}")
    return a.astype(np.float64)


def _transform(a: np.ndarray, log: bool) -> np.ndarray:
    if not log:
        return a
    with np.errstate(invalid="ignore"):         # NaN stays NaN; negative power is clamped
        return np.log10(np.where(np.isnan(a), np.nan, np.maximum(a, LOG_FLOOR)))


def scale_limits(array2d: np.ndarray, vmin: float | None = None, vmax: float | None = None,
                 log: bool = False) -> tuple[float, float]:
    """The (lo, hi) colour limits heatmap_png uses, in *data* units (not log10), for captions.

    Missing limits come from the finite values; an all-non-finite array gives (0, 1)."""
    a = _as_2d(array2d)
    t = _transform(a, log)
    finite = t[np.isfinite(t)]
    lo = _transform(np.array([[vmin]], float), log)[0, 0] if vmin is not None else \
        (float(finite.min()) if finite.size else 0.0)
    hi = _transform(np.array([[vmax]], float), log)[0, 0] if vmax is not None else \
        (float(finite.max()) if finite.size else 1.0)
    if log:
        if vmin is None:
            lo = max(lo, hi - LOG_DECADES)
        return float(10.0 ** lo), float(10.0 ** hi)
    return float(lo), float(hi)


def upscale_factor(height: int, width: int) -> int:
    """Integer nearest-neighbour factor that brings the long side to ~TARGET_LONG_SIDE pixels."""
    return max(1, min(MAX_SCALE, math.ceil(TARGET_LONG_SIDE / max(height, width, 1))))


def heatmap_rgb(array2d: np.ndarray, vmin: float | None = None, vmax: float | None = None,
                log: bool = False, scale: int | None = None) -> np.ndarray:
    """The uint8 RGB image heatmap_png encodes (flipped, coloured, upscaled)."""
    a = _as_2d(array2d)
    t = _transform(a, log)
    lo, hi = scale_limits(a, vmin, vmax, log)
    lo_t, hi_t = (math.log10(max(lo, LOG_FLOOR)), math.log10(max(hi, LOG_FLOOR))) if log else (lo, hi)
    span = hi_t - lo_t
    # A constant map (e.g. |diff| == 0 everywhere) is drawn at the bottom colour, not as NaN.
    norm = (t - lo_t) / span if span > 0 else np.where(np.isfinite(t), 0.0, np.nan)
    rgb = colormap(norm[::-1])                  # row 0 (lowest mel bin) at the bottom
    k = upscale_factor(*a.shape) if scale is None else int(scale)
    if k < 1:
        raise ValueError(f"scale must be >= 1, got {scale}")
    if k > 1:
        rgb = np.repeat(np.repeat(rgb, k, axis=0), k, axis=1)
    return rgb


def heatmap_png(array2d: np.ndarray, vmin: float | None = None, vmax: float | None = None,
                log: bool = False, *, scale: int | None = None) -> bytes:
    """2-D array -> PNG bytes of its viridis heatmap (low rows at the bottom, NaN in magenta).

    vmin/vmax default to the finite min/max; pass the same limits for two maps that are meant to
    be compared (legacy vs clean), or an offset between them disappears in the autoscaling.
    log=True colours log10 of the values (power spectrograms). scale overrides the upscale factor.
    """
    return encode_png(heatmap_rgb(array2d, vmin, vmax, log, scale))


def colorbar_png(width: int = 256, height: int = 12) -> bytes:
    """A horizontal low-to-high strip of the colour map, for the reports' scale captions."""
    ramp = colormap(np.linspace(0.0, 1.0, width))
    return encode_png(np.repeat(ramp[None, :, :], height, axis=0))
