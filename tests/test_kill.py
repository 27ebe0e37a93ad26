"""`python -m orcaport.parity` SIGKILLed at every write it makes (tests/killing.py: each kill lands at
a write event -- a report's temp about to be fsynced, torn to half its bytes, or a rename -- or the
test fails): the previous reports stay byte for byte (or are wholly replaced by a complete new
set), no partial file, and the next run removes any temp a kill left. The runs replay two fixture
files (the write path is the full run's; the 60 s flagship would only lengthen every run)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CORPUS, FIXTURE, REFS, ROOT
from tests.killing import (Campaign, Lane, copier, first_event, is_temp_of, kill_at_write, kill_at_writes,
                           output_of, run_once, snapshot, summary, write_events)

LANES = 2
REPORTS = ["parity.md", "parity.html", "parity.json"]     # in rename order: parity.json last
# The test compares the bytes of reports from separate runs, so every run must compute the same
# figures: one thread and MKL's reproducible mode, because a loaded 2-CPU machine once gave two
# runs clean `mel` max_abs 5.7e-6 and 9.1e-4 (MKL's summation order follows its threads and the
# buffers' alignment). What the test claims is the write protocol, not a kernel's reproducibility.
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
       "MKL_DYNAMIC": "FALSE", "MKL_CBWR": "COMPATIBLE"}
ONLY = ["--only", "exact_2s0_48k_16.wav", "--only", "float32_48k_3s2.wav"]
MODULE = "orcaport.parity"


def _args(reports: Path, *only: str) -> list[str]:
    return ["--model", str(FIXTURE), "--references", str(REFS), "--audio", str(CORPUS),
            "--reports", str(reports), *(only or ONLY)]


def _complete(reports: Path) -> None:
    run_once([sys.executable, "-m", MODULE, *_args(reports)], ENV, ROOT)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Previous reports (another file's run: a different, complete set), the known-good new ones
    and the write events of the run that made them."""
    base = tmp_path_factory.mktemp("kill_parity")
    run_once([sys.executable, "-m", MODULE, *_args(base / "previous", "--only", "short_1s5_48k_16.wav")],
             ENV, ROOT)
    events = write_events(sys.executable, MODULE, _args(base / "new"), ENV, ROOT)
    previous, new = snapshot(base / "previous"), snapshot(base / "new")
    assert sorted(previous) == sorted(new) == sorted(REPORTS) and previous != new
    # three temps, then three renames, parity.json's last
    assert [(kind, output_of((kind, path))) for kind, path in events] == \
        [("temp", r) for r in REPORTS] + [("rename", r) for r in REPORTS]
    campaign = Campaign(python=sys.executable, module=MODULE, args=_args, env=ENV, cwd=ROOT,
                        previous=previous, new=new, pin="parity.json")
    return {"base": base, "previous": base / "previous", "new": base / "new", "events": events,
            "campaign": campaign}


def test_parity_survives_a_sigkill_at_every_write(runs: dict[str, Any]) -> None:
    lanes = [Lane(runs["base"] / f"lane{i}", copier(runs["previous"])) for i in range(LANES)]
    outcomes = kill_at_writes(runs["campaign"], lanes, runs["events"])
    assert len(outcomes) == len(runs["events"]) == 6
    print(summary("parity", outcomes, runs["events"]))


def test_a_kill_with_every_temp_written_keeps_the_old_reports_and_the_next_run_cleans_up(
        runs: dict[str, Any], tmp_path: Path) -> None:
    """Killed at its first rename: all three temps fsynced, none renamed."""
    folder = tmp_path / "reports"
    copier(runs["previous"])(folder)
    pid = kill_at_write(sys.executable, MODULE, _args(folder), first_event(runs["events"], "rename"), ENV, ROOT)
    left = snapshot(folder)
    temps = sorted(n for n in left if is_temp_of(n))
    assert len(temps) == 3 and all(is_temp_of(n, pid) for n in temps), temps
    assert {n: h for n, h in left.items() if n not in temps} == snapshot(runs["previous"])
    _complete(folder)
    assert snapshot(folder) == snapshot(runs["new"])   # the stale temps are gone


def test_a_kill_between_renames_never_leaves_a_new_json_beside_old_views(
        runs: dict[str, Any], tmp_path: Path) -> None:
    """Killed at parity.json's rename: Markdown/HTML are new, but parity.json (what the publish gate
    reads) is still the previous, complete one; the next run completes the set."""
    folder = tmp_path / "reports"
    copier(runs["previous"])(folder)
    kill_at_write(sys.executable, MODULE, _args(folder), first_event(runs["events"], "rename", "parity.json"),
                  ENV, ROOT)
    left, new, old = snapshot(folder), snapshot(runs["new"]), snapshot(runs["previous"])
    assert left["parity.json"] == old["parity.json"]
    assert left["parity.md"] == new["parity.md"] and left["parity.html"] == new["parity.html"]
    _complete(folder)
    assert snapshot(folder) == new


def test_only_temps_of_writers_that_are_gone_are_removed(tmp_path: Path) -> None:
    """model/fileio.py: a live writer's temp (this process) is never touched; a dead writer's
    and a pid-less one (an older toolkit's) are; other files are never touched."""
    import subprocess

    from orcaport.model.fileio import remove_stale_temps

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    names = {f".parity.json.{gone.pid}-ab12.tmp", ".parity.json.x7y8z9.tmp",
             f".parity.json.{os.getpid()}-cd34.tmp", "parity.json", ".other.json.1-ef.tmp", "notes.tmp"}
    for n in names:
        (tmp_path / n).write_text(n)
    removed = remove_stale_temps(tmp_path, ["parity.json"])
    assert sorted(p.name for p in removed) == sorted([f".parity.json.{gone.pid}-ab12.tmp", ".parity.json.x7y8z9.tmp"])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f".parity.json.{os.getpid()}-cd34.tmp", "parity.json", ".other.json.1-ef.tmp", "notes.tmp"])
