"""`make bench`: legacy fastai pipeline vs the fastai-free Detector, same machine, same files, one run.

Never run in CI or tests. Every measurement runs in its own subprocess (its peak RSS is its own):
legacy in .venvs/legacy (`convert.production.predict_file`, skipped when that env is missing),
clean in this interpreter. Legacy and clean runs are interleaved round by round so that load from
other jobs on a shared machine hits both alike; figures are medians. Writes bench/results.json and
bench/results.md and prints the markdown.

    python -m bench [--rounds 2] [--repeats 3] [--skip-legacy] [--skip-hour] [--quick] [--render] [--hour-only]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from bench.machine import cpu_name, lscpu
from bench.report import markdown, median, network_figures, paired_speedup, refresh, summarize, verdicts

# No torch here: Linux carries this process's RSS high-water mark into every worker it starts, so
# it stays small for the workers' ru_maxrss to be their own.

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "reference_outputs" / "fixture"
CORPUS = ROOT / "reference_outputs" / "corpus"
STAGES = ROOT / "reference_outputs" / "stages"
WAV = CORPUS / "hydrophone_48k_mono16_60s.wav"
LEGACY_PYTHON = ROOT / ".venvs" / "legacy" / "bin" / "python"
TRAINED = ROOT / "build" / "bench" / "resnet50-trained"
RESULT_MARK = "RESULT "
HOUR_S = 3600


def pin_to_one_cpu() -> None:
    """preexec_fn of a 1-CPU worker: the affinity `taskset -c <cpu>` sets (the first CPU this
    process may use), so the worker's own thread sizing sees one CPU, as in a 1-CPU pod."""
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


def worker(python: str, module: str, args: list[str], timeout: int = 3600, one_cpu: bool = False) -> dict[str, Any]:
    """Run `python -m module args` from the repo root; return its RESULT json. one_cpu: pinned to
    one CPU with every thread pool at 1 (torch threads, OpenMP, MKL)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if one_cpu:
        env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    load = os.getloadavg()[0]
    out = subprocess.run([python, "-m", module, *map(str, args)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=timeout,
                         preexec_fn=pin_to_one_cpu if one_cpu else None)
    at = out.stdout.rfind(RESULT_MARK + "{")
    if out.returncode != 0 or at < 0:
        raise SystemExit(f"bench: {module} {' '.join(map(str, args))} failed:\n{out.stderr[-3000:]}")
    res = json.loads(out.stdout[at + len(RESULT_MARK):].splitlines()[0])
    res["loadavg_before"] = load
    shown = " ".join(Path(str(a)).name if "/" in str(a) else str(a) for a in args)
    timing = res.get("times_s") or res.get("fp32_gflops") or res.get("local_agreement") or res.get("flops")
    print(f"  {module.split('.')[-1]} {shown}: {timing}", file=sys.stderr, flush=True)
    return res


def clean(mode: str, *args: Any, one_cpu: bool = False) -> dict[str, Any]:
    return worker(sys.executable, "bench.clean_worker", [mode, *args], one_cpu=one_cpu)


def legacy(model: str, wav: Path, *args: Any, one_cpu: bool = False) -> dict[str, Any]:
    extra = ["--threads", 1] if one_cpu else []
    return worker(str(LEGACY_PYTHON), "bench.legacy_worker", ["--model", model, "--wav", wav, *args, *extra],
                  one_cpu=one_cpu)


def write_tiled(src: Path, dest: Path, seconds: int) -> Path:
    """`dest`: `src` repeated to `seconds` long, written block by block (never held whole)."""
    data, rate = sf.read(str(src), dtype="int16", always_2d=True)
    with sf.SoundFile(str(dest), "w", samplerate=rate, channels=data.shape[1], subtype="PCM_16") as f:
        left = seconds * rate
        while left > 0:
            f.write(data[:left])
            left -= min(left, len(data))
    return dest


def parity_check(run: dict[str, Any]) -> dict[str, Any]:
    """The fixture's legacy-exact result on the flagship vs the committed legacy references."""
    from orcaport.parity.references import load_references

    t = load_references(STAGES).file(WAV.name).tensors
    probs = np.asarray(run["clip_confidence"])
    return {"max_abs_prob_diff": float(np.abs(probs - t["all/probs"][:, 1]).max()),
            "local_identical": run["local_prediction"] == t["aggregate/local_prediction"].tolist(),
            "global_identical": run["global_prediction"] == int(t["aggregate/global_prediction"][0])}


def torch_version(python: str) -> str | None:
    if not Path(python).exists():
        return None
    out = subprocess.run([python, "-c", "import torch; print(torch.__version__)"], capture_output=True, text=True)
    return out.stdout.strip() or None


