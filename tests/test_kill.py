"""`python -m orcaport.parity` killed with SIGKILL at 20 random points: the previous reports stay byte for
byte (or are wholly replaced by a complete new set), no partial file, and the next run removes any
temp a kill left. See tests/killing.py for the harness. The runs replay two fixture files (the
write path is the full run's; the 60 s flagship would only lengthen every run)."""

from __future__ import annotations

import os
import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.killing import Campaign, Lane, is_temp_of, kill_campaign, kill_on_rename, run_once, snapshot

ROOT = Path(__file__).resolve().parents[1]
KILLS, SEED, LANES = 20, 4242, 2
REPORTS = ["parity.md", "parity.html", "parity.json"]     # in rename order: parity.json last
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
ONLY = ["--only", "exact_2s0_48k_16.wav", "--only", "float32_48k_3s2.wav"]


def _parity(reports: Path, *only: str) -> list[str]:
    return [sys.executable, "-m", "orcaport.parity", "--reports", str(reports), *(only or ONLY)]


def _reset_from(previous: Path) -> Any:
    def reset(folder: Path) -> None:
        folder.mkdir(exist_ok=True)
        for p in previous.iterdir():
            shutil.copyfile(p, folder / p.name)
    return reset


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Previous reports (another file's run: a different, complete set) and the known-good new ones."""
    base = tmp_path_factory.mktemp("kill_parity")
    run_once(_parity(base / "previous", "--only", "short_1s5_48k_16.wav"), ENV, ROOT)
    run_once(_parity(base / "new"), ENV, ROOT)
    return {"base": base, "previous": base / "previous", "new": base / "new"}


def test_parity_survives_20_random_sigkills(runs: dict[str, Any]) -> None:
    previous, new = snapshot(runs["previous"]), snapshot(runs["new"])
    assert sorted(previous) == sorted(new) == sorted(REPORTS) and previous != new
    campaign = Campaign(cmd=_parity, env=ENV, cwd=ROOT, previous=previous, new=new)
    lanes = [Lane(runs["base"] / f"lane{i}", _reset_from(runs["previous"])) for i in range(LANES)]
    outcomes, runtime = kill_campaign(campaign, lanes, KILLS, SEED)
    assert len(outcomes) == KILLS
    states = Counter(o["state"] for o in outcomes)
    print(f"parity: {KILLS}/{KILLS} kills left an intact set {dict(states)}; runtime "
          f"{runtime:.1f}s; kills that left temps: {sum(o['temps'] > 0 for o in outcomes)}")


def test_a_kill_with_every_temp_written_keeps_the_old_reports_and_the_next_run_cleans_up(
        runs: dict[str, Any], tmp_path: Path) -> None:
    """Deterministic: killed just before its first rename (all three temps fsynced)."""
    folder = tmp_path / "reports"
    _reset_from(runs["previous"])(folder)
    pid, rc = kill_on_rename(sys.executable, "parity", ["--reports", str(folder), *ONLY], REPORTS, 0, ENV, ROOT)
    assert rc == -9
    left = snapshot(folder)
    temps = sorted(n for n in left if is_temp_of(n))
    assert len(temps) == 3 and all(is_temp_of(n, pid) for n in temps), temps
    assert {n: h for n, h in left.items() if n not in temps} == snapshot(runs["previous"])
    run_once(_parity(folder), ENV, ROOT)
    assert snapshot(folder) == snapshot(runs["new"])   # the stale temps are gone


def test_a_kill_between_renames_never_leaves_a_new_json_beside_old_views(
        runs: dict[str, Any], tmp_path: Path) -> None:
    """Killed before the last rename: Markdown/HTML may be new, but parity.json (what the publish
    gate reads) is still the previous, complete one; the next run completes the set."""
    folder = tmp_path / "reports"
    _reset_from(runs["previous"])(folder)
    _, rc = kill_on_rename(sys.executable, "parity", ["--reports", str(folder), *ONLY], REPORTS, 2, ENV, ROOT)
    assert rc == -9
    left, new, old = snapshot(folder), snapshot(runs["new"]), snapshot(runs["previous"])
    assert left["parity.json"] == old["parity.json"]
    assert left["parity.md"] == new["parity.md"] and left["parity.html"] == new["parity.html"]
    run_once(_parity(folder), ENV, ROOT)
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
