"""Read a fastai learner's architecture off the live modules instead of assuming it.

Everything the clean model needs -- which of model_meta's bodies, input channels, head layout,
classes, positive class, normalization stats -- comes from here; anything we do not recognise is an error that names
the module path, so an unsupported learner never converts into something subtly different.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Sequence

from torch import nn

from convert.legacy import ConvertError
from orcaport.model.bodies import BODY_CHILDREN, EXPANDED, build_body, family, first_conv_parent, stage_ends
from orcaport.model.config import (SUPPORTED_BODIES, ArchitectureConfig, ConfigError, HeadConfig,
                                   NormalizationConfig)

# Container classes an older torchvision named differently, same forward (a Sequential either way).
CLASS_ALIASES = {"ConvBNReLU": "Conv2dNormActivation", "ConvBNActivation": "Conv2dNormActivation"}
# What decides a module's forward, per kind: compared attribute by attribute with torchvision's.
ARGS = ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups",
        "padding_mode", "num_features", "eps", "affine", "track_running_stats", "in_features",
        "out_features", "output_size", "ceil_mode", "inplace", "use_res_connect", "drop_rate")


@dataclass(frozen=True)
class LearnerSpec:
    architecture: ArchitectureConfig
    head_layout: tuple[str, ...]
    classes: tuple[str, ...]
    positive_index: int
    normalization: NormalizationConfig | None


def _fail(path: str, module: Any, why: str) -> ConvertError:
    return ConvertError(f"unsupported learner: {path} is {type(module).__name__} ({why}); "
                        "supported: fastai cnn_learner/audio_learner on the bodies of fastai's "
                        f"model_meta ({', '.join(SUPPORTED_BODIES)}) with a create_head head")


def _path(name: str) -> str:
    """'0.denseblock1.denselayer2.conv1' -> 'model[0][0].denseblock1.denselayer2.conv1'."""
    return "model[0]" + "".join(f"[{p}]" if p.isdigit() else f".{p}" for p in name.split(".") if p)


def signature(body: nn.Module) -> list[tuple[str, str, tuple]]:
    """Every module of `body` in order: (path, class, forward-deciding arguments, has bias)."""
    # fastai's body names its children 0, 1, ...; the clean one keeps torchvision's names.
    index = {name: str(i) for i, (name, _) in enumerate(body.named_children())}
    out = []
    for name, m in body.named_modules():
        top, dot, rest = name.partition(".")
        kind = CLASS_ALIASES.get(type(m).__name__, type(m).__name__)
        args = tuple((a, str(getattr(m, a))) for a in ARGS if hasattr(m, a))
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            args += (("bias", str(m.bias is not None)),)
        out.append((index.get(top, top) + dot + rest, kind, args))
    return out


@functools.lru_cache(maxsize=None)
def body_signature(name: str, in_channels: int) -> tuple[tuple[str, str, tuple], ...]:
    """torchvision's `name` body as fastai cuts it, built once per process (on the meta device):
    references and the envelope introspect the learner once per recording."""
    return tuple(signature(build_body(name, in_channels, device="meta")))


def _first_difference(got: list, want: list) -> int:
    return next((i for i, (g, w) in enumerate(zip(got, want)) if g != w), min(len(got), len(want)))


def introspect_body(body: nn.Module) -> tuple[str, int]:
    """-> (body name, input channels). `body` is learner.model[0].

    Compared module by module (class, and every argument that decides its forward) with torchvision's
    module cut as fastai cuts it (model/bodies.py); the one that matches exactly is the body. None
    matching is an error naming the first module where the closest body differs."""
    if not isinstance(body, nn.Sequential) or len(body) == 0:
        raise _fail("model[0]", body, "expected the Sequential fastai's create_body makes")
    try:
        in_channels = first_conv_parent(body)[0].in_channels
    except (ConfigError, TypeError, IndexError, AttributeError):
        raise _fail("model[0]", body, "no first Conv2d where audio_learner adapts the input channels") from None
    got = signature(body)
    best: tuple[int, str, list] = (-1, "", [])
    for name in SUPPORTED_BODIES:
        want = list(body_signature(name, in_channels))
        if want == got:
            return name, in_channels
        best = max(best, (_first_difference(got, want), name, want), key=lambda b: b[0])
    at, name, want = best
    if at < len(got):
        path, kind, args = got[at]
        expected = f"{want[at][1]}{dict(want[at][2])}" if at < len(want) else "nothing (the body ends)"
        module = body.get_submodule(path) if path else body
        raise _fail(_path(path), module,
                    f"{kind}{dict(args)}; {name} has {expected} there")
    missing_path, missing_kind, _ = want[at]
    raise _fail("model[0]", body, f"ends before {_path(missing_path)}, where {name} has {missing_kind}; "
                "was the body cut differently from fastai's model_meta?")


def activation_points(body: nn.Module) -> dict[str, nn.Module]:
    """The fastai body's module whose output is each body stage (stem, layer1..layer4): the same
    cuts model/bodies.py makes in the clean network, so capture and replay name the same tensors."""
    name, _ = introspect_body(body)
    children = list(body.children())
    steps: list[nn.Module] = []
    for child_name, child in zip(BODY_CHILDREN[family(name)], children):
        steps += list(child.children()) if child_name == EXPANDED else [child]
    ends = stage_ends(name, steps)
    return {stage: steps[end - 1] for stage, end in zip(("stem", "layer1", "layer2", "layer3", "layer4"), ends)}


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
