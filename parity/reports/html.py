"""The parity report as ONE self-contained HTML file: no external URLs, images as data: URIs.

A reviewer opens it offline (or from a CI artifact) and must see exactly what the JSON says, so:
  * every piece of text from the result (file names, error messages, environment strings) goes
    through html.escape; a Content-Security-Policy allows only data: images, the inline style and
    the one inline script by its sha256, so even a missed escape could not run a script or fetch;
  * legacy and clean heatmaps share one colour scale (independent autoscaling would hide a
    constant offset), and the |diff| map states its maximum in the caption;
  * a tiny script writes how many <img> actually decoded into #render-check, which the headless
    browser test reads back.
"""

from __future__ import annotations

import base64
import hashlib
import html
import math
import re
from typing import Any, Mapping, Sequence

import numpy as np

from orcaport.model.stages import STAGES
from orcaport.parity.reports.cells import (CHECK_HEADER, REAL_DATA_HEADER, SUMMARY_HEADER, check_cells,
                                           chained_decisions, criteria_lines, decision_rows, error_text,
                                           fmt_num, provenance, real_data_rows, sorted_checks, summary_rows,
                                           tolerances_text, verdict_line)
from orcaport.parity.reports.markdown import HOW_TO_READ
from orcaport.parity.reports.png import colorbar_png, heatmap_png, scale_limits
from orcaport.parity.result import Check, FileResult, ParityResult, Series

LOG_STAGES = frozenset({"mel"})     # power spectrogram: colour by log10, db/input are already log
SVG_W, SVG_H, PAD_L, PAD_R, PAD_T, PAD_B = 720, 230, 44, 12, 22, 30

