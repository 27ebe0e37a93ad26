"""Task metrics at the three levels the detector decides, with scikit-learn's implementations.

Levels and their ground truth (the criteria the reports state):
- second: each of OrcaHello's one-second rows [t, t+1) is a call second when a labeled event
  (overlapping labels joined) covers at least MIN_SECOND_OVERLAP_S of it, or half of the event
  when that is less (a short call across a second boundary still marks the second holding most of
  it); the row is detected when its confidence > threshold (OrcaHello's rule, strict). Score: the
  confidence.
- file: a recording is a call file when it holds a labeled event; it is detected when at least
  `min_positive` rows are above the threshold (the global decision). Score: its min_positive-th
  largest row confidence -- the file is detected at threshold t exactly when that score > t, so
  curves and the sweep describe the same decisions.
- event: detections are runs of detected seconds merged (model/events.py, as Raven/Audacity get
  them); a detection and a labeled event match when their spans overlap by more than
  MIN_EVENT_OVERLAP_S, each at most once, largest overlaps first. Precision: matched detections /
  detections; recall: matched labeled events / labeled events. Detections change with the
  threshold, so the event level has a sweep but no single-score curve or average precision.

scikit-learn (the `evaluate` extra) computes confusion counts, precision/recall/F1, average
precision, PR and ROC curves; this module only assembles them. Never imported by the runtime.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import (average_precision_score, confusion_matrix, precision_recall_curve,
                             precision_recall_fscore_support, roc_auc_score, roc_curve)

from orcaport.model.events import merge_events

MIN_SECOND_OVERLAP_S = 0.25
MIN_EVENT_OVERLAP_S = 0.0
SWEEP_THRESHOLDS = tuple(i / 100 for i in range(101))      # 0.00, 0.01, ..., 1.00
CURVE_POINTS = 400            # curves are thinned to about this many points for the reports
BOOTSTRAP_SAMPLES = 1000
BOOTSTRAP_SEED = 20261203
LEVELS = ("second", "file", "event")


# ----------------------------------------------------------------------------- ground truth
def merge_spans(spans: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """Overlapping or touching spans joined: labels may overlap (two callers)."""
    out: list[list[float]] = []
    for s, e in sorted(spans):
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return [(s, e) for s, e in out]


def second_truth(spans: Sequence[tuple[float, float]], rows: int,
                 min_overlap: float = MIN_SECOND_OVERLAP_S) -> np.ndarray:
    """(rows,) bool: row t ([t, t+1) s) is a call second (see the module docstring)."""
    truth = np.zeros(rows, dtype=bool)
    for s, e in merge_spans(spans):
        need = min(min_overlap, (e - s) / 2)
        for t in range(max(0, int(np.floor(s))), min(rows, int(np.ceil(e)))):
            truth[t] |= min(e, t + 1.0) - max(s, float(t)) >= need
    return truth


def file_score(confidence: np.ndarray, min_positive: int) -> float:
    """The min_positive-th largest row confidence (0.0 when the file has fewer rows)."""
    c = np.sort(np.asarray(confidence, dtype=np.float64))[::-1]
    return float(c[min_positive - 1]) if c.size >= min_positive else 0.0


# ----------------------------------------------------------------------------- counts and scores
def counts(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, int]:
    tn, fp, fn, tp = confusion_matrix(np.asarray(y_true, bool), np.asarray(y_pred, bool),
                                      labels=[False, True]).ravel()
    return {"tp": int(tp), "fp": int(fp), "fn": int(fn), "tn": int(tn)}


def prf(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Precision, recall, F1 of the positive class (0 where undefined: no detections / no calls)."""
    p, r, f, _ = precision_recall_fscore_support(np.asarray(y_true, bool), np.asarray(y_pred, bool),
                                                 average="binary", pos_label=True, zero_division=0)
    return {"precision": float(p), "recall": float(r), "f1": float(f)}


def f1_of(tp: float, fp: float, fn: float) -> float:
    """F1 from counts (what precision_recall_fscore_support returns; used where sklearn has no
    vectorised form: the event level and the bootstrap)."""
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def prf_counts(tp: int, fp: int, fn: int) -> dict[str, float]:
    return {"precision": tp / (tp + fp) if tp + fp else 0.0, "recall": tp / (tp + fn) if tp + fn else 0.0,
            "f1": f1_of(tp, fp, fn)}


def _thin(*arrays: np.ndarray) -> list[list[float]]:
    n = len(arrays[0])
    keep = np.unique(np.linspace(0, n - 1, min(n, CURVE_POINTS)).round().astype(int)) if n else []
    return [[float(a[i]) if math.isfinite(a[i]) else None for i in keep] for a in arrays]


def curves(y_true: np.ndarray, score: np.ndarray) -> dict[str, Any]:
    """PR and ROC curves, average precision, ROC AUC; None with a reason when a class is missing."""
    y = np.asarray(y_true, bool)
    if y.all() or not y.any():
        why = "no labeled calls" if not y.any() else "no negatives"
        return {"average_precision": None, "roc_auc": None, "pr": None, "roc": None, "undefined": why}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        precision, recall, pr_thr = precision_recall_curve(y, score)
        fpr, tpr, roc_thr = roc_curve(y, score, drop_intermediate=True)
        ap, auc = average_precision_score(y, score), roc_auc_score(y, score)
    # precision_recall_curve's last point (recall 0, precision 1) has no threshold: NaN there.
    pr_thr = np.append(pr_thr, np.nan)
    roc_thr = np.where(np.isfinite(roc_thr), roc_thr, np.nan)
    return {"average_precision": float(ap), "roc_auc": float(auc), "undefined": None,
            "pr": dict(zip(("recall", "precision", "threshold"), _thin(recall, precision, pr_thr))),
            "roc": dict(zip(("fpr", "tpr", "threshold"), _thin(fpr, tpr, roc_thr)))}