VARIANTS = {   # ResNet50 network alone: the design choices, each measured (flags for clean_worker)
    "fp32, oneDNN (BN folded) + padding reuse, batch 4, 2 workers x 1 thread [legacy-exact default]": [],
    "fp32, oneDNN (BN folded), no padding reuse, batch 4, 2 workers x 1 thread": ["--no-reuse"],
    "fp32, oneDNN (BN folded) + padding reuse, batch 16, 2 workers x 1 thread": ["--batch-size", 16],
    "fp32, oneDNN (BN folded) + padding reuse, batch 4, 1 worker x 2 threads": ["--workers", 1, "--intra", 2],
    "fp32, plain OrcaNet channels_last, batch 4, 2 workers x 1 thread": ["--engine", "channels_last"],
    "fp32, plain OrcaNet NCHW, batch 16, 2 workers x 1 thread": ["--engine", "nchw", "--batch-size", 16],
    "fp32, plain OrcaNet NCHW, batch 1, 1 worker x 2 threads (legacy's way)":
        ["--engine", "nchw", "--batch-size", 1, "--workers", 1, "--intra", 2],
    # bf16 forced: `fast` on a bf16 CPU; where the CPU lacks AVX512-BF16/AMX, oneDNN emulates it
    "bf16 (forced), oneDNN (BN folded) + padding reuse, batch 4, 2 workers x 1 thread [fast on bf16 CPUs]":
        ["--profile", "fast", "--arithmetic", "bf16"],
    "bf16 (forced) autocast, plain OrcaNet channels_last, batch 4, 2 workers x 1 thread":
        ["--profile", "fast", "--arithmetic", "bf16", "--engine", "channels_last"],
}


def measure_hour(hour: Path, flops: float, peak: dict[str, Any]) -> dict[str, Any]:
    """The fixture on a 1-hour 48 kHz file (the flagship tiled), each profile in its own process."""
    print("bench: 1-hour file", file=sys.stderr, flush=True)
    out = {profile: summarize([clean("detect", "--model", FIXTURE, "--wav", hour, "--profile", profile,
                                     "--repeats", 1, "--warmup", 0)], int(flops), peak)
           for profile in ("legacy-exact", "fast")}
    for profile, fig in out.items():
        fig["measured"] = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        fig["loadavg_after"] = round(os.getloadavg()[0], 2)
    return out


