"""Trust is given once: `make convert SHA256=` records the hash beside model.pkl, later targets read
it; a wrong hash is refused and leaves the record alone (legacy env; skipped without one)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import FIXTURE, ROOT, legacy_interpreter

pytestmark = pytest.mark.legacy
KNOWN = (FIXTURE / "model.pkl.sha256").read_text().split()[0]


def convert(model: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HOME": str(out.parent / "home")}
    return subprocess.run([legacy_interpreter(), "-m", "convert.cli", "--model", str(model / "model.pkl"),
                           "--out", str(out), *extra], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)


def test_a_given_hash_is_recorded_once_and_reused(tmp_path: Path) -> None:
    model = tmp_path / "my_model"
    model.mkdir()
    shutil.copyfile(FIXTURE / "model.pkl", model / "model.pkl")
    record = model / "model.pkl.sha256"

    asked = convert(model, model)
    assert asked.returncode == 3 and "no expected sha256" in asked.stderr and not record.exists()

    wrong = convert(model, model, "--sha256", "0" * 64)
    assert wrong.returncode == 3 and "refusing to unpickle" in wrong.stderr and not record.exists()

    given = convert(model, model, "--sha256", KNOWN.upper())
    assert given.returncode == 0, given.stderr
    lines = record.read_text().splitlines()
    assert lines[0] == f"{KNOWN}  model.pkl" and "given by the user as SHA256=" in lines[1]
    first = record.read_bytes()
    weights = (model / "model.safetensors").read_bytes()
    assert weights == (FIXTURE / "model.safetensors").read_bytes()

    again = convert(model, model)                      # no SHA256= any more
    assert again.returncode == 0, again.stderr
    assert record.read_bytes() == first, "an existing record of the same hash is kept as first written"

    # a swapped pickle no longer matches the recorded trust: refused, record untouched
    (model / "model.pkl").write_bytes((model / "model.pkl").read_bytes() + b"\0")
    swapped = convert(model, model)
    assert swapped.returncode == 3 and "refusing to unpickle" in swapped.stderr
    assert record.read_bytes() == first and (model / "model.safetensors").read_bytes() == weights


@pytest.mark.parametrize("change", [{"resample_to": None, "duration": None}, {"mfcc": True, "n_mfcc": 20}],
                         ids=["native_rate_no_duration", "mfcc"])
def test_convert_checks_logits_for_any_frontend_shape(tmp_path: Path, change: dict) -> None:
    """The logit check's input follows the frontend: no fixed width without resample_to/duration,
    n_mfcc rows for an MFCC learner (it raised TypeError on None before)."""
    import json

    frontend = json.loads((FIXTURE / "config.json").read_text())["frontend"] | change
    (tmp_path / "frontend.json").write_text(json.dumps(frontend))
    run = convert(FIXTURE, tmp_path / "out", "--frontend", str(tmp_path / "frontend.json"))
    assert run.returncode == 0, run.stderr[-2000:]
    assert json.loads((tmp_path / "out" / "config.json").read_text())["frontend"] == frontend
