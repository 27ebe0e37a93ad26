"""Diff metrics for one stage: how far the clean tensor is from the legacy one, and where. Runs in
both environments (stdlib + numpy: `make envelope` keys its figures by `tolerance_stage`).

A `Tolerance` is one pass criterion. The difference it bounds is measured in one of two domains:
- "linear": |got - ref|, bounded by atol (times max|ref| when scale="max", i.e. relative to the
  stage's own maximum) + rtol * |ref|;
- "log_power": |10 log10 got - 10 log10 ref| in dB, both floored `floor_db` below max|ref| (the
  mel power spectrogram, whose near-zero bins make element-wise rtol meaningless and which the db
  stage floors at max - top_db anyway).
A check passes when at most max_fraction of elements lie outside the bound; `exact` stages compare
bit for bit (NaNs equal to NaNs). `excess` is the largest difference over its bound: how many times
over tolerance a failing check is (the margin of a negative control). Everything is float64, so
the metric itself adds no error. `diff_stats` (parity/diffstats.py) adds the envelope statistics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Container, Sequence

import numpy as np

from orcaport.parity.diffstats import abs_diff, diff_stats, log_power_diff

# Axis names per stage, so the worst element is reported as (mel_bin, frame) rather than a flat index.
AXES: dict[str, tuple[str, ...]] = {
    "decode": ("frame", "channel"), "clip": ("frame", "channel"),
    "load": ("channel", "sample"), "downmix": ("channel", "sample"), "resample": ("channel", "sample"),
    "mel": ("channel", "mel_bin", "frame"), "db": ("channel", "mel_bin", "frame"),
    "input": ("channel", "mel_bin", "frame"),
    "activations": ("channel", "y", "x"), "pooled": ("feature",),
    "logits": ("class",), "probs": ("class",), "aggregate": ("row",),
}
DOMAINS = ("linear", "log_power")
# The criteria parity applies unless told otherwise (the fixture's, derived from its envelope).
DEFAULT_TOLERANCES = Path(__file__).with_name("tolerances.json")


# fastai_audio's option stages (model/frontend/): each is checked under its own entry when the
# tolerances file has one (`make envelope` on an option learner measures it, windowed mode), else
# under the criterion of the stage its arithmetic comes from. silence / segment / pad_signal only
# select, zero and re-cache samples of the resampled signal; standardize rescales dB into [0, 1]
# and delta's Savitzky-Golay filters have L1 norms below 1 (its first channel is the dB itself), so
# neither exceeds the dB error; mfcc becomes the network input after padding, whose criterion is
# relative to its max.
OPTION_TOLERANCE = {"silence": "resample", "segment": "resample", "pad_signal": "resample",
                    "standardize": "db", "delta": "db", "mfcc": "input"}


def tolerance_stage(stage: str, layer: str | None, own: Container[str] = ()) -> str:
    """The tolerances entry a check runs under: the pooled features have their own; an option
    stage its own when `own` (the tolerances file's entries) has it, else its parent's."""
    if layer == "pooled":
        return "pooled"
    return stage if stage in own else OPTION_TOLERANCE.get(stage, stage)


def envelope_stage(stage: str, layer: str | None) -> str:
    """The envelope row a check's figures fold into: its own stage (option stages included)."""
    return "pooled" if layer == "pooled" else stage


SCALES = ("abs", "max")


@dataclass(frozen=True)
class Tolerance:
    atol: float
    rtol: float
    max_fraction: float
    exact: bool
    why: str
    domain: str = "linear"
    scale: str = "abs"
    floor_db: float = 100.0

    def __post_init__(self) -> None:
        if self.domain not in DOMAINS or self.scale not in SCALES:
            raise ValueError(f"tolerance domain/scale {self.domain!r}/{self.scale!r} not in {DOMAINS}/{SCALES}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Tolerance":
        return cls(atol=float(d.get("atol", 0.0)), rtol=float(d.get("rtol", 0.0)),
                   max_fraction=float(d.get("max_fraction", 0.0)), exact=bool(d.get("exact", False)),
                   why=str(d["why"]), domain=str(d.get("domain", "linear")),
                   scale=str(d.get("scale", "abs")), floor_db=float(d.get("floor_db", 100.0)))

    def to_dict(self) -> dict[str, Any]:
        return {"atol": self.atol, "rtol": self.rtol, "max_fraction": self.max_fraction,
                "exact": self.exact, "domain": self.domain, "scale": self.scale,
                "floor_db": self.floor_db, "why": self.why, "text": self.text()}

    def text(self) -> str:
        """'exact', '|Δ| ≤ 1e-05', '|Δ| ≤ 0.002·max|ref|', '|ΔdB| ≤ 0.05 (floor 100 dB)' ..."""
        if self.exact:
            return "exact"
        if self.domain == "log_power":
            text = f"|ΔdB| ≤ {self.atol:.3g} (floor {self.floor_db:g} dB)"
        else:
            text = f"|Δ| ≤ {self.atol:.3g}" + ("·max|ref|" if self.scale == "max" else "")
            if self.rtol:
                text += f" + {self.rtol:.3g}·|ref|"
        if self.max_fraction:
            text += f", ≤{100.0 * self.max_fraction:.3g}% out"
        return text

    def differences(self, ref: np.ndarray, got: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """-> (difference in this tolerance's domain, its bound), both float64 of ref's shape."""
        r, g = ref.astype(np.float64), got.astype(np.float64)
        if self.domain == "log_power":
            return log_power_diff(r, g, self.floor_db), np.full(r.shape, self.atol)
        d = abs_diff(r, g)
        scale = float(np.nanmax(np.abs(r))) if self.scale == "max" and r.size and not np.all(np.isnan(r)) else 1.0
        return d, self.atol * scale + self.rtol * np.abs(r)


def _finite_or_none(x: float) -> float | None:
    return None if not math.isfinite(x) else float(x)


def compare(ref: np.ndarray, got: np.ndarray, tol: Tolerance, axes: Sequence[str] = ()) -> dict[str, Any]:
    """-> metrics dict (JSON-safe) with a `passed` verdict under `tol`."""
    ref = np.asarray(ref)
    got = np.asarray(got)
    if ref.shape != got.shape:
        return {"passed": False, "n": int(ref.size), "shape_mismatch": [list(ref.shape), list(got.shape)],
                "max_abs": None, "mean_abs": None, "max_rel": None, "rms": None, "snr_db": None,
                "n_out": int(ref.size), "fraction_out": 1.0, "worst": None, "excess": None}
    n = int(ref.size)
    d, bound = tol.differences(ref, got)
    if tol.exact:
        r, g = ref.astype(np.float64), got.astype(np.float64)
        out = ~((np.isnan(r) & np.isnan(g)) | (r == g))
        excess = float(out.sum())
    else:
        out = d > bound
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(d == 0, 0.0, d / bound)
        excess = float(np.nanmax(ratio)) if n else 0.0
    n_out = int(out.sum())
    worst = None
    if n:
        flat = int(np.argmax(np.where(out, d + 1.0, d) if n_out else d))  # prefer out-of-tolerance
        index = [int(i) for i in np.unravel_index(flat, ref.shape)]
        # Leading dims beyond the stage's own axes are stacked clips (e.g. all/probs is (clips, class)).
        names = ["clip"] * max(len(index) - len(axes), 0) + list(axes)[-len(index):] if axes else []
        worst = {"index": index, "axes": names, "ref": _finite_or_none(float(ref.flat[flat])),
                 "got": _finite_or_none(float(got.flat[flat]))}
    stats = diff_stats(ref, got)
    return {"passed": n_out <= tol.max_fraction * n, "n": n, "n_out": n_out,
            "fraction_out": n_out / n if n else 0.0, **stats,
            "excess": _finite_or_none(excess), "worst": worst}
