"""The Markdown parity report (parity.md): summary, per-file failing and grouped passing checks,
decisions, real-data check, provenance, and how to read it. Cells come from reports/cells.py."""

from __future__ import annotations

import math
from typing import Any

from orcaport.parity.reports.cells import (CHECK_HEADER, REAL_DATA_HEADER, SUMMARY_HEADER, check_cells,
                                           criteria_lines, decision_rows, error_text, fmt_num, location_text,
                                           provenance, real_data_rows, sorted_checks, summary_rows,
                                           tolerance_text, tolerances_text, verdict_line)
from orcaport.parity.result import Check, ParityResult

MD_MAX_FAILING_ROWS = 100      # per file; the JSON always has every check


def md_code(text: Any) -> str:
    """Text as a Markdown code span that is also safe inside a table cell: pipes escaped (GFM
    honours \\| inside code spans in tables), newlines flattened, backticks fenced around."""
    s = str(text).replace("\r", " ").replace("\n", " ").replace("|", "\\|")
    fence = "``" if "`" in s else "`"
    return f"{fence} {s} {fence}" if fence == "``" else f"`{s}`"


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + \
        ["| " + " | ".join(r) + " |" for r in rows]


def _check_cells(c: Check) -> list[str]:
    cells = check_cells(c)
    return cells[:-1] + [md_code(cells[-1])]


def _max_abs_key(c: Check) -> float:
    """Sort key for 'worst': missing max_abs lowest, NaN or a non-finite string highest."""
    v = (c.metrics or {}).get("max_abs")
    return -1.0 if v is None else (math.inf if isinstance(v, str) or math.isnan(v) else float(v))


def _passing_groups(checks: list[Check]) -> list[list[str]]:
    """Passing checks folded per (mode, stage, layer): count and the worst one's metrics."""
    groups: dict[tuple, list[Check]] = {}
    for c in sorted_checks(c for c in checks if c.passed):
        groups.setdefault((c.mode, c.stage, c.layer), []).append(c)
    rows = []
    for (mode, stage, layer), cs in groups.items():
        w = max(cs, key=_max_abs_key)
        m = w.metrics or {}
        rows.append([str(mode), str(stage), str(layer or "—"), str(len(cs)),
                     fmt_num(m.get("max_abs"), 3), fmt_num(w.clip), fmt_num(m.get("snr_db"), 4),
                     tolerance_text(w.tolerance), md_code(location_text(m))])
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


def render_markdown(result: ParityResult) -> str:
    """The whole Markdown report as a string."""
    verdict = verdict_line(result)
    out = [f"# Parity report: {'PASSED' if verdict == 'PARITY PASSED' else 'FAILED'}", "",
           f"**{md_code(verdict)}**", ""] + [f"- {md_code(x)}" for x in criteria_lines(result)] + [
           "", "## Summary", ""]
    rows = [cells[:6] + [md_code(cells[6])] + cells[7:] for _, cells in summary_rows(result)]
    out += _md_table(list(SUMMARY_HEADER), rows) + ["", "## Files", ""]
    for f in result.files:
        checks = list(f.checks)
        failing = [c for c in sorted_checks(checks) if not c.passed]
        out += [f"### {md_code(f.name)}: {f.status}", "",
                f"{len(checks)} checks, {len(failing)} failing.", ""]
        if f.legacy_error or f.clean_error:
            out += [f"- legacy error: {md_code(error_text(f.legacy_error))}",
                    f"- clean error: {md_code(error_text(f.clean_error))}", ""]
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
            if c.decisions:
                out += [f"Decisions ({c.mode}):", ""] + _md_table(
                    ["", "legacy", "clean"], [list(r) for r in decision_rows(c.decisions)]) + [""]
    text, rows = real_data_rows(result)
    out += ["## Real data (upstream fastai_audio output)", "", text, ""]
    out += (_md_table(REAL_DATA_HEADER, rows) + [""]) if rows else []
    out += ["## Provenance", ""] + _md_table(["", "value"], [
        [k, md_code(v)] for k, v in provenance(result)] + [
        ["tolerances", md_code(tolerances_text(result))]])
    env = result.environment
    out += ["", "## Environment", ""] + _md_table(
        ["", "value"], [[k, md_code(env[k])] for k in sorted(env)])
    out += ["", "## How to read this", "", HOW_TO_READ]
    return "\n".join(out)
