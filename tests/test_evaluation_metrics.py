"""parity/evaluation/metrics.py + run.score_column: P/R/F1 at the three levels against values
computed by hand, the curves against the sweep, the file score against the runtime's global
decision, event matching, the bootstrap. Needs the evaluate extra (scikit-learn)."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("sklearn", reason="scikit-learn (the evaluate extra) not installed: make env-evaluate")

from orcaport.model.aggregate import aggregate  # noqa: E402
from orcaport.parity.evaluation import metrics as m  # noqa: E402
from orcaport.parity.evaluation.labels import LabeledEvent, RecordingLabels  # noqa: E402
from orcaport.parity.evaluation.run import score_column  # noqa: E402

# Three recordings, worked by hand (threshold 0.5, 2 positive seconds make a file call):
#   A: call 1.2-2.6 s -> rows 1, 2 are call seconds (0.8 s, 0.6 s of it)
#   B: call 3.9-4.2 s (0.3 s) -> row 4 only (0.2 s >= half the call; row 3 has 0.1 s)
#   C: no call
ROWS = {"A.wav": np.array([0.1, 0.7, 0.4, 0.6, 0.2, 0.1]),     # detected rows 1, 3
        "B.wav": np.array([0.9, 0.8, 0.3, 0.2, 0.6]),          # detected rows 0, 1, 4
        "C.wav": np.array([0.6, 0.55, 0.1, 0.1])}              # detected rows 0, 1
TRUTH = {"A.wav": [(1.2, 2.6)], "B.wav": [(3.9, 4.2)], "C.wav": []}


def truth() -> dict[str, RecordingLabels]:
    return {n: RecordingLabels(audio=None, events=[LabeledEvent(s, e, "call", "test") for s, e in spans], labeled=True)
            for n, spans in TRUTH.items()}


def test_second_truth_marks_the_seconds_a_call_covers() -> None:
    assert m.second_truth(TRUTH["A.wav"], 6).tolist() == [False, True, True, False, False, False]
    assert m.second_truth(TRUTH["B.wav"], 5).tolist() == [False, False, False, False, True]
    assert m.second_truth([(2.9, 3.05)], 5).tolist() == [False, False, True, False, False]   # 0.1 s of a 0.15 s call
    assert m.second_truth([(0.5, 1.2), (1.1, 1.4)], 3).tolist() == [True, True, False]      # overlapping labels joined


def test_metrics_match_hand_computed_values() -> None:
    sc = score_column(ROWS, truth(), 0.5, 2)
    s, f, e = sc["second"], sc["file"], sc["event"]
    # seconds: A tp 1 (row 1) fp 1 (row 3) fn 1 (row 2); B tp 1 (row 4) fp 2; C fp 2
    assert (s["tp"], s["fp"], s["fn"], s["tn"]) == (2, 5, 1, 7)
    assert (s["precision"], s["recall"], s["f1"]) == pytest.approx((2 / 7, 2 / 3, 0.4))
    # files: A (0.6) and B (0.8) called, with calls; C (0.55) called without one
    assert (f["tp"], f["fp"], f["fn"], f["tn"]) == (2, 1, 0, 0)
    assert (f["precision"], f["recall"], f["f1"]) == pytest.approx((2 / 3, 1.0, 0.8))
    # events: A (1,2) matches, (3,4) not; B (4,5) matches, (0,2) not; C (0,2) not
    assert (e["tp"], e["fp"], e["fn"]) == (2, 3, 0)
    assert (e["precision"], e["recall"], e["f1"]) == pytest.approx((0.4, 1.0, 4 / 7))
    assert sc["per_file"]["B.wav"] == {"second": [1, 2, 0], "file": [1, 0, 0], "event": [1, 1, 0],
                                       "global_prediction": 1, "positive_seconds": 3}
    # per-file counts add up to the pooled ones
    for level in ("second", "event"):
        tot = np.sum([sc["per_file"][n][level] for n in ROWS], axis=0)
        assert tot.tolist() == [sc[level]["tp"], sc[level]["fp"], sc[level]["fn"]]


def test_curves_pass_through_every_sweep_point() -> None:
    """The PR curve drawn is the sweep's: each threshold's (recall, precision) is a curve point,
    and the configured threshold's numbers are the sweep's row there."""
    rng = np.random.default_rng(3)
    y = rng.random(300) < 0.3
    score = np.clip(0.35 * y + rng.random(300) * 0.7, 0, 1)
    r = m.level_result(y, score, 0.5)
    points = set(zip(np.round(r["pr"]["recall"], 12), np.round(r["pr"]["precision"], 12)))
    checked = 0
    for row in r["sweep"]:
        if (score > row["threshold"]).any():
            assert (round(row["recall"], 12), round(row["precision"], 12)) in points, row
            checked += 1
    assert checked > 50
    at = next(row for row in r["sweep"] if row["threshold"] == 0.5)
    assert {k: r[k] for k in ("tp", "fp", "fn", "tn", "f1")} == {k: at[k] for k in ("tp", "fp", "fn", "tn", "f1")}
    assert r["best"]["f1"] == max(row["f1"] for row in r["sweep"])
    assert 0.5 < r["average_precision"] <= 1 and 0.5 < r["roc_auc"] <= 1


def test_file_score_decides_as_the_runtime_global_decision() -> None:
    rng = np.random.default_rng(4)
    for _ in range(200):
        clips = rng.random(rng.integers(1, 12))
        thr, k = float(rng.choice([0.3, 0.5, 0.7])), int(rng.integers(1, 5))
        agg = aggregate(clips, thr, k)
        assert (m.file_score(agg.confidence, k) > thr) == bool(agg.global_prediction)


def test_events_match_one_to_one_largest_overlap_first() -> None:
    # one long detection over two calls: one match, one missed call
    assert m.match_events([(0.0, 5.0)], [(1.0, 2.0), (3.0, 4.5)]) == {"tp": 1, "fp": 0, "fn": 1}
    # touching is not overlapping
    assert m.match_events([(0.0, 1.0)], [(1.0, 2.0)]) == {"tp": 0, "fp": 1, "fn": 1}
    # the larger overlap wins the call; the other detection is a false positive
    assert m.match_events([(0.0, 2.0), (2.0, 3.0)], [(1.5, 2.9)]) == {"tp": 1, "fp": 1, "fn": 0}


def test_undefined_curves_say_why() -> None:
    r = m.level_result(np.zeros(5, bool), np.linspace(0, 1, 5), 0.5)
    assert r["average_precision"] is None and r["undefined"] == "no labeled calls" and r["f1"] == 0.0


def test_bootstrap_interval_covers_zero_for_equal_columns_and_not_for_a_better_one() -> None:
    a = np.array([[3, 1, 1], [2, 0, 2], [5, 2, 0], [1, 1, 1], [4, 0, 1]])
    same = m.bootstrap_f1_diff(a, a)
    assert (same.diff, same.low, same.high) == (0.0, 0.0, 0.0)
    better = a.copy()
    better[:, 0] += 1                                  # one more call found in every file ...
    better[:, 2] = np.maximum(a[:, 2] - 1, 0)          # ... one fewer missed
    iv = m.bootstrap_f1_diff(better, a)
    assert iv.diff > 0 and iv.low > 0 and iv.low <= iv.diff <= iv.high
    assert iv == m.bootstrap_f1_diff(better, a)                                # seeded: reproducible
    assert math.isclose(iv.diff, m.f1_of(*better.sum(0)) - m.f1_of(*a.sum(0)))
