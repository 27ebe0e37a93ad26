"""OrcaNet's CPU inference engine: BN folded, each conv (+ReLU, +residual) one oneDNN primitive,
and the network input's constant padding computed once instead of once per clip.

Padding reuse. Legacy pads every 2 s clip's 157 spectrogram frames to 312 with 0.0 dB, so after
normalization the last 155 input columns are the same constant in every clip. A conv output
column depends only on a few input columns (kernel, stride, padding along time), so the columns
whose receptive field lies entirely in that padding are the same for every clip too: they are
computed once, on a padding-only template, and each clip computes only the columns that can
differ, plus a halo. The receptive field grows with depth, so the saving is large in the stem and
the first stages (about half their columns) and nil by layer4; ResNet50 does ~20 % fewer FLOPs.

Exactness: the copied columns are the template's own outputs from the same primitives, so a clip's
result equals the full computation up to float rounding order (measured: logits within 1e-7 in
fp32, identical decisions; tests/test_onednn.py). A batch whose tail is not the template's (another
pad mode, a clip that fills the window) runs the full network: `forward` checks every time.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from orcaport.model.network import OrcaNet


def fold_batchnorm(net: OrcaNet) -> OrcaNet:
    """A copy of `net` whose body convs absorb their eval BatchNorm (w * s, beta - mean * s with
    s = gamma / sqrt(var + eps)): one memory pass less per conv, ~1e-7 relative change."""
    net = copy.deepcopy(net)
    body = net.body
    pairs = [(body, "conv1", "bn1")]
    for block in _blocks(body):
        pairs += [(block, f"conv{k}", f"bn{k}") for k in (1, 2, 3) if hasattr(block, f"conv{k}")]
        if block.downsample is not None:
            pairs.append((block.downsample, "0", "1"))
    with torch.no_grad():
        for parent, conv_name, bn_name in pairs:
            conv, bn = getattr(parent, conv_name), getattr(parent, bn_name)
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            conv.weight.mul_(scale[:, None, None, None])
            conv.bias = nn.Parameter(bn.bias - bn.running_mean * scale)
            setattr(parent, bn_name, nn.Identity())
    return net


def _blocks(body: nn.Module) -> list[nn.Module]:
    return [b for layer in (body.layer1, body.layer2, body.layer3, body.layer4) for b in layer]


class FusedConv(nn.Module):
    """conv + folded BN (+ ReLU, or + residual add + ReLU) as ONE oneDNN primitive whose weight is
    reordered once, at load, for `input_size`. (B, C, H, W) channels_last -> same. The op is the
    one torch.compile's CPU backend emits for this fusion (torch.ops.mkldnn._convolution_pointwise)."""

    def __init__(self, conv: nn.Conv2d, relu: bool, dtype: torch.dtype, input_size: list[int]) -> None:
        super().__init__()
        self.args = (list(conv.padding), list(conv.stride), list(conv.dilation), conv.groups)
        weight = conv.weight.detach().to(dtype).to_mkldnn()
        self.weight = torch._C._nn.mkldnn_reorder_conv2d_weight(weight, *self.args, input_size)
        self.bias = conv.bias.detach().to(dtype)
        self.attr = "relu" if relu else "none"

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        op = torch.ops.mkldnn._convolution_pointwise
        if residual is None:
            return op(x, self.weight, self.bias, *self.args, self.attr, [], "")
        return op.binary(x, residual, self.weight, self.bias, *self.args, "add", 1.0, "relu", [], "")


class FusedBlock(nn.Module):
    """A BasicBlock / Bottleneck, each conv fused; the last one also adds the identity and ReLUs."""

    def __init__(self, block: nn.Module, dtype: torch.dtype, sizes: dict[nn.Module, list[int]]) -> None:
        super().__init__()
        convs = [block.conv1, block.conv2] + ([block.conv3] if hasattr(block, "conv3") else [])
        self.convs = nn.ModuleList(FusedConv(c, i < len(convs) - 1, dtype, sizes[c]) for i, c in enumerate(convs))
        down = block.downsample[0] if block.downsample is not None else None
        self.down = None if down is None else FusedConv(down, False, dtype, sizes[down])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.down is None else self.down(x)
        for conv in self.convs[:-1]:
            x = conv(x)
        return self.convs[-1](x, identity)


