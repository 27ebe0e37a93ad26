"""Human-facing parity reports from the replay engine's result dict: terminal table and JSON here,
Markdown in parity/report_md.py, HTML in parity/html.py; the shared cell formatting lives here.

The result dict (schema_version 1) is produced elsewhere; this module only reads it. The verdict
it prints is deliberately stricter than the dict's own `passed` flag: a result that claims to pass
while holding a failed check, an errored file, a first_failure, or no checks at all is reported as
FAILED, because a reviewer who trusts a green line must never be trusting an engine bug.

`write_reports` renders all three files first and only then moves them into place, each with an
atomic os.replace from a temp sibling, so a crash in rendering leaves the previous reports intact
and a crash mid-write never leaves a truncated one.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from orcaport.model.stages import ACTIVATION_LAYERS, STAGES
from orcaport.parity.atomic import TEMP_SUFFIX, fsync_dir, remove_stale_temps, temp_prefix

PASS_MARK, FAIL_MARK, NONE_MARK = "✓", "✗", "–"
MODES = ("isolated", "chained")      # stage-local error first, then the accumulated one
REPORT_NAMES = {"json": "parity.json", "md": "parity.md", "html": "parity.html"}
MD_MAX_FAILING_ROWS = 100      # per file; the JSON always has every check
PROVENANCE_KEYS = ("profile", "schema_version", "weights_sha256", "config_sha256",
                   "references_manifest_sha256", "weights_check", "files_selected")


def real_data_rows(result: Mapping[str, Any]) -> tuple[str, list[list[str]]]:
    """(explanation, per-segment rows) of the upstream real-data check, for Markdown and HTML."""
    real = result.get("real_data") or {}
    if not real.get("available"):
        return f"Not run: {real.get('why', 'no real-data section in this result')}.", []
    verdict = "passed" if real.get("passed") else "FAILED"
    rows = [[s["segment"], f"{s['raw_shape']} -> {s['clean_shape']}", str(s["standardized_shape"]),
             "yes" if s["tail_exact"] and s["tail_all_zero_db"] else "NO",
             fmt_num(s["head_max_abs_db"]), fmt_num(s["head_mean_abs_db"])]
            for s in real.get("segments", [])]
    return f"{real.get('path')}: {verdict}. {real.get('explanation', '')}", rows


REAL_DATA_HEADER = ["segment", "clean pad/crop", "upstream input", "0.0 dB tail exact",
                    "head max abs diff (dB)", "head mean abs diff (dB)"]


# ----------------------------------------------------------------------------- formatting helpers
def fmt_num(x: Any, digits: int = 4) -> str:
    """A metric for display: None -> '—', ints as is, floats to `digits` significant digits."""
    if x is None:
        return "—"
    if isinstance(x, (bool, np.bool_)):
        return str(bool(x))
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    if isinstance(x, (float, np.floating)):
        x = float(x)
        return f"{x:.{digits}g}" if math.isfinite(x) else str(x)    # 'nan', 'inf', '-inf'
    return str(x)


def tolerance_text(tol: Mapping[str, Any] | None) -> str:
    """'exact', the criterion's own text (parity.metrics.Tolerance.text), or for an older
    report 'atol=0.0001 rtol=1e-05[, ≤0.1% out]'."""
    if not tol:
        return "—"
    if tol.get("exact"):
        return "exact"
    if tol.get("text"):
        return str(tol["text"])
    text = f"atol={fmt_num(tol.get('atol'), 3)} rtol={fmt_num(tol.get('rtol'), 3)}"
    if tol.get("max_fraction"):
        text += f", ≤{fmt_num(100.0 * float(tol['max_fraction']), 3)}% out"
    return text


def location_text(metrics: Mapping[str, Any] | None) -> str:
    """Where the largest difference is, with both values at full float32 precision (9 digits:
    at 4 digits -20.1 and -20.1000031 would print identically and hide the difference)."""
    m = metrics or {}
    if m.get("shape_mismatch"):
        ref, got = m["shape_mismatch"]
        return f"shape mismatch: ref {tuple(ref)} got {tuple(got)}"
    if m.get("clean_error"):
        return f"clean raised {error_text(m['clean_error'])}"
    worst = m.get("worst")
    if not worst:
        return "—"
    index, axes = list(worst.get("index") or []), list(worst.get("axes") or [])
    if axes and len(axes) == len(index):
        where = ", ".join(f"{a}={i}" for a, i in zip(axes, index))
    else:
        where = "[" + ", ".join(str(i) for i in index) + "]"
    if m.get("compared") == "sha256":
        return f"{where}: sha256 differs"
    if worst.get("ref") is None and worst.get("got") is None:
        return where
    return f"{where}: ref {fmt_num(worst.get('ref'), 9)} got {fmt_num(worst.get('got'), 9)}"


def decision_rows(d: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(what, legacy, clean) rows of an aggregate check's decisions."""
    rows = [("rows", fmt_num(d.get("rows_ref")), fmt_num(d.get("rows_clean"))),
            ("global prediction", fmt_num(d.get("global_ref")), fmt_num(d.get("global_clean")))]
    if "global_confidence_ref" in d or "global_confidence_clean" in d:
        rows.append(("global confidence", fmt_num(d.get("global_confidence_ref"), 9),
                     fmt_num(d.get("global_confidence_clean"), 9)))
    flips = list(d.get("local_flips") or [])
    unstable = list(d.get("unstable_flips") or [])
    rows += [("local agreement", fmt_num(d.get("local_agreement")), ""),
             (f"local flips ({len(flips)})", ", ".join(map(str, flips)) or "none", "")]
    if "unstable_seconds" in d:
        rows += [(f"unstable in legacy itself (|p - threshold| <= {fmt_num(d.get('unstable_band'), 3)})",
                  f"{d['unstable_seconds']} s", f"flipped: {', '.join(map(str, unstable)) or 'none'}"),
                 ("nearest to threshold (min |p - threshold|)", fmt_num(d.get("min_distance"), 3), "")]
    return rows


