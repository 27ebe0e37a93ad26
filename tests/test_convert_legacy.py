"""`make convert` on learners built on the fly in the legacy env (skipped without one)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import run_legacy

pytestmark = pytest.mark.legacy
LOGIT_ATOL = 1e-5


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return run_legacy(["tests/legacy/convert_roundtrip.py"], home=tmp_path_factory.mktemp("home"))


@pytest.mark.parametrize("case", ["resnet18_default", "resnet34_custom_head_3_classes",
                                  "resnet50_orcahello_normalized"])
def test_clean_logits_match_learner(results: dict[str, Any], case: str) -> None:
    r = results[case]
    assert r["max_abs"] <= LOGIT_ATOL, r
    assert r["scale"] > 0.1, "logits too small for the comparison to mean anything"
    assert r["tensors"] == r["learner_tensors"], "a parameter or buffer was dropped"


@pytest.mark.parametrize("case", ["resnet18_default", "resnet34_custom_head_3_classes",
                                  "resnet50_orcahello_normalized"])
def test_converting_twice_is_byte_identical(results: dict[str, Any], case: str) -> None:
    assert results[case]["identical_bytes"] == {"model.safetensors": True, "config.json": True}


def test_architecture_is_introspected_not_assumed(results: dict[str, Any]) -> None:
    r = results["resnet34_custom_head_3_classes"]
    assert (r["body"], r["classes"], r["bn_final"], r["concat_pool"]) == \
        ("resnet34", ["class0", "class1", "class2"], True, False)
    assert r["lin_ftrs"] == [512, 256, 128, 3]
    assert r["positive_index"] == 2
    assert results["resnet18_default"]["positive_index"] == 1   # production's learn.predict(x)[2][1]
    assert results["resnet50_orcahello_normalized"]["lin_ftrs"] == [4096, 512, 2]
    assert results["resnet50_orcahello_normalized"]["normalization"] == [[-42.0], [17.5]]
    assert results["resnet18_default"]["normalization"] is None
