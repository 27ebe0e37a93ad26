"""One evaluation: labels + every column -> the evaluation document (the JSON the reports render).

Columns are scored on the same recordings: legacy (when references or the legacy env cover every
labeled recording), legacy-exact, and fast in each arithmetic offered (columns.py). Differences
are taken against legacy (else legacy-exact, and the document says so), each with a bootstrap
interval over files. The gate offers a `fast` arithmetic as a deployment choice only when its F1
at the configured threshold is within GATE_MARGIN of legacy-exact's at every level; making int8
`fast`'s *default* still needs DEFAULT_LOCAL_AGREEMENT / all global decisions equal to fp32's.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from orcaport.model.errors import OrcaportError, one_line
from orcaport.parity.evaluation import metrics as m
from orcaport.parity.evaluation.columns import plan_columns, run_columns
from orcaport.parity.evaluation.labels import LabelError, RecordingLabels, load_labels
from orcaport.parity.evaluation.legacy import legacy_scores

SCHEMA_VERSION = 1
GATE_MARGIN = 0.01                 # F1 points (0..1) a fast arithmetic may lose against legacy-exact
DEFAULT_LOCAL_AGREEMENT = 0.995    # issue 15's bar for making an arithmetic fast's default


@dataclass
class Options:
    model: Path
    audio: list[Path]
    labels: Path
    references: Path | None = None
    legacy_python: Path | None = None
    sha256: str | None = None
    dataset: str | None = None
    unlabeled_negative: bool = False
    classes: tuple[str, ...] | None = None
    margin: float = GATE_MARGIN
    int8: bool = True


def _durations(files: list[Path]) -> dict[Path, float | None]:
    import soundfile as sf

    out: dict[Path, float | None] = {}
    for p in files:
        try:
            out[p] = float(sf.info(str(p)).duration)
        except Exception:  # noqa: BLE001 - a format soundfile cannot read is checked after the run
            out[p] = None
    return out


def _level_inputs(rows: dict[str, np.ndarray], truth: dict[str, RecordingLabels], min_positive: int) -> dict:
    names = sorted(rows)
    spans = {n: [(e.start_s, e.end_s) for e in truth[n].events] for n in names}
    y_sec = {n: m.second_truth(spans[n], len(rows[n])) for n in names}
    return {"names": names, "spans": spans, "y_sec": y_sec,
            "y_file": np.array([bool(spans[n]) for n in names]),
            "s_file": np.array([m.file_score(rows[n], min_positive) for n in names])}


def score_column(rows: dict[str, np.ndarray], truth: dict[str, RecordingLabels], threshold: float,
                 min_positive: int) -> dict[str, Any]:
    """All three levels for one column. rows: file name -> per-second confidences."""
    li = _level_inputs(rows, truth, min_positive)
    names = li["names"]
    y = np.concatenate([li["y_sec"][n] for n in names])
    s = np.concatenate([rows[n] for n in names])
    second = m.level_result(y, s, threshold)
    file = m.level_result(li["y_file"], li["s_file"], threshold)
    event = m.event_result([(rows[n], li["spans"][n]) for n in names], threshold)
    per_file = {}
    ev = m.event_counts([(rows[n], li["spans"][n]) for n in names], threshold)
    for i, n in enumerate(names):
        c = m.counts(li["y_sec"][n], rows[n] > threshold)
        called = bool(li["s_file"][i] > threshold)
        per_file[n] = {"second": [c["tp"], c["fp"], c["fn"]],
                       "file": [int(called and li["y_file"][i]), int(called and not li["y_file"][i]),
                                int(not called and li["y_file"][i])],
                       "event": [ev[i]["tp"], ev[i]["fp"], ev[i]["fn"]],
                       "global_prediction": int(called), "positive_seconds": int((rows[n] > threshold).sum())}
    return {"second": second, "file": file, "event": event, "per_file": per_file}


def agreement(a: dict[str, np.ndarray], b: dict[str, np.ndarray], threshold: float, min_positive: int) -> dict:
    names = sorted(a)
    la = np.concatenate([a[n] > threshold for n in names])
    lb = np.concatenate([b[n] > threshold for n in names])
    ga = [m.file_score(a[n], min_positive) > threshold for n in names]
    gb = [m.file_score(b[n], min_positive) > threshold for n in names]
    diff = np.concatenate([np.abs(a[n] - b[n]) for n in names])
    return {"local": float((la == lb).mean()), "global": float(np.mean(np.equal(ga, gb))),
            "local_differ": int((la != lb).sum()), "global_differ": int(np.sum(np.not_equal(ga, gb))),
            "max_abs_confidence_diff": float(diff.max()) if diff.size else 0.0}


def machine() -> dict[str, Any]:
    import sklearn
    import torch

    from orcaport.parity.fingerprint import describe, fingerprint

    fp = fingerprint("cuda" if torch.cuda.is_available() else "cpu")
    return {"description": describe(fp), "cpu_model": fp["cpu_model"], "cpu_id": fp["cpu_id"],
            "isa_flags": fp["isa_flags"], "device": fp["device"], "torch": torch.__version__,
            "scikit_learn": sklearn.__version__}


def evaluate(opt: Options, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run everything; -> the evaluation document (JSON-safe)."""
    files = list(opt.audio)
    recordings = load_labels(opt.labels, files, _durations(files), opt.unlabeled_negative, opt.classes)
    labeled = [r for r in recordings if r.labeled]
    if not labeled:
        raise LabelError(f"no recording of AUDIO= is labeled by {opt.labels} ({len(files)} recordings); "
                         "name label files after their recordings, add a file column, or pass "
                         "UNLABELED=negative to count unlabeled recordings as negatives")
    base, columns = plan_columns(opt.model, int8=opt.int8)
    cfg = base.artifact.config.aggregation
    threshold, min_positive = float(cfg.threshold), int(cfg.min_positive)
    errors: dict[str, str] = {}
    runnable = []
    for r in labeled:
        try:
            run_columns(base, columns, [r.audio], progress=progress)
            runnable.append(r)
        except OrcaportError as e:          # e.g. shorter than one 2 s window: legacy refuses it too
            errors[r.audio.name] = one_line(e)
    if not runnable:
        raise LabelError(f"none of the {len(labeled)} labeled recordings could be run ({next(iter(errors.values()))})")
    truth = {r.audio.name: r for r in runnable}
    rows = {c.name: {n: np.asarray(d.confidence, np.float64) for n, d in c.results.items()} for c in columns}
    meta = {c.name: {"arithmetic": c.arithmetic, "note": c.note, "source": "runtime" if c.same_as is None
                     else f"= {c.same_as}", "network_seconds": c.seconds,
                     **({"calibration": c.calibration} if c.calibration is not None else {})} for c in columns}
    leg = legacy_scores([r.audio for r in runnable], opt.model, base.artifact.weights_sha256, opt.references,
                        opt.legacy_python, opt.sha256)
    legacy_notes = list(leg.notes)
    exact = rows["legacy-exact"]
    if set(leg.confidence) == set(exact) and all(len(leg.confidence[n]) == len(exact[n]) for n in exact):
        rows = {"legacy": leg.confidence, **rows}
        sources = sorted(set(leg.source.values()))
        meta = {"legacy": {"arithmetic": "fp32 (fastai 1.0.61 + fastai_audio 0.1)", "note": "production's path",
                           "source": "; ".join(sources), "network_seconds": None}, **meta}
    elif leg.confidence:
        legacy_notes.append(f"legacy covers {len(leg.confidence)} of {len(exact)} recordings (or its rows differ): "
                            "column not shown")
    reference = "legacy" if "legacy" in rows else "legacy-exact"
    scored = {name: score_column(r, truth, threshold, min_positive) for name, r in rows.items()}
    names = sorted(exact)
    for name, sc in scored.items():
        sc["agreement_with_reference"] = agreement(rows[name], rows[reference], threshold, min_positive)
        sc["agreement_with_legacy_exact"] = agreement(rows[name], exact, threshold, min_positive)
        sc["diff_from_reference"] = {lvl: m.bootstrap_f1_diff(
            np.array([sc["per_file"][n][lvl] for n in names]),
            np.array([scored[reference]["per_file"][n][lvl] for n in names])).to_dict() for lvl in m.LEVELS}
    gate = {}
    for name in rows:
        if not name.startswith("fast/"):
            continue
        deltas = {lvl: scored[name][lvl]["f1"] - scored["legacy-exact"][lvl]["f1"] for lvl in m.LEVELS}
        agree = scored[name]["agreement_with_legacy_exact"]
        gate[name] = {"offered": all(d >= -opt.margin - 1e-12 for d in deltas.values()), "f1_minus_legacy_exact": deltas,
                      "default_eligible": agree["local"] >= DEFAULT_LOCAL_AGREEMENT and agree["global"] == 1.0}
        calibration = meta[name].get("calibration")
        if calibration is not None:     # int8: deployable only as evaluated, i.e. from the stored calibration
            gate[name]["deployable"] = gate[name]["offered"] and bool(calibration["stored"])
    return {
        "schema_version": SCHEMA_VERSION, "created": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "dataset": opt.dataset, "model": str(opt.model), "weights_sha256": base.artifact.weights_sha256,
        "labels": str(opt.labels), "machine": machine(),
        "threshold": threshold, "min_positive": min_positive, "reference": reference, "gate_margin": opt.margin,
        "criteria": {"second": f"a one-second row is a call second when a labeled event covers >= "
                               f"{m.MIN_SECOND_OVERLAP_S} s of it (or half the event, if shorter); detected "
                               "when its confidence > threshold",
                     "file": f"a call file holds a labeled event; detected when >= {min_positive} rows are above "
                             f"the threshold (score: the file's largest confidence reached by {min_positive} rows)",
                     "event": "detections are merged runs of detected seconds; a detection matches a labeled event "
                              f"when they overlap by more than {m.MIN_EVENT_OVERLAP_S} s, one to one, largest "
                              "overlaps first",
                     "bootstrap": f"{m.BOOTSTRAP_SAMPLES} resamples of the recordings (seed {m.BOOTSTRAP_SEED}), "
                                  "95 % percentile interval of the pooled F1 difference",
                     "gate": f"a fast arithmetic is offered when its F1 at the configured threshold is within "
                             f"{opt.margin} of legacy-exact's at every level; fast's default needs >= "
                             f"{DEFAULT_LOCAL_AGREEMENT:.1%} local and 100 % global agreement with fp32; int8 is "
                             "deployable (`orcaport detect --profile fast --arithmetic int8`) when offered and "
                             "evaluated with the model folder's stored calibration (`make calibrate`)"},
        "columns": meta, "scores": scored, "gate": gate, "legacy_notes": legacy_notes,
        "recordings": {n: {"events": [[e.start_s, e.end_s, e.label] for e in truth[n].events],
                           "label_files": truth[n].sources, "seconds": len(exact[n]),
                           "duration_s": float(columns[0].results[n].duration_s)} for n in names},
        "confidence": {c: {n: [float(v) for v in r[n]] for n in names} for c, r in rows.items()},
        "unlabeled": sorted(r.audio.name for r in recordings if not r.labeled),
        "errors": errors,
    }