def threshold_lines(result: Mapping[str, Any]) -> list[str]:
    """Per file, how near legacy's per-second confidences came to the threshold: audio whose
    decisions never come near it did not test them."""
    out = []
    for f in result.get("files") or []:
        d = next((c.get("decisions") for c in f.get("checks") or []
                  if c.get("decisions") and c.get("mode") == "chained"), None)
        if d and d.get("min_distance") is not None:
            out.append(f"{f.get('name')}: nearest second {fmt_num(d['min_distance'], 3)} from the threshold, "
                       f"{d.get('unstable_seconds', 0)} within ±{fmt_num(d.get('unstable_band'), 2)}")
    return out


def criteria_lines(result: Mapping[str, Any]) -> list[str]:
    """Where the references and the replay ran, which criteria applied, and the decisions legacy
    itself cannot pin down -- in every report, even when there are none."""
    c = result.get("criteria")
    if not c:
        return []
    u = result.get("unstable_seconds") or {}
    return [f"criteria: {str(c.get('regime', '?')).replace('_', '-')} ({c.get('why')}); "
            f"references recorded on {c.get('recorded_on')}; replayed on {c.get('replayed_on')}",
            f"unstable in legacy itself: {u.get('seconds', 0)} second(s) within the envelope of the "
            f"threshold, {u.get('flips', 0)} decision(s) flipped there"]


def failure_location(ff: Mapping[str, Any]) -> str:
    """'mel (chained) in x.wav clip 3 layer2' for a first_failure (clip/layer only when set)."""
    return (f"{ff.get('stage')} ({ff.get('mode')}) in {ff.get('file')}"
            + ("" if ff.get("clip") is None else f" clip {ff['clip']}")
            + (f" {ff['layer']}" if ff.get("layer") else ""))


def _order(seq: tuple[str, ...], value: Any) -> int:
    return seq.index(value) if value in seq else len(seq)