# -- padding reuse: which columns each layer must compute ------------------------------------------
@dataclass(frozen=True)
class Geometry:
    """A conv/pool along the time (last) axis: output column j reads input columns
    [stride*j - padding, stride*j - padding + kernel)."""

    kernel: int
    stride: int
    padding: int

    def varying(self, c: int) -> int:
        """Output columns that may read one of input columns [0, c): the rest read padding only."""
        return (c - 1 + self.padding) // self.stride + 1

    def needs(self, c: int) -> int:
        """Input columns [0, n) that output columns [0, c) read (n may exceed the input's width)."""
        return self.stride * (c - 1) - self.padding + self.kernel

    def reach(self, w: int) -> int:
        """The narrowest input whose output is at least `w` columns wide."""
        return self.stride * (w - 1) + self.kernel - 2 * self.padding

    def width(self, w: int) -> int:
        """Output width for an input `w` columns wide."""
        return (w + 2 * self.padding - self.kernel) // self.stride + 1


def _geometry(m: nn.Module) -> Geometry:
    k, s, p = (v if isinstance(v, int) else v[-1] for v in (m.kernel_size, m.stride, m.padding))
    return Geometry(k, s, p)


def layer_paths(body: nn.Module) -> list[list[list[Geometry]]]:
    """Each engine layer (stem conv, max pool, every block) as its parallel conv paths."""
    layers = [[[_geometry(body.conv1)]], [[_geometry(body.maxpool)]]]
    for b in _blocks(body):
        convs = [b.conv1, b.conv2] + ([b.conv3] if hasattr(b, "conv3") else [])
        down = [_geometry(b.downsample[0])] if b.downsample is not None else [Geometry(1, 1, 0)]
        layers.append([[_geometry(c) for c in convs], down])
    return layers


@dataclass(frozen=True)
class ReusePlan:
    """Per engine layer i: it reads `in_width[i]` input columns and writes `out_width[i]`, of which
    the first `varying[i]` can differ between clips (the rest are copied from the template). Before
    layer i its input is extended with template columns when `in_width[i]` exceeds what the layer
    before wrote. `full_width[i]`: the layer's output width in the plain network."""

    content: int
    in_width: tuple[int, ...]
    out_width: tuple[int, ...]
    varying: tuple[int, ...]
    full_width: tuple[int, ...]

    def column_fraction(self, costs: list[float]) -> float:
        """Computed / full output columns, weighted by each layer's `costs` (e.g. FLOPs)."""
        done = sum(c * o / f for c, o, f in zip(costs, self.out_width, self.full_width))
        return done / sum(costs)


def plan_reuse(paths: list[list[list[Geometry]]], input_width: int, content: int) -> ReusePlan:
    """Column windows for an input whose columns from `content` on are the shared padding.

    Layer i must read at least `needs[i]` columns for its varying outputs to be exact (the window's
    right edge is zero-padded where the real input goes on, which only corrupts outputs past the
    varying ones: those are overwritten from the template). An extension (template columns appended
    to an activation) copies the whole activation, so it happens only where a run of
    width-preserving layers (stride 1) begins, once, to the widest window the run and the strided
    layer after it need; the other layers get their window by computing a few more columns."""

    def compose(path: list[Geometry], c: int, fn: str) -> int:
        for g in (path if fn not in ("needs", "reach") else reversed(path)):
            c = getattr(g, fn)(c)
        return c

    n = len(paths)
    full, varying, w, c = [], [], input_width, content
    for layer in paths:
        widths = {compose(p, w, "width") for p in layer}
        if len(widths) != 1:      # a bug in the geometry, never an input: raised even under -O
            raise RuntimeError(f"plan_reuse: block paths disagree on the output width ({sorted(widths)})")
        w = widths.pop()
        c = min(max(compose(p, c, "varying") for p in layer), w)
        full.append(w)
        varying.append(c)
    full_in = [input_width] + full[:-1]
    needs = [min(max(compose(p, v, "needs") for p in layer), fi)
             for layer, v, fi in zip(paths, varying, full_in)]
    preserving = [all(compose(p, 64, "width") == 64 for p in layer) for layer in paths]
    run_start = [preserving[i] and (i == 0 or not preserving[i - 1]) for i in range(n)]
    # Backward: the input window each layer needs. `reach` is the smallest input whose output is at
    # least a given width (layer i's output must cover layer i+1's window unless an extension sits
    # between them).
    want = [0] * n
    i = n - 1
    while i >= 0:
        j = i
        while preserving[j] and j > 0 and preserving[j - 1]:
            j -= 1                                  # layers j..i: one width-preserving run
        after = i + 1 < n and not run_start[i + 1]
        need = max(needs[j:i + 1] + ([want[i + 1]] if after else []))
        if not preserving[i] and after:             # (j == i here)
            need = max(needs[i], compose(paths[i][0], want[i + 1], "reach"))
        for k in range(j, i + 1):
            want[k] = min(need, full_in[k])
        i = j - 1
    # Forward: each layer reads what the one before wrote, widened (extended) only at a run start.
    in_w, out_w = [want[0]], []
    for i, layer in enumerate(paths):
        if i:
            in_w.append(min(max(want[i], out_w[-1]), full_in[i]) if run_start[i] else out_w[-1])
        if in_w[i] < needs[i]:
            raise RuntimeError(f"plan_reuse: layer {i} would read past its window ({in_w[i]} < {needs[i]})")
        out_w.append(compose(layer[0], in_w[i], "width"))
    return ReusePlan(content, tuple(in_w), tuple(out_w), tuple(varying), tuple(full))


