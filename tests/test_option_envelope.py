"""Option stages in the envelope (clean env, synthetic figures): an option stage the envelope
measured gets its own tolerance under its parent stage's policy, parity runs it under that entry
(else under its parent's), and the random offsets legacy drew are compared exactly."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from orcaport.parity.envelope import POLICY, compare_clips, derive, stage_of
from orcaport.parity.metrics import OPTION_TOLERANCE, tolerance_stage
from orcaport.parity.references import FileReference, References
from tests.conftest import ENVELOPE


@pytest.fixture(scope="module")
def policy() -> dict[str, Any]:
    return json.loads(POLICY.read_text())


def with_mfcc(envelope: dict[str, Any], rel_to_max: float) -> dict[str, Any]:
    """The committed envelope with an mfcc row in every comparison that measured the input."""
    out = copy.deepcopy(envelope)
    for c in out["comparisons"]:
        if "input" in c["stages"]:
            c["stages"]["mfcc"] = {**c["stages"]["input"], "rel_to_max": rel_to_max}
    return out


def test_a_measured_option_stage_gets_its_own_entry_under_its_parents_policy(policy: dict[str, Any]) -> None:
    envelope = json.loads(ENVELOPE.read_text())
    plain = derive(envelope, policy, "x")
    assert not set(OPTION_TOLERANCE) & set(plain["stages"])        # nothing measured: all borrow
    got = derive(with_mfcc(envelope, 3e-6), policy, "x")
    assert {s: e for s, e in got["stages"].items() if s != "mfcc"} == plain["stages"]   # the rest unchanged
    own, parent = got["stages"]["mfcc"]["cross_machine"], got["stages"]["input"]["cross_machine"]
    assert own["atol"] == 1.2e-05 != parent["atol"]                 # 4 x its own 3e-6, not input's figure
    assert own["scale"] == parent["scale"] == "max" and own["derived"]["metric"] == "rel_to_max"
    assert own["why"].startswith("option stage mfcc, judged by its parent input's policy on its own envelope")
    tiny = derive(with_mfcc(envelope, 1e-9), policy, "x")["stages"]["mfcc"]["cross_machine"]
    assert tiny["atol"] == policy["stages"]["input"]["floor"]        # never below the parent's floor


def test_parity_uses_an_option_stages_own_entry_else_its_parents() -> None:
    assert tolerance_stage("mfcc", None) == "input"
    assert tolerance_stage("mfcc", None, {"mfcc": None, "input": None}) == "mfcc"
    assert tolerance_stage("delta", None, {"mfcc": None}) == "db"
    assert tolerance_stage("input", None, {"mfcc": None}) == "input"
    assert tolerance_stage("activations", "pooled", {"mfcc": None}) == "pooled"


def test_offsets_are_compared_exactly_and_a_different_draw_is_refused(policy: dict[str, Any]) -> None:
    assert stage_of("clips/03/offsets/zeros_front") == "" and stage_of("all/offsets/crop_start") == ""
    assert stage_of("clips/03/standardize") == "standardize"
    probs = np.array([[0.9, 0.1], [0.2, 0.8]], np.float32)
    base_t = {"all/probs": probs, "all/offsets/zeros_front": np.array([7, 12]),
              "clips/01/probs": probs[1], "clips/01/offsets/zeros_front": np.array([12]),
              "clips/01/mfcc": np.ones((1, 4, 5), np.float32)}
    base = References(Path("."), {}, "", [FileReference("a.wav", {"full_clips": [1]}, base_t)])
    files = {"a.wav": {"clips": [1]}}
    same = {"clips/01/probs": probs[1], "clips/01/offsets/zeros_front": np.array([12]),
            "clips/01/mfcc": np.full((1, 4, 5), 1.5, np.float32)}
    c = compare_clips(base, files, {"a.wav": same}, positive=1)
    assert c["digests"]["offsets"] == {"compared": 1, "differ": 0}
    assert c["stages"]["mfcc"]["max_abs"] == 0.5 and not any("offsets" in s for s in c["stages"])
    other = compare_clips(base, files, {"a.wav": {**same, "clips/01/offsets/zeros_front": np.array([3])}}, positive=1)
    assert other["digests"]["offsets"] == {"compared": 1, "differ": 1}
    envelope = json.loads(ENVELOPE.read_text())
    envelope["comparisons"].append({"name": "v vs baseline", "regimes": ["cross_machine"], **other})
    with pytest.raises(ValueError, match="other random offsets than the references"):
        derive(envelope, policy, "x")
