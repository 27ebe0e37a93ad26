"""`make fixture`: train a small but real OrcaHello-style learner on synthetic hydrophone audio.

    python -m convert.fixture --out reference_outputs/fixture

Deterministic synthetic 2 s clips (SRKW-like calls over ship/sea noise vs. noise alone, from
`orcaport.parity.testaudio.training`) are written as 48 kHz 16-bit WAVs, loaded by fastai_audio with OrcaHello's exact
frontend config, and used to train `audio_learner(resnet18)`. Held-out accuracy is measured with
production's own per-item `learn.predict` on clips from a seed the training never saw. Outputs
(written atomically): model.pkl, model.pkl.sha256, fixture.json (the training report).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from convert.legacy import isolated_home, legacy_versions, patch_torchaudio_io, seed_everything
from convert.production import legacy_audio_config
from orcaport.model.config import FrontendConfig
from orcaport.model.fileio import sha256_file
from orcaport.parity.testaudio.training import make_training_set

SAMPLE_RATE = 48000          # the hydrophone format
CLIP_SECONDS = 2.0
SEED = 20261121
SPLITS = {"train": (SEED, 120, 120), "valid": (SEED + 1, 30, 30), "test": (SEED + 2, 40, 40)}
EPOCHS = 6
MAX_LR = 3e-3
BATCH_SIZE = 16


def write_split(root: Path, name: str, seed: int, n_pos: int, n_neg: int) -> int:
    clips = make_training_set(seed, n_pos, n_neg, seconds=CLIP_SECONDS, sample_rate=SAMPLE_RATE)
    for i, (audio, label) in enumerate(clips):
        folder = root / name / label
        folder.mkdir(parents=True, exist_ok=True)
        pcm = np.clip(np.round(np.asarray(audio) * 32767.0), -32768, 32767).astype(np.int16)
        sf.write(str(folder / f"{name}_{i:04d}.wav"), pcm, SAMPLE_RATE, subtype="PCM_16")
    return len(clips)


def evaluate(learn: Any, root: Path, config: Any) -> dict[str, Any]:
    """Production's per-item `learn.predict` on the held-out test split."""
    from audio.data import AudioList

    test = AudioList.from_folder(root / "test", config=config).split_none().label_from_folder()
    labels = [str(y) for y in test.train.y]
    pos = list(learn.data.classes).index("positive")
    probs = [float(learn.predict(x)[2][pos]) for x in test.train.x]
    pred = ["positive" if p > 0.5 else "negative" for p in probs]
    tp = sum(p == t == "positive" for p, t in zip(pred, labels))
    tn = sum(p == t == "negative" for p, t in zip(pred, labels))
    return {"n": len(labels), "accuracy": (tp + tn) / len(labels),
            "true_positive": tp, "true_negative": tn,
            "false_positive": sum(p == "positive" != t for p, t in zip(pred, labels)),
            "false_negative": sum(p == "negative" != t for p, t in zip(pred, labels)),
            "mean_prob_positive_clips": float(np.mean([p for p, t in zip(probs, labels) if t == "positive"])),
            "mean_prob_negative_clips": float(np.mean([p for p, t in zip(probs, labels) if t == "negative"]))}


def train_fixture(out_dir: Path, work: Path, epochs: int = EPOCHS) -> dict[str, Any]:
    patch_torchaudio_io()
    from audio.data import AudioList
    from audio.learner import audio_learner
    from fastai.metrics import accuracy
    from fastai.vision import models

    seed_everything(SEED)
    sizes = {name: write_split(work / "data", name, *args) for name, args in SPLITS.items()}
    fe = FrontendConfig()
    config = legacy_audio_config(fe)
    data = (AudioList.from_folder(work / "data", config=config)
            .filter_by_func(lambda p: p.parent.parent.name in ("train", "valid"))
            .split_by_folder(train="train", valid="valid").label_from_folder()
            .databunch(bs=BATCH_SIZE, num_workers=0))
    learn = audio_learner(data, base_arch=models.resnet18, pretrained=False, metrics=[accuracy])
    t0 = time.time()
    learn.fit_one_cycle(epochs, MAX_LR)
    train_s = time.time() - t0
    valid_loss, valid_acc = (float(v) for v in learn.validate())
    held_out = evaluate(learn, work / "data", legacy_audio_config(fe))
    learn.export(work / "model.pkl")
    report = {
        "body": "resnet18", "classes": [str(c) for c in learn.data.classes], "epochs": epochs,
        "max_lr": MAX_LR, "batch_size": BATCH_SIZE, "seed": SEED, "sample_rate": SAMPLE_RATE,
        "clips": sizes, "valid_loss": valid_loss, "valid_accuracy": valid_acc,
        "held_out": held_out, "train_seconds": round(train_s, 1),
        "legacy_versions": legacy_versions(),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    pkl_sha = sha256_file(work / "model.pkl")
    staged = {"model.pkl": (work / "model.pkl").read_bytes(),
              "model.pkl.sha256": f"{pkl_sha}  model.pkl\n".encode(),
              "fixture.json": (json.dumps(report, indent=2, sort_keys=True) + "\n").encode()}
    from convert.cli import write_atomically

    write_atomically(out_dir, staged)
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m convert.fixture", description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--epochs", type=int, default=EPOCHS)
    ap.add_argument("--keep-work", type=Path, help="keep the generated clips and caches here")
    args = ap.parse_args(argv)
    work = args.keep_work or Path(tempfile.mkdtemp(prefix="orcaport-fixture-"))
    try:
        with isolated_home(work / "home"):
            report = train_fixture(args.out, work, args.epochs)
    finally:
        if args.keep_work is None:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({k: report[k] for k in ("valid_accuracy", "held_out", "train_seconds")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
