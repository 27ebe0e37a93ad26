"""The Markdown parity report (parity.md): summary, per-file failing and grouped passing checks,
decisions, real-data check, provenance, and how to read it. Cells are formatted by parity.report."""

from __future__ import annotations

import math
from typing import Any, Mapping

from orcaport.parity.report import (CHECK_HEADER, MD_MAX_FAILING_ROWS, PROVENANCE_KEYS, REAL_DATA_HEADER,
                           SUMMARY_HEADER, decision_rows, error_text, fmt_num, location_text,
                           real_data_rows, sorted_checks, criteria_lines, summary_rows, tolerance_text, verdict_line)


def md_code(text: Any) -> str:
    """Text as a Markdown code span that is also safe inside a table cell: pipes escaped (GFM
    honours \\| inside code spans in tables), newlines flattened, backticks fenced around."""
    s = str(text).replace("\r", " ").replace("\n", " ").replace("|", "\\|")
    fence = "``" if "`" in s else "`"
    return f"{fence} {s} {fence}" if fence == "``" else f"`{s}`"


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + \
        ["| " + " | ".join(r) + " |" for r in rows]


def _check_cells(c: Mapping[str, Any]) -> list[str]:
    m = c.get("metrics") or {}
    return [str(c.get("mode")), str(c.get("stage")), fmt_num(c.get("clip")), str(c.get("layer") or "—"),
            fmt_num(m.get("max_abs"), 3), fmt_num(m.get("mean_abs"), 3), fmt_num(m.get("max_rel"), 3),
            fmt_num(m.get("snr_db"), 4), f"{fmt_num(m.get('n_out'))}/{fmt_num(m.get('n'))}",
            tolerance_text(c.get("tolerance")), md_code(location_text(m))]


def _max_abs_key(c: Mapping[str, Any]) -> float:
    """Sort key for 'worst': missing max_abs lowest, NaN or a non-finite string highest."""
    v = (c.get("metrics") or {}).get("max_abs")
    return -1.0 if v is None else (math.inf if isinstance(v, str) or math.isnan(v) else float(v))


def _passing_groups(checks: list[Mapping[str, Any]]) -> list[list[str]]:
    """Passing checks folded per (mode, stage, layer): count and the worst one's metrics."""
    groups: dict[tuple, list[Mapping[str, Any]]] = {}
    for c in sorted_checks(c for c in checks if c.get("passed")):
        groups.setdefault((c.get("mode"), c.get("stage"), c.get("layer")), []).append(c)
    rows = []
    for (mode, stage, layer), cs in groups.items():
        w = max(cs, key=_max_abs_key)
        m = w.get("metrics") or {}
        rows.append([str(mode), str(stage), str(layer or "—"), str(len(cs)),
                     fmt_num(m.get("max_abs"), 3), fmt_num(w.get("clip")), fmt_num(m.get("snr_db"), 4),
                     tolerance_text(w.get("tolerance")), md_code(location_text(m))])
    return rows


HOW_TO_READ = """\
- **legacy** is the recorded fastai 1.0.61 + fastai_audio pipeline (the reference); **clean** is
  the fastai-free runtime under review.
- **isolated** checks feed the clean stage the *legacy* input of that stage, so they measure that
  stage's own error; **chained** checks run the clean pipeline end to end from the audio file, so
  they show how errors accumulate. Failing chained but passing isolated means the error came from
  upstream.
- **max_abs / mean_abs / max_rel / snr_db** compare the clean tensor with the reference;
  **out** is the number of elements outside the tolerance over all elements. A check passes when
  its out-fraction is within `max_fraction` (an *exact* check needs bitwise equality).
- **worst at** names the element with the largest difference (axis=index) and both values.
- **aggregate** compares the per-second confidences and the decisions made from them: *local
  flips* are seconds whose above-threshold call differs; *global* is the file-level call.
- **expected-error** files make the legacy pipeline raise; parity there means the clean runtime
  raises the same way.
- The hashes under *Provenance* pin exactly which weights, config, references and tolerances this
  verdict is about; it says nothing about any other artifact.
"""


def render_markdown(result: Mapping[str, Any]) -> str:
    """The whole Markdown report as a string."""
    verdict = verdict_line(result)
    out = [f"# Parity report: {'PASSED' if verdict == 'PARITY PASSED' else 'FAILED'}", "",
           f"**{md_code(verdict)}**", ""] + [f"- {md_code(x)}" for x in criteria_lines(result)] + [
           "", "## Summary", ""]
    rows = [cells[:6] + [md_code(cells[6])] + cells[7:] for _, cells in summary_rows(result)]
    out += _md_table(list(SUMMARY_HEADER), rows) + ["", "## Files", ""]
    for f in result.get("files") or []:
        checks = list(f.get("checks") or [])
        failing = [c for c in sorted_checks(checks) if not c.get("passed")]
        out += [f"### {md_code(f.get('name'))}: {f.get('status')}", "",
                f"{len(checks)} checks, {len(failing)} failing.", ""]
        if f.get("legacy_error") or f.get("clean_error"):
            out += [f"- legacy error: {md_code(error_text(f.get('legacy_error')))}",
                    f"- clean error: {md_code(error_text(f.get('clean_error')))}", ""]
        if failing:
            out += ["Failing checks:", ""] + _md_table(
                list(CHECK_HEADER[1:]), [_check_cells(c) for c in failing[:MD_MAX_FAILING_ROWS]]) + [""]
            if len(failing) > MD_MAX_FAILING_ROWS:
                out += [f"…and {len(failing) - MD_MAX_FAILING_ROWS} more in parity.json.", ""]
        passing = _passing_groups(checks)
        if passing:
            out += ["Passing checks (grouped; metrics of the worst clip):", ""] + _md_table(
                ["mode", "stage", "layer", "checks", "worst max_abs", "worst clip", "snr_db",
                 "tolerance", "worst at"], passing) + [""]
        for c in checks:
            if c.get("decisions"):
                out += [f"Decisions ({c.get('mode')}):", ""] + _md_table(
                    ["", "legacy", "clean"], [list(r) for r in decision_rows(c["decisions"])]) + [""]
    text, rows = real_data_rows(result)
    out += ["## Real data (upstream fastai_audio output)", "", text, ""]
    out += (_md_table(REAL_DATA_HEADER, rows) + [""]) if rows else []
    tol = result.get("tolerances") or {}
    out += ["## Provenance", ""] + _md_table(["", "value"], [
        [k, md_code(result.get(k, "—"))] for k in PROVENANCE_KEYS] + [
        ["tolerances", md_code(f"version {tol.get('version')} sha256 {tol.get('sha256')}")]])
    env = result.get("environment") or {}
    out += ["", "## Environment", ""] + _md_table(
        ["", "value"], [[k, md_code(env[k])] for k in sorted(env)])
    out += ["", "## How to read this", "", HOW_TO_READ]
    return "\n".join(out)