RENDER_CHECK_JS = """
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (im) { return im.complete && im.naturalWidth > 0; }).length;
  var el = document.getElementById('render-check');
  el.textContent = ok + '/' + imgs.length + ' images rendered';
  el.setAttribute('data-ok', ok === imgs.length ? 'true' : 'false');
});
"""

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em auto;max-width:1400px;color:#222}
h1.pass{color:#176b1f} h1.fail{color:#b00020} .verdict{font-weight:bold;font-family:monospace}
table{border-collapse:collapse;margin:.5em 0} td,th{border:1px solid #ccc;padding:2px 6px}
th{background:#f2f2f2} tr.fail td{background:#fde8ea} td.num{text-align:right;font-family:monospace}
code,td.mono{font-family:monospace;font-size:12px}
figure{display:inline-block;margin:.3em;vertical-align:top} figcaption{font-size:12px;max-width:640px}
img.map{image-rendering:pixelated;max-width:100%;border:1px solid #999} img.bar{display:block}
section.file{border-top:2px solid #888;margin-top:1.5em} .err{color:#b00020}
"""


def _e(x: Any) -> str:
    return html.escape("—" if x is None else str(x), quote=True)


def _img(png: bytes, alt: str, cls: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img class="{cls}" alt="{_e(alt)}" src="data:image/png;base64,{data}">'


def _table(header: Sequence[str], rows: Sequence[tuple[str, Sequence[str]]]) -> str:
    """rows: (tr class, already-escaped cell HTML)."""
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join(f'<tr class="{cls}">' + "".join(rows_cell for rows_cell in cells) + "</tr>"
                   for cls, cells in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _td(x: Any, cls: str = "", title: str | None = None) -> str:
    attrs = (f' class="{cls}"' if cls else "") + (f' title="{_e(title)}"' if title else "")
    return f"<td{attrs}>{_e(x)}</td>"


CHECK_CELL_CLASSES = ("", "", "", "", "num", "num", "num", "num", "num", "", "mono")   # per check_cells


def _check_row(c: Check) -> tuple[str, list[str]]:
    ok = bool(c.passed)
    why = (c.tolerance or {}).get("why")
    return ("pass" if ok else "fail", [_td("✓" if ok else "✗")] + [
        _td(cell, cls, why if i == 9 else None)
        for i, (cell, cls) in enumerate(zip(check_cells(c), CHECK_CELL_CLASSES))])


def _checks_html(checks: list[Check]) -> str:
    """Failing checks in the open; passing ones folded away (there can be thousands)."""
    ordered = sorted_checks(checks)
    failing = [_check_row(c) for c in ordered if not c.passed]
    passing = [_check_row(c) for c in ordered if c.passed]
    out = f"<p>{len(checks)} checks, {len(failing)} failing.</p>"
    if failing:
        out += _table(CHECK_HEADER, failing)
    if passing:
        out += (f"<details><summary>{len(passing)} passing checks</summary>"
                f"{_table(CHECK_HEADER, passing)}</details>")
    return out


def _as_2d(a: Any) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    while a.ndim > 2 and a.shape[0] == 1:
        a = a[0]
    return a


def _scale_caption(lo: float, hi: float, log: bool) -> str:
    return f"colour: {fmt_num(lo, 4)} (dark) … {fmt_num(hi, 4)} (bright){', log10 scale' if log else ''}"


def heatmap_figures(stage: str, clip: Any, ref: Any, clean: Any) -> str:
    """Legacy, clean (one shared colour scale) and |clean − legacy| with its maximum."""
    ref2, clean2 = _as_2d(ref), _as_2d(clean)
    log = stage in LOG_STAGES
    bar = _img(colorbar_png(), "colour bar: dark = low, bright = high", "bar")
    axes = "vertical: mel bin (low at the bottom); horizontal: frame"
    figs = []
    if ref2.ndim != 2 or clean2.ndim != 2 or 0 in ref2.shape or 0 in clean2.shape:
        return (f'<p class="err">cannot draw: legacy shape {_e(ref2.shape)}, clean shape '
                f"{_e(clean2.shape)} (need non-empty 2-D maps)</p>")
    if ref2.shape != clean2.shape:
        for label, a in (("legacy", ref2), ("clean", clean2)):
            lo, hi = scale_limits(a, log=log)
            figs.append(f"<figure>{_img(heatmap_png(a, log=log), f'{label} {stage}', 'map')}{bar}"
                        f"<figcaption>{_e(label)} {_e(a.shape)}; {_e(_scale_caption(lo, hi, log))}"
                        f"</figcaption></figure>")
        return (f'<p class="err">shape mismatch: legacy {_e(ref2.shape)} vs clean '
                f"{_e(clean2.shape)}; no diff map</p>" + "".join(figs))
    both = np.stack([ref2, clean2])
    lo, hi = scale_limits(both.reshape(2, -1), log=log)
    for label, a in (("legacy", ref2), ("clean", clean2)):
        figs.append(f"<figure>{_img(heatmap_png(a, lo, hi, log), f'{label} {stage} clip {clip}', 'map')}"
                    f"{bar}<figcaption>{_e(label)} {_e(stage)} {_e(a.shape)}; "
                    f"{_e(_scale_caption(lo, hi, log))}; {_e(axes)}</figcaption></figure>")
    diff = np.abs(clean2 - ref2)
    finite = np.isfinite(diff)
    dmax = float(diff[finite].max()) if finite.any() else math.nan
    where = ""
    if finite.any() and dmax > 0:
        i, j = np.unravel_index(np.argmax(np.where(finite, diff, -1.0)), diff.shape)
        where = f" at mel_bin={i}, frame={j}"
    nonfinite = int((~finite).sum())
    note = f"; {nonfinite} non-finite (magenta)" if nonfinite else ""
    dmax_text = "0 (identical)" if dmax == 0 else fmt_num(dmax, 4)
    diff_png = heatmap_png(diff, 0.0, dmax if dmax > 0 else None)
    figs.append(f"<figure>{_img(diff_png, f'|diff| {stage}', 'map')}"
                f"{bar}<figcaption>|clean − legacy|: max = {_e(dmax_text)}{_e(where)}{_e(note)}; "
                f"colour: 0 … max</figcaption></figure>")
    return "".join(figs)


def _points(xs: Sequence[float], ys: Sequence[Any], fx, fy) -> list[str]:
    """SVG polyline point lists, split wherever a value is missing or non-finite."""
    runs, cur = [], []
    for x, y in zip(xs, ys):
        if isinstance(y, (int, float)) and math.isfinite(y):
            cur.append(f"{fx(x):.1f},{fy(y):.1f}")
        elif cur:
            runs.append(" ".join(cur)); cur = []
    if cur:
        runs.append(" ".join(cur))
    return runs


def _nice_ticks(lo: float, hi: float, target: int = 6) -> list[float]:
    """Round tick positions (1, 2 or 5 x 10^k apart) covering [lo, hi]."""
    raw = (hi - lo) / target
    mag = 10.0 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def confidence_svg(series: Series, flips: Sequence[int] | None = None) -> str:
    """Inline SVG: legacy (solid) vs clean (dashed) per-second confidence, the threshold, and red
    markers at seconds whose local decision differs (the engine's flips, else recomputed with
    OrcaHello's rule confidence > threshold)."""
    legacy, clean = list(series.legacy or []), list(series.clean or [])
    n = max(len(legacy), len(clean), 1)
    times = list(series.time_s or [])
    times += list(range(len(times), n))             # rows beyond time_s: one per second
    thr = series.threshold

    def num(v: Any) -> bool:
        return isinstance(v, (int, float)) and math.isfinite(v)

    if flips is None:
        flips = [i for i in range(min(len(legacy), len(clean)))
                 if num(legacy[i]) and num(clean[i]) and num(thr)
                 and (legacy[i] > thr) != (clean[i] > thr)]
    ys = [v for v in legacy + clean + [thr, 0.0, 1.0] if num(v)]
    y0, y1 = min(ys), max(ys)
    x0, x1 = float(min(times[:n])), float(max(times[:n]))
    x1 = x1 if x1 > x0 else x0 + 1.0
    fx = lambda x: PAD_L + (float(x) - x0) / (x1 - x0) * (SVG_W - PAD_L - PAD_R)  # noqa: E731
    fy = lambda y: SVG_H - PAD_B - (float(y) - y0) / (y1 - y0) * (SVG_H - PAD_T - PAD_B)  # noqa: E731
    parts = [f'<rect x="{PAD_L}" y="{PAD_T}" width="{SVG_W - PAD_L - PAD_R}" '
             f'height="{SVG_H - PAD_T - PAD_B}" fill="#fafafa" stroke="#999"/>']
    for y in sorted({y0, y1, *( [thr] if num(thr) else [])}):
        parts.append(f'<text x="{PAD_L - 4}" y="{fy(y) + 4:.1f}" text-anchor="end" '
                     f'font-size="11">{_e(fmt_num(y, 3))}</text>')
    for x in _nice_ticks(x0, x1):
        parts.append(f'<text x="{fx(x):.1f}" y="{SVG_H - PAD_B + 14}" text-anchor="middle" '
                     f'font-size="11">{_e(fmt_num(x, 3))}</text>')
    parts.append(f'<text x="{SVG_W / 2}" y="{SVG_H - 2}" text-anchor="middle" font-size="11">'
                 f"time (s)</text>")
    if num(thr):
        parts.append(f'<line x1="{PAD_L}" x2="{SVG_W - PAD_R}" y1="{fy(thr):.1f}" y2="{fy(thr):.1f}" '
                     f'stroke="#888" stroke-dasharray="2,3"><title>threshold {_e(thr)}</title></line>')
    for i in flips:
        if 0 <= i < n:
            parts.append(f'<line x1="{fx(times[i]):.1f}" x2="{fx(times[i]):.1f}" y1="{PAD_T}" '
                         f'y2="{SVG_H - PAD_B}" stroke="#d00" stroke-width="2" opacity="0.6">'
                         f"<title>local decision differs at {_e(times[i])} s</title></line>")
    for ys_, colour, dash, label in ((legacy, "#1f4e9e", "", "legacy"),
                                     (clean, "#e08a00", ' stroke-dasharray="5,3"', "clean")):
        for run in _points(times, ys_, fx, fy):
            parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5"{dash} '
                         f'points="{run}"><title>{label}</title></polyline>')
    # Legend above the plot box, where no curve or flip marker can cover it.
    legend = (f'<text x="{PAD_L}" y="{PAD_T - 8}" font-size="11" fill="#1f4e9e">— legacy</text>'
              f'<text x="{PAD_L + 64}" y="{PAD_T - 8}" font-size="11" fill="#e08a00">- - clean</text>'
              f'<text x="{PAD_L + 124}" y="{PAD_T - 8}" font-size="11" fill="#d00">| local decision '
              f"differs ({len(flips)})</text>"
              f'<text x="{PAD_L + 290}" y="{PAD_T - 8}" font-size="11" fill="#888">··· threshold</text>')
    return (f'<svg class="plot" width="{SVG_W}" height="{SVG_H}" viewBox="0 0 {SVG_W} {SVG_H}" '
            f'role="img"><title>per-second confidence, legacy vs clean</title>'
            f'{"".join(parts)}{legend}</svg>')


def _how_to_read_html() -> str:
    """HOW_TO_READ's tiny Markdown subset (bullets, **bold**, *italic*, `code`) -> HTML."""
    items = [" ".join(b.split()) for b in HOW_TO_READ.strip().lstrip("- ").split("\n- ")]
    out = []
    for item in items:
        s = _e(item)
        s = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", s)
        s = re.sub(r"\*(.+?)\*", r"<i>\1</i>", s)
        out.append("<li>" + re.sub(r"`(.+?)`", r"<code>\1</code>", s) + "</li>")
    return "<ul>" + "".join(out) + "</ul>"


def _file_section(idx: int, f: FileResult, maps: list[tuple[tuple, tuple]]) -> str:
    checks = list(f.checks)
    out = [f'<section class="file" id="file-{idx}"><h2>{_e(f.name)}: {_e(f.status)}</h2>']
    if f.legacy_error or f.clean_error:
        out.append(f'<p class="err">legacy error: <code>{_e(error_text(f.legacy_error))}</code>'
                   f'<br>clean error: <code>{_e(error_text(f.clean_error))}</code></p>')
    out.append(_checks_html(checks))
    for c in checks:
        if c.decisions:
            out.append(f"<h3>Decisions ({_e(c.mode)})</h3>" + _table(
                ("", "legacy", "clean"),
                [("", [_td(a), _td(b, "num"), _td(x, "num")])
                 for a, b, x in decision_rows(c.decisions)]))
    if f.series:
        decisions = chained_decisions(checks)
        flips = decisions.local_flips if decisions else None
        out.append("<h3>Per-second confidence</h3>" + confidence_svg(f.series, flips))
    for (_, stage, clip), (ref, clean) in maps:
        out.append(f"<h3>{_e(stage)} clip {_e(clip)}</h3>" + heatmap_figures(stage, clip, ref, clean))
    return "".join(out) + "</section>"


def render_html(result: ParityResult, heatmaps: Mapping[tuple, tuple]) -> str:
    """The complete report page as a string (see the module docstring for its guarantees)."""
    verdict = verdict_line(result)
    ok = verdict == "PARITY PASSED"
    files = list(result.files)
    names = [f.name for f in files]
    by_file: dict[Any, list] = {}
    for key in sorted(heatmaps, key=lambda k: (str(k[0]), STAGES.index(k[1]) if k[1] in STAGES
                                               else len(STAGES), -1 if k[2] is None else k[2])):
        by_file.setdefault(key[0] if key[0] in names else None, []).append((key, heatmaps[key]))
    prov = [("", [_td(k), _td(v, "mono")]) for k, v in provenance(result)]
    prov.append(("", [_td("tolerances"), _td(tolerances_text(result), "mono")]))
    env = result.environment
    summary = [("pass" if ok is not False else "fail", [_td(c) for c in cells])
               for ok, cells in summary_rows(result)]
    script_hash = base64.b64encode(hashlib.sha256(RENDER_CHECK_JS.encode()).digest()).decode()
    csp = (f"default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
           f"script-src 'sha256-{script_hash}'")
    body = [
        f'<h1 class="{"pass" if ok else "fail"}">Parity report: {"PASSED" if ok else "FAILED"}</h1>',
        f'<p class="verdict">{_e(verdict)}</p>',
        *[f'<p class="criteria">{_e(x)}</p>' for x in criteria_lines(result)],
        '<p id="render-check" data-ok="false">images not checked (scripts disabled?)</p>',
        "<h2>Provenance</h2>", _table(("", "value"), prov),
        "<h2>Summary</h2>", _table(SUMMARY_HEADER, summary),
        "<ul>" + "".join(f'<li><a href="#file-{i}">{_e(n)}</a> ({_e(f.status)})</li>'
                         for i, (n, f) in enumerate(zip(names, files))) + "</ul>",
    ]
    body += [_file_section(i, f, by_file.get(f.name, []) if names.index(f.name) == i
                           else []) for i, f in enumerate(files)]
    if by_file.get(None):
        body.append('<section class="file"><h2>Heatmaps of files not in the result</h2>' + "".join(
            f"<h3>{_e(k[0])} {_e(k[1])} clip {_e(k[2])}</h3>" + heatmap_figures(k[1], k[2], *v)
            for k, v in by_file[None]) + "</section>")
    real_text, real_rows = real_data_rows(result)
    body += ["<h2>Real data (upstream fastai_audio output)</h2>", f"<p>{_e(real_text)}</p>"]
    if real_rows:
        body.append(_table(REAL_DATA_HEADER, [("", [_td(c) for c in r]) for r in real_rows]))
    body += ["<h2>Environment</h2>",
             _table(("", "value"), [("", [_td(k), _td(env[k], "mono")]) for k in sorted(env)]),
             "<h2>How to read this</h2>", _how_to_read_html()]
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta http-equiv="Content-Security-Policy" content="{_e(csp)}">'
            f"<title>{_e(verdict)}</title><style>{CSS}</style></head><body>\n"
            + "\n".join(body) + f"\n<script>{RENDER_CHECK_JS}</script>\n</body></html>\n")
