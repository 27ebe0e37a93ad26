"""The one place where fastai state-dict keys become the clean model's names.

fastai's `cnn_learner` model is `Sequential(body, head)`:
- body = the first children of a torchvision model (fastai 1.0.61 `model_meta`'s cut), so `0.{i}.`
  is torchvision child i -- conv1, bn1, relu, maxpool, layer1..layer4 for a ResNet; `features`
  (+ `avgpool` for VGG and AlexNet) for the others -- and the clean model keeps torchvision's names
  under `body.` (model/bodies.py builds it the same way);
- head = `create_head`: [pool, Flatten, (BatchNorm1d, [Dropout], Linear, [ReLU]) * n, [BatchNorm1d]],
  so a head index means nothing without the layout, which `convert/introspect.py` reads off the
  learner and passes in here.

Pure: keys, body name and layout in, mapping out; no torch, no fastai. `model/` never remaps at load.
"""

from __future__ import annotations

from typing import Iterable, Sequence

from orcaport.model.errors import OrcaportError

# Body family -> the torchvision child each fastai body index stands for (ReLU/pools: no params).
BODY_CHILDREN: dict[str, tuple[str, ...]] = {
    "resnet": ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"),
    "densenet": ("features",), "squeezenet": ("features",), "mobilenet_v2": ("features",),
    "vgg": ("features", "avgpool"), "alexnet": ("features", "avgpool"),
}
# Head module kinds as introspect.head_layout() names them.
HEAD_KINDS_WITH_PARAMS = ("bn", "linear", "bn_final")
HEAD_KINDS = HEAD_KINDS_WITH_PARAMS + ("pool", "flatten", "dropout", "relu")


class KeyMapError(OrcaportError, ValueError):
    """A key that cannot be mapped, or a layout that does not describe a fastai head."""


def head_targets(head_layout: Sequence[str]) -> dict[str, str]:
    """Head index -> clean module path, e.g. {'2': 'head.blocks.0.bn', '4': 'head.blocks.0.fc'}."""
    unknown = [k for k in head_layout if k not in HEAD_KINDS]
    if unknown:
        raise KeyMapError(f"unknown head layer kind(s) {unknown}; known: {', '.join(HEAD_KINDS)}")
    targets: dict[str, str] = {}
    block = 0
    for index, kind in enumerate(head_layout):
        if kind == "bn":
            targets[str(index)] = f"head.blocks.{block}.bn"
        elif kind == "linear":
            targets[str(index)] = f"head.blocks.{block}.fc"
            block += 1  # a block ends at its Linear (ReLU/Dropout carry no parameters)
        elif kind == "bn_final":
            targets[str(index)] = "head.bn_final"
    return targets


def body_children(body: str) -> dict[str, str]:
    """fastai body index -> torchvision child name for `body` ('resnet50', 'densenet121', ...)."""
    families = [f for f in BODY_CHILDREN if body.startswith(f)]
    if len(families) != 1:
        raise KeyMapError(f"unknown body {body!r}; known families: {', '.join(BODY_CHILDREN)}")
    return {str(i): name for i, name in enumerate(BODY_CHILDREN[families[0]])}


def fastai_to_clean_keys(keys: Iterable[str], head_layout: Sequence[str], body: str) -> dict[str, str]:
    """Map every fastai `learner.model.state_dict()` key to the clean `OrcaNet` key.

    e.g. resnet50 '0.4.0.conv1.weight' -> 'body.layer1.0.conv1.weight'; densenet121
    '0.0.denseblock1.denselayer1.norm1.weight' -> 'body.features.denseblock1.denselayer1.norm1.weight'.
    Raises KeyMapError naming every key that has no place in the clean model; never drops one.
    """
    children = body_children(body)
    heads = head_targets(head_layout)
    mapping: dict[str, str] = {}
    unmapped: list[str] = []
    for key in keys:
        part, _, rest = key.partition(".")
        index, _, leaf = rest.partition(".")
        target = None
        if part == "0" and index in children and leaf:
            target = f"body.{children[index]}.{leaf}"
        elif part == "1" and index in heads and leaf and "." not in leaf:
            target = f"{heads[index]}.{leaf}"
        if target is None:
            unmapped.append(key)
        else:
            mapping[key] = target
    if unmapped:
        shown = ", ".join(unmapped[:5]) + (f" (+{len(unmapped) - 5} more)" if len(unmapped) > 5 else "")
        raise KeyMapError(f"{len(unmapped)} learner key(s) have no place in the clean model: {shown}")
    if len(set(mapping.values())) != len(mapping):
        raise KeyMapError("two learner keys map to the same clean key; the head layout is inconsistent")
    return mapping
