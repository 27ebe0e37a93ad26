"""evaluation.html: ONE self-contained page, like parity.html (parity/reports/html.py): no external
URL, a Content-Security-Policy allowing only data: images, the inline style and the one inline
script (by its sha256), every string from the document escaped. It draws, per level, the PR and ROC
curves of every column and the threshold sweep (F1 of each column; precision and recall of the
reference; the configured threshold and each column's best-F1 point marked), and per recording a
strip of per-second confidences (truth on top, then each column; viridis, parity/reports/png.py).
A script writes into #render-check how many images decoded and how many plots were drawn, which
the headless-browser test reads back.
"""

from __future__ import annotations

import base64
import hashlib
import html
from typing import Any, Sequence

import numpy as np

from orcaport.parity.evaluation.metrics import second_truth
from orcaport.parity.evaluation.reports import (GATE_HEADER, LEVEL_HEADER, LEVEL_TITLES, SUMMARY_HEADER,
                                                disagreeing_seconds, file_rows, fmt, gate_rows, int8_verdict, level_rows,
                                                machine_line, summary_rows)
from orcaport.parity.reports.png import colorbar_png, heatmap_png

W, H, PAD_L, PAD_R, PAD_T, PAD_B = 400, 300, 46, 12, 28, 36
PALETTE = ("#1f4e9e", "#e08a00", "#2a9d3a", "#c0392b", "#7b3fa0", "#5c5c5c", "#17a2b8")

