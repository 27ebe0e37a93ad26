"""`make references` is reproducible: on the machine that recorded them a rebuild from scratch
equals the committed references byte for byte; on any other machine the integer stages and
decisions are identical and every float stage lies within the envelope-derived cross-machine
criteria (legacy env; skipped with a reason without one)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from orcaport.parity.envelope import POLICY, compare_sets
from orcaport.parity.fingerprint import same_machine
from orcaport.parity.references import load_references
from orcaport.parity.run import load_tolerances
from tests.conftest import REFS, ROOT, legacy_interpreter

pytestmark = pytest.mark.legacy


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
    old, new = load_references(REFS), load_references(out)
    if same_machine(old.manifest.get("machine"), new.manifest.get("machine")):
        for name in committed:
            assert (out / name).read_bytes() == (REFS / name).read_bytes(), name
        return
    diff = compare_sets(old, new)
    assert all(d["differ"] == 0 for d in diff["digests"].values()), diff["digests"]
    assert diff["decisions"]["local_flips"] == diff["decisions"]["global_flips"] == 0
    assert diff["decisions"]["errors_differ"] == 0
    _, tols = load_tolerances(regime="cross_machine")
    policy = json.loads(POLICY.read_text())["stages"]
    for stage, stats in diff["stages"].items():
        metric = policy[stage].get("metric", "max_abs")
        bound = 0.0 if tols[stage].exact else tols[stage].atol
        assert stats[metric] <= bound, (stage, metric, stats[metric], bound)
