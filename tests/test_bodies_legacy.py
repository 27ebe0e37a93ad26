"""Every body of fastai 1.0.61's model_meta, 1- and 3-channel stems, converts exactly (legacy env).

The comparison runs inside the legacy interpreter (tests/legacy/bodies_roundtrip.py): fastai's own
`create_cnn_model` + fastai_audio's `adapt_model`, then introspection, the key map and the clean
torchvision-based network; logits must agree to LOGIT_ATOL (convert's own bar). Wrong cuts and a
custom head must be refused naming a module path.
"""

from __future__ import annotations

import pytest

from orcaport.model.bodies import CUT, family
from orcaport.model.config import SUPPORTED_BODIES
from tests.conftest import run_legacy

LOGIT_ATOL = 1e-5
# One 3-channel (`delta`) stem per family; every body with fastai_audio's 1-channel stem.
THREE_CHANNEL = ("resnet18", "densenet121", "vgg11_bn", "squeezenet1_1", "alexnet", "mobilenet_v2")


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return run_legacy(["tests/legacy/bodies_roundtrip.py"], timeout=1800,
                      home=tmp_path_factory.mktemp("home"))


def test_the_three_channel_cases_cover_every_family() -> None:
    assert {family(b) for b in THREE_CHANNEL} == set(CUT)


@pytest.mark.legacy
@pytest.mark.parametrize("case", [f"{b}/1" for b in SUPPORTED_BODIES] + [f"{b}/3" for b in THREE_CHANNEL])
def test_every_model_meta_body_converts_with_identical_logits(results: dict, case: str) -> None:
    r = results["converted"][case]
    body, channels = case.split("/")
    assert (r["body"], r["in_channels"]) == (body, int(channels)), r
    assert r["max_abs"] <= LOGIT_ATOL * max(1.0, r["scale"]), r


@pytest.mark.legacy
@pytest.mark.parametrize("case, names", [
    ("resnet18 cut=-3", r"model\[0\] .*ends before model\[0\]\[7\]"),
    ("resnet18 cut=-1", r"model\[0\]\[8\] is AdaptiveAvgPool2d"),
    ("vgg11_bn cut=-2", r"ends before model\[0\]\[1\], where vgg11_bn has AdaptiveAvgPool2d"),
    ("alexnet cut=-2", r"ends before model\[0\]\[1\], where alexnet has AdaptiveAvgPool2d"),
    ("custom_head", r"model\[1\]\[1\] is Flatten"),
])
def test_a_wrong_cut_or_custom_head_is_refused_naming_the_module(results: dict, case: str, names: str) -> None:
    assert results["refused"][case], f"{case} converted instead of being refused"
    assert __import__("re").search(names, results["refused"][case]), results["refused"][case]
