"""Per-file aggregation of clip confidences, as OrcaHello's `FastAIModel.predict` does with pandas.

    clip confidences, start-time order   (N,)   one per 2 s window starting at 0, 1, ..., N-1 s
    -> per-second rows                   (N + 1,) start_time_s 0..N:
         row 0      the first raw confidence
         row i      pandas rolling(2).mean() of clips i-1 and i      (1 <= i <= N-1)
         row N      the last raw confidence (an appended row)
    local_prediction  = confidence > threshold
    global_prediction = int(count(local) >= min_positive)
    global_confidence = 100 * mean(confidence of rows above threshold), 0.0 when there are none

The rolling mean is replayed with pandas' own algorithm (window sums kept with Kahan-compensated
adds and removes, then divided by the count) rather than (a + b) / 2: the running sum carries
rounding from earlier windows, so the two differ in the last bit for about one row in twenty.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

WINDOW = 2                # rolling(2); min_periods defaults to the window


@dataclass(frozen=True, eq=False)
class Aggregate:
    start_time_s: np.ndarray        # (N + 1,) int64, 0..N
    confidence: np.ndarray          # (N + 1,) float64
    local_prediction: np.ndarray    # (N + 1,) int64, 0/1
    global_prediction: int
    global_confidence: float

    def to_dict(self) -> dict:
        return {
            "start_time_s": self.start_time_s.tolist(), "confidence": self.confidence.tolist(),
            "local_prediction": self.local_prediction.tolist(),
            "global_prediction": self.global_prediction, "global_confidence": self.global_confidence,
        }


def _kahan_step(total: float, comp: float, value: float) -> tuple[float, float]:
    y = value - comp
    t = total + y
    return t, (t - total) - y


def rolling_mean_2(values: np.ndarray) -> np.ndarray:
    """pandas 1.5 `Series.rolling(2).mean()` (its roll_mean over fixed windows), bit for bit:
    Kahan-compensated running sum (separate compensations for adds and removes) divided by the
    count; a run of equal values at least as long as the count returns that value itself
    (GH#42064); a mean whose sign contradicts all its inputs is 0.
    (N,) float64 -> (N,) float64, NaN where the window holds fewer than 2 non-NaN values."""
    out = np.full(values.shape, np.nan)
    vals = values.tolist()
    total = comp_add = comp_remove = 0.0
    count = negatives = run = 0
    prev = vals[0] if vals else 0.0
    for i, v in enumerate(vals):
        if i >= WINDOW and not math.isnan(vals[i - WINDOW]):     # the value leaving the window
            old = vals[i - WINDOW]
            total, comp_remove = _kahan_step(total, comp_remove, -old)
            count -= 1
            negatives -= math.copysign(1.0, old) < 0
        if not math.isnan(v):
            total, comp_add = _kahan_step(total, comp_add, v)
            count += 1
            negatives += math.copysign(1.0, v) < 0
            run = run + 1 if v == prev else 1
            prev = v
        if count >= WINDOW:
            mean = total / count
            if run >= count:
                mean = prev
            elif (negatives == 0 and mean < 0) or (negatives == count and mean > 0):
                mean = 0.0
            out[i] = mean
    return out


def aggregate(clip_confidences: Sequence[float] | np.ndarray, threshold: float = 0.5,
              min_positive: int = 3) -> Aggregate:
    """Replay the production aggregation over clip confidences given in start-time order.

    Legacy widens each clip's float32 softmax to float64 (`astype(float)`); pass those values.
    0 clips (a file shorter than 2 s) raise ValueError: legacy fails there too (its
    `submission.loc[0, ...] = prediction.confidence[0]` raises KeyError: 0). 1 clip gives 2 rows,
    both equal to that clip's confidence.
    """
    conf = np.asarray(clip_confidences, dtype=np.float64)
    if conf.ndim != 1:
        raise ValueError(f"clip_confidences must be 1-D, got shape {conf.shape}")
    if conf.size == 0:
        raise ValueError("no clips to aggregate (file shorter than 2 s); legacy raises KeyError: 0 "
                         "here -- skip files without a full 2 s window")
    rows = np.concatenate([conf[:1], rolling_mean_2(conf)[1:], conf[-1:]])
    local = (rows > threshold).astype(np.int64)
    above = rows[rows > threshold]
    # pandas' Series.mean: numpy sum (pairwise) divided by the count, NaN -> 0 when empty
    global_confidence = float(above.sum() / np.float64(above.size)) * 100 if above.size else 0.0
    return Aggregate(
        start_time_s=np.arange(rows.size, dtype=np.int64), confidence=rows,
        local_prediction=local, global_prediction=int(int(local.sum()) >= min_positive),
        global_confidence=global_confidence,
    )
