"""Train an OrcaHello-shaped ResNet50 on synthetic clips: a stand-in for production's real weights.

    python -m bench.train --out build/bench/resnet50-trained [--epochs N] [--seed S] [--threads T]

`make bench` asks how often the `fast` (bf16) profile agrees with fp32. On random weights that
question has no answer worth having (rounding the *input* to bf16 already flips 4 % of decisions),
so this trains the same network the way `convert/fixture.py` trains the fixture learner: labelled
2 s clips from `orcaport.parity.testaudio.training` (train: the fixture's training seed; held out: its test seed), plain
torch with fastai's `fit_one_cycle` recipe (AdamW + one-cycle LR/momentum, batch 16, BN in train
mode) from torchvision's zero_init_residual init, fp32 throughout -- training in bf16 would bias
the very agreement the bench measures.

Shapes: clip audio (96000,) float64 at 48 kHz -> int16 PCM (96000, 1) -> the runtime frontend
(`frontend_stages(...)["input"]`, then the artifact's normalization, as `Detector.batch_inputs`)
-> (1, 256, 312) float32 -> OrcaNet(resnet50) -> logits (2,) -> P(positive).
Output (atomic: staged in a scratch sibling, then renamed): `out`/model.safetensors + config.json,
written by `bench.models.write_model_folder`, as the random one is. Prints one `RESULT {json}` line.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from bench.models import corpus_files, resnet50_config, write_model_folder
from orcaport.model.pipeline import normalize
from orcaport.model.audio import PcmAudio
from orcaport.model.config import ModelConfig
from orcaport.model.network import OrcaNet
from orcaport.model.pipeline import frontend_stages
from orcaport.parity.testaudio.training import make_training_set

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "reference_outputs" / "corpus"
RESULT_MARK = "RESULT "

SAMPLE_RATE = 48_000
# convert/fixture.py's seeds (SEED = 20261121: train SEED, valid SEED + 1, test SEED + 2); that
# module imports the legacy env, so they are repeated here. Examples are seeded per index, so the
# first N of a split are the fixture's first N clips whatever N is.
DATA_SEED = 20261121
TRAIN_SEED, HELD_OUT_SEED = DATA_SEED, DATA_SEED + 2
# Budget: one fp32 fwd+bwd of batch 16 took 8-10.6 s on one thread of this shared 2-CPU machine
# (~40 GFLOP per clip); the fixture's 120+120 training clips x 3 epochs = 45 steps ~ 6-7 min,
# under the 8 min asked for. Held out: the fixture's whole test split.
TRAIN_PER_CLASS, HELD_OUT_PER_CLASS = 120, 40
EPOCHS = 3
MAX_LR = 3e-3                     # the fixture's (fit_one_cycle's usual from-scratch value)
BATCH_SIZE = 16
WEIGHT_DECAY = 1e-2               # fastai v1's default wd, decoupled (true_wd) = AdamW
# One thread measured faster than two here (10.6 s vs 17-19 s per step: the other CPU is busy
# with someone else's timings), and fixes the reduction order, so reruns give the same weights.
THREADS = 1
HIST_EDGES = (0.0, 0.1, 0.4, 0.6, 0.9)     # bins [0,.1) [.1,.4) [.4,.6) [.6,.9) [.9,1]
NOTE = "trained on synthetic clips for make bench only"


def source_stand_in(seed: int) -> str:
    """Stands in for a source pickle's sha256 (pinned in both config.json and the weights)."""
    return f"bench-trained-resnet50-seed{seed}"


def trained_config(seed: int, epochs: int, per_class: int) -> ModelConfig:
    """resnet50_config() with this run's provenance (recipe only: no timings, bytes stay stable)."""
    cfg = resnet50_config()
    return dataclasses.replace(cfg, provenance={
        "source_sha256": source_stand_in(seed), "note": NOTE,
        "training": {"data_seeds": [TRAIN_SEED, HELD_OUT_SEED], "clips_per_class": per_class,
                     "epochs": epochs, "max_lr": MAX_LR, "batch_size": BATCH_SIZE, "torch_seed": seed}})