def sorted_checks(checks: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Failing first, then in pipeline order (stage, mode, clip, layer)."""
    return sorted(checks, key=lambda c: (
        bool(c.get("passed")), _order(STAGES, c.get("stage")), _order(MODES, c.get("mode")),
        -1 if c.get("clip") is None else c["clip"], _order(ACTIVATION_LAYERS, c.get("layer"))))


def summary_tolerance(result: Mapping[str, Any], stage: str, mode: str) -> str:
    """The tolerance(s) the checks of one (stage, mode) ran under, e.g. per-layer ones joined."""
    seen: list[str] = []
    for f in result.get("files") or []:
        for c in f.get("checks") or []:
            if c.get("stage") == stage and c.get("mode") == mode:
                text = tolerance_text(c.get("tolerance"))
                if text not in seen:
                    seen.append(text)
    return "; ".join(seen[:3]) + (f"; +{len(seen) - 3} more" if len(seen) > 3 else "") or "—"


def _all_checks(result: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [c for f in result.get("files") or [] for c in f.get("checks") or []]


def verdict_line(result: Mapping[str, Any]) -> str:
    """'PARITY PASSED' only when the dict says so *and* nothing in it contradicts that."""
    checks = _all_checks(result)
    failed = sum(not c.get("passed") for c in checks)
    errored = [f for f in result.get("files") or [] if f.get("status") == "error"]
    ff = result.get("first_failure")
    if result.get("passed") is True and not failed and not errored and not ff and checks:
        return "PARITY PASSED"
    if ff:
        return f"PARITY FAILED: first failing stage {failure_location(ff)}"
    if errored:
        f = errored[0]
        if f.get("clean_error"):
            return f"PARITY FAILED: {f.get('name')}: clean raised {error_text(f['clean_error'])}"
        return (f"PARITY FAILED: {f.get('name')}: legacy raised {error_text(f.get('legacy_error'))}"
                " but clean did not")
    real = result.get("real_data") or {}
    if real.get("passed") is False:
        return "PARITY FAILED: real-data check on upstream's fastai_audio output (see 'Real data')"
    if not checks:
        return "PARITY FAILED: the result holds no checks"
    if failed:
        return f"PARITY FAILED: {failed} check(s) failed but no first_failure was recorded"
    return "PARITY FAILED: the result does not say passed"


def error_text(err: Mapping[str, Any] | None) -> str:
    return "—" if not err else f"{err.get('type')}: {err.get('message')}"


CHECK_HEADER = ("", "mode", "stage", "clip", "layer", "max_abs", "mean_abs", "max_rel", "snr_db",
                "out", "tolerance", "worst at")
SUMMARY_HEADER = ("", "stage", "mode", "checks", "failed", "worst max_abs", "worst file", "tolerance")


def summary_rows(result: Mapping[str, Any]) -> list[tuple[bool | None, list[str]]]:
    """(ok, cells) per summary entry, shared by the terminal, Markdown and HTML tables. ok is None
    for a (stage, mode) without checks: shown as '–', never as a pass."""
    rows = []
    for r in result.get("summary") or []:
        ok = None if not r.get("checks") else bool(r.get("passed") and not r.get("failed"))
        rows.append((ok, [NONE_MARK if ok is None else (PASS_MARK if ok else FAIL_MARK),
                          str(r.get("stage")), str(r.get("mode")), fmt_num(r.get("checks")),
                          fmt_num(r.get("failed")), fmt_num(r.get("max_abs"), 3),
                          str(r.get("worst_file") or "—"),
                          summary_tolerance(result, r.get("stage"), r.get("mode"))]))
    return rows


# ----------------------------------------------------------------------------- terminal
def render_table(result: Mapping[str, Any]) -> Table:
    """One row per summary (stage, mode) entry. Cells are Text, never markup: a file called
    '[/]x.wav' must print literally rather than crash rich's markup parser."""
    # Light borders leave room for the file name in an 80-column CI log; cells wrap (fold) rather
    # than end in '…', since a truncated file name or tolerance is worse than a taller table.
    table = Table(title="Parity by stage", title_justify="left", box=box.SIMPLE_HEAD,
                  padding=(0, 1), pad_edge=False, collapse_padding=True)
    for name in SUMMARY_HEADER:
        numeric = name in ("checks", "failed", "worst max_abs")
        wraps = name in ("worst file", "tolerance")
        table.add_column(name, justify="right" if numeric else "left", no_wrap=not wraps,
                         overflow="fold" if wraps else "ellipsis")
    for ok, cells in summary_rows(result):
        style = "dim" if ok is None else ("green" if ok else "bold red")
        table.add_row(*(Text(c) for c in cells), style=style)
    return table


def print_report(result: Mapping[str, Any], console: Console | None = None) -> None:
    """Summary table, files that raised, and the verdict as the last line."""
    console = console or Console()
    console.print(render_table(result))
    for f in result.get("files") or []:
        if f.get("status") != "ok":
            console.print(Text(f"{f.get('status')}: {f.get('name')}  legacy "
                               f"{error_text(f.get('legacy_error'))}  clean "
                               f"{error_text(f.get('clean_error'))}",
                               style="yellow" if f.get("status") == "expected-error" else "red"))
    if result.get("real_data"):
        text, _ = real_data_rows(result)
        console.print(Text(f"real data: {text}", style="dim"))
    for extra in threshold_lines(result) + criteria_lines(result):
        console.print(Text(extra, style="dim"))
    line = verdict_line(result)
    console.print(Text(line, style="bold green" if line == "PARITY PASSED" else "bold red"))


# ----------------------------------------------------------------------------- JSON
def json_safe(obj: Any) -> Any:
    """Strict-JSON copy: numpy scalars/arrays to Python, tuples to lists, and non-finite floats
    (snr_db is +inf for identical tensors) to the strings 'Infinity'/'-Infinity'/'NaN', since
    bare Infinity is not JSON and breaks strict parsers (jq, JavaScript's JSON.parse)."""
    if isinstance(obj, Mapping):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    if isinstance(obj, np.generic):
        return json_safe(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return "NaN" if math.isnan(obj) else ("Infinity" if obj > 0 else "-Infinity")
    if isinstance(obj, Path):
        return str(obj)
    return obj


def render_json(result: Mapping[str, Any]) -> str:
    return json.dumps(json_safe(result), sort_keys=True, indent=2, allow_nan=False,
                      ensure_ascii=False) + "\n"


def write_json(result: Mapping[str, Any], path: str | os.PathLike) -> Path:
    return _atomic_write_many([(Path(path), render_json(result))])[0]


def write_markdown(result: Mapping[str, Any], path: str | os.PathLike) -> Path:
    from orcaport.parity.report_md import render_markdown    # here: parity.report_md imports this module
    return _atomic_write_many([(Path(path), render_markdown(result))])[0]


# ----------------------------------------------------------------------------- atomic writes
def _atomic_write_many(items: list[tuple[Path, str]]) -> list[Path]:
    """Write every file to a temp sibling (fsynced), then os.replace them all into place.

    Temp files live in the target's directory so the rename never crosses a filesystem; they are
    removed if anything fails. mkstemp creates 0600 files: the report keeps the mode of the file it
    replaces, or gets 0644, so whoever reviews it can read it."""
    temps: list[tuple[str, Path]] = []
    for path, _ in items:   # temps a killed earlier run left behind (parity/atomic.py)
        remove_stale_temps(path.parent, [path.name])
    try:
        for path, text in items:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path.name), suffix=TEMP_SUFFIX, dir=path.parent)
            temps.append((tmp, path))
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, path.stat().st_mode & 0o7777 if path.exists() else 0o644)
        for tmp, path in temps:
            os.replace(tmp, path)
        for parent in {path.parent for _, path in temps}:
            fsync_dir(parent)
    finally:
        for tmp, _ in temps:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return [path for path, _ in items]


def write_reports(result: Mapping[str, Any], heatmaps: Mapping[tuple, tuple],
                  out_dir: str | os.PathLike) -> dict[str, Path]:
    """parity.json, parity.md and parity.html in out_dir (created); returns {'json'|'md'|'html': path}.

    Everything is rendered before anything is written, so an exception in any renderer leaves all
    previous reports untouched rather than a new JSON beside a stale HTML."""
    from orcaport.parity.html import render_html     # here, not at the top: both import this module
    from orcaport.parity.report_md import render_markdown
    out = Path(out_dir)
    texts = {"json": render_json(result), "md": render_markdown(result),
             "html": render_html(result, heatmaps)}
    paths = {k: out / REPORT_NAMES[k] for k in texts}
    # parity.json (what the publish gate reads) is renamed last: it never describes a run whose
    # Markdown/HTML are not in place yet.
    _atomic_write_many([(paths[k], texts[k]) for k in ("md", "html", "json")])
    return paths
