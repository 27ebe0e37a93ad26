"""Network bodies: torchvision's own modules for every body fastai 1.0.61's `model_meta` lists.

fastai's `models.*` *are* torchvision's constructors, and `create_body` keeps the first children of
the torchvision model (`cut` in fastai/vision/learner.py `model_meta`: -2 for ResNets, which drops
avgpool and fc; -1 for the others, which drops the classifier only -- so VGG and AlexNet keep their
AdaptiveAvgPool2d). fastai_audio's `audio_learner` then swaps the first conv for one taking the
spectrogram's channels (`adapt_model`: 1 channel, or 3 with `delta`). `build_body` makes exactly
that: `nn.Sequential` of torchvision's children under torchvision's names, so the state-dict keys
are `body.<torchvision key>` (body.conv1.weight, body.features.denseblock1.denselayer1.conv1.weight,
body.features.0.weight, ...) and `convert/keymap.py` maps fastai's `0.<i>.` onto `body.<name i>.`.

Only the module definitions are used (no weights are downloaded, nothing from torchvision.io or
transforms): the weights always come from `model.safetensors`.

Activations: the `activations` stage (model/stages.py) records five points in every body -- stem,
layer1..layer4 -- so a mismatch is pinned to about a fifth of the network. For a ResNet they are its
own stem and stages; for the other bodies STAGE_ENDS cuts the flattened body (the children, with
`features` expanded into its own) at comparable places, listed per family below.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torchvision.models as tv_models
from torch import nn

from orcaport.model.config import SUPPORTED_BODIES, ConfigError

# fastai 1.0.61 model_meta's cut per family (the torchvision children create_body keeps).
CUT: dict[str, int] = {"resnet": -2, "densenet": -1, "vgg": -1, "squeezenet": -1, "alexnet": -1,
                       "mobilenet_v2": -1}
# The torchvision child names fastai's body indices 0.. stand for (same order): the key map's table
# (convert/keymap.py holds the same, pure; tests/test_bodies.py checks they agree).
BODY_CHILDREN: dict[str, tuple[str, ...]] = {
    "resnet": ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"),
    "densenet": ("features",), "squeezenet": ("features",), "mobilenet_v2": ("features",),
    "vgg": ("features", "avgpool"), "alexnet": ("features", "avgpool"),
}
EXPANDED = "features"      # a child whose own children are the body's steps
# End (exclusive) of stem, layer1..layer4 in the flattened body. Why these cuts:
STAGE_ENDS: dict[str, tuple[int, ...]] = {
    # conv1 bn1 relu maxpool | layer1 | layer2 | layer3 | layer4
    "resnet": (4, 5, 6, 7, 8),
    # conv0 norm0 relu0 pool0 | denseblock1 transition1 | ... | denseblock4 norm5
    "densenet": (4, 6, 8, 10, 12),
    # by output stride, like torchvision's feature extractors: /2 | /4 | /8 | /16 | /32
    "mobilenet_v2": (2, 4, 7, 14, 19),
    # conv1 relu pool | conv2 relu pool | conv3 relu | conv4 relu | conv5 relu pool avgpool
    "alexnet": (3, 6, 8, 10, 14),
    # conv1 relu pool | fire2-4 pool | fire5-6 | fire7-8 pool | fire9
    "squeezenet1_0": (3, 7, 9, 12, 13),
    # conv1 relu pool | fire2-3 pool | fire4-5 pool | fire6-7 | fire8-9
    "squeezenet1_1": (3, 6, 9, 11, 13),
    # vgg*_bn: one stage per conv block, each ending at its max pool; layer4 also holds avgpool
}
PROBE_SIZE = 64            # fastai's num_features_model probes with a 64x64 input too


def family(body: str) -> str:
    """'resnet50' -> 'resnet', 'vgg16_bn' -> 'vgg', 'mobilenet_v2' -> 'mobilenet_v2'."""
    if body not in SUPPORTED_BODIES:
        raise ConfigError(f"unsupported body {body!r}; supported: {', '.join(SUPPORTED_BODIES)}")
    return next(f for f in CUT if body.startswith(f))


def first_conv_parent(body: nn.Sequential) -> nn.Sequential:
    """The Sequential whose [0] is the body's first conv: fastai_audio's `adapt_model` descends
    through leading Sequentials (features, mobilenet's Conv2dNormActivation) to find it."""
    parent = body
    while isinstance(parent, nn.Sequential) and isinstance(parent[0], nn.Sequential):
        parent = parent[0]
    if not isinstance(parent[0], nn.Conv2d):
        raise ConfigError(f"the body's first layer is {type(parent[0]).__name__}, not a Conv2d")
    return parent


def adapt_first_conv(body: nn.Sequential, in_channels: int) -> None:
    """Give the first conv `in_channels` inputs, every other argument kept (fastai_audio does the
    same for a 1-channel spectrogram; a 3-channel `delta` stack keeps torchvision's conv)."""
    parent = first_conv_parent(body)
    conv: nn.Conv2d = parent[0]
    if conv.in_channels == in_channels:
        return
    parent[0] = nn.Conv2d(in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride,
                          padding=conv.padding, dilation=conv.dilation, groups=conv.groups,
                          bias=conv.bias is not None, padding_mode=conv.padding_mode,
                          device=conv.weight.device)


def build_body(body: str, in_channels: int, device: str = "cpu") -> nn.Sequential:
    """torchvision's `body` cut as fastai cuts it, first conv taking `in_channels`; parameters
    freshly initialised (the caller loads the real ones), or none on device "meta" (structure
    only, for comparing layouts). (B, C, H, W) -> (B, F, h, w)."""
    fam = family(body)
    if in_channels < 1:
        raise ConfigError(f"in_channels must be >= 1, got {in_channels}")
    # Built on the meta device: VGG's and AlexNet's classifiers alone are ~100M parameters that
    # would be allocated and initialised only to be cut off.
    with torch.device("meta"):
        full = getattr(tv_models, body)(weights=None)
    kept = list(full.named_children())[:CUT[fam]]
    names = tuple(name for name, _ in kept)
    if names != BODY_CHILDREN[fam]:
        raise ConfigError(f"this torchvision's {body} has children {names}, not fastai's "
                          f"{BODY_CHILDREN[fam]}: install the torchvision envs/clean.lock.txt pins")
    seq = nn.Sequential(OrderedDict(kept))
    adapt_first_conv(seq, in_channels)
    if device == "meta":
        return seq
    seq.to_empty(device=device)
    for m in seq.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()        # BN also resets its running statistics
    return seq


def body_features(body: nn.Sequential, in_channels: int) -> int:
    """Channels the body outputs, by running it once as fastai's num_features_model does."""
    was_training = body.training
    body.eval()
    with torch.no_grad():
        out = body(torch.zeros(1, in_channels, PROBE_SIZE, PROBE_SIZE))
    body.train(was_training)
    return int(out.shape[1])


def flat_steps(body: nn.Sequential) -> list[nn.Module]:
    """The body's steps in forward order: its children, `features` expanded into its own."""
    steps: list[nn.Module] = []
    for name, child in body.named_children():
        steps += list(child.children()) if name == EXPANDED else [child]
    return steps


def stage_ends(body: str, steps: list[nn.Module]) -> tuple[int, ...]:
    """End (exclusive) in `steps` of stem, layer1, layer2, layer3, layer4 (the last is len(steps))."""
    fam = family(body)
    if fam == "vgg":
        pools = [i + 1 for i, m in enumerate(steps) if isinstance(m, nn.MaxPool2d)]
        ends = tuple(pools[:4]) + (len(steps),)
    else:
        ends = STAGE_ENDS.get(body, STAGE_ENDS.get(fam))
    if ends is None or len(ends) != 5 or ends[-1] != len(steps) or list(ends) != sorted(set(ends)):
        raise RuntimeError(f"stage ends {ends} do not cut {body}'s {len(steps)} steps into five")
    return ends


def stage_shapes(body: str, in_channels: int, height: int, width: int) -> list[tuple[int, ...]]:
    """(C, h, w) of stem, layer1..layer4 for one (in_channels, height, width) input, computed on
    the meta device (no memory, no arithmetic): what a reference's activations will hold."""
    seq = build_body(body, in_channels, device="meta")
    steps = flat_steps(seq)
    x = torch.empty(1, in_channels, height, width, device="meta")
    shapes, start = [], 0
    with torch.no_grad():
        for end in stage_ends(body, steps):
            for module in steps[start:end]:
                x = module(x)
            shapes.append(tuple(x.shape[1:]))
            start = end
    return shapes
