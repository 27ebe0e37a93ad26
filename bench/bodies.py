"""`make bench`'s body rows: clips/s of legacy vs the fastai-free Detector, one row per body family.

The learners are the zoo's (convert/zoo.py: one real torchvision body per family of fastai's
model_meta, 8 kHz / 64-mel frontend), built once in the legacy env under build/bench/zoo. Each
family's legacy run (OrcaHello's production predict on the learner's model.pkl) and clean run
(Detector.detect on its conversion) are interleaved round by round on the same file, each in its
own subprocess; the figures are medians, the ratio is clean / legacy clips/s from the same run.
Never in CI.

    python -m bench.bodies [--rounds 2] [--repeats 2] [--wav FILE] [--out bench/bodies.json]
    python -m bench.bodies worker legacy|clean --model DIR --wav FILE --repeats N   (one measurement)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
LEGACY_PYTHON = ROOT / ".venvs" / "legacy" / "bin" / "python"
WORK = ROOT / "build" / "bench" / "zoo"
WAV = ROOT / "reference_outputs" / "corpus" / "hydrophone_48k_mono16_60s.wav"
FAMILIES = ("resnet18", "densenet121", "vgg11_bn", "squeezenet1_1", "alexnet", "mobilenet_v2")
RESULT_MARK = "RESULT "


def _legacy(model: Path, wav: Path, repeats: int) -> dict[str, Any]:
    import torch

    from convert.legacy import load_trusted_learner, patch_torchaudio_io
    from convert.production import predict_file
    from orcaport.model.config import ModelConfig

    tmp = Path(tempfile.mkdtemp(prefix="orcaport-bench-bodies-"))
    try:
        patch_torchaudio_io()
        cfg = ModelConfig.load(model / "config.json")
        learn = load_trusted_learner(model / "model.pkl")
        times, result = [], {}
        for i in range(repeats + 1):                 # the first run is a warm-up
            shutil.rmtree(tmp / "home" / ".fastai", ignore_errors=True)   # production never hits a cache
            t0 = time.perf_counter()
            result = predict_file(learn, wav, tmp / f"clips{i}", cfg.frontend, cfg.aggregation)
            if i:
                times.append(time.perf_counter() - t0)
        return {"times_s": times, "clips": len(result["clip_order"]), "torch": torch.__version__,
                "confidence": result["confidence"]}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _clean(model: Path, wav: Path, repeats: int) -> dict[str, Any]:
    import torch

    from orcaport.model.detector import Detector

    det = Detector.from_folder(model)
    det.detect(wav)                                   # warm-up: oneDNN builds its kernels
    times, d = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        d = det.detect(wav)
        times.append(time.perf_counter() - t0)
    return {"times_s": times, "clips": d.clips, "torch": torch.__version__, "engine": det.engine,
            "confidence": [float(c) for c in d.confidence]}


def _measure(side: str, model: Path, wav: Path, repeats: int, home: Path) -> dict[str, Any]:
    python = str(LEGACY_PYTHON) if side == "legacy" else sys.executable
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HOME": str(home)}
    out = subprocess.run([python, "-m", "bench.bodies", "worker", side, "--model", str(model), "--wav", str(wav),
                          "--repeats", str(repeats)], cwd=ROOT, env=env, capture_output=True, text=True)
    at = out.stdout.rfind(RESULT_MARK + "{")
    if out.returncode or at < 0:
        raise RuntimeError(f"{side} worker on {model} failed: {out.stderr[-1500:]}")
    return json.loads(out.stdout[at + len(RESULT_MARK):].splitlines()[0])


def build_zoo(names: tuple[str, ...], work: Path) -> None:
    """The zoo's learners (model.pkl + conversion) under `work`, built in the legacy env if missing."""
    missing = [n for n in names if not (work / n / "model" / "model.pkl").is_file()]
    if missing:
        subprocess.run([str(LEGACY_PYTHON), "-m", "convert.zoo", "--out", str(work / "zoo-out"),
                        "--work", str(work), "--only", *missing], cwd=ROOT, check=True)