def measure_one_cpu(hour: Path, models: dict[str, Path], repeats: int, use_legacy: bool,
                    flops: dict[str, float], peak: dict[str, Any]) -> dict[str, Any]:
    """A 1-CPU pod: every pipeline pinned to one CPU, one thread. The 60 s file on the ResNet50
    (production's network; `repeats` timed runs after a warm-up) and the 1-hour file on the
    fixture (one run each: legacy's ResNet50 would take ~30 min on it)."""
    print("bench: 1 CPU (pinned, 1 thread)", file=sys.stderr, flush=True)
    out: dict[str, Any] = {}
    for key, model, wav, rep in (("60s", "resnet50", WAV, ["--repeats", repeats]),
                                 ("hour", "fixture", hour, ["--repeats", 1, "--warmup", 0])):
        runs: dict[str, list] = {}
        if use_legacy:
            runs["legacy"] = [legacy(model, wav, *rep, one_cpu=True)]
        for profile in ("legacy-exact", "fast"):
            runs[profile] = [clean("detect", "--model", models[model], "--wav", wav, "--profile", profile,
                                   *rep, one_cpu=True)]
        figs = {p: summarize(rs, int(flops[model]), peak, None, runs.get("legacy")) for p, rs in runs.items()}
        for p, f in figs.items():
            f["loadavg_before"] = round(runs[p][0]["loadavg_before"], 2)
            f["arithmetic"] = runs[p][0].get("arithmetic")
        figs["fast"]["fast_vs_exact"] = paired_speedup(runs["legacy-exact"], runs["fast"], "times_s")
        out[key] = {"model": model, "wav": wav.name, "figures": figs,
                    "measured": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    return out


def measure_pairs(model: Path, repeats: int) -> dict[str, Any]:
    """fast vs legacy-exact alternated in one process (bench/pair.py), on 2 CPUs and pinned to one."""
    print("bench: fast vs legacy-exact, alternated in one process", file=sys.stderr, flush=True)
    return {key: {**clean("pair", "--model", model, "--wav", WAV, "--repeats", repeats, one_cpu=one),
                  "model": "resnet50", "wav": WAV.name,
                  "measured": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
            for key, one in (("2 CPUs", False), ("1 CPU", True))}


def measure_rounds(models: dict[str, Path], rounds: int, repeats: int, use_legacy: bool
                   ) -> tuple[dict[str, dict[str, list]], dict[str, dict[str, list]], list[dict]]:
    """Interleaved rounds: peak, then per model legacy -> legacy-exact -> fast (whole pipeline and
    network alone). -> (pipeline runs, network runs, peak runs)"""
    runs = {m: {"legacy": [], "legacy-exact": [], "fast": []} for m in models}
    nets = {m: {"legacy-exact": [], "fast": []} for m in models}
    peaks = []
    rep = ["--repeats", repeats]
    for r in range(rounds):
        print(f"bench: round {r + 1}/{rounds}", file=sys.stderr, flush=True)
        peaks.append(clean("peak", "--repeats", 5))
        for name, folder in models.items():
            if use_legacy:
                runs[name]["legacy"].append(legacy(name, WAV, *rep))
            for profile in ("legacy-exact", "fast"):
                common = ["--model", folder, "--wav", WAV, "--profile", profile, *rep]
                runs[name][profile].append(clean("detect", *common))
                nets[name][profile].append(clean("network", *common))
    peaks.append(clean("peak", "--repeats", 5))
    return runs, nets, peaks


def peak_figures(peaks: list[dict]) -> dict[str, Any]:
    out: dict[str, Any] = {"threads": peaks[0]["threads"], "size": peaks[0]["size"],
                           "bf16_size": peaks[0].get("bf16_size", [peaks[0]["size"]])[0]}
    for key in ("fp32", "bf16", "onednn_fp32"):
        samples = [g for p in peaks for g in p.get(f"{key}_gflops", [])]
        out[f"{key}_gflops"] = median(samples) if samples else None
        out[f"{key}_samples"] = samples
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2, help="interleaved legacy/clean rounds")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per worker (after a warm-up)")
    ap.add_argument("--skip-legacy", action="store_true")
    ap.add_argument("--skip-hour", action="store_true")
    ap.add_argument("--quick", action="store_true", help="1 round x 1 repeat, no 1-hour file")
    ap.add_argument("--out", type=Path, default=ROOT / "bench")
    ap.add_argument("--render", action="store_true", help="re-render OUT/results.json, measure nothing")
    ap.add_argument("--hour-only", action="store_true", help="re-measure only the 1-hour file into OUT/results.json")
    ap.add_argument("--pair-only", action="store_true",
                    help="measure only fast vs legacy-exact alternated in one process, into OUT/results.json")
    args = ap.parse_args(argv)
    if args.render or args.hour_only or args.pair_only:
        res = json.loads((args.out / "results.json").read_text())
        res["cuda"] = cuda_results(args.out)
        if args.pair_only:
            res["pair"] = measure_pairs(trained_resnet50(), 2 * args.repeats + 1)
        if args.hour_only:
            with tempfile.TemporaryDirectory(prefix="orcaport-bench-") as tmp:
                hour = write_tiled(WAV, Path(tmp) / "hydrophone_48k_1h.wav", HOUR_S)
                res["hour"] = measure_hour(hour, res["flops_gflop"]["fixture"] * 1e9, res["peak"])
        return write(refresh(res), args.out)
    if args.quick:
        args.rounds, args.repeats, args.skip_hour = 1, 1, True
    use_legacy = LEGACY_PYTHON.exists() and not args.skip_legacy
    if not use_legacy:
        print(f"bench: legacy pipeline skipped ({LEGACY_PYTHON} missing or --skip-legacy)", file=sys.stderr)
    res: dict[str, Any] = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": {"cpu": cpu_name(), "cpus": len(os.sched_getaffinity(0)), "python": platform.python_version(),
                    "torch": torch_version(sys.executable), "legacy_torch": torch_version(str(LEGACY_PYTHON)),
                    "loadavg_start": round(os.getloadavg()[0], 2), "lscpu": lscpu()},
        "wav": WAV.name, "settings": {"rounds": args.rounds, "repeats": args.repeats},
    }
    with tempfile.TemporaryDirectory(prefix="orcaport-bench-") as tmp:
        models = {"resnet50": trained_resnet50(), "fixture": FIXTURE}
        probe = Path(tmp) / "resnet50-random"
        flops = clean("prepare", "--wav", WAV, "--out", probe)["flops"]
        res["machine"]["orchestrator_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        res["flops_gflop"] = {k: v / 1e9 for k, v in flops.items()}
        runs, nets, peaks = measure_rounds(models, args.rounds, args.repeats, use_legacy)
        res["peak"] = peak = peak_figures(peaks)
        first = runs["fixture"]["legacy-exact"][0]
        res["audio_s"], res["clips"] = first["audio_s"], first["clips"]
        res["fast_arithmetic"] = runs["resnet50"]["fast"][0]["arithmetic"]
        res["worker_loadavg"] = sorted(r["loadavg_before"] for m in runs.values() for rs in m.values() for r in rs)
        res["figures"] = {
            name: {p: summarize(rs, flops[name], peak, merge_runs(nets[name].get(p)), runs[name]["legacy"])
                   for p, rs in runs[name].items() if rs}
            for name in models}
        for name in models:     # paired per round, like the legacy ratios
            res["figures"][name]["fast"]["fast_vs_exact"] = paired_speedup(
                runs[name]["legacy-exact"], runs[name]["fast"], "times_s")
        res["pair"] = measure_pairs(models["resnet50"], 2 * args.repeats + 1)
        print("bench: network variants", file=sys.stderr, flush=True)
        # Forced bf16 without bf16 hardware is emulated: minutes per clip on AVX2-only CPUs, and
        # `fast` never picks it there; those rows are left out, not estimated.
        bf16_cpu = any(res["machine"]["lscpu"]["key_flags"][f] for f in ("avx512_bf16", "amx_bf16"))
        res["network_variants"] = {
            label: network_figures(clean("network", "--model", models["resnet50"], "--wav", WAV,
                                         "--repeats", args.repeats, *extra), flops["resnet50"], peak)
            for label, extra in VARIANTS.items() if bf16_cpu or "bf16" not in extra}
        res["network_variants_skipped"] = [] if bf16_cpu else [v for v, e in VARIANTS.items() if "bf16" in e]
        res["parity"] = parity_check(first)
        print("bench: fast vs fp32 agreement on the corpus", file=sys.stderr, flush=True)
        res["agreement"] = {name: clean("corpus", "--model", folder, "--corpus", CORPUS)
                            for name, folder in {**models, "resnet50-random": probe}.items()}
        print("bench: int8 candidate (fast without bf16 hardware)", file=sys.stderr, flush=True)
        res["int8"] = {name: clean("int8", "--model", folder, "--corpus", CORPUS) for name, folder in models.items()}
        if not args.skip_hour:
            hour = write_tiled(WAV, Path(tmp) / "hydrophone_48k_1h.wav", HOUR_S)
            res["hour"] = measure_hour(hour, flops["fixture"], peak)
            res["one_cpu"] = measure_one_cpu(hour, models, args.repeats, use_legacy, flops, peak)
    res["machine"]["loadavg_end"] = round(os.getloadavg()[0], 2)
    res["cuda"] = cuda_results(args.out)
    res["targets"] = verdicts(res)
    return write(res, args.out)


def cuda_results(out: Path) -> dict[str, Any] | None:
    """The GPU rows: `make bench-cuda`'s OUT/cuda.json, measured on a GPU machine when one was
    lent (this machine may have none); None when there is none -- never estimated."""
    path = out / "cuda.json"
    return json.loads(path.read_text()) if path.is_file() else None


def trained_resnet50() -> Path:
    """The trained OrcaHello-shaped ResNet50 (bench/train.py), trained once (~7 min) and kept in
    build/ (git-ignored): speed does not depend on the weights, decision agreement does, and
    random weights say nothing about real ones (see bench/train.py)."""
    if not (TRAINED / "config.json").is_file():
        print(f"bench: training the ResNet50 stand-in into {TRAINED} (once, ~7 min)", file=sys.stderr, flush=True)
        worker(sys.executable, "bench.train", ["--out", TRAINED], timeout=3600)
    return TRAINED


def write(res: dict[str, Any], out: Path) -> int:
    from orcaport.model.fileio import write_files_atomically

    raw = json.dumps(res, indent=2) + "\n"
    try:
        table = markdown(res)
    except Exception:                      # an hour of measurements is never lost to a report bug
        write_files_atomically(out, {"results.json": raw.encode()})
        raise
    write_files_atomically(out, {"results.json": raw.encode(), "results.md": table.encode()})
    print(table)
    return 0


def merge_runs(nets: list[dict] | None) -> dict[str, Any] | None:
    """Several `network` worker runs as one (times pooled across rounds)."""
    if not nets:
        return None
    peaks = [n.get("adjacent_peak", {}) for n in nets]
    return {**nets[0], "times_s": [t for n in nets for t in n["times_s"]],
            "cpu_s": [c for n in nets for c in n.get("cpu_s", [])],
            "adjacent_peak": {k: [g for p in peaks for g in p.get(k, [])] for k in peaks[0]}}


if __name__ == "__main__":
    sys.exit(main())
