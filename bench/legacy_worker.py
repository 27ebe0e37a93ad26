"""Legacy-env worker for `make bench`: time OrcaHello's real `FastAIModel.predict` on one file.

Runs inside .venvs/legacy (fastai 1.0.61 + fastai_audio 0.1), one subprocess per measurement so
its peak RSS (ru_maxrss) is its own. Prints one `RESULT {json}` line:
    {"times_s": [...], "clips": N, "confidence": [...rows...], "global_prediction": g,
     "threads": T, "peak_rss_mb": M}

Each repetition gets an empty fastai_audio cache: production sees every clip once (fresh temp file
names), so a warm cache would time a path production never runs. fastai_audio fixes its cache
folder at import (`AudioConfig.cache_dir = Path.home()/...`), hence HOME is set before importing it.

    python -m bench.legacy_worker --model fixture|resnet50 --wav FILE [--repeats N] [--threads T]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "reference_outputs" / "fixture"
RESULT_MARK = "RESULT "


def cpu_seconds() -> float:
    """User + system CPU time of this process: the work done, whatever else shares the CPUs."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def resnet50_learner(work: Path):
    """`audio_learner(models.resnet50)` as OrcaHello builds it (1-channel conv1, head 4096-512-2),
    random weights, on a throwaway two-class dataset; used directly, never exported."""
    import numpy as np
    import soundfile as sf
    import torch
    from audio.data import AudioList
    from audio.learner import audio_learner
    from fastai.vision import models

    from convert.production import legacy_audio_config
    from orcaport.model.config import FrontendConfig

    rng = np.random.default_rng(0)
    for split in ("train", "valid"):
        for label in ("negative", "positive"):
            folder = work / "data" / split / label
            folder.mkdir(parents=True)
            for i in range(2):
                sf.write(str(folder / f"{i}.wav"), (rng.standard_normal(96000) * 0.05).astype(np.float32),
                         48000, subtype="PCM_16")
    data = (AudioList.from_folder(work / "data", config=legacy_audio_config(FrontendConfig()))
            .split_by_folder().label_from_folder().databunch(bs=2, num_workers=0))
    torch.manual_seed(0)
    learn = audio_learner(data, base_arch=models.resnet50, pretrained=False)
    learn.model.eval()
    return learn


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.legacy_worker")
    ap.add_argument("--model", choices=("fixture", "resnet50"), required=True)
    ap.add_argument("--wav", type=Path, required=True)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1, help="untimed runs first (the first call is slower)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads; 0 = torch's default")
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    tmp = Path(tempfile.mkdtemp(prefix="orcaport-bench-legacy-"))
    try:
        os.environ["HOME"] = str(tmp / "home")          # before fastai_audio is imported
        import soundfile as sf
        import torch

        from convert.legacy import load_trusted_learner, patch_torchaudio_io
        from convert.production import predict_file
        from orcaport.model.config import ModelConfig

        if args.threads:
            torch.set_num_threads(args.threads)
        patch_torchaudio_io()
        cfg = ModelConfig.load(FIXTURE / "config.json")   # same frontend/aggregation for both models
        learn = (load_trusted_learner(FIXTURE / "model.pkl") if args.model == "fixture"
                 else resnet50_learner(tmp))
        cache = tmp / "home" / ".fastai"
        times, cpu, result = [], [], {}
        for i in range(args.repeats + args.warmup):
            shutil.rmtree(cache, ignore_errors=True)
            t0, c0 = time.perf_counter(), cpu_seconds()
            result = predict_file(learn, args.wav, tmp / "clips", cfg.frontend, cfg.aggregation)
            if i >= args.warmup:
                times.append(time.perf_counter() - t0)
                cpu.append(cpu_seconds() - c0)
        out = {"times_s": times, "cpu_s": cpu, "clips": len(result["clip_order"]),
               "audio_s": sf.info(str(args.wav)).duration, "confidence": result["confidence"],
               "local_prediction": result["local_prediction"],
               "global_prediction": result["global_prediction"], "threads": torch.get_num_threads(),
               "torch": torch.__version__,
               "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(RESULT_MARK + json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