# -- the engine ------------------------------------------------------------------------------------
def engine_layers(body: nn.Module) -> list[nn.Module]:
    """A (folded) body as the engine's layers: stem (conv + ReLU), max pool, every block. On an
    unfolded body the stem's BN is skipped: only for shapes and FLOP counts."""
    return [nn.Sequential(body.conv1, nn.ReLU()), body.maxpool, *_blocks(body)]


def _conv_input_sizes(body: nn.Module, x: torch.Tensor, windows: list[int] | None) -> dict[nn.Module, list[int]]:
    """Input size of every conv when the plain `body` runs on `x` (optionally resized to each
    layer's column window): oneDNN packs each weight for its input size."""
    sizes: dict[nn.Module, list[int]] = {}
    hooks = [m.register_forward_pre_hook(lambda m, a: sizes.__setitem__(m, list(a[0].shape)))
             for m in body.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        for i, layer in enumerate(engine_layers(body)):
            if windows is not None:
                w = windows[i]
                x = x[..., :w] if x.shape[-1] >= w else nn.functional.pad(x, (0, w - x.shape[-1]))
            x = layer(x)
    for h in hooks:
        h.remove()
    return sizes


def _fused_layers(body: nn.Module, dtype: torch.dtype, sizes: dict[nn.Module, list[int]]) -> nn.ModuleList:
    return nn.ModuleList([FusedConv(body.conv1, True, dtype, sizes[body.conv1]), body.maxpool,
                          *(FusedBlock(b, dtype, sizes) for b in _blocks(body))])


class OneDnnNet(nn.Module):
    """OrcaNet with BN folded and every conv (+ReLU, +residual) fused into one oneDNN primitive,
    channels_last, in `dtype`; head dense float32. (B, C, H, W) float32 -> logits (B, classes).

    pad_input: (1, C, H, W) a network input that is padding from column `content` on (what every
    clip's input is past its frames); with both given, batches whose columns from `content` on
    equal it run with padding reuse (module docstring), others run whole.
    """

    def __init__(self, net: OrcaNet, dtype: torch.dtype, example: torch.Tensor,
                 pad_input: torch.Tensor | None = None, content: int | None = None) -> None:
        super().__init__()
        body = fold_batchnorm(net).body
        self.layers = _fused_layers(body, dtype, _conv_input_sizes(body, example, None))
        self.head, self.dtype = net.head, dtype
        self.plan: ReusePlan | None = None
        if pad_input is None or content is None or not 0 < content < pad_input.shape[-1]:
            return
        plan = plan_reuse(layer_paths(body), pad_input.shape[-1], content)
        if plan.in_width[0] >= pad_input.shape[-1]:
            return                              # padding too narrow to save anything
        self.plan, self.content = plan, content
        self.pad_tail = pad_input[..., content:].clone()
        self.reuse_layers = _fused_layers(body, dtype, _conv_input_sizes(body, example, list(plan.in_width)))
        # Template columns each layer's output is completed with: up to the next layer's window.
        targets = list(plan.in_width[1:]) + [plan.full_width[-1]]
        self.tails = []
        with torch.inference_mode():
            t = self._prepare(pad_input)
            for layer, v, target in zip(self.layers, plan.varying, targets):
                t = layer(t)
                self.tails.append(t[..., v:target].contiguous(memory_format=torch.channels_last))

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(self.dtype).contiguous(memory_format=torch.channels_last)

    def reuses(self, x: torch.Tensor) -> bool:
        """True when `x` (B, C, H, W) is padding, exactly, from column `content` on."""
        return self.plan is not None and bool((x[..., self.content:] == self.pad_tail).all())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.reuses(x):
            x = self._prepare(x)
            for layer in self.layers:
                x = layer(x)
            return self.head(x.float())
        plan = self.plan
        x = self._prepare(x[..., :plan.in_width[0]])
        for layer, v, tail in zip(self.reuse_layers, plan.varying, self.tails):
            x = layer(x)
            if x.shape[-1] == v + tail.shape[-1]:
                x[..., v:] = tail                   # overwrite the edge-corrupted columns
            else:                                   # extend the window with template columns
                wide = torch.empty(*x.shape[:-1], v + tail.shape[-1], dtype=x.dtype,
                                   memory_format=torch.channels_last)
                wide[..., :v] = x[..., :v]
                wide[..., v:] = tail
                x = wide
        return self.head(x.float())
