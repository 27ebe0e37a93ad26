"""`make evaluate` end to end on the labeled synthetic set (parity/testaudio/labeled.py, CI's small
subset): the reports are written, the known answers are the labels it scored, the numbers are the
ones the confidences give, the legacy column is there exactly where the legacy env is, bad labels
are refused with nothing written, and a real browser renders evaluation.html (screenshot).
Needs the evaluate extra (scikit-learn; .ci/run installs it)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("sklearn", reason="scikit-learn (the evaluate extra) not installed: make env-evaluate")

from orcaport.parity.evaluation import metrics as m  # noqa: E402
from orcaport.parity.evaluation.reports import REPORT_NAMES, file_rows  # noqa: E402
from orcaport.parity.testaudio.labeled import SMALL, write_labeled_set  # noqa: E402
from tests.conftest import FIXTURE, LEGACY_PYTHON, ROOT  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")


def make_evaluate(**variables: str) -> subprocess.CompletedProcess[str]:
    """`make evaluate` with this interpreter as the clean env (the one running the tests). The env
    prerequisites are marked up to date (-o): .ci/run has built them, and a rebuild from inside a
    test would replace the interpreter running it."""
    args = ["make", "--no-print-directory", "-o", "env-clean", "-o", "env-evaluate", "evaluate",
            f"CLEAN={sys.executable}"] + [f"{k}={v}" for k, v in variables.items()]
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=3600,
                          env={**os.environ, "CI": "true"})


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("evaluate")
    answers = write_labeled_set(base / "set", SMALL)
    proc = make_evaluate(MODEL=str(FIXTURE), AUDIO=str(base / "set" / "audio"), LABELS=str(base / "set" / "labels" / "raven"),
                         REPORTS=str(base / "reports"), DATASET="orcaport labeled synthetic set (small)")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    doc = json.loads((base / "reports" / REPORT_NAMES["json"]).read_text())
    return {"base": base, "answers": answers, "proc": proc, "doc": doc}


def test_reports_written_for_every_column(run: dict[str, Any]) -> None:
    doc, reports = run["doc"], run["base"] / "reports"
    assert sorted(p.name for p in reports.iterdir()) == sorted(REPORT_NAMES.values())
    cols = list(doc["scores"])
    assert cols[cols.index("legacy-exact"):][:2] == ["legacy-exact", "fast/fp32"]
    assert ("legacy" in cols) == LEGACY_PYTHON.exists(), doc["legacy_notes"]   # legacy column where the env is
    assert doc["reference"] == ("legacy" if "legacy" in cols else "legacy-exact")
    assert doc["dataset"] == "orcaport labeled synthetic set (small)" and doc["machine"]["description"]
    md = (reports / REPORT_NAMES["md"]).read_text()
    assert "## At the configured threshold" in md and all(f"| {c} |" in md for c in cols)
    assert "legacy-exact" in run["proc"].stdout and "machine:" in run["proc"].stdout


def test_known_answers_are_what_was_scored(run: dict[str, Any]) -> None:
    doc, answers = run["doc"], run["answers"]["files"]
    assert sorted(doc["recordings"]) == sorted(answers)
    for name, rec in doc["recordings"].items():
        got = [t for s, e, _ in rec["events"] for t in (s, e)]
        assert got == pytest.approx([t for a in answers[name] for t in (a["start_s"], a["end_s"])], abs=1e-6)
        assert rec["seconds"] == 30 and rec["duration_s"] == 30.0        # 29 clips -> 30 rows


def test_scores_are_the_confidences_scored_again(run: dict[str, Any]) -> None:
    """Each column's per-second counts recomputed here from its confidences and the answers."""
    doc = run["doc"]
    for col, rows in doc["confidence"].items():
        tp = fp = fn = 0
        for name, rec in doc["recordings"].items():
            y = m.second_truth([(s, e) for s, e, _ in rec["events"]], rec["seconds"])
            pred = np.array(rows[name]) > doc["threshold"]
            tp, fp, fn = tp + int((y & pred).sum()), fp + int((~y & pred).sum()), fn + int((y & ~pred).sum())
        s = doc["scores"][col]["second"]
        assert (s["tp"], s["fp"], s["fn"]) == (tp, fp, fn)
        assert s["f1"] == pytest.approx(m.f1_of(tp, fp, fn))
    exact = doc["scores"]["legacy-exact"]
    assert exact["file"]["f1"] > 0.5 and exact["second"]["recall"] > 0.5, "the trained fixture finds the calls"
    assert doc["confidence"]["fast/fp32"] == doc["confidence"]["legacy-exact"]


def test_differences_gate_and_review_outputs(run: dict[str, Any]) -> None:
    doc, reports = run["doc"], run["base"] / "reports"
    ref = doc["reference"]
    for name, sc in doc["scores"].items():
        for level in m.LEVELS:
            iv = sc["diff_from_reference"][level]
            assert iv["low"] <= iv["diff"] + 1e-12 and iv["diff"] <= iv["high"] + 1e-12
            assert iv["diff"] == pytest.approx(sc[level]["f1"] - doc["scores"][ref][level]["f1"])
    for name, g in doc["gate"].items():
        assert g["offered"] == all(d >= -doc["gate_margin"] - 1e-12 for d in g["f1_minus_legacy_exact"].values())
    rows = file_rows(doc)
    assert [r["disagreeing_seconds"] for r in rows] == sorted((r["disagreeing_seconds"] for r in rows), reverse=True)
    raven = (reports / REPORT_NAMES["raven"]).read_text().splitlines()
    header = raven[0].split("\t")
    assert header[:5] == ["Selection", "View", "Channel", "Begin Time (s)", "End Time (s)"]
    assert len(raven) - 1 == sum(r["disagreeing_seconds"] for r in rows)


