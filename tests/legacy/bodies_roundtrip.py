"""Legacy-env check (run by tests/test_bodies_legacy.py): every body of fastai 1.0.61's model_meta.

For each body and each stem (1 channel as audio_learner adapts it; 3 channels, `delta`'s stack):
fastai's own `create_cnn_model` + fastai_audio's `adapt_model`, BN statistics and biases made
non-trivial, then what `make convert` does -- introspect the body and head, rename every key with
convert/keymap.py, load the clean network strictly -- and compare logits on one batch. Also the
wrong cuts (fastai's body cut one child short or long) and a custom head must be refused, naming a
module path. Prints one `RESULT {json}` line.
"""

import json
import sys
import time
import warnings
from types import SimpleNamespace

import torch

from convert.cli import clean_state_dict
from convert.introspect import introspect_body, introspect_head
from convert.legacy import ConvertError
from orcaport.model.config import SUPPORTED_BODIES, ArchitectureConfig
from orcaport.model.network import OrcaNet
from tests.legacy.convert_roundtrip import randomize

warnings.simplefilter("ignore")
INPUT = (2, 64, 80)           # batch, mel bins, frames: small, every body's strides fit


def fastai_model(arch_name: str, channels: int, cut=None, custom_head=None) -> torch.nn.Module:
    from audio.learner import adapt_model
    from fastai.vision import models
    from fastai.vision.learner import create_cnn_model

    m = create_cnn_model(getattr(models, arch_name), 2, cut=cut, pretrained=False, custom_head=custom_head)
    adapt_model(m, channels)
    randomize(m)
    return m.eval()


def convert_one(arch_name: str, channels: int) -> dict:
    t0 = time.time()
    fa = fastai_model(arch_name, channels)
    body, in_channels = introspect_body(fa[0])
    head, layout = introspect_head(fa[1])
    net = OrcaNet(ArchitectureConfig(body=body, in_channels=in_channels, head=head)).eval()
    state = clean_state_dict(SimpleNamespace(model=fa), layout, net)
    net.load_state_dict(state, strict=True)
    x = torch.randn(INPUT[0], channels, *INPUT[1:], generator=torch.Generator().manual_seed(0)) * 20 - 40
    with torch.no_grad():
        want, got = fa(x), net(x)
    return {"body": body, "in_channels": in_channels, "tensors": len(state),
            "max_abs": (want - got).abs().max().item(), "scale": want.abs().max().item(),
            "seconds": round(time.time() - t0, 1)}


def refusal(make) -> str:
    try:
        fa = make()
        introspect_body(fa[0])
        introspect_head(fa[1])
    except ConvertError as e:
        return str(e)
    return ""


def main() -> None:
    bodies = sys.argv[1:] or list(SUPPORTED_BODIES)
    results = {"converted": {}, "refused": {}}
    three = ("resnet18", "densenet121", "vgg11_bn", "squeezenet1_1", "alexnet", "mobilenet_v2")
    for name in bodies:
        for channels in (1, 3) if name in three else (1,):
            results["converted"][f"{name}/{channels}"] = convert_one(name, channels)
    # cut one child short / long (model_meta's cut is -2 for ResNets, -1 for the others)
    for name, cut in (("resnet18", -3), ("resnet18", -1), ("vgg11_bn", -2), ("alexnet", -2)):
        results["refused"][f"{name} cut={cut}"] = refusal(lambda: fastai_model(name, 1, cut=cut))
    results["refused"]["custom_head"] = refusal(lambda: fastai_model(
        "densenet121", 1, custom_head=torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                                          torch.nn.Linear(1024, 2))))
    print("RESULT " + json.dumps(results))


if __name__ == "__main__":
    main()
