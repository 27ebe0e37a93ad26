"""model.onednn: the padding-reuse plan reads every column it needs, the reuse path equals the whole
network, and any batch that is not padded the legacy way runs whole."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from orcaport.model.artifact import load_artifact
from orcaport.model.config import ArchitectureConfig, HeadConfig
from orcaport.model.detector import Detector
from orcaport.model.network import OrcaNet
from orcaport.model.onednn import Geometry, OneDnnNet, layer_paths, plan_reuse
from tests.conftest import FIXTURE

WIDTH, CONTENT = 312, 157          # a 2 s clip's 157 frames padded to 4 s: legacy's input


def _net(body: str) -> OrcaNet:
    feats = 4096 if body == "resnet50" else 1024
    torch.manual_seed(0)
    net = OrcaNet(ArchitectureConfig(body=body, in_channels=1, head=HeadConfig(lin_ftrs=(feats, 512, 2))))
    for m in net.modules():                    # non-trivial folded BN
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
    return net.eval()


# A +1.0 change moves a dependent output by O(0.1); a kernel path that reorders the sum (blocked,
# Winograd-like, another ISA) moves an independent one by float32 rounding only. The claim is
# about dependence, so "changed" and "equal" are judged against that rounding, not bit patterns.
ROUNDING = 1e-5


@pytest.mark.parametrize("kernel,stride,padding", [(7, 2, 3), (3, 2, 1), (3, 1, 1), (1, 2, 0), (1, 1, 0)])
def test_geometry_matches_a_real_conv(kernel: int, stride: int, padding: int) -> None:
    """varying/needs/width/reach, checked by perturbing columns of a real conv's input."""
    g = Geometry(kernel, stride, padding)
    torch.manual_seed(0)
    conv = nn.Conv2d(1, 1, (1, kernel), (1, stride), (0, padding))
    x = torch.randn(1, 1, 1, 40)
    with torch.no_grad():
        y = conv(x)
        assert y.shape[-1] == g.width(40) and g.width(g.reach(y.shape[-1] - 3)) >= y.shape[-1] - 3
        for c in (1, 9, 20):
            x2 = x.clone()
            x2[..., :c] += 1.0                 # change only columns [0, c)
            full = conv(x2)
            changed = ((full - y).abs() > ROUNDING)[0, 0, 0].nonzero().flatten()
            assert int(changed.max()) + 1 == g.varying(c)
            # outputs [0, varying) computed from the first `needs` columns alone are the same sums
            n = g.needs(g.varying(c))
            cut = conv(x2[..., :n])[..., :g.varying(c)]
            torch.testing.assert_close(cut, full[..., :g.varying(c)], rtol=0, atol=ROUNDING)


@pytest.mark.parametrize("body", ["resnet18", "resnet34", "resnet50"])
def test_plan_reads_what_each_layer_needs_and_saves_work(body: str) -> None:
    plan = plan_reuse(layer_paths(_net(body).body), WIDTH, CONTENT)
    n = len(plan.full_width)
    assert len(plan.in_width) == len(plan.out_width) == len(plan.varying) == n
    for i in range(1, n):     # a window never shrinks between layers: no slicing copies
        assert plan.in_width[i] >= plan.out_width[i - 1]
    assert all(v <= o <= f for v, o, f in zip(plan.varying, plan.out_width, plan.full_width))
    assert plan.varying[-1] == plan.full_width[-1]     # by layer4 every column depends on the clip
    assert plan.in_width[0] < WIDTH and plan.column_fraction([1.0] * n) < 0.9


@pytest.mark.parametrize("body", ["resnet18", "resnet50"])
def test_reuse_equals_the_whole_network(body: str) -> None:
    net = _net(body)
    pad = torch.full((1, 1, 256, WIDTH), 0.3)
    pad[..., :CONTENT] = 0.0
    fused = OneDnnNet(net, torch.float32, torch.randn(2, 1, 256, WIDTH), pad, CONTENT)
    assert fused.plan is not None
    x = torch.randn(3, 1, 256, WIDTH)
    x[..., CONTENT:] = pad[..., CONTENT:]
    with torch.inference_mode():
        assert fused.reuses(x)
        want = net(x)
        torch.testing.assert_close(fused(x), want, rtol=1e-4, atol=1e-5)
        x[..., CONTENT - 1] += 2.0             # the last content column still reaches the logits
        moved = net(x)
        assert not torch.allclose(moved, want)
        torch.testing.assert_close(fused(x), moved, rtol=1e-4, atol=1e-5)


def test_unpadded_batch_runs_whole() -> None:
    net = _net("resnet18")
    pad = torch.zeros(1, 1, 256, WIDTH)
    fused = OneDnnNet(net, torch.float32, torch.randn(2, 1, 256, WIDTH), pad, CONTENT)
    x = torch.randn(2, 1, 256, WIDTH)
    x[..., CONTENT:] = 0.0
    x[1, 0, 7, WIDTH - 1] = 1e-3               # one clip's padding differs in one element
    with torch.inference_mode():
        assert not fused.reuses(x)
        torch.testing.assert_close(fused(x), net(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("profile", ["legacy-exact", "fast"])
def test_detector_builds_reuse_from_the_frontend(profile: str) -> None:
    """The fixture's frontend pads 157 frames to 312 with 0.0 dB, normalized like every clip."""
    det = Detector.from_folder(FIXTURE, profile=profile)
    assert det.engine == "onednn" and det.network.plan is not None
    assert det.network.content == CONTENT
    art = load_artifact(FIXTURE)
    assert torch.equal(det.network.pad_tail, art.normalize(torch.zeros(1, 1, 256, WIDTH))[..., CONTENT:])
