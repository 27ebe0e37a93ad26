"""Read a fastai learner's architecture off the live modules instead of assuming it.

Everything the clean model needs -- ResNet depth, input channels, head layout, classes, positive
class, normalization stats -- comes from here; anything we do not recognise is an error that names
the module path, so an unsupported learner never converts into something subtly different.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from torch import nn

from convert.legacy import ConvertError
from orcaport.model.config import ArchitectureConfig, HeadConfig, NormalizationConfig

# (block class name, blocks per layer) -> fastai/torchvision body name
RESNETS: dict[tuple[str, tuple[int, ...]], str] = {
    ("BasicBlock", (2, 2, 2, 2)): "resnet18",
    ("BasicBlock", (3, 4, 6, 3)): "resnet34",
    ("Bottleneck", (3, 4, 6, 3)): "resnet50",
    ("Bottleneck", (3, 4, 23, 3)): "resnet101",
    ("Bottleneck", (3, 8, 36, 3)): "resnet152",
}
BODY_LAYOUT = (nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d,
               nn.Sequential, nn.Sequential, nn.Sequential, nn.Sequential)


@dataclass(frozen=True)
class LearnerSpec:
    architecture: ArchitectureConfig
    head_layout: tuple[str, ...]
    classes: tuple[str, ...]
    positive_index: int
    normalization: NormalizationConfig | None


def _fail(path: str, module: Any, why: str) -> ConvertError:
    return ConvertError(f"unsupported learner: {path} is {type(module).__name__} ({why}); "
                        "supported: fastai cnn_learner/audio_learner on models.resnet18..152 with "
                        "a create_head head")


def introspect_body(body: nn.Module) -> tuple[str, int]:
    """-> (body name, input channels). `body` is learner.model[0]."""
    children = list(body.children()) if isinstance(body, nn.Sequential) else []
    if len(children) != len(BODY_LAYOUT):
        raise _fail("model[0]", body, f"expected the 8 children of a ResNet body, got {len(children)}")
    for i, (child, kind) in enumerate(zip(children, BODY_LAYOUT)):
        if not isinstance(child, kind):
            raise _fail(f"model[0][{i}]", child, f"expected {kind.__name__}")
    conv1 = children[0]
    if (conv1.kernel_size, conv1.stride, conv1.padding, conv1.bias) != ((7, 7), (2, 2), (3, 3), None):
        raise _fail("model[0][0]", conv1, "not a ResNet stem conv (7x7, stride 2, pad 3, no bias)")
    block_types = set()
    counts = []
    for li, layer in enumerate(children[4:], start=4):
        for bi, block in enumerate(layer):
            name = type(block).__name__
            if name not in ("BasicBlock", "Bottleneck"):
                raise _fail(f"model[0][{li}][{bi}]", block, "not a torchvision ResNet block")
            block_types.add(name)
        counts.append(len(layer))
    key = (block_types.pop() if len(block_types) == 1 else "mixed", tuple(counts))
    if key not in RESNETS:
        raise _fail("model[0]", body, f"blocks {key} match no torchvision ResNet")
    return RESNETS[key], conv1.in_channels


def introspect_head(head: nn.Module) -> tuple[HeadConfig, tuple[str, ...]]:
    """-> (HeadConfig, per-index layout kinds for convert.keymap). `head` is learner.model[1]."""
    from fastai.layers import AdaptiveConcatPool2d, Flatten

    # Index, not .children(): create_head reuses ONE ReLU instance, which children() de-duplicates,
    # while state-dict keys count every position.
    mods = [head[i] for i in range(len(head))] if isinstance(head, nn.Sequential) else []
    if len(mods) < 3:
        raise _fail("model[1]", head, "expected a create_head Sequential")
    layout: list[str] = []
    if isinstance(mods[0], AdaptiveConcatPool2d):
        concat_pool = True
    elif isinstance(mods[0], nn.AdaptiveAvgPool2d):
        concat_pool = False
    else:
        raise _fail("model[1][0]", mods[0], "expected AdaptiveConcatPool2d or AdaptiveAvgPool2d")
    if not isinstance(mods[1], Flatten) or mods[1].full:
        raise _fail("model[1][1]", mods[1], "expected fastai Flatten()")
    layout += ["pool", "flatten"]
    lin_ftrs: list[int] = []
    dropout: list[float] = []
    relu: list[bool] = []
    bn_final = False
    i = 2
    while i < len(mods):
        m = mods[i]
        is_last = i == len(mods) - 1
        if isinstance(m, nn.BatchNorm1d) and is_last and lin_ftrs:
            layout.append("bn_final")
            bn_final = True
            i += 1
            continue
        if not isinstance(m, nn.BatchNorm1d):
            raise _fail(f"model[1][{i}]", m, "expected BatchNorm1d opening a bn_drop_lin block")
        layout.append("bn")
        i += 1
        p = 0.0
        if i < len(mods) and isinstance(mods[i], nn.Dropout):
            p = float(mods[i].p)
            layout.append("dropout")
            i += 1
        if i >= len(mods) or not isinstance(mods[i], nn.Linear):
            raise _fail(f"model[1][{i}]", mods[i] if i < len(mods) else head, "expected Linear")
        lin = mods[i]
        if lin.in_features != m.num_features or lin.bias is None:
            raise _fail(f"model[1][{i}]", lin, "Linear does not follow its BatchNorm1d's width")
        if lin_ftrs and lin_ftrs[-1] != lin.in_features:
            raise _fail(f"model[1][{i}]", lin, "Linear widths do not chain")
        if not lin_ftrs:
            lin_ftrs.append(lin.in_features)
        lin_ftrs.append(lin.out_features)
        layout.append("linear")
        i += 1
        has_relu = i < len(mods) and isinstance(mods[i], nn.ReLU)
        if has_relu:
            layout.append("relu")
            i += 1
        dropout.append(p)
        relu.append(has_relu)
    if not lin_ftrs:
        raise _fail("model[1]", head, "no Linear layer")
    if bn_final and mods[-1].num_features != lin_ftrs[-1]:
        raise _fail(f"model[1][{len(mods) - 1}]", mods[-1], "bn_final width != number of classes")
    head_cfg = HeadConfig(concat_pool=concat_pool, lin_ftrs=tuple(lin_ftrs), dropout=tuple(dropout),
                          relu=tuple(relu), bn_final=bn_final)
    return head_cfg, tuple(layout)


def positive_class_index(classes: Sequence[str], positive_class: str | None) -> int:
    """Production reads `learn.predict(item)[2][1]`: index 1 unless told otherwise."""
    if positive_class is not None:
        if positive_class not in classes:
            raise ConvertError(f"--positive-class {positive_class!r} is not one of the learner's "
                               f"classes {list(classes)}")
        return list(classes).index(positive_class)
    if "positive" in classes:
        return list(classes).index("positive")
    if len(classes) == 2:
        return 1
    raise ConvertError(f"cannot tell the positive class among {list(classes)}; pass --positive-class")


def introspect_learner(learn: Any, positive_class: str | None = None) -> LearnerSpec:
    model = learn.model
    if not isinstance(model, nn.Sequential) or len(model) != 2:
        raise _fail("model", model, "expected Sequential(body, head) from cnn_learner/audio_learner")
    body, in_channels = introspect_body(model[0])
    head, layout = introspect_head(model[1])
    classes = tuple(str(c) for c in learn.data.classes)
    if len(classes) != head.lin_ftrs[-1]:
        raise ConvertError(f"learner names {len(classes)} classes but its head has "
                           f"{head.lin_ftrs[-1]} outputs")
    norm = None
    if getattr(learn.data, "norm", False):
        kw = learn.data.norm.keywords
        if not kw.get("do_x", True) or kw.get("do_y", False):
            raise ConvertError("learner normalizes y or not x; only x normalization is supported")
        mean = kw["mean"].flatten().tolist()
        std = kw["std"].flatten().tolist()
        norm = NormalizationConfig(mean=tuple(float(v) for v in mean), std=tuple(float(v) for v in std))
    return LearnerSpec(
        architecture=ArchitectureConfig(body=body, in_channels=in_channels, head=head),
        head_layout=layout, classes=classes,
        positive_index=positive_class_index(classes, positive_class), normalization=norm,
    )
