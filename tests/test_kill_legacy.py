"""`python -m convert.cli` and `python -m convert.references` (legacy env) SIGKILLed inside their writes
(tests/killing.py: each kill lands at a write event, or the test fails): convert at every one of its
write events, references at a seeded spread of them (its resume folder's writes included). Every
output stays its previous or its new version, never partial, and reads as the previous set until
the output that pins the others (config.json, manifest.json) is new; temps and scratch folders only
of killed runs, removed by the next run. Skipped with the reason without the legacy env."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable

import pytest

from tests.conftest import CORPUS, FIXTURE, REFS, ROOT, legacy_interpreter
from tests.killing import (Campaign, Lane, copier, first_event, is_temp_of, kill_at_write, kill_at_writes,
                           output_of, run_once, snapshot, summary, write_events)

pytestmark = pytest.mark.legacy
LANES = 2
REFERENCE_KILLS = 12          # of its 24 write events: first temp, first rename, the manifest's, spread
# references on four corpus files (downmix, ffmpeg float path, a legacy error, one clip): the
# write path is the full run's; the flagship's 2-thread noise-floor rerun would only add minutes
SUBSET = ("stereo_44k1_16_10s5.wav", "float32_48k_3s2.wav", "short_1s5_48k_16.wav", "exact_2s0_48k_16.wav")


def _env(home: Path, tmpdir: Path | None = None) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "HOME": str(home),
            **({"TMPDIR": str(tmpdir)} if tmpdir is not None else {})}


def _events_end_with(events: list[tuple[str, str]], outputs: list[str]) -> None:
    """The last renames put the outputs in place, the pin (the last of `outputs`) last."""
    renamed = [output_of(e) for e in events if e[0] == "rename"]
    assert renamed[-len(outputs):] == outputs, renamed


# ----------------------------------------------------------------------------- convert
CONVERT_OUTPUTS = ["model.safetensors", "config.json"]     # rename order: config.json pins the weights


@pytest.fixture(scope="module")
def convert_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Previous outputs: the fixture as converted with another frontend (top_db 80: a different,
    valid config.json). New: what `convert` makes of the fixture's model.pkl -- which must be the
    committed (known-good) model.safetensors + config.json."""
    python, base = legacy_interpreter(), tmp_path_factory.mktemp("kill_convert")
    previous = base / "previous"
    copier(FIXTURE)(previous)
    cfg = json.loads((FIXTURE / "config.json").read_text())
    cfg["frontend"]["top_db"] = 80
    (previous / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    known = base / "known"
    copier(previous)(known)
    args = lambda folder: ["--model", str(folder / "model.pkl"), "--out", str(folder)]  # noqa: E731
    events = write_events(python, "convert.cli", args(known), _env(base), ROOT)
    for name in CONVERT_OUTPUTS:
        assert (known / name).read_bytes() == (FIXTURE / name).read_bytes(), name
    assert [e[0] for e in events] == ["temp", "temp", "rename", "rename"], events
    _events_end_with(events, CONVERT_OUTPUTS)
    campaign = Campaign(python=python, module="convert.cli", args=args, env=_env(base), cwd=ROOT,
                        previous=snapshot(previous), new=snapshot(known), pin="config.json")
    return {"python": python, "base": base, "previous": previous, "known": known, "events": events,
            "campaign": campaign}


def test_convert_survives_a_sigkill_at_every_write(convert_runs: dict[str, Any]) -> None:
    r = convert_runs
    lanes = [Lane(r["base"] / f"lane{i}", copier(r["previous"])) for i in range(LANES)]
    outcomes = kill_at_writes(r["campaign"], lanes, r["events"])
    assert len(outcomes) == len(r["events"])
    print(summary("convert", outcomes, r["events"]))


def test_convert_killed_with_both_temps_written_keeps_old_outputs_then_cleans(
        convert_runs: dict[str, Any], tmp_path: Path) -> None:
    r = convert_runs
    folder = tmp_path / "model"
    copier(r["previous"])(folder)
    pid = kill_at_write(r["python"], "convert.cli", r["campaign"].args(folder), first_event(r["events"], "rename"),
                        _env(tmp_path), ROOT)
    left = snapshot(folder)
    temps = sorted(n for n in left if is_temp_of(n))
    assert len(temps) == 2 and all(is_temp_of(n, pid) for n in temps), temps
    assert {n: h for n, h in left.items() if n not in temps} == snapshot(r["previous"])
    run_once([r["python"], "-m", "convert.cli", *r["campaign"].args(folder)], _env(tmp_path), ROOT)
    assert snapshot(folder) == snapshot(r["known"])


# ----------------------------------------------------------------------------- references
def _references_reset(folder: Path) -> None:
    """The committed references in place, and no resume folder: every killed run starts the same
    job from scratch, so its write events are the recorded run's."""
    copier(REFS)(folder)
    shutil.rmtree(folder.parent / f".{folder.name}.resume", ignore_errors=True)


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
    _references_reset(known)
    (base / "tmp").mkdir()
    args: Callable[[Path], list[str]] = lambda folder: [  # noqa: E731
        "--model", str(FIXTURE), "--audio", str(corpus), "--out", str(folder)]
    events = write_events(python, "convert.references", args(known), _env(base, base / "tmp"), ROOT)
    new = json.loads((known / "manifest.json").read_text())
    assert sorted(f["name"] for f in new["files"]) == sorted(SUBSET)
    assert not list((base / "tmp").glob("orcaport-refs-*")), "a completed run left scratch behind"
    assert output_of(events[-1]) == "manifest.json", events[-3:]
    campaign = Campaign(python=python, module="convert.references", args=args, env=_env(base), cwd=ROOT,
                        previous=snapshot(REFS), new=snapshot(known), pin="manifest.json",
                        scratch_kind="orcaport-refs")
    return {"python": python, "base": base, "known": known, "events": events, "campaign": campaign}


def test_references_survive_sigkills_inside_their_writes(references_runs: dict[str, Any]) -> None:
    r = references_runs
    lanes = []
    for i in range(LANES):
        (r["base"] / f"tmp{i}").mkdir()
        lanes.append(Lane(r["base"] / f"lane{i}", _references_reset, scratch=r["base"] / f"tmp{i}"))
    outcomes = kill_at_writes(r["campaign"], lanes, r["events"], REFERENCE_KILLS, seed=62)
    assert len(outcomes) == min(REFERENCE_KILLS, len(r["events"]))
    assert {o["event"][0] for o in outcomes} == {"temp", "rename"}
    print(summary("references", outcomes, r["events"]))


def test_references_killed_with_every_output_temp_written_keep_old_manifest_then_clean(
        references_runs: dict[str, Any], tmp_path: Path) -> None:
    """Killed at the first rename into the output folder: every output's temp is written, none in
    place; the scratch folder is left; the next run resumes, removes both and completes the set."""
    r = references_runs
    folder = tmp_path / "stages"
    _references_reset(folder)
    outputs = set(r["campaign"].new)
    at = next(i for i, e in enumerate(r["events"])
              if e[0] == "rename" and Path(e[1]).parent.name == "known" and output_of(e) in outputs)
    env = _env(tmp_path, tmp_path)
    pid = kill_at_write(r["python"], "convert.references", r["campaign"].args(folder), at, env, ROOT)
    left = snapshot(folder)
    temps = sorted(n for n in left if is_temp_of(n))
    assert temps and all(is_temp_of(n, pid) for n in temps), temps
    assert {n: h for n, h in left.items() if n not in temps} == snapshot(REFS)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("orcaport-refs-")] != []
    run_once([r["python"], "-m", "convert.references", *r["campaign"].args(folder)], env, ROOT)
    assert snapshot(folder) == snapshot(r["known"])
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith("orcaport-refs-")]
