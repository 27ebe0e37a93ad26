"""`make envelope` on an option learner (windowed mode: mfcc, standardize, pad_mode "zeros"): every
variant re-runs legacy on the references' own chain and draws the references' random offsets, the
option stages get their own derived tolerances, and parity passes under them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from orcaport.parity.envelope import derive_files, render
from tests.conftest import ROOT, run_legacy

pytestmark = pytest.mark.legacy
OPTION_STAGES = ("mfcc", "standardize")
CHAIN = ["load", "downmix", "resample", "mfcc", "standardize", "input"]


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("option-envelope")
    result = run_legacy(["tests/legacy/option_envelope.py", str(root)], timeout=1200, home=root)
    assert result["references"] == 0 and result["envelope"] == 0, result["stderr"]
    return root


def test_every_variant_compares_every_option_stage_on_the_same_draws(work: Path) -> None:
    manifest = json.loads((work / "refs" / "manifest.json").read_text())
    assert all(f["stages"] == CHAIN for f in manifest["files"])
    full = sum(len(f["full_clips"]) for f in manifest["files"])
    envelope = json.loads((work / "envelope.json").read_text())
    by_name = {c["name"]: c for c in envelope["comparisons"]}
    for name in ("threads-2 vs baseline", "aten-default vs baseline"):
        c = by_name[name]
        assert {s: c["stages"][s]["tensors"] for s in CHAIN} == {s: full for s in CHAIN}, name
        assert c["digests"]["offsets"] == {"compared": full, "differ": 0}     # pad_mode "zeros" drew them
    assert all(s in by_name["clean vs baseline"]["stages"] for s in OPTION_STAGES)
    # the detector's deterministic offset is not a kernel path: those files are left out of its row
    assert by_name["detector vs baseline"]["left_out_random_offsets"] == [f["name"] for f in manifest["files"]]


def test_option_stages_get_their_own_tolerances_and_parity_passes_under_them(work: Path) -> None:
    tolerances = derive_files(work / "envelope.json")
    for stage, parent in (("mfcc", "input"), ("standardize", "db")):
        for regime in ("same_machine", "cross_machine"):
            own, borrowed = tolerances["stages"][stage][regime], tolerances["stages"][parent][regime]
            assert own["why"].startswith(f"option stage {stage}, judged by its parent {parent}'s policy")
            same = ("domain", "scale", "rtol", "max_fraction")
            assert [own.get(k) for k in same] == [borrowed.get(k) for k in same]
            assert own["derived"]["metric"] == borrowed["derived"]["metric"]
    (work / "tolerances.json").write_bytes(render(tolerances))
    run = subprocess.run([sys.executable, "-m", "orcaport.parity", "--model", str(work / "model"),
                          "--references", str(work / "refs"), "--audio", str(work / "audio"),
                          "--tolerances", str(work / "tolerances.json"), "--reports", str(work / "reports")],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    report = json.loads((work / "reports" / "parity.json").read_text())
    checks = [c for f in report["files"] for c in f["checks"] if c["stage"] in OPTION_STAGES]
    assert {(c["stage"], c["mode"]) for c in checks} == {(s, m) for s in OPTION_STAGES for m in ("isolated", "chained")}
    assert all(c["passed"] and c["tolerance"]["why"].startswith(f"option stage {c['stage']}") for c in checks)
