"""evaluation.json, evaluation.md, evaluation.html and disagreements.selections.txt, written together.

Everything is rendered from the evaluation document (run.py) before anything is written, then
moved into place atomically, evaluation.json last (model/fileio.py): a crash leaves the previous
reports, never a half-written one. The Markdown is what the README quotes; the HTML draws the
curves (html.py); the Raven table lists every second where a column's decision differs from the
reference column's, for review in Raven next to the recordings.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from orcaport.model.fileio import write_files_atomically
from orcaport.model.review_formats import RAVEN_CHANNEL, RAVEN_VIEW
from orcaport.parity.evaluation.metrics import second_truth

REPORT_NAMES = {"md": "evaluation.md", "html": "evaluation.html", "raven": "disagreements.selections.txt",
                "json": "evaluation.json"}
LEVEL_TITLES = {"second": "per second", "file": "per file", "event": "per event"}


def fmt(x: Any, digits: int = 3) -> str:
    if x is None:
        return "—"
    if isinstance(x, float):
        return "—" if math.isnan(x) else f"{x:.{digits}f}"
    return str(x)


def interval(d: dict[str, float] | None) -> str:
    if not d or d["diff"] is None or math.isnan(d["diff"]):
        return "—"
    return f"{d['diff']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]"


def md_cell(x: Any) -> str:
    return str(x).replace("|", "\\|").replace("\n", " ")


def md_table(header: list[str], rows: list[list[Any]]) -> list[str]:
    return (["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            + ["| " + " | ".join(md_cell(c) for c in r) + " |" for r in rows] + [""])


# ----------------------------------------------------------------------------- what the reports show
def summary_rows(doc: dict[str, Any]) -> list[list[str]]:
    """One row per column: the per-second numbers, file and event F1, the difference from the
    reference with its interval, the best-F1 threshold."""
    out = []
    for name, sc in doc["scores"].items():
        s, f, e = sc["second"], sc["file"], sc["event"]
        diff = "(reference)" if name == doc["reference"] else interval(sc["diff_from_reference"]["second"])
        out.append([name, doc["columns"][name]["arithmetic"], fmt(s["precision"]), fmt(s["recall"]), fmt(s["f1"]),
                    fmt(s["average_precision"]), fmt(f["f1"]), fmt(e["f1"]), diff,
                    f"{s['best']['threshold']:.2f} ({fmt(s['best']['f1'])})"])
    return out


SUMMARY_HEADER = ["column", "arithmetic", "P (s)", "R (s)", "F1 (s)", "AP (s)", "F1 (file)", "F1 (event)",
                  "ΔF1 (s) vs reference [95 % CI]", "best-F1 threshold (F1)"]
LEVEL_HEADER = ["column", "TP", "FP", "FN", "TN", "precision", "recall", "F1", "AP", "ROC AUC",
                "ΔF1 vs reference [95 % CI]", "best-F1 threshold", "P / R / F1 there"]


def level_rows(doc: dict[str, Any], level: str) -> list[list[str]]:
    out = []
    for name, sc in doc["scores"].items():
        r, b = sc[level], sc[level]["best"]
        diff = "(reference)" if name == doc["reference"] else interval(sc["diff_from_reference"][level])
        out.append([name, fmt(r["tp"]), fmt(r["fp"]), fmt(r["fn"]), fmt(r["tn"]), fmt(r["precision"]),
                    fmt(r["recall"]), fmt(r["f1"]), fmt(r["average_precision"]), fmt(r["roc_auc"]), diff,
                    f"{b['threshold']:.2f}", f"{fmt(b['precision'])} / {fmt(b['recall'])} / {fmt(b['f1'])}"])
    return out


GATE_HEADER = ["arithmetic", "ΔF1 vs legacy-exact (s / file / event)", "offered", "decision agreement with fp32 "
               "(local / global)", "may be fast's default"]


def gate_rows(doc: dict[str, Any]) -> list[list[str]]:
    out = []
    for name, g in doc["gate"].items():
        d = g["f1_minus_legacy_exact"]
        a = doc["scores"][name]["agreement_with_legacy_exact"]
        out.append([name, " / ".join(f"{d[k]:+.3f}" for k in ("second", "file", "event")),
                    "yes" if g["offered"] else "no", f"{a['local']:.2%} / {a['global']:.0%}",
                    "yes" if g["default_eligible"] else "no"])
    return out


def int8_verdict(doc: dict[str, Any]) -> str | None:
    """One sentence: is int8 offered for deployment on these labels, and can `detect` run it as judged."""
    g, col = doc["gate"].get("fast/int8"), doc["columns"].get("fast/int8", {})
    cal = col.get("calibration")
    if g is None or cal is None:
        return None
    d = g["f1_minus_legacy_exact"]
    within = (f"its F1 is {'within' if g['offered'] else 'NOT within'} {doc['gate_margin']} of legacy-exact's "
              f"(Δ s / file / event {d['second']:+.3f} / {d['file']:+.3f} / {d['event']:+.3f})")
    if not cal["stored"]:
        return (f"**int8 is not offered for deployment**: {within}, but it was calibrated on synthetic clips "
                f"({cal['why']}); run `make calibrate MODEL=... AUDIO=<your recordings>` and evaluate again.")
    if g["deployable"]:
        return (f"**int8 is offered for deployment on these labels**: {within}, with the model folder's stored "
                f"calibration ({cal['clips']} clips of {cal['recordings']} recordings, {cal['created']}) -- "
                "run it with `orcaport detect --profile fast --arithmetic int8`.")
    return f"**int8 is not offered for deployment on these labels**: {within} (stored calibration, {cal['clips']} clips)."


def disagreeing_seconds(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Every (file, second) where a column's decision differs from the reference column's."""
    thr, ref, conf = doc["threshold"], doc["reference"], doc["confidence"]
    out = []
    for name, rec in doc["recordings"].items():
        truth = second_truth([(s, e) for s, e, _ in rec["events"]], rec["seconds"])
        for t in range(rec["seconds"]):
            values = {c: conf[c][name][t] for c in conf}
            differ = sorted(c for c in conf if (values[c] > thr) != (values[ref] > thr))
            if differ:
                out.append({"file": name, "start_s": float(t), "end_s": float(t + 1), "truth": bool(truth[t]),
                            "confidence": values, "differ": differ})
    return out


