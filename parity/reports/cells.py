"""What every parity report says, as text: the verdict line, the summary rows, the cells of a
check, the decisions, criteria and real-data lines. The terminal (reports/terminal.py), Markdown
(reports/markdown.py) and HTML (reports/html.py) renderers lay these out; none computes its own.

The verdict is deliberately stricter than the result's own `passed` flag: a result that claims to
pass while holding a failed check, an errored file, a first_failure, or no checks at all is
reported as FAILED, because a reviewer who trusts a green line must never be trusting an engine bug.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping

import numpy as np

from orcaport.model.stages import ACTIVATION_LAYERS, STAGES
from orcaport.parity.result import Check, Decisions, ErrorInfo, Location, ParityResult

PASS_MARK, FAIL_MARK, NONE_MARK = "✓", "✗", "–"
MODES = ("isolated", "chained")      # stage-local error first, then the accumulated one
PROVENANCE_KEYS = ("profile", "schema_version", "weights_sha256", "config_sha256",
                   "references_manifest_sha256", "weights_check", "files_selected")
REAL_DATA_HEADER = ["segment", "clean pad/crop", "upstream input", "0.0 dB tail exact",
                    "head max abs diff (dB)", "head mean abs diff (dB)"]
CHECK_HEADER = ("", "mode", "stage", "clip", "layer", "max_abs", "mean_abs", "max_rel", "snr_db",
                "out", "tolerance", "worst at")
SUMMARY_HEADER = ("", "stage", "mode", "checks", "failed", "worst max_abs", "worst file", "tolerance")


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


def provenance(result: ParityResult) -> list[tuple[str, Any]]:
    """(key, value) rows that pin what the verdict is about: the result's identity fields."""
    return [(k, getattr(result, k)) for k in PROVENANCE_KEYS]


def tolerances_text(result: ParityResult) -> str:
    return f"version {result.tolerances.version} sha256 {result.tolerances.sha256}"


def real_data_rows(result: ParityResult) -> tuple[str, list[list[str]]]:
    """(explanation, per-segment rows) of the upstream real-data check, for Markdown and HTML."""
    real = result.real_data or {}
    if not real.get("available"):
        return f"Not run: {real.get('why', 'no real-data section in this result')}.", []
    verdict = "passed" if real.get("passed") else "FAILED"
    rows = [[s["segment"], f"{s['raw_shape']} -> {s['clean_shape']}", str(s["standardized_shape"]),
             "yes" if s["tail_exact"] and s["tail_all_zero_db"] else "NO",
             fmt_num(s["head_max_abs_db"]), fmt_num(s["head_mean_abs_db"])]
            for s in real.get("segments", [])]
    return f"{real.get('path')}: {verdict}. {real.get('explanation', '')}", rows


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


def check_cells(c: Check) -> list[str]:
    """mode .. worst at (CHECK_HEADER without its mark column) of one check."""
    m = c.metrics or {}
    return [str(c.mode), str(c.stage), fmt_num(c.clip), str(c.layer or "—"),
            fmt_num(m.get("max_abs"), 3), fmt_num(m.get("mean_abs"), 3), fmt_num(m.get("max_rel"), 3),
            fmt_num(m.get("snr_db"), 4), f"{fmt_num(m.get('n_out'))}/{fmt_num(m.get('n'))}",
            tolerance_text(c.tolerance), location_text(m)]


def decision_rows(d: Decisions) -> list[tuple[str, str, str]]:
    """(what, legacy, clean) rows of an aggregate check's decisions."""
    return [("rows", fmt_num(d.rows_ref), fmt_num(d.rows_clean)),
            ("global prediction", fmt_num(d.global_ref), fmt_num(d.global_clean)),
            ("global confidence", fmt_num(d.global_confidence_ref, 9),
             fmt_num(d.global_confidence_clean, 9)),
            ("local agreement", fmt_num(d.local_agreement), ""),
            (f"local flips ({len(d.local_flips)})", ", ".join(map(str, d.local_flips)) or "none", ""),
            (f"unstable in legacy itself (|p - threshold| <= {fmt_num(d.unstable_band, 3)})",
             f"{d.unstable_seconds} s", f"flipped: {', '.join(map(str, d.unstable_flips)) or 'none'}"),
            ("nearest to threshold (min |p - threshold|)", fmt_num(d.min_distance, 3), "")]


def chained_decisions(checks: Iterable[Check]) -> Decisions | None:
    """The decisions of a file's chained aggregate check (the ones users get), if any."""
    return next((c.decisions for c in checks if c.decisions and c.mode == "chained"), None)


