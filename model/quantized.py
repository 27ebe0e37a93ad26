"""The int8 network: the body quantized (torch FX post-training static quantization, x86/fbgemm
engine), the head fp32. One builder for `orcaport detect --arithmetic int8`, `make evaluate`'s int8
column and bench/int8.py, so they all run the same network.

Why this shape:
- Only the body is quantized: the head is < 1 % of the FLOPs, and its concat pool would join max and
  avg activations quantized with different scales (torch warns of large inaccuracies).
- Quantizing a network needs its activations' ranges, seen on real inputs ("calibration": FX's
  HistogramObservers). Their state (min, max, histogram per observer) is all `convert_fx` reads
  (`calculate_qparams`); the weights' observers see only the weights. So storing that state
  (model/calibration.py) and loading it into a freshly prepared body rebuilds the same quantized
  network, with no audio at run time.
- The quantized body is batch-invariant (integer kernels; checked bit for bit), the fp32 head is not
  (its GEMM rounds differently per batch size: 1e-6), so the head runs one clip at a time: every
  way of batching a file (detect, the feeder, evaluate) returns the same bits.

Shapes: body input (B, C, n_mels, width) float32 normalized; output logits (B, classes) float32.
"""

from __future__ import annotations

import warnings
from typing import Iterable

import torch
from torch import nn

from orcaport.model.network import OrcaNet

ENGINES = ("x86", "fbgemm")        # server-CPU int8 engines (the same default qconfig: reduce_range)
OBSERVER_MARK = "activation_post_process"
CALIBRATION_BATCH = 4              # clips per observer call; the calls' order is part of the state


def supported_engines() -> list[str]:
    """The quantized engines this torch offers (tests replace this to stand for another CPU)."""
    return list(torch.backends.quantized.supported_engines)


def quantized_engine() -> str | None:
    """The engine the int8 body runs on here: x86 (fbgemm + oneDNN VNNI kernels), else fbgemm; None
    where torch has neither (ARM/macOS wheels offer qnnpack only, a different qconfig)."""
    have = supported_engines()
    return next((e for e in ENGINES if e in have), None)


def _qconfig_mapping(engine: str) -> object:
    from torch.ao.quantization import get_default_qconfig_mapping

    return get_default_qconfig_mapping(engine)


def prepare_body(net: OrcaNet, engine: str, example: torch.Tensor) -> nn.Module:
    """The fp32 body with observers (torch.fx GraphModule); `example`: (1, C, H, W)."""
    from torch.ao.quantization.quantize_fx import prepare_fx

    torch.backends.quantized.engine = engine
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")              # FX quantization's deprecation notice
        return prepare_fx(net.body.eval(), _qconfig_mapping(engine), example_inputs=(example,))


def observe(prepared: nn.Module, inputs: Iterable[torch.Tensor]) -> None:
    """Run calibration inputs (each (B, C, H, W), one clip or many) through the observers, in order,
    CALIBRATION_BATCH clips at a time (a HistogramObserver call is slow: fewer, fuller calls)."""
    x = torch.cat(list(inputs))
    with torch.inference_mode():
        for s in range(0, len(x), CALIBRATION_BATCH):
            prepared(x[s:s + CALIBRATION_BATCH])


def observer_state(prepared: nn.Module) -> dict[str, torch.Tensor]:
    """The activation observers' buffers (what convert_fx's calculate_qparams reads), as plain tensors."""
    return {k: v.detach().clone().contiguous() for k, v in prepared.state_dict().items() if OBSERVER_MARK in k}


class QuantizedNet(nn.Module):
    """int8 body + fp32 head: (B, C, H, W) float32 -> logits (B, classes) float32."""

    def __init__(self, body: nn.Module, head: nn.Module, engine: str) -> None:
        super().__init__()
        self.body, self.head, self.engine = body, head.eval(), engine

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        torch.backends.quantized.engine = self.engine    # process-wide: another builder may have changed it
        features = self.body(x.contiguous())
        return torch.cat([self.head(features[i:i + 1]) for i in range(len(features))])


def convert(net: OrcaNet, prepared: nn.Module, engine: str) -> QuantizedNet:
    from torch.ao.quantization.quantize_fx import convert_fx

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        body = convert_fx(prepared)
    return QuantizedNet(body, net.head, engine)


class ObserverMismatch(ValueError):
    """The stored observer state does not fit this torch's prepared graph (names or shapes)."""


def build(net: OrcaNet, state: dict[str, torch.Tensor], engine: str, example: torch.Tensor) -> QuantizedNet:
    """The quantized network from stored observer state: deterministic, no calibration inputs.
    Raises ObserverMismatch when `state` was made for a differently traced graph (another torch)."""
    prepared = prepare_body(net, engine, example)
    want = set(observer_state(prepared))
    if want != set(state):
        raise ObserverMismatch(f"{len(set(state) ^ want)} observer buffers differ by name")
    try:
        prepared.load_state_dict(state, strict=False)
    except RuntimeError as e:
        raise ObserverMismatch(str(e).strip().splitlines()[0]) from None
    return convert(net, prepared, engine)


def calibrate(net: OrcaNet, inputs: list[torch.Tensor], engine: str) -> tuple[QuantizedNet, dict[str, torch.Tensor]]:
    """Observe `inputs` (normalized, each (B, C, H, W)); -> (the quantized network, the observer state
    that rebuilds it through `build`)."""
    prepared = prepare_body(net, engine, inputs[0][:1])
    observe(prepared, inputs)
    state = observer_state(prepared)
    return convert(net, prepared, engine), state
