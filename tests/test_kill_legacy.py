"""`python -m convert.cli` and `python -m convert.references` (legacy env) SIGKILLed at 20 seeded
random points each: the previous outputs stay byte for byte, or are wholly replaced by the complete
known-good set; no partial file; temps and scratch folders only of killed runs, removed by the next
run. Harness: tests/killing.py. Skipped with the reason without the legacy env."""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import pytest

from tests.conftest import ROOT, legacy_interpreter
from tests.killing import Campaign, Lane, is_temp_of, kill_campaign, kill_on_rename, run_once, snapshot

pytestmark = pytest.mark.legacy
KILLS, LANES = 20, 2
FIXTURE = ROOT / "reference_outputs" / "fixture"
REFS = ROOT / "reference_outputs" / "stages"
CORPUS = ROOT / "reference_outputs" / "corpus"
# references on four corpus files (downmix, ffmpeg float path, a legacy error, one clip): the
# write path is the full run's; the flagship's 2-thread noise-floor rerun would only add minutes
SUBSET = ("stereo_44k1_16_10s5.wav", "float32_48k_3s2.wav", "short_1s5_48k_16.wav", "exact_2s0_48k_16.wav")


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "HOME": str(home)}


def _copy_all(src: Path) -> Callable[[Path], None]:
    def reset(folder: Path) -> None:
        folder.mkdir(exist_ok=True)
        for p in src.iterdir():
            shutil.copyfile(p, folder / p.name)
    return reset


def _report(name: str, outcomes: list[dict[str, Any]], runtime: float) -> None:
    states = Counter(o["state"] for o in outcomes)
    print(f"{name}: {len(outcomes)}/{KILLS} kills left an intact set {dict(states)}; runtime {runtime:.1f}s; "
          f"kills that left temps: {sum(o['temps'] > 0 for o in outcomes)}, scratch: "
          f"{sum(o.get('scratch', 0) > 0 for o in outcomes)}")


