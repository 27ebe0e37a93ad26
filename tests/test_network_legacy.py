"""OrcaNet against the real thing: torchvision's ResNets and fastai 1.0.61's `create_cnn_model`.

Runs the comparison inside the legacy interpreter (this process may be the clean env, which has
neither fastai nor torchvision); skipped with the reason when no legacy env is available.
"""

from __future__ import annotations

import pytest

from tests.conftest import run_legacy

TOLERANCE = 1e-5

# Executed by the legacy interpreter with the repo root on sys.path; prints one JSON line.
SCRIPT = r'''
import json, torch, torchvision
from torch import nn
from fastai.vision import models
from fastai.vision.learner import create_cnn_model
from audio.learner import adapt_model
from orcaport.model.config import ArchitectureConfig, HeadConfig
from orcaport.model.network import OrcaNet

torch.manual_seed(0)
TV_BODY = {"0": "conv1", "1": "bn1", "4": "layer1", "5": "layer2", "6": "layer3", "7": "layer4"}

def randomize_bn(net):
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.weight.uniform_(0.5, 1.5); m.bias.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(-0.2, 0.2); m.running_var.uniform_(0.5, 2.0)
                m.num_batches_tracked.fill_(7)
    return net.eval()

def diff(a, b):
    return {"max_abs": (a - b).abs().max().item(), "scale": b.abs().max().item()}

def head_map(head):
    """fastai head Sequential index -> OrcaNet name, by order: BN (Dropout) Linear (ReLU) ... [BN]."""
    out, j, bn = {}, 0, None
    for i, m in enumerate(head):
        if isinstance(m, nn.BatchNorm1d):
            bn = str(i)
        elif isinstance(m, nn.Linear):
            out[bn], out[str(i)], bn, j = f"blocks.{j}.bn", f"blocks.{j}.fc", None, j + 1
    if bn is not None:
        out[bn] = "bn_final"
    return out

results = {"torchvision": {}, "fastai": {}}
for body, nf in (("resnet18", 512), ("resnet34", 512), ("resnet50", 2048)):
    tv = randomize_bn(getattr(torchvision.models, body)(weights=None))
    tv_body = {"body." + k: v for k, v in tv.state_dict().items() if not k.startswith("fc.")}
    ours = OrcaNet(ArchitectureConfig(body=body, in_channels=3, head=HeadConfig(
        lin_ftrs=(2 * nf, 2), dropout=(0.5,), relu=(False,)))).eval()
    ours_body = {k: v for k, v in ours.state_dict().items() if k.startswith("body.")}
    shapes_equal = {k: tuple(v.shape) for k, v in tv_body.items()} == \
        {k: tuple(v.shape) for k, v in ours_body.items()}
    ours.load_state_dict({**ours.state_dict(), **tv_body})
    x = torch.randn(2, 3, 256, 312)
    with torch.no_grad():
        ref = nn.Sequential(*list(tv.children())[:-2])(x)   # what fastai's create_body keeps
        got = ours.forward_stages(x)["layer4"]
    results["torchvision"][body] = {
        "names_shapes_equal": shapes_equal, "only_torchvision": sorted(set(tv_body) - set(ours_body))[:5],
        "only_ours": sorted(set(ours_body) - set(tv_body))[:5], **diff(got, ref)}

CASES = {  # name: (torchvision arch, our body, classes, create_cnn_model kwargs, our HeadConfig)
    "orcahello_resnet50": ("resnet50", 2, {}, HeadConfig(lin_ftrs=(4096, 512, 2))),
    "resnet18_default": ("resnet18", 2, {}, HeadConfig(lin_ftrs=(1024, 512, 2))),
    "resnet34_avg_bnfinal_two_hidden": ("resnet34", 3,
        dict(concat_pool=False, bn_final=True, lin_ftrs=[256, 128], ps=[0.1, 0.2, 0.3]),
        HeadConfig(concat_pool=False, bn_final=True, lin_ftrs=(512, 256, 128, 3),
                   dropout=(0.1, 0.2, 0.3), relu=(True, True, False))),
}
for name, (body, nc, kwargs, head) in CASES.items():
    fa = create_cnn_model(getattr(models, body), nc, pretrained=False, **kwargs)
    adapt_model(fa, 1)                      # fastai_audio's 1-channel conv1, as audio_learner does
    randomize_bn(fa)
    with torch.no_grad():
        for m in fa[1].modules():           # fastai inits Linear biases to 0; make them matter
            if isinstance(m, nn.Linear): m.bias.uniform_(-0.5, 0.5)
    hmap = head_map(fa[1])
    mapped = {}
    for k, v in fa.state_dict().items():
        part, idx, rest = k.split(".", 2)
        mapped[f"body.{TV_BODY[idx]}.{rest}" if part == "0" else f"head.{hmap[idx]}.{rest}"] = v
    ours = OrcaNet(ArchitectureConfig(body=body, in_channels=1, head=head)).eval()
    keys_equal = set(mapped) == set(ours.state_dict())
    if keys_equal:
        ours.load_state_dict(mapped, strict=True)
    x = torch.randn(2, 1, 256, 312)
    with torch.no_grad():
        ref = fa(x)
        got = ours(x) if keys_equal else torch.full_like(ref, float("nan"))
    results["fastai"][name] = {"keys_equal": keys_equal, "head": [type(m).__name__ for m in fa[1]],
                               **diff(got, ref)}
print("RESULT " + json.dumps(results))
'''


@pytest.fixture(scope="module")
def legacy_results(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return run_legacy(["-c", SCRIPT], timeout=600, home=tmp_path_factory.mktemp("home"))


@pytest.mark.legacy
@pytest.mark.parametrize("body", ["resnet18", "resnet34", "resnet50"])
def test_body_is_torchvision_minus_fc(legacy_results: dict, body: str) -> None:
    r = legacy_results["torchvision"][body]
    assert r["names_shapes_equal"], (r["only_torchvision"], r["only_ours"])
    assert r["max_abs"] <= TOLERANCE * max(1.0, r["scale"]), r


@pytest.mark.legacy
@pytest.mark.parametrize("case", ["orcahello_resnet50", "resnet18_default",
                                  "resnet34_avg_bnfinal_two_hidden"])
def test_whole_net_matches_fastai_create_cnn_model(legacy_results: dict, case: str) -> None:
    r = legacy_results["fastai"][case]
    assert r["keys_equal"], r
    assert r["max_abs"] <= TOLERANCE * max(1.0, r["scale"]), r
