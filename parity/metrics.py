"""Diff metrics for one stage: how far the clean tensor is from the legacy one, and where.

A check passes when the fraction of elements outside `atol + rtol * |ref|` is at most
`max_fraction`; `exact` stages compare bit for bit (NaNs equal to NaNs). Everything is computed in
float64 so the metric itself adds no error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

# Axis names per stage, so the worst element is reported as (mel_bin, frame) rather than a flat index.
AXES: dict[str, tuple[str, ...]] = {
    "decode": ("frame", "channel"), "clip": ("frame", "channel"),
    "load": ("channel", "sample"), "downmix": ("channel", "sample"), "resample": ("channel", "sample"),
    "mel": ("channel", "mel_bin", "frame"), "db": ("channel", "mel_bin", "frame"),
    "input": ("channel", "mel_bin", "frame"),
    "activations": ("channel", "y", "x"), "pooled": ("feature",),
    "logits": ("class",), "probs": ("class",), "aggregate": ("row",),
}


@dataclass(frozen=True)
class Tolerance:
    atol: float
    rtol: float
    max_fraction: float
    exact: bool
    why: str

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Tolerance":
        return cls(atol=float(d.get("atol", 0.0)), rtol=float(d.get("rtol", 0.0)),
                   max_fraction=float(d.get("max_fraction", 0.0)), exact=bool(d.get("exact", False)),
                   why=str(d["why"]))

    def to_dict(self) -> dict[str, Any]:
        return {"atol": self.atol, "rtol": self.rtol, "max_fraction": self.max_fraction,
                "exact": self.exact, "why": self.why}


def _finite_or_none(x: float) -> float | None:
    return None if not math.isfinite(x) else float(x)


def compare(ref: np.ndarray, got: np.ndarray, tol: Tolerance, axes: Sequence[str] = ()) -> dict[str, Any]:
    """-> metrics dict (JSON-safe) with a `passed` verdict under `tol`."""
    ref = np.asarray(ref)
    got = np.asarray(got)
    if ref.shape != got.shape:
        return {"passed": False, "n": int(ref.size), "shape_mismatch": [list(ref.shape), list(got.shape)],
                "max_abs": None, "mean_abs": None, "max_rel": None, "rms": None, "snr_db": None,
                "n_out": int(ref.size), "fraction_out": 1.0, "worst": None}
    r = ref.astype(np.float64)
    g = got.astype(np.float64)
    both_nan = np.isnan(r) & np.isnan(g)
    d = np.where(both_nan, 0.0, np.abs(g - r))
    d = np.where(np.isnan(d), np.inf, d)  # NaN on one side only is the worst possible difference
    if tol.exact:
        out = ~(both_nan | (r == g))
    else:
        out = d > tol.atol + tol.rtol * np.abs(r)
    n = int(r.size)
    n_out = int(out.sum())
    scale = float(np.nanmax(np.abs(r))) if n and not np.all(np.isnan(r)) else 0.0
    rel = d / (np.abs(r) + 1e-6 * scale + 1e-30)       # zero-safe relative error
    signal = float(np.nansum(r * r))
    noise = float(np.sum(np.where(np.isfinite(d), d * d, 0.0)))
    worst = None
    if n:
        flat = int(np.argmax(np.where(out, d + 1.0, d) if n_out else d))  # prefer out-of-tolerance
        index = [int(i) for i in np.unravel_index(flat, r.shape)]
        # Leading dims beyond the stage's own axes are stacked clips (e.g. all/probs is (clips, class)).
        names = ["clip"] * max(len(index) - len(axes), 0) + list(axes)[-len(index):] if axes else []
        worst = {"index": index, "axes": names,
                 "ref": _finite_or_none(float(r.flat[flat])), "got": _finite_or_none(float(g.flat[flat]))}
    return {
        "passed": n_out <= tol.max_fraction * n,
        "n": n, "n_out": n_out, "fraction_out": n_out / n if n else 0.0,
        "max_abs": _finite_or_none(float(d.max())) if n else 0.0,
        "mean_abs": _finite_or_none(float(d.mean())) if n else 0.0,
        "max_rel": _finite_or_none(float(rel.max())) if n else 0.0,
        "rms": _finite_or_none(float(np.sqrt(np.mean(d * d)))) if n else 0.0,
        "snr_db": None if noise == 0.0 else _finite_or_none(10 * math.log10(max(signal, 1e-300) / noise)),
        "worst": worst,
    }