# ----------------------------------------------------------------------------- convert
@pytest.fixture(scope="module")
def convert_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Previous outputs: the fixture as converted with another frontend (top_db 80: a different,
    valid config.json). New: what `convert` makes of the fixture's model.pkl -- which must be the
    committed (known-good) model.safetensors + config.json."""
    python, base = legacy_interpreter(), tmp_path_factory.mktemp("kill_convert")
    previous = base / "previous"
    _copy_all(FIXTURE)(previous)
    cfg = json.loads((FIXTURE / "config.json").read_text())
    cfg["frontend"]["top_db"] = 80
    (previous / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    known = base / "known"
    _copy_all(previous)(known)
    cmd = lambda folder: [python, "-m", "convert.cli", "--model", str(folder / "model.pkl"),  # noqa: E731
                          "--out", str(folder)]
    run_once(cmd(known), _env(base), ROOT)
    for name in ("config.json", "model.safetensors"):
        assert (known / name).read_bytes() == (FIXTURE / name).read_bytes(), name
    return {"python": python, "base": base, "previous": previous, "known": known, "cmd": cmd}


def test_convert_survives_20_random_sigkills(convert_runs: dict[str, Any]) -> None:
    r = convert_runs
    campaign = Campaign(cmd=r["cmd"], env=_env(r["base"]), cwd=ROOT, previous=snapshot(r["previous"]),
                        new=snapshot(r["known"]))
    lanes = [Lane(r["base"] / f"lane{i}", _copy_all(r["previous"])) for i in range(LANES)]
    outcomes, runtime = kill_campaign(campaign, lanes, KILLS, seed=61)
    assert len(outcomes) == KILLS
    _report("convert", outcomes, runtime)


def test_convert_killed_with_both_temps_written_keeps_old_outputs_then_cleans(
        convert_runs: dict[str, Any], tmp_path: Path) -> None:
    r = convert_runs
    folder = tmp_path / "model"
    _copy_all(r["previous"])(folder)
    pid, rc = kill_on_rename(r["python"], "convert.cli", ["--model", str(folder / "model.pkl"), "--out",
                             str(folder)], ["model.safetensors", "config.json"], 0, _env(tmp_path), ROOT)
    assert rc == -9
    left = snapshot(folder)
    temps = sorted(n for n in left if is_temp_of(n))
    assert len(temps) == 2 and all(is_temp_of(n, pid) for n in temps), temps
    assert {n: h for n, h in left.items() if n not in temps} == snapshot(r["previous"])
    run_once(r["cmd"](folder), _env(tmp_path), ROOT)
    assert snapshot(folder) == snapshot(r["known"])


# ----------------------------------------------------------------------------- references
@pytest.fixture(scope="module")
def references_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Previous outputs: the committed references (ten files). New: references recorded on a
    four-file corpus into a copy of them (the known-good run every killed run must end in)."""
    python, base = legacy_interpreter(), tmp_path_factory.mktemp("kill_references")
    corpus = base / "corpus"
    corpus.mkdir()
    manifest = json.loads((CORPUS / "corpus.json").read_text())
    manifest["files"] = [f for f in manifest["files"] if f["name"] in SUBSET]
    for name in SUBSET:
        shutil.copyfile(CORPUS / name, corpus / name)
    (corpus / "corpus.json").write_text(json.dumps(manifest, indent=2) + "\n")
    known = base / "known"
    _copy_all(REFS)(known)
    (base / "tmp").mkdir()
    cmd = lambda folder: [python, "-m", "convert.references", "--model", str(FIXTURE),  # noqa: E731
                          "--audio", str(corpus), "--out", str(folder)]
    run_once(cmd(known), {**_env(base), "TMPDIR": str(base / "tmp")}, ROOT)
    new = json.loads((known / "manifest.json").read_text())
    assert [f["name"] for f in new["files"]] == [f["name"] for f in manifest["files"]]
    assert not list((base / "tmp").glob("orcaport-refs-*")), "a completed run left scratch behind"
    return {"python": python, "base": base, "known": known, "cmd": cmd}


def test_references_survive_20_random_sigkills(references_runs: dict[str, Any]) -> None:
    r = references_runs
    campaign = Campaign(cmd=r["cmd"], env=_env(r["base"]), cwd=ROOT, previous=snapshot(REFS),
                        new=snapshot(r["known"]), scratch_kind="orcaport-refs")
    lanes = []
    for i in range(LANES):
        (r["base"] / f"tmp{i}").mkdir()
        lanes.append(Lane(r["base"] / f"lane{i}", _copy_all(REFS), scratch=r["base"] / f"tmp{i}"))
    outcomes, runtime = kill_campaign(campaign, lanes, KILLS, seed=62)
    assert len(outcomes) == KILLS
    _report("references", outcomes, runtime)


def test_references_killed_with_every_temp_written_keep_old_manifest_then_clean(
        references_runs: dict[str, Any], tmp_path: Path) -> None:
    r = references_runs
    folder = tmp_path / "stages"
    _copy_all(REFS)(folder)
    names = sorted(p.name for p in REFS.iterdir())
    args = r["cmd"](folder)[3:]
    pid, rc = kill_on_rename(r["python"], "convert.references", args, names, 0,
                             {**_env(tmp_path), "TMPDIR": str(tmp_path)}, ROOT)
    assert rc == -9
    left = snapshot(folder)
    temps = sorted(n for n in left if is_temp_of(n))
    assert temps and all(is_temp_of(n, pid) for n in temps), temps
    assert {n: h for n, h in left.items() if n not in temps} == snapshot(REFS)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("orcaport-refs-")] != []
    run_once(r["cmd"](folder), {**_env(tmp_path), "TMPDIR": str(tmp_path)}, ROOT)
    assert snapshot(folder) == snapshot(r["known"])
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith("orcaport-refs-")]