def file_rows(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Per-file rows sorted by disagreement: seconds whose decisions differ, then the largest
    confidence difference from the reference."""
    dis = disagreeing_seconds(doc)
    ref, conf = doc["reference"], doc["confidence"]
    rows = []
    for name, rec in doc["recordings"].items():
        maxdiff = max((abs(a - b) for c in conf for a, b in zip(conf[c][name], conf[ref][name])), default=0.0)
        rows.append({"file": name, "labeled": len(rec["events"]), "seconds": rec["seconds"],
                     "disagreeing_seconds": sum(d["file"] == name for d in dis), "max_abs_diff": maxdiff,
                     "calls": {c: doc["scores"][c]["per_file"][name]["global_prediction"] for c in conf},
                     "positive_seconds": {c: doc["scores"][c]["per_file"][name]["positive_seconds"] for c in conf}})
    return sorted(rows, key=lambda r: (-r["disagreeing_seconds"], -r["max_abs_diff"], r["file"]))


def machine_line(doc: dict[str, Any]) -> str:
    mc = doc["machine"]
    return f"{mc['description']}; torch {mc['torch']}, scikit-learn {mc['scikit_learn']}"


# ----------------------------------------------------------------------------- Markdown
def render_markdown(doc: dict[str, Any]) -> str:
    cols = list(doc["confidence"])
    title = doc["dataset"] or doc["labels"]
    n_events = sum(len(r["events"]) for r in doc["recordings"].values())
    lines = [f"# Evaluation on {title}", "",
             f"- model `{doc['model']}` (weights sha256 `{doc['weights_sha256'][:16]}…`), threshold "
             f"{doc['threshold']}, {doc['min_positive']} positive seconds for a file call",
             f"- {len(doc['recordings'])} labeled recordings, {n_events} labeled events, "
             f"{sum(r['seconds'] for r in doc['recordings'].values())} one-second rows (labels: `{doc['labels']}`)",
             f"- machine: {machine_line(doc)}; {doc['created']}",
             f"- differences are against **{doc['reference']}**"
             + ("" if doc["reference"] == "legacy" else " (no legacy column: " + "; ".join(doc["legacy_notes"]) + ")"),
             ""]
    lines += ["## At the configured threshold", ""] + md_table(SUMMARY_HEADER, summary_rows(doc))
    for level, title_ in LEVEL_TITLES.items():
        lines += [f"### {title_.capitalize()}", "", doc["criteria"][level], ""] + md_table(LEVEL_HEADER, level_rows(doc, level))
    if doc["gate"]:
        lines += ["## Deployment gate", "", doc["criteria"]["gate"], ""] + md_table(GATE_HEADER, gate_rows(doc))
        verdict = int8_verdict(doc)
        lines += [verdict, ""] if verdict else []
    lines += ["## Per file, most disagreement first", ""]
    lines += md_table(["file", "labeled events", "seconds", "disagreeing seconds", "max |Δ confidence|"]
                      + [f"{c}: call / positive s" for c in cols],
                      [[r["file"], r["labeled"], r["seconds"], r["disagreeing_seconds"], fmt(r["max_abs_diff"], 4)]
                       + [f"{'CALL' if r['calls'][c] else 'no'} / {r['positive_seconds'][c]}" for c in cols]
                       for r in file_rows(doc)])
    dis = disagreeing_seconds(doc)
    lines += [f"## Seconds where decisions differ from {doc['reference']} ({len(dis)})", "",
              f"Also in `{REPORT_NAMES['raven']}` (a Raven selection table: open it with the recordings).", ""]
    lines += md_table(["file", "time (s)", "labeled call", "differ"] + cols,
                      [[d["file"], f"{d['start_s']:g}–{d['end_s']:g}", "yes" if d["truth"] else "no",
                        ", ".join(d["differ"])] + [fmt(d["confidence"][c], 4) for c in cols] for d in dis])
    lines += ["## Columns", ""] + [f"- **{k}**: {v['arithmetic']}; {v['note']} (source: {v['source']})"
                                   for k, v in doc["columns"].items()] + [""]
    if doc["legacy_notes"]:
        lines += ["Legacy column notes:", ""] + [f"- {n}" for n in doc["legacy_notes"]] + [""]
    if doc["unlabeled"] or doc["errors"]:
        lines += ["## Not evaluated", ""] + [f"- {n}: no label file mentions it" for n in doc["unlabeled"]]
        lines += [f"- {n}: {e}" for n, e in doc["errors"].items()] + [""]
    lines += ["## Criteria", ""] + [f"- {k}: {v}" for k, v in doc["criteria"].items()] + [""]
    return "\n".join(lines)


def render_raven(doc: dict[str, Any]) -> str:
    """The disagreeing seconds as a Raven selection table (one row per second, Begin Time on the
    recordings' sequence timeline in the order listed, File Offset (s) within each file)."""
    cols = list(doc["confidence"])
    header = ["Selection", "View", "Channel", "Begin Time (s)", "End Time (s)", "Begin File", "File Offset (s)",
              "Labeled Call"] + [f"{c} Confidence" for c in cols] + ["Differ"]
    offsets, total = {}, 0.0
    for name, rec in doc["recordings"].items():
        offsets[name] = total
        total += rec["duration_s"]
    lines = ["\t".join(header)]
    for i, d in enumerate(disagreeing_seconds(doc), start=1):
        o = offsets[d["file"]]
        lines.append("\t".join([str(i), RAVEN_VIEW, str(RAVEN_CHANNEL), f"{o + d['start_s']:.6f}", f"{o + d['end_s']:.6f}",
                                d["file"], f"{d['start_s']:.6f}", "yes" if d["truth"] else "no"]
                               + [f"{d['confidence'][c]:.6f}" for c in cols] + [" ".join(d["differ"])]))
    return "\n".join(lines) + "\n"


def render_json(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=1, allow_nan=False, default=lambda x: None) + "\n"


def write_reports(doc: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    """All four rendered, then written atomically (JSON last). -> {kind: path}."""
    from orcaport.parity.evaluation.html import render_html

    texts = {"md": render_markdown(doc), "html": render_html(doc), "raven": render_raven(doc),
             "json": render_json(doc)}
    write_files_atomically(Path(out_dir), {REPORT_NAMES[k]: texts[k] for k in ("md", "html", "raven", "json")})
    return {k: Path(out_dir) / REPORT_NAMES[k] for k in texts}