def clip_input(audio: np.ndarray, frontend: Any) -> torch.Tensor:
    """One synthetic clip -> the detector's un-normalized input. (N,) float64 -> (1, n_mels, width).

    Quantized to int16 as convert/fixture.py writes its WAVs (and as the detector then decodes
    them); the frontend is the runtime's own replay of legacy's."""
    pcm = np.clip(np.round(np.asarray(audio) * 32767.0), -32768, 32767).astype("<i2")
    return frontend_stages(PcmAudio(np.ascontiguousarray(pcm[:, None]), SAMPLE_RATE, 2), frontend)["input"]


def make_inputs(seed: int, per_class: int, config: ModelConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """`per_class` positives + negatives from `make_training_set(seed, ...)`, through `config`'s
    frontend and normalization. -> x (2 * per_class, 1, n_mels, width) float32, y (2 * per_class,)
    int64 class indices into `config.classes`."""
    classes = config.classes
    clips = make_training_set(seed, per_class, per_class, seconds=2.0, sample_rate=SAMPLE_RATE)
    x = normalize(torch.stack([clip_input(a, config.frontend) for a, _ in clips]), config.normalization)
    return x, torch.tensor([classes.index(label) for _, label in clips], dtype=torch.int64)


def init_weights(net: OrcaNet) -> OrcaNet:
    """torchvision's ResNet init with `zero_init_residual` (its reference recipe; fastai v2's
    xresnet does the same) for the body, fastai's `apply_init(head, kaiming_normal_)` for the head.
    Zeroing each block's last BN scale starts the ResNet50 as a shallow net: with a plain init,
    36 steps left it at 55 % held-out accuracy (measured), with it the short budget trains."""
    for m in net.body.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(getattr(m, "bn3", None), nn.BatchNorm2d):   # a bottleneck block (model/bodies.py)
            nn.init.zeros_(m.bn3.weight)
    for m in net.head.modules():
        if isinstance(m, nn.Linear):
            nn.init.kaiming_normal_(m.weight)
            nn.init.zeros_(m.bias)
    return net


def fit_one_cycle(net: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, max_lr: float,
                  batch_size: int, generator: torch.Generator,
                  progress: Callable[[int, float], None] | None = None) -> list[float]:
    """fastai v1 `fit_one_cycle` in plain torch: AdamW(betas=(0.95, 0.99), wd), OneCycleLR
    (30 % warm-up from max_lr/25, cosine down to max_lr/25e4, beta1 cycled 0.95 -> 0.85 -> 0.95),
    shuffled batches with the last partial one dropped (BN needs > 1 item). -> loss per step."""
    steps = len(x) // batch_size
    opt = torch.optim.AdamW(net.parameters(), lr=max_lr, betas=(0.95, 0.99), weight_decay=WEIGHT_DECAY)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr, total_steps=epochs * steps, pct_start=0.3,
                                                base_momentum=0.85, max_momentum=0.95)
    net.train()
    losses = []
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for s in range(steps):
            idx = order[s * batch_size:(s + 1) * batch_size].to(x.device)
            batch = x[idx].contiguous(memory_format=torch.channels_last)  # ~10 % faster on oneDNN
            loss = nn.functional.cross_entropy(net(batch), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
            if progress is not None:
                progress(len(losses), losses[-1])
    return losses


def positive_probs(net: nn.Module, x: torch.Tensor, positive: int, batch: int = 16) -> np.ndarray:
    """Eval-mode fp32 P(positive). (N, C, H, W) -> (N,) float64."""
    net.eval()
    with torch.inference_mode():
        out = [torch.softmax(net(x[s:s + batch]), 1)[:, positive] for s in range(0, len(x), batch)]
    return torch.cat(out).double().cpu().numpy()


def histogram(probs: np.ndarray) -> dict[str, float]:
    """Fraction of `probs` per HIST_EDGES bin (the last bin includes 1.0)."""
    edges = list(HIST_EDGES) + [math.inf]
    return {f"[{lo:g},{min(hi, 1):g}{']' if hi == math.inf else ')'}": float(np.mean((probs >= lo) & (probs < hi)))
            for lo, hi in zip(edges, edges[1:])}


def verify_folder(out: Path) -> dict[str, Any]:
    """Load `out` as `make bench` will and detect on the corpus's smallest file (by bytes)."""
    from orcaport.model.detector import Detector

    wav = min(corpus_files(CORPUS), key=lambda p: p.stat().st_size)
    result = Detector.from_folder(out).detect(wav)
    return {"file": wav.name, "clips": result.clips, "clip_confidence": result.clip_confidence.tolist()}


def train_resnet50(out: Path, seed: int = 0, epochs: int = EPOCHS, per_class: int = TRAIN_PER_CLASS,
                   held_out_per_class: int = HELD_OUT_PER_CLASS, threads: int = THREADS,
                   verify: bool = True, device: str = "cpu") -> dict[str, Any]:
    """Train, evaluate on held-out clips, write `out`, check it loads. -> the RESULT dict.
    device "cuda": the same recipe on a GPU (other weights than the CPU's: another reduction order)."""
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    cfg = trained_config(seed, epochs, per_class)
    t0 = time.perf_counter()
    x, y = (t.to(device) for t in make_inputs(TRAIN_SEED, per_class, cfg))
    hx, hy = make_inputs(HELD_OUT_SEED, held_out_per_class, cfg)
    hx = hx.to(device)
    data_s = time.perf_counter() - t0
    net = init_weights(OrcaNet(cfg.architecture)).to(device, memory_format=torch.channels_last)
    t0 = time.perf_counter()
    total = epochs * (len(x) // BATCH_SIZE)

    def progress(step: int, loss: float) -> None:     # stderr: stdout holds only the RESULT line
        print(f"step {step}/{total} loss {loss:.4f} {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)

    losses = fit_one_cycle(net, x, y, epochs, MAX_LR, BATCH_SIZE, torch.Generator().manual_seed(seed), progress)
    train_s = time.perf_counter() - t0
    probs = positive_probs(net, hx, cfg.positive_index)
    pred = (probs > 0.5).astype(np.int64)    # the detector's local rule: confidence > threshold
    truth = hy.numpy() == cfg.positive_index
    y = y.cpu()
    seen = torch.arange(0, len(x), max(len(x) // 32, 1))[:32]   # 32 training clips, both labels
    seen_acc = float(np.mean((positive_probs(net, x[seen], cfg.positive_index) > 0.5)
                             == (y[seen].numpy() == cfg.positive_index)))
    digest = write_model_folder(net.cpu().to(memory_format=torch.contiguous_format), cfg, out)
    return {"out": str(out), "train_s": round(train_s, 1), "data_s": round(data_s, 1), "epochs": epochs,
            "steps": len(losses), "train_clips": len(x), "threads": threads, "seed": seed,
            "device": device, "first_loss": losses[0], "last_epoch_mean_loss": float(np.mean(losses[-(len(x) // BATCH_SIZE):])),
            "train_subset_accuracy": seen_acc,
            "held_out_clips": len(hx), "held_out_accuracy": float(np.mean(pred == truth)),
            "mean_prob_positive_clips": float(probs[truth].mean()),
            "mean_prob_negative_clips": float(probs[~truth].mean()),
            "held_out_prob_hist": histogram(probs), "weights_sha256": digest,
            "verify": verify_folder(out) if verify else None}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.train", description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="model folder to write")
    ap.add_argument("--epochs", type=int, default=EPOCHS)
    ap.add_argument("--seed", type=int, default=0, help="torch seed (init, shuffling, dropout)")
    ap.add_argument("--per-class", type=int, default=TRAIN_PER_CLASS, help="training clips per class")
    ap.add_argument("--threads", type=int, default=THREADS, help="torch intra-op threads")
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    args = ap.parse_args(argv)
    out = train_resnet50(args.out, args.seed, args.epochs, args.per_class, threads=args.threads,
                         device=args.device)
    print(RESULT_MARK + json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