RENDER_CHECK_JS = """
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (im) { return im.complete && im.naturalWidth > 0; }).length;
  var plots = document.querySelectorAll('svg.plot polyline').length > 0 ? document.querySelectorAll('svg.plot').length : 0;
  var el = document.getElementById('render-check');
  el.textContent = ok + '/' + imgs.length + ' images rendered, ' + plots + ' plots';
  el.setAttribute('data-ok', ok === imgs.length && plots > 0 ? 'true' : 'false');
});
"""

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em auto;max-width:1400px;color:#222}
table{border-collapse:collapse;margin:.5em 0} td,th{border:1px solid #ccc;padding:2px 6px}
th{background:#f2f2f2} td.num{text-align:right;font-family:monospace} tr.ref td{background:#eef3fb}
tr.no td{background:#fde8ea} figure{display:inline-block;margin:.3em;vertical-align:top}
figcaption{font-size:12px;max-width:560px} img.strip{image-rendering:pixelated;border:1px solid #999}
.small{font-size:12px;color:#555}
"""


def _e(x: Any) -> str:
    return html.escape("—" if x is None else str(x), quote=True)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], classes: Sequence[str] | None = None) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join(f'<tr class="{_e(classes[i]) if classes else ""}">' + "".join(f"<td>{_e(c)}</td>" for c in r)
                   + "</tr>" for i, r in enumerate(rows))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def colours(doc: dict[str, Any]) -> dict[str, str]:
    return {c: PALETTE[i % len(PALETTE)] for i, c in enumerate(doc["scores"])}


def chart(title: str, lines: list[tuple[str, str, str, Sequence[float | None], Sequence[float | None]]],
          x_label: str, y_label: str, marks: Sequence[tuple[float, float, str, str]] = (),
          vline: float | None = None) -> str:
    """An inline SVG line chart on [0, 1] x [0, 1]. lines: (label, colour, dash, xs, ys); marks:
    (x, y, colour, tooltip) dots; vline: a dotted vertical line (the configured threshold)."""
    fx = lambda x: PAD_L + float(x) * (W - PAD_L - PAD_R)  # noqa: E731
    fy = lambda y: H - PAD_B - float(y) * (H - PAD_T - PAD_B)  # noqa: E731
    parts = [f'<rect x="{PAD_L}" y="{PAD_T}" width="{W - PAD_L - PAD_R}" height="{H - PAD_T - PAD_B}" '
             'fill="#fafafa" stroke="#999"/>']
    for v in (0.0, 0.25, 0.5, 0.75, 1.0):
        parts.append(f'<text x="{PAD_L - 4}" y="{fy(v) + 4:.1f}" text-anchor="end" font-size="10">{v:g}</text>'
                     f'<text x="{fx(v):.1f}" y="{H - PAD_B + 13}" text-anchor="middle" font-size="10">{v:g}</text>')
    parts.append(f'<text x="{(PAD_L + W - PAD_R) / 2}" y="{H - 6}" text-anchor="middle" font-size="11">{_e(x_label)}</text>'
                 f'<text x="12" y="{(PAD_T + H - PAD_B) / 2}" font-size="11" transform="rotate(-90 12 '
                 f'{(PAD_T + H - PAD_B) / 2})" text-anchor="middle">{_e(y_label)}</text>')
    if vline is not None:
        parts.append(f'<line x1="{fx(vline):.1f}" x2="{fx(vline):.1f}" y1="{PAD_T}" y2="{H - PAD_B}" stroke="#888" '
                     f'stroke-dasharray="2,3"><title>configured threshold {_e(vline)}</title></line>')
    legend = []
    for i, (label, colour, dash, xs, ys) in enumerate(lines):
        pts = " ".join(f"{fx(x):.1f},{fy(y):.1f}" for x, y in zip(xs, ys) if x is not None and y is not None)
        if pts:
            parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.6" stroke-dasharray="{dash}" '
                         f'points="{pts}"><title>{_e(label)}</title></polyline>')
        # below the plot, two per row: a legend inside would hide the curves it names
        legend.append(f'<text x="{PAD_L + (i % 2) * (W - PAD_L) / 2:.0f}" y="{H + 4 + 12 * (i // 2)}" font-size="10" '
                      f'fill="{colour}">{_e(label)}</text>')
    for x, y, colour, tip in marks:
        parts.append(f'<circle cx="{fx(x):.1f}" cy="{fy(y):.1f}" r="3.5" fill="{colour}"><title>{_e(tip)}</title></circle>')
    height = H + 8 + 12 * ((len(lines) + 1) // 2)
    return (f'<figure><svg class="plot" width="{W}" height="{height}" viewBox="0 0 {W} {height}" role="img">'
            f'<title>{_e(title)}</title><text x="{PAD_L}" y="16" font-size="12" font-weight="bold">{_e(title)}</text>'
            f'{"".join(parts)}{"".join(legend)}</svg></figure>')


def level_charts(doc: dict[str, Any], level: str) -> str:
    col, thr, ref = colours(doc), doc["threshold"], doc["reference"]
    out = []
    scores = doc["scores"]
    if any(sc[level]["pr"] for sc in scores.values()):
        pr = [(f"{c} (AP {fmt(sc[level]['average_precision'])})", col[c], "" if i == 0 else "5,3",
               sc[level]["pr"]["recall"], sc[level]["pr"]["precision"]) for i, (c, sc) in enumerate(scores.items()) if sc[level]["pr"]]
        roc = [(f"{c} (AUC {fmt(sc[level]['roc_auc'])})", col[c], "" if i == 0 else "5,3",
                sc[level]["roc"]["fpr"], sc[level]["roc"]["tpr"]) for i, (c, sc) in enumerate(scores.items()) if sc[level]["roc"]]
        at = [(sc[level]["recall"], sc[level]["precision"], col[c], f"{c} at threshold {thr}") for c, sc in scores.items()]
        out.append(chart(f"PR curve, {LEVEL_TITLES[level]}", pr, "recall", "precision", at))
        out.append(chart(f"ROC curve, {LEVEL_TITLES[level]}", roc, "false positive rate", "true positive rate"))
    sweep = [(f"F1 {c}", col[c], "" if i == 0 else "5,3", [r["threshold"] for r in sc[level]["sweep"]],
              [r["f1"] for r in sc[level]["sweep"]]) for i, (c, sc) in enumerate(scores.items())]
    rs = scores[ref][level]["sweep"]
    sweep += [(f"precision {ref}", "#999", "1,2", [r["threshold"] for r in rs], [r["precision"] for r in rs]),
              (f"recall {ref}", "#555", "6,2,1,2", [r["threshold"] for r in rs], [r["recall"] for r in rs])]
    best = [(sc[level]["best"]["threshold"], sc[level]["best"]["f1"], col[c],
             f"{c}: best F1 {fmt(sc[level]['best']['f1'])} at {sc[level]['best']['threshold']:.2f}") for c, sc in scores.items()]
    out.append(chart(f"Threshold sweep, {LEVEL_TITLES[level]}", sweep, "threshold", "F1 / precision / recall", best, thr))
    return "".join(out)


def strip(doc: dict[str, Any], name: str) -> str:
    """Per-second strip of one recording: truth on top, then every column (0 dark .. 1 bright)."""
    rec, conf = doc["recordings"][name], doc["confidence"]
    truth = second_truth([(s, e) for s, e, _ in rec["events"]], rec["seconds"]).astype(float)
    rows = [truth] + [np.asarray(conf[c][name], float) for c in conf]
    png = heatmap_png(np.array(rows[::-1]), 0.0, 1.0, scale=8)      # png.py draws row 0 at the bottom
    data = base64.b64encode(png).decode("ascii")
    labels = "truth, " + ", ".join(conf)
    return (f'<figure><img class="strip" alt="{_e(name)} per-second confidences" src="data:image/png;base64,{data}">'
            f"<figcaption>{_e(name)}: rows top to bottom {_e(labels)}; one column per second</figcaption></figure>")


def render_html(doc: dict[str, Any]) -> str:
    script_hash = base64.b64encode(hashlib.sha256(RENDER_CHECK_JS.encode()).digest()).decode()
    csp = f"default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'sha256-{script_hash}'"
    ref = doc["reference"]
    body = [f"<h1>Evaluation on {_e(doc['dataset'] or doc['labels'])}</h1>",
            '<p id="render-check" data-ok="false">images not checked (scripts disabled?)</p>',
            f"<p>model <code>{_e(doc['model'])}</code>; threshold {_e(doc['threshold'])}, {_e(doc['min_positive'])} "
            f"positive seconds for a file call; {_e(len(doc['recordings']))} labeled recordings; differences "
            f"against <b>{_e(ref)}</b>.<br>machine: {_e(machine_line(doc))}; {_e(doc['created'])}</p>",
            "<h2>At the configured threshold</h2>",
            _table(SUMMARY_HEADER, summary_rows(doc), ["ref" if c == ref else "" for c in doc["scores"]])]
    for level, title in LEVEL_TITLES.items():
        body += [f"<h2>{_e(title.capitalize())}</h2>", f'<p class="small">{_e(doc["criteria"][level])}</p>',
                 _table(LEVEL_HEADER, level_rows(doc, level), ["ref" if c == ref else "" for c in doc["scores"]]),
                 level_charts(doc, level)]
    if doc["gate"]:
        rows = gate_rows(doc)
        body += ["<h2>Deployment gate</h2>", f'<p class="small">{_e(doc["criteria"]["gate"])}</p>',
                 _table(GATE_HEADER, rows, ["" if r[2] == "yes" else "no" for r in rows])]
        verdict = int8_verdict(doc)
        if verdict:      # the Markdown sentence, its ** and ` markup dropped
            body += [f"<p>{_e(verdict.replace('**', '').replace('`', ''))}</p>"]
    cols = list(doc["confidence"])
    frows = file_rows(doc)
    body += ["<h2>Per file, most disagreement first</h2>",
             _table(["file", "labeled events", "seconds", "disagreeing seconds", "max |Δ confidence|"]
                    + [f"{c}: call / positive s" for c in cols],
                    [[r["file"], r["labeled"], r["seconds"], r["disagreeing_seconds"], fmt(r["max_abs_diff"], 4)]
                     + [f"{'CALL' if r['calls'][c] else 'no'} / {r['positive_seconds'][c]}" for c in cols] for r in frows]),
             '<img alt="colour bar: dark = 0, bright = 1" src="data:image/png;base64,'
             f'{base64.b64encode(colorbar_png()).decode("ascii")}"><span class="small"> confidence 0 … 1</span><br>',
             "".join(strip(doc, r["file"]) for r in frows)]
    dis = disagreeing_seconds(doc)
    body += [f"<h2>Seconds where decisions differ from {_e(ref)} ({len(dis)})</h2>",
             "<p>Also in <code>disagreements.selections.txt</code>, a Raven selection table.</p>",
             _table(["file", "time (s)", "labeled call", "differ"] + cols,
                    [[d["file"], f"{d['start_s']:g}–{d['end_s']:g}", "yes" if d["truth"] else "no", ", ".join(d["differ"])]
                     + [fmt(d["confidence"][c], 4) for c in cols] for d in dis])]
    body += ["<h2>Columns</h2>", _table(["column", "arithmetic", "note", "source"],
                                        [[k, v["arithmetic"], v["note"], v["source"]] for k, v in doc["columns"].items()])]
    notes = doc["legacy_notes"] + [f"{n}: no label file mentions it" for n in doc["unlabeled"]] + \
        [f"{n}: {e}" for n, e in doc["errors"].items()]
    if notes:
        body.append("<h2>Notes</h2><ul>" + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul>")
    body.append("<h2>Criteria</h2><ul>" + "".join(f"<li>{_e(k)}: {_e(v)}</li>" for k, v in doc["criteria"].items()) + "</ul>")
    title = f"Evaluation on {doc['dataset'] or doc['labels']}"
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta http-equiv="Content-Security-Policy" content="{_e(csp)}">'
            f"<title>{_e(title)}</title><style>{CSS}</style></head><body>\n"
            + "\n".join(body) + f"\n<script>{RENDER_CHECK_JS}</script>\n</body></html>\n")