def test_bad_label_file_refused_and_nothing_written(tmp_path: Path, run: dict[str, Any]) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text("file,start,end\ncalm_calls.wav,3.2,3.8\ncalm_calls.wav,29.5,31.0\n")
    proc = make_evaluate(MODEL=str(FIXTURE), AUDIO=str(run["base"] / "set" / "audio"), LABELS=str(labels),
                         REPORTS=str(tmp_path / "reports"), NO_LEGACY="1")
    assert proc.returncode != 0
    assert f"{labels}:3: end 31 s is past the end of calm_calls.wav (30 s)" in proc.stderr
    assert not (tmp_path / "reports").exists()


def _chromium(page: Path, profile: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
           "--virtual-time-budget=5000", *extra, page.resolve().as_uri()]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


def test_chromium_renders_the_html_with_its_plots(run: dict[str, Any], tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        pytest.skip("chromium not installed (apt-get install chromium)")
    page = run["base"] / "reports" / REPORT_NAMES["html"]
    text = page.read_text()
    assert "http://" not in text and "https://" not in text and "Content-Security-Policy" in text
    dom = _chromium(page, tmp_path / "profile", "--dump-dom").stdout
    found = re.search(r'<p id="render-check" data-ok="(\w+)">(\d+)/(\d+) images rendered, (\d+) plots</p>', dom)
    assert found, dom[-2000:]
    ok, n, total, plots = found.group(1), *map(int, found.groups()[1:])
    # one strip per recording + the colour bar; PR, ROC and sweep at two levels + the event sweep
    assert (ok, n, total, plots) == ("true", total, len(run["doc"]["recordings"]) + 1, 7)
    shot = tmp_path / "evaluation.png"
    _chromium(page, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1400,1800", "--hide-scrollbars")
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 50_000, "a blank or missing screenshot"


def test_labels_that_label_nothing_are_refused_before_the_model_runs(tmp_path: Path, run: dict[str, Any]) -> None:
    from orcaport.parity.evaluation.__main__ import main

    (tmp_path / "labels.csv").write_text("file,start,end\n")
    code = main(["--model", str(FIXTURE), "--audio", str(run["base"] / "set" / "audio"), "--labels",
                 str(tmp_path / "labels.csv"), "--reports", str(tmp_path / "reports")])
    assert code == 3 and not (tmp_path / "reports").exists()


def test_unwritable_reports_folder_replaces_nothing(tmp_path: Path, run: dict[str, Any]) -> None:
    from orcaport.parity.evaluation.reports import write_reports

    blocker = tmp_path / "reports"
    blocker.write_text("a file where the reports folder should be")
    with pytest.raises(OSError):                   # the command maps it to OutputError, exit 5
        write_reports(run["doc"], blocker)
    assert blocker.read_text().startswith("a file") and list(tmp_path.iterdir()) == [blocker]


def test_legacy_column_from_references_without_a_legacy_env(tmp_path: Path) -> None:
    """The committed references cover the corpus's flagship recording (same audio sha256, same
    weights): its legacy column is read from them, no legacy env needed (so CI runs this too)."""
    from orcaport.parity.evaluation.run import Options, evaluate
    from tests.conftest import CORPUS, FLAGSHIP, REFS

    events = next(f for f in json.loads((CORPUS / "corpus.json").read_text())["files"] if f["name"] == FLAGSHIP)["events"]
    labels = tmp_path / "labels.csv"
    labels.write_text("file,start,end,label\n" + "".join(f"{FLAGSHIP},{e['start_s']},{e['end_s']},{e['kind']}\n"
                                                         for e in events if e["kind"] in ("call", "whistle")))
    doc = evaluate(Options(model=FIXTURE, audio=[CORPUS / FLAGSHIP], labels=labels, references=REFS, int8=False,
                           legacy_python=tmp_path / "no-legacy-env"))
    assert list(doc["scores"])[:2] == ["legacy", "legacy-exact"] and doc["reference"] == "legacy"
    assert doc["columns"]["legacy"]["source"] == f"references ({REFS})"
    agree = doc["scores"]["legacy-exact"]["agreement_with_reference"]
    assert agree["local"] == 1.0 and agree["max_abs_confidence_diff"] < 1e-4     # parity's bar, on the task's rows
    assert doc["scores"]["legacy-exact"]["second"]["f1"] == doc["scores"]["legacy"]["second"]["f1"]


def test_html_escapes_names_from_the_user(run: dict[str, Any]) -> None:
    from orcaport.parity.evaluation.html import render_html

    doc = json.loads(json.dumps(run["doc"]))
    doc["dataset"] = "<script>alert(1)</script>"
    name = next(iter(doc["recordings"]))
    evil = '<img src=x onerror="alert(2)">.wav'
    for table in (doc["recordings"], *doc["confidence"].values()):
        table[evil] = table.pop(name)
    for sc in doc["scores"].values():
        sc["per_file"][evil] = sc["per_file"].pop(name)
    page = render_html(doc)
    assert page.count("<script>") == 1 and "alert(" not in page.split("<script>")[1].split("</script>")[0]
    assert "<img src=x" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
