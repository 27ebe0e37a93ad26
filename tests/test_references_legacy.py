"""`make references` is reproducible: a rebuild from scratch equals the committed references
byte for byte (legacy env; skipped with a reason without one)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT, legacy_interpreter

pytestmark = pytest.mark.legacy
REFS = ROOT / "reference_outputs" / "stages"


def test_rebuild_is_byte_identical_to_the_committed_references(tmp_path: Path) -> None:
    python = legacy_interpreter()
    out = tmp_path / "stages"
    run = subprocess.run([python, "-m", "convert.references", "--model", "reference_outputs/fixture",
                          "--corpus", "reference_outputs/corpus", "--out", str(out)],
                         cwd=ROOT, capture_output=True, text=True, timeout=900,
                         env={"PATH": "/usr/bin:/bin:/usr/local/bin", "HOME": str(tmp_path),
                              "PYTHONPATH": str(ROOT)})
    assert run.returncode == 0, run.stderr[-3000:]
    committed = sorted(p.name for p in REFS.iterdir())
    assert sorted(p.name for p in out.iterdir()) == committed
    for name in committed:
        assert (out / name).read_bytes() == (REFS / name).read_bytes(), name
