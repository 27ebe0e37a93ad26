"""`make bench-cuda`: the whole detector on a GPU over a folder of many hours (issue 15, GPU rows).

    python -m bench.cuda --out DIR [--hours 8] [--check-minutes 10] [--workers N]

One prepared run for a lent GPU machine (its time is scarce), in this order:
1. train the OrcaHello-shaped ResNet50 stand-in on the GPU (bench/train.py's recipe; the weights
   are this run's own: decision agreement is measured between CPU and GPU on the same weights);
2. write the folder: `hours` files of one hour (48 kHz mono 16-bit, streamed from disk by the
   detector) made of the synthetic training clips (both labels) in a seeded order per file, plus a
   check set of 3 files of `check_minutes`;
3. network alone on the GPU, per profile (clips/s of the ResNet50 without the frontend);
4. frontend alone: the worker processes' chunks, no GPU (clips/s the CPUs can feed);
5. the whole detector (model/feeder.py) over the folder, `legacy-exact` (fp32, TF32 off) and `fast`
   (fp16 autocast): clips/s, GPU memory peak; a warm-up on the check set first;
6. the check set on the CPU (legacy-exact) and on the GPU in both profiles: decision agreement,
   max |prob diff|.
`--legacy JSON` (made anywhere by `--export-legacy JSON` from the committed references) runs only
the parity step: the fixture on the GPU against legacy's own probabilities and decisions.
Writes DIR/cuda.json (atomically) with the card's name, the CPU model and flags; prints it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch

from bench.machine import cpu_name, lscpu
from bench.train import SAMPLE_RATE, TRAIN_SEED, train_resnet50
from orcaport.model.detector import Detector
from orcaport.model.feeder import CHUNK_CLIPS, WaveformChunks, detect_many, plan_chunks
from orcaport.model.fileio import write_json_atomically
from orcaport.model.spectrogram import input_width
from orcaport.parity.testaudio.training import training_example

POOL_PER_CLASS = 100         # distinct synthetic clips per label; the hours are seeded orders of them
HOUR_S = 3600


def cpu_facts() -> dict[str, Any]:
    facts = lscpu()
    return {"cpu": cpu_name(), "model": facts["model"], "cpus": len(os.sched_getaffinity(0)),
            "key_flags": facts["key_flags"]}


def _example(args: tuple[int, bool]) -> np.ndarray:
    i, positive = args
    audio = training_example(TRAIN_SEED + 7, i, positive, 2.0, SAMPLE_RATE)
    return np.clip(np.round(audio * 32767.0), -32768, 32767).astype("<i2")


def write_folder(folder: Path, hours: int, check_minutes: int, workers: int,
                 hour_s: int = HOUR_S) -> tuple[list[Path], list[Path]]:
    """-> (the hour files, the check files). Each file: seeded sequence of pool clips, 50 % positive."""
    folder.mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(workers) as pool:
        clips = list(pool.map(_example, [(i, pos) for pos in (True, False) for i in range(POOL_PER_CLASS)]))
    pool_audio = np.stack(clips)                                   # (2 * POOL, 96000) int16

    def write(path: Path, seconds: int, seed: int) -> Path:
        order = np.random.default_rng(seed).integers(0, len(pool_audio), seconds // 2)
        with sf.SoundFile(str(path), "w", samplerate=SAMPLE_RATE, channels=1, subtype="PCM_16") as f:
            for start in range(0, len(order), 300):
                f.write(pool_audio[order[start:start + 300]].reshape(-1))
        return path

    hour_files = [write(folder / f"hour_{k:02d}.wav", hour_s, 1000 + k) for k in range(hours)]
    check = [write(folder / f"check_{k}.wav", min(60 * check_minutes, hour_s), 2000 + k) for k in range(3)]
    return hour_files, check


def network_alone(det: Detector, batch: int, seconds: float = 5.0) -> dict[str, Any]:
    fe = det.frontend
    width = input_width(fe, fe.resample_to)
    x = torch.randn(batch, det.artifact.config.architecture.in_channels, fe.n_mels, width, device=det.device)
    sync = torch.cuda.synchronize if det.device == "cuda" else (lambda: None)
    with det.network_context():
        for _ in range(3):
            det.run_network(x)
        sync()
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            det.run_network(x)      # .cpu() of the probabilities: synchronizes each batch
            n += batch
        sync()
    return {"batch": batch, "clips_per_s": round(n / (time.perf_counter() - t0), 1)}


def frontend_alone(det: Detector, paths: list[Path], workers: int, limit_clips: int) -> dict[str, Any]:
    """The workers' chunks drained with no GPU in the loop: what the CPUs can feed."""
    from torch.utils.data import DataLoader

    _, chunks, _ = plan_chunks(paths, det.stream_bytes)
    chunks = chunks[:max(1, limit_clips // chunks[0].count)]
    loader = DataLoader(WaveformChunks(det, paths, chunks), batch_size=None, num_workers=workers,
                        prefetch_factor=4)
    t0, n = time.perf_counter(), 0
    for _, _, waves, error in loader:
        if error is not None:
            raise SystemExit(f"bench.cuda: {error}")
        n += len(waves)
    return {"workers": workers, "clips": n, "clips_per_s": round(n / (time.perf_counter() - t0), 1)}


def whole(det: Detector, paths: list[Path], workers: int) -> tuple[dict[str, Any], list]:
    cuda = det.device == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    results = []
    # fixed 256-clip chunks (throughput) as the committed GPU rows measured; detect_many's default
    # (the Detector's own batches, bit for bit a one-file run's) is for the CLI's results
    for path, d in detect_many(det, paths, workers, chunk=CHUNK_CLIPS):
        if isinstance(d, Exception):
            raise SystemExit(f"bench.cuda: {path}: {d}")
        results.append(d)
    wall = time.perf_counter() - t0
    clips = sum(r.clips for r in results)
    audio_s = sum(r.duration_s for r in results)
    return {"files": len(paths), "clips": clips, "audio_hours": round(audio_s / 3600, 2),
            "wall_s": round(wall, 1), "clips_per_s": round(clips / wall, 1),
            "x_realtime": round(audio_s / wall, 1),
            "hours_for_one_hydrophone_year": round(31_536_000 / (clips / wall) / 3600, 2),
            "gpu_memory_peak_mb": round(torch.cuda.max_memory_allocated() / 2**20) if cuda else None,
            "arithmetic": det.arithmetic.name, "why": det.arithmetic.reason}, results


def agreement(a: list, b: list) -> dict[str, Any]:
    local = np.concatenate([x.local_prediction for x in a]) == np.concatenate([y.local_prediction for y in b])
    return {"seconds": int(local.size), "local_agreement": float(local.mean()),
            "global_agreement": float(np.mean([x.global_prediction == y.global_prediction for x, y in zip(a, b)])),
            "max_abs_prob_diff": float(max(np.abs(x.clip_confidence - y.clip_confidence).max() for x, y in zip(a, b))),
            "positive_seconds": int(sum(x.positive_seconds for x in a))}


def export_legacy_probs(references: Path, corpus: Path, out: Path) -> Path:
    """The committed legacy references' per-clip P(positive) and decisions per corpus file, as a
    small JSON a GPU machine can take along (the references themselves are too big to carry)."""
    from orcaport.parity.references import load_references
    from orcaport.parity.run import load_tolerances

    refs = load_references(references)
    files = {}
    for path in sorted(corpus.glob("*.wav")):
        t = refs.file(path.name).tensors
        if "all/probs" not in t:            # legacy refused the file (shorter than a clip)
            continue
        files[path.name] = {"probs": t["all/probs"][:, 1].tolist(),
                            "local": t["aggregate/local_prediction"].astype(int).tolist(),
                            "global": int(t["aggregate/global_prediction"][0])}
    bound = load_tolerances(regime="cross_machine")[1]["probs"].atol
    write_json_atomically(out.parent, out.name, {"probs_atol_cross_machine": bound, "files": files})
    return out


def parity_vs_legacy(model: Path, corpus: Path, legacy: dict[str, Any], workers: int,
                     device: str = "cuda") -> dict[str, Any]:
    """The fixture on the GPU, each profile, against legacy's own outputs (the committed
    references, recorded on a CPU): max |P diff| against the cross-machine bound, decisions."""
    out = {"bound": legacy["probs_atol_cross_machine"]}
    paths = [corpus / name for name in legacy["files"]]
    for p in ("legacy-exact", "fast"):
        det = Detector.from_folder(model, profile=p, device=device)
        diffs, local_same, global_same, seconds = [], 0, 0, 0
        for path, d in detect_many(det, paths, workers, chunk=64):
            want = legacy["files"][path.name]
            diffs.append(float(np.abs(d.clip_confidence - np.asarray(want["probs"])).max()))
            local_same += int(np.sum(d.local_prediction == np.asarray(want["local"])))
            seconds += len(want["local"])
            global_same += int(d.global_prediction == want["global"])
        out[p] = {"files": len(paths), "seconds": seconds, "max_abs_prob_diff": max(diffs),
                  "within_bound": max(diffs) <= out["bound"], "local_agreement": local_same / seconds,
                  "global_agreement": global_same / len(paths)}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.cuda", description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--work", type=Path, default=Path("/tmp/orcaport-bench-cuda"))
    ap.add_argument("--hours", type=int, default=8)
    ap.add_argument("--check-minutes", type=int, default=10)
    ap.add_argument("--workers", type=int, default=None, help="frontend processes (default: CPUs - 1)")
    ap.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU: checks the script, measures nothing")
    ap.add_argument("--export-legacy", type=Path, metavar="JSON",
                    help="write the committed references' probabilities to JSON (on any machine) and stop")
    ap.add_argument("--legacy", type=Path, metavar="JSON", help="--export-legacy's file: only the parity step")
    ap.add_argument("--fixture", type=Path, default=Path("reference_outputs/fixture"))
    ap.add_argument("--corpus", type=Path, default=Path("reference_outputs/corpus"))
    args = ap.parse_args(argv)
    if args.export_legacy:
        print(export_legacy_probs(Path("reference_outputs/stages"), args.corpus, args.export_legacy))
        return 0
    device = "cpu" if args.dry_run else "cuda"
    if not args.dry_run and not torch.cuda.is_available():
        raise SystemExit("bench.cuda: torch sees no CUDA GPU; run it on a GPU machine (or --dry-run)")
    workers = args.workers or max(1, len(os.sched_getaffinity(0)) - 1)
    res: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                           "gpu": torch.cuda.get_device_name(0) if device == "cuda" else "none (dry run)",
                           "torch": torch.__version__,
                           "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
                           "machine": cpu_facts(), "workers": workers}

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - T0:6.1f} s] {msg}", file=sys.stderr, flush=True)

    T0 = time.perf_counter()
    if args.legacy:         # a later, separate run: only the parity step, merged into OUT/cuda.json
        old = json.loads((args.out / "cuda.json").read_text()) if (args.out / "cuda.json").is_file() else res
        old["parity_vs_legacy"] = {"gpu": res["gpu"], "date": res["date"], "model": "fixture (ResNet18)",
                                   **parity_vs_legacy(args.fixture, args.corpus, json.loads(args.legacy.read_text()),
                                                      workers, device)}
        write_json_atomically(args.out, "cuda.json", old)
        print(json.dumps(old["parity_vs_legacy"], indent=2))
        return 0
    model = args.work / "resnet50-trained-cuda"
    tiny = {"epochs": 1, "per_class": 8, "held_out_per_class": 4} if args.dry_run else {}
    res["training"] = {k: v for k, v in train_resnet50(model, threads=workers, verify=False, device=device,
                                                       **tiny).items()
                       if k in ("train_s", "data_s", "held_out_accuracy", "train_subset_accuracy", "device")}
    log(f"trained: {res['training']}")
    hours, check = write_folder(args.work / "audio", args.hours, args.check_minutes, workers,
                                60 if args.dry_run else HOUR_S)
    log(f"folder: {len(hours)} h + check set")
    dets = {p: Detector.from_folder(model, profile=p, device=device, engine="channels_last")
            for p in ("legacy-exact", "fast")}
    res["network_alone"] = {p: network_alone(d, 8 if args.dry_run else 256, 1 if args.dry_run else 5)
                            for p, d in dets.items()}
    log(f"network alone: {res['network_alone']}")
    res["frontend_alone"] = frontend_alone(dets["legacy-exact"], hours[:1], workers, 4096)
    log(f"frontend alone: {res['frontend_alone']}")
    gpu_check = {}
    for p, d in dets.items():
        _, gpu_check[p] = whole(d, check, workers)                  # warm-up + the check set
        res.setdefault("whole", {})[p], _ = whole(d, hours, workers)
        log(f"whole {p}: {res['whole'][p]}")
    cpu = Detector.from_folder(model, profile="legacy-exact", device="cpu")
    t0 = time.perf_counter()
    cpu_results = [cpu.detect(p) for p in check]
    res["cpu_check"] = {"wall_s": round(time.perf_counter() - t0, 1), "profile": "legacy-exact",
                        "engine": cpu.engine, "workers": cpu.workers}
    res["agreement_vs_cpu"] = {p: agreement(gpu_check[p], cpu_results) for p in dets}
    log(f"agreement: {res['agreement_vs_cpu']}")
    write_json_atomically(args.out, "cuda.json", res)
    print(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