def run(rounds: int, repeats: int, wav: Path, names: tuple[str, ...] = FAMILIES,
        work: Path = WORK) -> list[dict[str, Any]]:
    build_zoo(names, work)
    rows = []
    with tempfile.TemporaryDirectory(prefix="orcaport-bench-home-") as home:
        for name in names:
            model = work / name / "model"
            runs: dict[str, list[dict[str, Any]]] = {"legacy": [], "clean": []}
            for _ in range(rounds):                  # interleaved: load from other jobs hits both
                for side in ("legacy", "clean"):
                    runs[side].append(_measure(side, model, wav, repeats, Path(home)))
            med = {s: statistics.median(t for r in runs[s] for t in r["times_s"]) for s in runs}
            clips = runs["clean"][0]["clips"]
            diff = max(abs(a - b) for a, b in zip(runs["legacy"][0]["confidence"], runs["clean"][0]["confidence"]))
            rows.append({"body": name, "clips": clips, "legacy_s": med["legacy"], "clean_s": med["clean"],
                         "legacy_clips_per_s": clips / med["legacy"], "clean_clips_per_s": clips / med["clean"],
                         "speedup": med["legacy"] / med["clean"], "engine": runs["clean"][0]["engine"],
                         "max_confidence_diff": diff, "torch": {s: runs[s][0]["torch"] for s in runs}})
            print(f"{name}: legacy {rows[-1]['legacy_clips_per_s']:.1f} clips/s, clean "
                  f"{rows[-1]['clean_clips_per_s']:.1f} clips/s ({rows[-1]['speedup']:.2f}x)", flush=True)
    return rows


def markdown(rows: list[dict[str, Any]], machine: str) -> str:
    lines = [f"Body families (zoo learners, 8 kHz 64-mel frontend; {machine}; legacy torch "
             f"{rows[0]['torch']['legacy']}, clean {rows[0]['torch']['clean']}):", "",
             "| body | clips | legacy clips/s | clean clips/s | clean/legacy | clean engine | max conf diff |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['body']} | {r['clips']} | {r['legacy_clips_per_s']:.1f} | {r['clean_clips_per_s']:.1f} | "
              f"{r['speedup']:.2f}x | {r['engine']} | {r['max_confidence_diff']:.1e} |" for r in rows]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["worker"]:
        ap = argparse.ArgumentParser(prog="python -m bench.bodies worker")
        ap.add_argument("side", choices=("legacy", "clean"))
        ap.add_argument("--model", type=Path, required=True)
        ap.add_argument("--wav", type=Path, required=True)
        ap.add_argument("--repeats", type=int, default=2)
        args = ap.parse_args(argv[1:])
        out = (_legacy if args.side == "legacy" else _clean)(args.model, args.wav, args.repeats)
        print(RESULT_MARK + json.dumps(out))
        return 0
    from bench.machine import lscpu
    from orcaport.model.fileio import write_files_atomically

    ap = argparse.ArgumentParser(prog="python -m bench.bodies", description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--wav", type=Path, default=WAV)
    ap.add_argument("--only", nargs="+", choices=FAMILIES)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "bodies.json")
    ap.add_argument("--work", type=Path, default=WORK, help="where the zoo learners are (built if missing)")
    args = ap.parse_args(argv)
    rows = run(args.rounds, args.repeats, args.wav, tuple(args.only or FAMILIES), args.work)
    cpu = lscpu()
    machine = f"{cpu['model_name']} model {cpu['model']}, " + " ".join(f for f, on in cpu["key_flags"].items() if on)
    doc = {"machine": machine, "lscpu": cpu, "load_average": os.getloadavg(), "wav": args.wav.name,
           "rounds": args.rounds, "repeats": args.repeats, "rows": rows}
    write_files_atomically(args.out.parent, {args.out.name: json.dumps(doc, indent=2) + "\n",
                                             args.out.with_suffix(".md").name: markdown(rows, machine)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
