"""The OrcaHello network in plain torch: a torchvision-layout ResNet body + a fastai v1 head.

Module names are a CONTRACT with the converter, which maps fastai `model.pkl` keys onto them:

    body.conv1 / body.bn1 / body.layer{1..4}.{i}.{conv1,bn1,conv2,bn2[,conv3,bn3],downsample.{0,1}}
    head.blocks.{j}.bn / head.blocks.{j}.fc / head.bn_final

The body is torchvision's ResNet v1.5 (stride on the 3x3 conv of a Bottleneck) minus `fc`; the
head is fastai 1.0.61 `create_head`: pool -> flatten -> [BN -> Dropout -> Linear (-> ReLU)]* ->
optional BN(momentum=0.01). Shapes below are for the OrcaHello input (B, 1, 256 mels, 312 frames).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from orcaport.model.config import ArchitectureConfig, ConfigError
from orcaport.model.stages import ACTIVATION_LAYERS

# (block type, blocks per stage) for each supported body; torchvision's table.
RESNET_LAYOUTS: dict[str, tuple[str, tuple[int, int, int, int]]] = {
    "resnet18": ("basic", (2, 2, 2, 2)),
    "resnet34": ("basic", (3, 4, 6, 3)),
    "resnet50": ("bottleneck", (3, 4, 6, 3)),
    "resnet101": ("bottleneck", (3, 4, 23, 3)),
    "resnet152": ("bottleneck", (3, 8, 36, 3)),
}
STAGE_WIDTHS = (64, 128, 256, 512)
EXPANSION = {"basic": 1, "bottleneck": 4}
BN_FINAL_MOMENTUM = 0.01   # fastai create_head's bn_final
LOGITS = "logits"
STAGE_NAMES: tuple[str, ...] = ACTIVATION_LAYERS + (LOGITS,)
BODY_STAGES: tuple[str, ...] = ("stem", "layer1", "layer2", "layer3", "layer4")
if ACTIVATION_LAYERS != BODY_STAGES + ("pooled",):
    raise RuntimeError("model/stages.py changed its activation layers: update network.py's BODY_STAGES")


def _conv3x3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)


def _conv1x1(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """3x3 -> 3x3 residual block (resnet18/34). (B, c_in, H, W) -> (B, width, H/s, W/s)."""

    def __init__(self, c_in: int, width: int, stride: int, downsample: nn.Module | None) -> None:
        super().__init__()
        self.conv1 = _conv3x3(c_in, width, stride)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = _conv3x3(width, width)
        self.bn2 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (strided, v1.5) -> 1x1 block (resnet50+). (B, c_in, H, W) -> (B, 4*width, H/s, W/s)."""

    def __init__(self, c_in: int, width: int, stride: int, downsample: nn.Module | None) -> None:
        super().__init__()
        c_out = width * EXPANSION["bottleneck"]
        self.conv1 = _conv1x1(c_in, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = _conv3x3(width, width, stride)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = _conv1x1(width, c_out)
        self.bn3 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNetBody(nn.Module):
    """torchvision ResNet without avgpool/fc. (B, in_channels, H, W) -> (B, num_features, H/32, W/32)."""

    def __init__(self, arch: str, in_channels: int) -> None:
        super().__init__()
        if arch not in RESNET_LAYOUTS:
            raise ConfigError(f"unsupported body {arch!r}; supported: {', '.join(RESNET_LAYOUTS)}")
        if in_channels < 1:
            raise ConfigError(f"in_channels must be >= 1, got {in_channels}")
        kind, depths = RESNET_LAYOUTS[arch]
        block = BasicBlock if kind == "basic" else Bottleneck
        expansion = EXPANSION[kind]
        self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        c_in = 64
        for idx, (width, depth) in enumerate(zip(STAGE_WIDTHS, depths)):
            stride = 1 if idx == 0 else 2
            c_out = width * expansion
            # torchvision adds a projection whenever the shape changes (stride or channels).
            down = None
            if stride != 1 or c_in != c_out:
                down = nn.Sequential(_conv1x1(c_in, c_out, stride), nn.BatchNorm2d(c_out))
            blocks = [block(c_in, width, stride, down)]
            blocks += [block(c_out, width, 1, None) for _ in range(depth - 1)]
            setattr(self, f"layer{idx + 1}", nn.Sequential(*blocks))
            c_in = c_out
        self.num_features = c_in

    def stem(self, x: Tensor) -> Tensor:
        """(B, in_channels, H, W) -> (B, 64, H/4, W/4)."""
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem(x)
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


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
    """ResNet body + fastai head. (B, in_channels, n_mels, frames) -> logits (B, num_classes)."""

    def __init__(self, config: ArchitectureConfig) -> None:
        super().__init__()
        self.config = config
        self.body = ResNetBody(config.body, config.in_channels)
        self.head = Head(self.body.num_features, config)
        self.num_classes = self.head.num_classes

    def forward(self, x: Tensor) -> Tensor:
        """(B, in_channels, H, W) -> logits (B, num_classes)."""
        return self.head(self.body(x))

    def _step(self, name: str, x: Tensor) -> Tensor:
        """Run the step that produces stage `name` from the previous stage's tensor."""
        if name == "stem":
            return self.body.stem(x)
        if name.startswith("layer"):
            return getattr(self.body, name)(x)
        if name == "pooled":
            return self.head.pool(x)
        return self.head.classify(x)

    def forward_stages(self, x: Tensor) -> dict[str, Tensor]:
        """Every stage of one forward pass, keyed by `STAGE_NAMES` in order.

        For (B, 1, 256, 312) into resnet18: stem/layer1 (B, 64, 64, 78), layer2 (B, 128, 32, 39),
        layer3 (B, 256, 16, 20), layer4 (B, 512, 8, 10), pooled (B, 1024), logits (B, classes).
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