def sweep(y_true: np.ndarray, score: np.ndarray, thresholds: Sequence[float] = SWEEP_THRESHOLDS
          ) -> list[dict[str, float]]:
    """Counts and P/R/F1 at each threshold, deciding as the detector does (score > threshold)."""
    y, s = np.asarray(y_true, bool), np.asarray(score, np.float64)
    return [{"threshold": float(t), **counts(y, s > t), **prf(y, s > t)} for t in thresholds]


def best_row(rows: list[dict[str, float]], configured: float) -> dict[str, float]:
    """The sweep row with the highest F1; ties go to the threshold nearest the configured one."""
    return max(rows, key=lambda r: (round(r["f1"], 12), -abs(r["threshold"] - configured)))


def level_result(y_true: np.ndarray, score: np.ndarray, threshold: float) -> dict[str, Any]:
    """Everything one level reports for one column."""
    y, s = np.asarray(y_true, bool), np.asarray(score, np.float64)
    rows = sweep(y, s)
    return {"n": int(y.size), "positives": int(y.sum()), "threshold": threshold,
            **counts(y, s > threshold), **prf(y, s > threshold), **curves(y, s),
            "sweep": rows, "best": best_row(rows, threshold)}


# ----------------------------------------------------------------------------- events
def detected_spans(confidence: np.ndarray, threshold: float) -> list[tuple[float, float]]:
    """Runs of rows above the threshold, merged into spans (model/events.py's rule)."""
    c = np.asarray(confidence, np.float64)
    return [(e.start_s, e.end_s) for e in merge_events("", np.arange(c.size), c, c > threshold)]


def match_events(detected: Sequence[tuple[float, float]], labeled: Sequence[tuple[float, float]],
                 min_overlap: float = MIN_EVENT_OVERLAP_S) -> dict[str, int]:
    """One-to-one matching, largest overlaps first. -> tp (matched pairs), fp, fn."""
    pairs = sorted(((min(de, le) - max(ds, ls), i, j) for i, (ds, de) in enumerate(detected)
                    for j, (ls, le) in enumerate(labeled) if min(de, le) - max(ds, ls) > min_overlap),
                   reverse=True)
    used_d, used_l = set(), set()
    for _, i, j in pairs:
        if i not in used_d and j not in used_l:
            used_d.add(i)
            used_l.add(j)
    return {"tp": len(used_d), "fp": len(detected) - len(used_d), "fn": len(labeled) - len(used_l)}


def event_counts(files: Sequence[tuple[np.ndarray, list[tuple[float, float]]]], threshold: float
                 ) -> list[dict[str, int]]:
    """Per file (confidence rows, labeled spans) -> its tp/fp/fn at `threshold`."""
    return [match_events(detected_spans(c, threshold), spans) for c, spans in files]


def event_result(files: Sequence[tuple[np.ndarray, list[tuple[float, float]]]], threshold: float
                 ) -> dict[str, Any]:
    def total(t: float) -> dict[str, Any]:
        per = event_counts(files, t)
        c = {k: sum(p[k] for p in per) for k in ("tp", "fp", "fn")}
        return {"threshold": float(t), **c, **prf_counts(c["tp"], c["fp"], c["fn"])}

    rows = [total(t) for t in SWEEP_THRESHOLDS]
    at = total(threshold)
    return {"n": sum(len(s) for _, s in files), "positives": sum(len(s) for _, s in files),
            "threshold": threshold, **{k: at[k] for k in ("tp", "fp", "fn", "precision", "recall", "f1")},
            "tn": None, "average_precision": None, "roc_auc": None, "pr": None, "roc": None,
            "undefined": "events change with the threshold: read the sweep", "sweep": rows,
            "best": best_row(rows, threshold)}


# ----------------------------------------------------------------------------- differences
@dataclass(frozen=True)
class Interval:
    diff: float
    low: float
    high: float

    def to_dict(self) -> dict[str, float]:
        return {"diff": self.diff, "low": self.low, "high": self.high}


def bootstrap_f1_diff(a: np.ndarray, b: np.ndarray, samples: int = BOOTSTRAP_SAMPLES,
                      seed: int = BOOTSTRAP_SEED) -> Interval:
    """F1(a) - F1(b) over the files, with a 95 % percentile interval from resampling files.
    a, b: (files, 3) per-file (tp, fp, fn) of two columns on the same files."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    pooled = lambda c: f1_of(*c.sum(axis=0))  # noqa: E731
    diff = pooled(a) - pooled(b)
    n = len(a)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan)
    weights = np.random.default_rng(seed).multinomial(n, np.full(n, 1.0 / n), size=samples)   # (samples, files)

    def f1s(c: np.ndarray) -> np.ndarray:
        tp, fp, fn = (weights @ c).T
        den = 2 * tp + fp + fn
        return np.divide(2 * tp, den, out=np.zeros_like(tp), where=den > 0)

    d = f1s(a) - f1s(b)
    return Interval(float(diff), float(np.percentile(d, 2.5)), float(np.percentile(d, 97.5)))
