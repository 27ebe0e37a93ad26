"""Benchmark inputs: an OrcaHello-shaped ResNet50 model folder with random weights, analytic
FLOP counts, and corpus helpers. Clean env only (no fastai).

The random ResNet50 has OrcaHello's layout (1-channel conv1, concat pool, head 4096 -> 512 -> 2)
and random conv/linear weights; its BatchNorm statistics are *calibrated* on real frontend inputs
(train-mode passes with a cumulative average), so activations stay in a realistic range. It is the
agreement table's conditioning probe: so sensitive that rounding its input to bf16 flips
decisions. Speed and agreement figures use the trained stand-in (bench/train.py).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

import numpy as np
import soundfile as sf
import torch
from torch import nn

from orcaport.model.config import ArchitectureConfig, HeadConfig, ModelConfig
from orcaport.model.detector import Detector
from orcaport.model.fileio import replace_folder, sha256_file
from orcaport.model.network import OrcaNet
from orcaport.model.onednn import ReusePlan, engine_layers
from orcaport.model.weights import save_network_state
from orcaport.model.spectrogram import input_width

RESNET50_SOURCE = "bench-random-resnet50-seed0"   # stands in for a source pickle's sha256
SEED = 0


def resnet50_config() -> ModelConfig:
    """OrcaHello production's network shape with the fixture's frontend and aggregation."""
    return ModelConfig(
        architecture=ArchitectureConfig(body="resnet50", in_channels=1,
                                        head=HeadConfig(lin_ftrs=(4096, 512, 2))),
        classes=("negative", "positive"), positive_index=1,
        provenance={"source_sha256": RESNET50_SOURCE,
                    "note": "random weights, BN calibrated on the corpus: for `make bench` only"})


def write_random_resnet50(out: Path, calibration: torch.Tensor, batch: int = 16) -> Path:
    """Write model.safetensors + config.json for a random ResNet50 to `out`.

    calibration: (N, 1, n_mels, width) frontend inputs used to set the BN running statistics.
    """
    cfg = resnet50_config()
    torch.manual_seed(SEED)
    net = OrcaNet(cfg.architecture)
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None                     # cumulative average over all batches
    net.train()
    with torch.no_grad():
        for start in range(0, len(calibration) - 1, batch):
            net(calibration[start:start + batch])
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.momentum = 0.1
    write_model_folder(net, cfg, out)
    return out


def write_model_folder(net: OrcaNet, cfg: ModelConfig, out: Path) -> str:
    """model.safetensors + config.json (pinning the weights' sha256, as `make convert` writes
    them) into `out`, atomically: the folder is built in a scratch sibling and renamed in
    (model/fileio.py `replace_folder`). -> the weights' sha256."""
    digest = []

    def build(stage: Path) -> None:
        weights = save_network_state(net.eval().state_dict(), stage / "model.safetensors",
                                     metadata={"source_sha256": cfg.provenance["source_sha256"]})
        digest.append(sha256_file(weights))
        pinned = dataclasses.replace(cfg, provenance={**cfg.provenance, "weights_sha256": digest[0]})
        (stage / "config.json").write_text(pinned.to_json())
    replace_folder(out.resolve(), build)
    return digest[0]


def network_flops(arch: ArchitectureConfig, n_mels: int, width: int,
                  windows: Sequence[int] | None = None) -> int:
    """Multiply-adds x 2 of every Conv2d and Linear for one (1, C, n_mels, width) input; with
    `windows` (a padding-reuse plan's `in_width`), what the engine executes: each body layer on
    its column window only.

    Analytic: output shapes come from a forward pass on the `meta` device (no data, no compute),
    FLOPs from the layer formulas (conv: 2 * out_elems * C_in/groups * kh * kw; linear:
    2 * out_elems * in_features). BN, ReLU, pooling and adds are not counted (they are < 1 %).
    """
    # Built on the CPU (the body probes itself with a real tensor when it is made), then moved to
    # the meta device: the passes below move shapes only.
    net = OrcaNet(arch).eval().to("meta")
    total = 0

    def hook(m: nn.Module, _inp: tuple, out: torch.Tensor) -> None:
        nonlocal total
        if isinstance(m, nn.Conv2d):
            total += 2 * out.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
        elif isinstance(m, nn.Linear):
            total += 2 * out.numel() * m.in_features

    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            m.register_forward_hook(hook)
    with torch.no_grad():
        x = torch.empty(1, arch.in_channels, n_mels, width, device="meta")
        if windows is None:
            net(x)
        else:
            for layer, w in zip(engine_layers(net.body), windows):
                x = layer(torch.empty(*x.shape[:-1], w, device="meta"))
            net.head(x)
    return total


def reuse_plan(det: Detector) -> ReusePlan | None:
    """The padding-reuse plan `det`'s network runs with, if any."""
    return getattr(det.network, "plan", None)


def detector_flops(det: Detector, reused: bool = True) -> int:
    """FLOPs per clip `det`'s network executes: with its padding-reuse plan when it has one and the
    inputs were `reused` (padded the legacy way), else the whole network's."""
    fe, arch = det.frontend, det.artifact.config.architecture
    width = input_width(fe, fe.resample_to)
    plan = reuse_plan(det) if reused else None
    return network_flops(arch, fe.n_mels, width, plan.in_width if plan is not None else None)


def corpus_files(corpus: Path) -> list[Path]:
    """Corpus files long enough to detect on (>= 2 s), in corpus.json order."""
    import json

    names = [f["name"] for f in json.loads((corpus / "corpus.json").read_text())["files"]]
    return [corpus / n for n in names if sf.info(str(corpus / n)).duration >= 2.0]


def agreement(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    """Fraction of equal entries over several per-file decision arrays."""
    same = sum(int(np.sum(x == y)) for x, y in zip(a, b))
    return same / max(sum(len(x) for x in a), 1)
