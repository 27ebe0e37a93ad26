"""The modules both environments run: convert/ (legacy env) loads exactly the parity modules
parity/__init__.py lists in BOTH_ENVS, each says so in its docstring, and the shared ones work
there -- model/fileio.py's atomic writers and hasher, and parity/testaudio/'s training audio, bit
identical to the clean env's (the fixture learner is trained on it in the legacy env)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from orcaport.parity import BOTH_ENVS
from orcaport.parity.testaudio.training import training_example
from tests.conftest import run_legacy

pytestmark = pytest.mark.legacy


@pytest.fixture(scope="module")
def legacy(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return run_legacy(["tests/legacy/both_envs.py"], timeout=300, home=tmp_path_factory.mktemp("home"))


def test_convert_loads_exactly_the_parity_modules_named_both_envs(legacy: dict[str, Any]) -> None:
    parity = sorted(m.removeprefix("orcaport.parity.") for m in legacy["loaded"]
                    if m.startswith("orcaport.parity."))
    assert parity == sorted(BOTH_ENVS)
    for name in ["orcaport.model.fileio"] + [f"orcaport.parity.{m}" for m in BOTH_ENVS]:
        assert "both environments" in " ".join(legacy["docs"][name].lower().split()), name


def test_fileio_writes_and_hashes_in_the_legacy_env(legacy: dict[str, Any]) -> None:
    f = legacy["fileio"]
    assert f["files"] == ["a.bin", "b.txt", "c.bin", "d.json", "folder"]   # no temp, no scratch left
    assert f["paths"] == ["a.bin", "b.txt", "c.bin"]
    assert (f["a"], f["b"], f["c"], f["d"]) == ("6e6577", "é\n", "0001", {"k": [1, 2]})
    assert f["folder"] == ["x"] and f["sha256"]


def test_legacy_numpy_synthesizes_bit_identical_audio(legacy: dict[str, Any]) -> None:
    here = hashlib.sha256(training_example(9, 0, True).tobytes()
                          + training_example(9, 1, False).tobytes()).hexdigest()
    assert legacy["synth_sha256"] == here
