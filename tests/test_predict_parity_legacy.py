"""References and parity for fastai_audio's own predict mode: convert.predict_references records
legacy's predict path (AudioList + learn.predict per item, the random draws) for a learner with
pad_mode "zeros", remove_silence "split", segment_size, mfcc and a 3 s duration;
orcaport.parity.predict_parity replays it (items, inputs, probabilities, class index; chained and
isolated) and passes; ablations fail where they enter."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import orcaport.model.pipeline
import orcaport.parity.predict_parity as pp
from tests.conftest import run_legacy

pytestmark = pytest.mark.legacy


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("predict")
    result = run_legacy(["tests/legacy/predict_references.py", str(root)], timeout=900, home=root)
    assert result["returncode"] == 0, result["stderr"]
    return root


def failing(result: dict) -> set[tuple[str, str]]:
    return {(c["stage"], c["mode"]) for f in result["files"] for c in f["checks"] if not c["passed"]}


def test_predict_references_replay_and_pass(work: Path) -> None:
    manifest = json.loads((work / "refs" / "manifest.json").read_text())
    assert manifest["mode"] == "predict" and sum(f["items"] for f in manifest["files"]) > len(manifest["files"])
    assert pp.main(["--model", str(work / "model"), "--references", str(work / "refs"),
                    "--audio", str(work / "audio"), "--out", str(work / "result.json")]) == 0
    result = json.loads((work / "result.json").read_text())
    assert result["passed"] and {c["mode"] for f in result["files"] for c in f["checks"]} == {"chained", "isolated"}


def test_legacy_draws_not_replayed_fail_at_input(work: Path, monkeypatch) -> None:
    monkeypatch.setattr(pp, "item_offsets", lambda t, n: [{}] * n)      # the runtime's middle offsets
    result = pp.replay(work / "model", work / "refs", work / "audio")
    assert not result["passed"] and ("input", "chained") in failing(result)
    assert ("probs", "isolated") not in failing(result)                  # the network is not to blame


def test_segments_ablated_fail_at_the_item_count(work: Path, monkeypatch) -> None:
    monkeypatch.setattr(orcaport.model.pipeline, "segment_signal", lambda sig, rate, ms: [sig])
    result = pp.replay(work / "model", work / "refs", work / "audio")
    assert ("items", "chained") in failing(result)
