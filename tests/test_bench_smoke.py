"""`make bench` cannot lose its rows: each row is on disk as soon as it is measured, a failing row
is recorded with its error while the others stand, and every bench code path (int8 included)
runs end to end on tiny inputs (`python -m bench --smoke`; no timing is asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.report import markdown
from bench.rows import Rows
from bench.workers import worker
from orcaport.model.errors import ExitCode, OutputError
from tests.conftest import LEGACY_PYTHON, ROOT

MACHINE = {"cpu": "test CPU", "cpus": 2, "torch": "x", "loadavg_start": 0.0, "lscpu": {}}


def on_disk(out: Path) -> dict:
    return json.loads((out / "results.json").read_text())


def test_rows_are_written_as_they_finish_and_a_failure_leaves_the_others(tmp_path: Path) -> None:
    res = {"date": "today", "machine": MACHINE, "settings": {"rounds": 1, "repeats": 1}}
    rows = Rows(res, tmp_path, markdown)
    assert rows.run("first", lambda: 1, keep=lambda v: res.__setitem__("first", v)) == 1
    seen = {}

    def second() -> dict:
        seen.update(on_disk(tmp_path))            # the first row is already on disk
        return worker(sys.executable, "json.tool", [tmp_path / "missing.json"])   # exits 2
    assert rows.run("second", second) is None
    assert seen["first"] == 1 and seen["rows"]["first"]["status"] == "ok" and seen["status"] == "running"
    failed = on_disk(tmp_path)["rows"]["second"]
    assert failed["status"] == "failed" and failed["error"].startswith("WorkerError: json.tool missing.json exited 2")
    assert "missing.json" in failed["detail"]    # the worker's stderr tail
    assert rows.run("third", lambda: 3) == 3    # the run goes on
    assert rows.run("fourth", lambda: 4, needs=("second",)) is None
    assert on_disk(tmp_path)["rows"]["fourth"]["status"] == "skipped"

    assert rows.finish() == ExitCode.FAILED
    final = on_disk(tmp_path)
    assert final["status"] == "incomplete" and final["first"] == 1 and final["rows"]["third"]["status"] == "ok"
    table = (tmp_path / "results.md").read_text()
    assert "**incomplete**" in table and "| second | failed | WorkerError: json.tool" in table
    assert "| fourth | skipped | not measured: needs second" in table
    assert not [p for p in tmp_path.iterdir() if p.name not in ("results.json", "results.md")]   # no temps


def test_a_render_bug_never_costs_the_json(tmp_path: Path) -> None:
    res = {"date": "today", "machine": MACHINE}
    rows = Rows(res, tmp_path, lambda r: 1 / 0)
    rows.run("only", lambda: {"x": 1}, keep=lambda v: res.__setitem__("only", v))
    assert on_disk(tmp_path)["only"] == {"x": 1}
    assert on_disk(tmp_path)["render_error"].startswith("ZeroDivisionError")
    assert rows.finish() == ExitCode.FAILED


def test_an_interrupted_run_keeps_its_rows(tmp_path: Path) -> None:
    res = {"date": "today", "machine": MACHINE}
    rows = Rows(res, tmp_path, markdown)
    rows.run("done", lambda: 1)

    def killed() -> None:
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        rows.run("killed", killed)
    kept = on_disk(tmp_path)["rows"]
    assert kept["done"]["status"] == "ok" and kept["killed"]["status"] == "interrupted"
    assert "| killed | interrupted |" in (tmp_path / "results.md").read_text()


def test_an_unwritable_results_folder_is_an_output_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    rows = Rows({"date": "today", "machine": MACHINE}, tmp_path / "file" / "bench", markdown)
    with pytest.raises(OutputError, match="pass a writable --out"):
        rows.run("only", lambda: 1)


def test_smoke_runs_every_row(tmp_path: Path) -> None:
    """Every section of `make bench` on the fixture and two short corpus files; legacy rows only
    where .venvs/legacy exists (bench skips them itself otherwise)."""
    out = subprocess.run([sys.executable, "-m", "bench", "--smoke", "--out", str(tmp_path)], cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=1800)
    assert out.returncode == 0, out.stderr[-4000:]
    res = on_disk(tmp_path)
    assert res["status"] == "complete" and res["settings"]["smoke"]
    assert {r["status"] for r in res["rows"].values()} == {"ok"}, res["rows"]
    names = set(res["rows"])
    legacy = LEGACY_PYTHON.exists()
    want = {"prepare", "round 1/peak", "final peak", "parity", "pair/2 CPUs",
            "agreement/fixture", "int8/fixture",
            "hour/legacy-exact", "hour/fast", "1 CPU/60s/legacy-exact", "1 CPU/60s/fast",
            "1 CPU/hour/legacy-exact", "1 CPU/hour/fast"}
    want |= {f"round 1/{m}/{p}{n}" for m in ("resnet50", "fixture") for p in ("legacy-exact", "fast")
             for n in ("", " network")}
    legacy_rows = {"round 1/resnet50/legacy", "round 1/fixture/legacy", "1 CPU/60s/legacy", "1 CPU/hour/legacy"}
    assert want <= names and legacy_rows & names == (legacy_rows if legacy else set())
    variants = [n for n in names if n.startswith("variant/")]     # one per engine and arithmetic
    assert len(variants) + len(res["network_variants_skipped"]) == 6
    q = res["int8"]["fixture"]
    assert 0 <= q["local_agreement"] <= 1 and 0 <= q["global_agreement"] <= 1 and q["files"] == 2
    for model in ("resnet50", "fixture"):
        assert set(res["figures"][model]) == {"legacy-exact", "fast"} | ({"legacy"} if legacy else set())
    assert res["parity"]["local_identical"] and res["parity"]["global_identical"]
    table = (tmp_path / "results.md").read_text()
    assert "smoke run" in table and "int8 candidate" in table and "| fixture | " in table
    assert len(res["targets"]) >= 10 and {"target", "goal", "measured", "met"} <= set(res["targets"][0])


def test_only_names_its_sections(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "bench", "--only", "corpus,nope", "--out", str(tmp_path)], cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and "--only nope: the sections are corpus,pairs,variants,long" in out.stderr
    assert not list(tmp_path.iterdir())