def threshold_lines(result: ParityResult) -> list[str]:
    """Per file, how near legacy's per-second confidences came to the threshold: audio whose
    decisions never come near it did not test them."""
    out = []
    for f in result.files:
        d = chained_decisions(f.checks)
        if d and d.min_distance is not None:
            out.append(f"{f.name}: nearest second {fmt_num(d.min_distance, 3)} from the threshold, "
                       f"{d.unstable_seconds} within ±{fmt_num(d.unstable_band, 2)}")
    return out


def criteria_lines(result: ParityResult) -> list[str]:
    """Where the references and the replay ran, which criteria applied, and the decisions legacy
    itself cannot pin down -- in every report, even when there are none."""
    c, u = result.criteria, result.unstable_seconds
    return [f"criteria: {str(c.regime).replace('_', '-')} ({c.why}); "
            f"references recorded on {c.recorded_on}; replayed on {c.replayed_on}",
            f"unstable in legacy itself: {u.seconds} second(s) within the envelope of the "
            f"threshold, {u.flips} decision(s) flipped there"]


def failure_location(ff: Location) -> str:
    """'mel (chained) in x.wav clip 3 layer2' for a first_failure (clip/layer only when set)."""
    return (f"{ff.stage} ({ff.mode}) in {ff.file}"
            + ("" if ff.clip is None else f" clip {ff.clip}")
            + (f" {ff.layer}" if ff.layer else ""))


def _order(seq: tuple[str, ...], value: Any) -> int:
    return seq.index(value) if value in seq else len(seq)


def sorted_checks(checks: Iterable[Check]) -> list[Check]:
    """Failing first, then in pipeline order (stage, mode, clip, layer)."""
    return sorted(checks, key=lambda c: (
        bool(c.passed), _order(STAGES, c.stage), _order(MODES, c.mode),
        -1 if c.clip is None else c.clip, _order(ACTIVATION_LAYERS, c.layer)))


def summary_tolerance(result: ParityResult, stage: str, mode: str) -> str:
    """The tolerance(s) the checks of one (stage, mode) ran under, e.g. per-layer ones joined."""
    seen: list[str] = []
    for c in result.all_checks():
        if c.stage == stage and c.mode == mode:
            text = tolerance_text(c.tolerance)
            if text not in seen:
                seen.append(text)
    return "; ".join(seen[:3]) + (f"; +{len(seen) - 3} more" if len(seen) > 3 else "") or "—"


def verdict_line(result: ParityResult) -> str:
    """'PARITY PASSED' only when the result says so *and* nothing in it contradicts that."""
    checks = result.all_checks()
    failed = sum(not c.passed for c in checks)
    errored = [f for f in result.files if f.status == "error"]
    ff = result.first_failure
    if result.passed is True and not failed and not errored and not ff and checks:
        return "PARITY PASSED"
    if ff:
        return f"PARITY FAILED: first failing stage {failure_location(ff)}"
    if errored:
        f = errored[0]
        if f.clean_error:
            return f"PARITY FAILED: {f.name}: clean raised {error_text(f.clean_error)}"
        return f"PARITY FAILED: {f.name}: legacy raised {error_text(f.legacy_error)} but clean did not"
    if (result.real_data or {}).get("passed") is False:
        return "PARITY FAILED: real-data check on upstream's fastai_audio output (see 'Real data')"
    if not checks:
        return "PARITY FAILED: the result holds no checks"
    if failed:
        return f"PARITY FAILED: {failed} check(s) failed but no first_failure was recorded"
    return "PARITY FAILED: the result does not say passed"


def error_text(err: ErrorInfo | Mapping[str, Any] | None) -> str:
    """'Type: message' of an error (a FileResult's, or one inside an error check's metrics)."""
    if not err:
        return "—"
    if isinstance(err, ErrorInfo):
        return f"{err.type}: {err.message}"
    return f"{err.get('type')}: {err.get('message')}"


def summary_rows(result: ParityResult) -> list[tuple[bool | None, list[str]]]:
    """(ok, cells) per summary entry, shared by the terminal, Markdown and HTML tables. ok is None
    for a (stage, mode) without checks: shown as '–', never as a pass."""
    rows = []
    for r in result.summary:
        ok = None if not r.checks else bool(r.passed and not r.failed)
        rows.append((ok, [NONE_MARK if ok is None else (PASS_MARK if ok else FAIL_MARK),
                          str(r.stage), str(r.mode), fmt_num(r.checks), fmt_num(r.failed),
                          fmt_num(r.max_abs, 3), str(r.worst_file or "—"),
                          summary_tolerance(result, r.stage, r.mode)]))
    return rows
