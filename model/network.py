"""The clean network: a torchvision body cut as fastai cuts it (model/bodies.py) + a fastai v1 head.

Module names are a CONTRACT with the converter, which maps fastai `model.pkl` keys onto them:

    body.<torchvision key>  (body.conv1, body.layer1.0.conv1, body.features.denseblock1..., ...)
    head.blocks.{j}.bn / head.blocks.{j}.fc / head.bn_final

The body is torchvision's module for every body fastai 1.0.61's `model_meta` lists (ResNet v1.5,
DenseNet, VGG-BN, SqueezeNet, AlexNet, MobileNetV2); the head is fastai 1.0.61 `create_head`:
pool -> flatten -> [BN -> Dropout -> Linear (-> ReLU)]* -> optional BN(momentum=0.01). Shapes below
are for the OrcaHello input (B, 1, 256 mels, 312 frames).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from orcaport.model.bodies import body_features, build_body, flat_steps, stage_ends
from orcaport.model.config import ArchitectureConfig, ConfigError
from orcaport.model.stages import ACTIVATION_LAYERS

BN_FINAL_MOMENTUM = 0.01   # fastai create_head's bn_final
LOGITS = "logits"
STAGE_NAMES: tuple[str, ...] = ACTIVATION_LAYERS + (LOGITS,)
BODY_STAGES: tuple[str, ...] = ("stem", "layer1", "layer2", "layer3", "layer4")
if ACTIVATION_LAYERS != BODY_STAGES + ("pooled",):
    raise RuntimeError("model/stages.py changed its activation layers: update network.py's BODY_STAGES")


class ConcatPool(nn.Module):
    """fastai AdaptiveConcatPool2d + Flatten: (B, C, H, W) -> (B, 2C), MAX features first."""

    def __init__(self) -> None:
        super().__init__()
        self.max = nn.AdaptiveMaxPool2d(1)
        self.avg = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: Tensor) -> Tensor:
        return torch.flatten(torch.cat([self.max(x), self.avg(x)], dim=1), 1)


class AvgPool(nn.Module):
    """AdaptiveAvgPool2d(1) + Flatten: (B, C, H, W) -> (B, C)."""

    def __init__(self) -> None:
        super().__init__()
        self.avg = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: Tensor) -> Tensor:
        return torch.flatten(self.avg(x), 1)


class HeadBlock(nn.Module):
    """fastai `bn_drop_lin`: BN1d -> Dropout -> Linear (-> ReLU). (B, n_in) -> (B, n_out)."""

    def __init__(self, n_in: int, n_out: int, p: float, relu: bool) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(n_in)
        self.drop = nn.Dropout(p)            # parameter-free; identity in eval mode
        self.fc = nn.Linear(n_in, n_out)
        self.act = nn.ReLU(inplace=True) if relu else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.fc(self.drop(self.bn(x))))


class Head(nn.Module):
    """fastai 1.0.61 `create_head`. pool(B, C, H, W) -> features (B, lin_ftrs[0]); head -> (B, classes)."""

    def __init__(self, num_features: int, config: ArchitectureConfig) -> None:
        super().__init__()
        head = config.head
        lin = tuple(head.lin_ftrs)
        n_lin = len(lin) - 1
        if n_lin < 1:
            raise ConfigError(f"head.lin_ftrs {lin} needs at least an input and an output size")
        if len(head.dropout) != n_lin or len(head.relu) != n_lin:
            raise ConfigError(f"head has {n_lin} Linear layers (lin_ftrs {lin}) but "
                              f"{len(head.dropout)} dropout and {len(head.relu)} relu entries")
        pooled = 2 * num_features if head.concat_pool else num_features
        if lin[0] != pooled:
            pool = "concat (max+avg)" if head.concat_pool else "avg"
            raise ConfigError(
                f"head.lin_ftrs[0] is {lin[0]} but {config.body} with {pool} pooling gives {pooled} "
                "features; config.json does not match the body; re-run `make convert`")
        self.pool = ConcatPool() if head.concat_pool else AvgPool()
        self.blocks = nn.ModuleList(
            HeadBlock(lin[j], lin[j + 1], head.dropout[j], head.relu[j]) for j in range(n_lin))
        if head.bn_final:
            self.bn_final = nn.BatchNorm1d(lin[-1], momentum=BN_FINAL_MOMENTUM)
        else:
            self.bn_final = None
        self.num_classes = lin[-1]

    def classify(self, x: Tensor) -> Tensor:
        """Pooled features (B, lin_ftrs[0]) -> logits (B, num_classes)."""
        for block in self.blocks:
            x = block(x)
        return x if self.bn_final is None else self.bn_final(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.classify(self.pool(x))


class OrcaNet(nn.Module):
    """torchvision body + fastai head. (B, in_channels, n_mels, frames) -> logits (B, num_classes)."""

    def __init__(self, config: ArchitectureConfig) -> None:
        super().__init__()
        self.config = config
        self.body = build_body(config.body, config.in_channels)
        self.head = Head(body_features(self.body, config.in_channels), config)
        self.num_classes = self.head.num_classes
        self.body_stages()        # a body the stage table does not cut into five fails here

    def body_stages(self) -> dict[str, list[nn.Module]]:
        """Each body stage as the run of body steps that produces it, read off `self.body` on every
        call (a copy with swapped modules, e.g. BN folded, stays consistent)."""
        steps = flat_steps(self.body)
        ends = stage_ends(self.config.body, steps)
        return {name: steps[a:b] for name, a, b in zip(BODY_STAGES, (0,) + ends[:-1], ends)}

    def forward(self, x: Tensor) -> Tensor:
        """(B, in_channels, H, W) -> logits (B, num_classes)."""
        return self.head(self.body(x))

    def _step(self, name: str, x: Tensor) -> Tensor:
        """Run the step that produces stage `name` from the previous stage's tensor."""
        if name in BODY_STAGES:
            for module in self.body_stages()[name]:
                x = module(x)
            return x
        if name == "pooled":
            return self.head.pool(x)
        return self.head.classify(x)

    def forward_stages(self, x: Tensor) -> dict[str, Tensor]:
        """Every stage of one forward pass, keyed by `STAGE_NAMES` in order.

        For (B, 1, 256, 312) into resnet18: stem/layer1 (B, 64, 64, 78), layer2 (B, 128, 32, 39),
        layer3 (B, 256, 16, 20), layer4 (B, 512, 8, 10), pooled (B, 1024), logits (B, classes).
        Other bodies: model/bodies.py STAGE_ENDS says where their five body stages end.
        """
        out: dict[str, Tensor] = {}
        for name in STAGE_NAMES:
            x = self._step(name, x)
            out[name] = x
        return out

    def forward_from(self, layer_name: str, tensor: Tensor) -> dict[str, Tensor]:
        """Replay the network from the output of stage `layer_name` (e.g. a reference `layer2`).

        Returns the stages *after* `layer_name`, same keys and shapes as `forward_stages`, so a
        mismatch can be pinned to one block given the reference input to that block.
        """
        if layer_name not in ACTIVATION_LAYERS:
            raise ValueError(f"cannot replay from {layer_name!r}; "
                             f"choose one of: {', '.join(ACTIVATION_LAYERS)}")
        out: dict[str, Tensor] = {}
        x = tensor
        for name in STAGE_NAMES[STAGE_NAMES.index(layer_name) + 1:]:
            x = self._step(name, x)
            out[name] = x
        return out
