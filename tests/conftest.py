"""Shared test plumbing: running code inside the legacy env from the clean env's pytest."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.paths import (CORPUS, ENVELOPE, FIXTURE, FLAGSHIP, LEGACY_PYTHON, REFS, ROOT,  # noqa: F401 (re-exported)
                         UPSTREAM)

RESULT_MARK = "RESULT "


def legacy_interpreter() -> str:
    """This interpreter if it has fastai, else the project's legacy venv; skip when neither."""
    try:
        import fastai  # noqa: F401
        import torchvision  # noqa: F401
        return sys.executable
    except ImportError:
        pass
    if not LEGACY_PYTHON.exists():
        pytest.skip(f"no legacy env: {LEGACY_PYTHON} missing (run `make env-legacy`)")
    probe = subprocess.run([str(LEGACY_PYTHON), "-c", "import fastai, torchvision, audio"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"legacy env cannot `import fastai, torchvision, audio`: "
                    f"{probe.stderr.strip().splitlines()[-1:]}")
    return str(LEGACY_PYTHON)


def run_legacy(args: list[str], timeout: int = 900, home: Path | None = None) -> dict[str, Any]:
    """Run `python <args>` in the legacy env (repo root on sys.path); return its RESULT json line."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if home is not None:
        env["HOME"] = str(home)
    out = subprocess.run([legacy_interpreter(), *args], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=timeout)
    assert out.returncode == 0, out.stderr[-3000:]
    # fastprogress draws bars with '\r' and no newline, so the mark may not start its line.
    at = out.stdout.rfind(RESULT_MARK + "{")
    assert at >= 0, f"no {RESULT_MARK!r} in output:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}"
    return json.loads(out.stdout[at + len(RESULT_MARK):].splitlines()[0])


def copy_fixture(tmp: Path) -> Path:
    """A scratch copy of the fixture's converted model (safetensors + config) under `tmp`/model."""
    dst = tmp / "model"
    dst.mkdir()
    for name in ("model.safetensors", "config.json"):
        shutil.copyfile(FIXTURE / name, dst / name)
    return dst
