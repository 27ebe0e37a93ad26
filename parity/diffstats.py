"""Difference statistics between two tensors of one stage (stdlib + numpy: both environments).

The envelope (`make envelope`, legacy env) and the parity checks (clean env) describe a difference
with these same numbers, so a tolerance derived from the envelope bounds the very quantity parity
measures:
    max_abs, mean_abs, rms, p99_abs, p999_abs   |got - ref|
    max_rel          |got - ref| / (|ref| + 1e-6 max|ref|)   element-wise, zero-safe
    rel_to_max       max|got - ref| / max|ref|             relative to the stage's own maximum
    max_log_power_db max |10 log10 got - 10 log10 ref|, both floored 100 dB below max|ref|
                     (only for non-negative tensors: power spectrograms)
    snr_db           10 log10(sum ref^2 / sum (got - ref)^2); None when identical
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

LOG_FLOOR_DB = 100.0


def log_power_diff(ref: np.ndarray, got: np.ndarray, floor_db: float = LOG_FLOOR_DB) -> np.ndarray:
    """|10 log10 max(got, f) - 10 log10 max(ref, f)| with f = max|ref| * 10^(-floor_db / 10).
    NaN on either side is an infinite difference."""
    r, g = ref.astype(np.float64), got.astype(np.float64)
    top = float(np.nanmax(np.abs(r))) if r.size and not np.all(np.isnan(r)) else 0.0
    floor = max(top * 10.0 ** (-floor_db / 10.0), 1e-300)
    d = np.abs(10.0 * np.log10(np.maximum(g, floor)) - 10.0 * np.log10(np.maximum(r, floor)))
    return np.where(np.isnan(r) | np.isnan(g), np.inf, d)


def abs_diff(ref: np.ndarray, got: np.ndarray) -> np.ndarray:
    """|got - ref| in float64; NaN on both sides is no difference, NaN on one side an infinite one."""
    r, g = np.asarray(ref).astype(np.float64), np.asarray(got).astype(np.float64)
    d = np.where(np.isnan(r) & np.isnan(g), 0.0, np.abs(g - r))
    return np.where(np.isnan(d), np.inf, d)


def _num(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def diff_stats(ref: np.ndarray, got: np.ndarray) -> dict[str, Any]:
    """-> the statistics above (JSON-safe); both arrays must share a shape."""
    r, g = np.asarray(ref).astype(np.float64), np.asarray(got).astype(np.float64)
    n = r.size
    if not n:
        return {"max_abs": 0.0, "mean_abs": 0.0, "rms": 0.0, "p99_abs": 0.0, "p999_abs": 0.0,
                "max_rel": 0.0, "rel_to_max": 0.0, "max_log_power_db": None, "snr_db": None}
    d = abs_diff(r, g)
    top = float(np.nanmax(np.abs(r))) if not np.all(np.isnan(r)) else 0.0
    rel = d / (np.abs(r) + 1e-6 * top + 1e-30)
    finite = np.where(np.isfinite(d), d, 0.0)
    signal, noise = float(np.nansum(r * r)), float(np.sum(finite * finite))
    p99, p999 = np.quantile(d, [0.99, 0.999]) if np.all(np.isfinite(d)) else (math.inf, math.inf)
    nonneg = bool(np.nanmin(r) >= 0) if not np.all(np.isnan(r)) else False
    return {
        "max_abs": _num(float(d.max())), "mean_abs": _num(float(d.mean())),
        "rms": _num(float(np.sqrt(np.mean(d * d)))),
        "p99_abs": _num(float(p99)), "p999_abs": _num(float(p999)),
        "max_rel": _num(float(rel.max())),
        "rel_to_max": _num(float(d.max()) / top) if top > 0 else (0.0 if float(d.max()) == 0 else None),
        "max_log_power_db": _num(float(log_power_diff(r, g).max())) if nonneg else None,
        "snr_db": None if noise == 0.0 else _num(10 * math.log10(max(signal, 1e-300) / noise)),
    }
