"""Runs tests/test_frontend_legacy.py inside the legacy env (it needs pydub, torchaudio, fastai_audio
and pandas as oracles), so `make test` covers it whenever .venvs/legacy exists."""

from __future__ import annotations

import subprocess

import pytest

from tests.conftest import ROOT, legacy_interpreter

pytestmark = pytest.mark.legacy


def test_frontend_matches_legacy_oracles_in_the_legacy_env(tmp_path) -> None:
    python = legacy_interpreter()
    run = subprocess.run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "tests/test_frontend_legacy.py"], cwd=ROOT, capture_output=True, text=True,
                         timeout=900, env={"PATH": "/usr/bin:/bin:/usr/local/bin", "HOME": str(tmp_path),
                                           "PYTHONPATH": str(ROOT)})
    tail = (run.stdout + run.stderr)[-3000:]
    assert run.returncode == 0, tail
    assert " passed" in tail and " skipped" not in tail.splitlines()[-1], tail
