"""References and parity for fastai_audio's own predict mode, stage by stage: convert.predict_references
records every stage of each option learner's chain from legacy's predict path (AudioList +
learn.predict per item, the random draws), orcaport.parity.predict_parity replays each stage
isolated and chained and passes; each option's first stage is checked both ways; a tampered stage
tensor, and each option ablated in the clean runtime, fail at their own stage (tests/legacy/
predict_references.py describes the learners: "split" -- pad_mode zeros, silence split, segment_size,
mfcc, a 3 s crop; "delta" -- a 3-channel stem, silence trim, max_to_pad, standardize, delta)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

import orcaport.parity.predict_replay as pr
import orcaport.parity.predict_parity as pp
import tests.ablations as ab
from tests.conftest import run_legacy

pytestmark = pytest.mark.legacy

STAGES = {
    "split": ["load", "downmix", "resample", "silence", "segment", "pad_signal", "mfcc", "input", "logits", "probs"],
    "delta": ["load", "downmix", "resample", "silence", "pad_signal", "mel", "db", "standardize", "delta", "input",
              "logits", "probs"],
}
# each option's first stage in the chain (input: pad_mode "zeros" and the crop's random offsets)
FIRST_STAGE = {"split": {"remove_silence": "silence", "segment_size": "segment", "mfcc": "mfcc", "duration": "input"},
               "delta": {"remove_silence": "silence", "max_to_pad": "pad_signal", "standardize": "standardize",
                         "delta": "delta"}}


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("predict")
    result = run_legacy(["tests/legacy/predict_references.py", str(root / "w")], timeout=1200, home=root)
    assert result["returncode"] == 0, result["runs"]
    return root / "w"


@pytest.fixture(scope="module")
def results(work: Path) -> dict[str, tuple[int, dict]]:
    """Each learner's `python -m orcaport.parity.predict_parity` run: (exit code, result JSON)."""
    out = {}
    for learner in STAGES:
        path = work / learner / "result.json"
        code = pp.main(["--model", str(work / learner / "model"), "--references", str(work / learner / "refs"),
                        "--audio", str(work / learner / "audio"), "--out", str(path)])
        out[learner] = (code, json.loads(path.read_text()))
    return out


def replay(work: Path, learner: str, refs: str = "refs") -> dict:
    return pp.replay(work / learner / "model", work / learner / refs, work / learner / "audio")


def failing(result: dict) -> set[tuple[str, str]]:
    return {(c["stage"], c["mode"]) for f in result["files"] for c in f["checks"] if not c["passed"]}


@pytest.mark.parametrize("learner", sorted(STAGES))
def test_predict_references_hold_every_stage_and_replay_passes(work: Path, results, learner: str) -> None:
    manifest = json.loads((work / learner / "refs" / "manifest.json").read_text())
    assert manifest["mode"] == "predict"
    assert all(f["stages"] == STAGES[learner] for f in manifest["files"])
    code, result = results[learner]
    assert code == 0 and result["passed"] and result["first_failure"] is None
    checked = {(c["stage"], c["mode"]) for f in result["files"] for c in f["checks"]}
    want = {(s, m) for s in STAGES[learner] for m in ("isolated", "chained")} | {("items", "chained")}
    assert want <= checked
    # every item's every stage has its figure under its criterion (option stages: their parent's)
    c = next(c for f in result["files"] for c in f["checks"] if c["stage"] == STAGES[learner][-4])
    assert c["criterion"] == pr.tolerance_stage(c["stage"], None) and c["value"] is not None
    if learner == "split":
        assert sum(f["items"] for f in manifest["files"]) > len(manifest["files"])   # segments: several


@pytest.mark.parametrize("learner", sorted(FIRST_STAGE))
def test_each_options_first_stage_is_checked_both_ways(results, learner: str) -> None:
    result = results[learner][1]
    for option, stage in FIRST_STAGE[learner].items():
        for mode in ("isolated", "chained"):
            got = [c for f in result["files"] for c in f["checks"] if (c["stage"], c["mode"]) == (stage, mode)]
            assert got and all(c["passed"] for c in got), (option, stage, mode)


def tamper(work: Path, learner: str, stage: str) -> str:
    """A copy of the references with the first tensor of `stage` nudged past any criterion."""
    src, dst = work / learner / "refs", work / learner / f"refs-{stage}"
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst)
    name = json.loads((src / "manifest.json").read_text())["files"][0]["name"]
    t = load_file(dst / f"{name}.safetensors")
    key = sorted(k for k in t if k.endswith(f"/{stage}"))[0]
    t[key] = t[key] + np.float32(0.05 * max(float(np.abs(t[key]).max()), 1.0))
    save_file(t, dst / f"{name}.safetensors")
    return dst.name


@pytest.mark.parametrize("learner,stage", [("split", "segment"), ("split", "mfcc"), ("delta", "standardize"),
                                           ("delta", "delta")])
def test_a_tampered_stage_tensor_fails_at_that_stage(work: Path, learner: str, stage: str) -> None:
    result = replay(work, learner, tamper(work, learner, stage))
    assert not result["passed"]
    assert result["first_failure"]["stage"] == stage and result["first_failure"]["mode"] == "isolated"
    assert {(stage, "isolated"), (stage, "chained")} <= failing(result)


CONTROLS = {   # stage: (learner, the option ablated in the clean runtime: tests/ablations.py)
    "silence": ("split", ab.SILENCE_KEPT),
    "delta": ("delta", ab.DELTAS_AS_COPIES),
    "standardize": ("delta", ab.STANDARDIZE_SKIPPED),
}


@pytest.mark.parametrize("stage", sorted(CONTROLS))
def test_each_option_ablated_fails_at_its_own_stage(work: Path, monkeypatch, stage: str) -> None:
    learner, ablation = CONTROLS[stage]
    monkeypatch.setattr(*ablation)
    result = replay(work, learner)
    assert not result["passed"] and result["first_failure"]["stage"] == stage, result["first_failure"]
    assert (stage, "isolated") in failing(result)


def test_legacy_draws_not_replayed_fail_at_input(work: Path, monkeypatch) -> None:
    monkeypatch.setattr(*ab.PREDICT_DRAWS_NOT_REPLAYED)                # the runtime's middle offsets
    result = replay(work, "split")
    assert not result["passed"] and result["first_failure"]["stage"] == "input"
    assert ("input", "chained") in failing(result)
    assert ("logits", "isolated") not in failing(result) and ("probs", "isolated") not in failing(result)


def test_segments_ablated_fail_at_the_segment_stage_and_item_count(work: Path, monkeypatch) -> None:
    monkeypatch.setattr(*ab.SEGMENTS_NOT_CUT)
    result = replay(work, "split")
    assert {("segment", "isolated"), ("items", "chained")} <= failing(result)
    assert result["first_failure"]["stage"] == "segment"


def test_references_without_stages_are_refused_naming_the_fix(work: Path, tmp_path: Path) -> None:
    old = tmp_path / "old"
    shutil.copytree(work / "split" / "refs", old)
    manifest = json.loads((old / "manifest.json").read_text())
    for entry in manifest["files"]:
        del entry["stages"]
    (old / "manifest.json").write_text(json.dumps(manifest))
    assert pp.main(["--model", str(work / "split" / "model"), "--references", str(old),
                    "--audio", str(work / "split" / "audio")]) == 3
