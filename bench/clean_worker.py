"""Clean-env worker for `make bench`: one measurement per process (so ru_maxrss is its own).

    python -m bench.clean_worker detect  --model DIR --wav FILE --profile P [--repeats N] [...]
    python -m bench.clean_worker network --model DIR --wav FILE --profile P [--repeats N] [...]
    python -m bench.clean_worker peak    [--repeats N]
    python -m bench.clean_worker corpus  --model DIR --corpus DIR
    python -m bench.clean_worker prepare --wav FILE --out DIR
    python -m bench.clean_worker int8    --model DIR --corpus DIR      (bench/int8.py)
    python -m bench.clean_worker pair    --model DIR --wav FILE        (bench/pair.py)

Prints one `RESULT {json}` line. `detect` times the whole Detector.detect (decode -> decisions)
after one warm-up run; `network` times only the network on the file's precomputed inputs, with
the same batches, workers, threads, memory format and precision as `detect` uses, so its FLOP
rate is the network's own.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from bench.models import (agreement, corpus_files, detector_flops, network_flops, resnet50_config,
                          reuse_plan, write_random_resnet50)
from orcaport.model.aggregate import aggregate
from orcaport.model.detector import Detector, _intra_op_threads, open_audio
from orcaport.model.arithmetic import BF16_CPU_FLAGS, read_cpu_flags
from orcaport.model.spectrogram import input_width

FIXTURE = Path(__file__).resolve().parents[1] / "reference_outputs" / "fixture"

RESULT_MARK = "RESULT "
MM_SIZE = 4096


def cpu_seconds() -> float:
    """User + system CPU time of this process: the work done, whatever else shares the CPUs."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def peak_rss_mb() -> float:
    """ru_maxrss in MB (Linux reports KiB). Linux carries a parent's high-water mark into an
    exec'd child, so the orchestrator keeps itself small (no torch) for this to be the worker's."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_detector(args: argparse.Namespace) -> Detector:
    return Detector.from_folder(args.model, profile=args.profile, batch_size=args.batch_size or None,
                                workers=args.workers or None, engine=args.engine or None,
                                reuse_padding=not args.no_reuse, arithmetic=args.arithmetic or None)


def cmd_detect(args: argparse.Namespace) -> dict:
    det = make_detector(args)
    times, cpu, result = [], [], None
    for i in range(args.repeats + args.warmup):  # warm-up runs fill oneDNN's kernel caches
        t0, c0 = time.perf_counter(), cpu_seconds()
        result = det.detect(args.wav)
        if i >= args.warmup:
            times.append(time.perf_counter() - t0)
            cpu.append(cpu_seconds() - c0)
    return {"times_s": times, "cpu_s": cpu, "clips": result.clips, "audio_s": result.duration_s,
            "clip_confidence": result.clip_confidence.tolist(),
            "local_prediction": result.local_prediction.tolist(),
            "global_prediction": result.global_prediction, "workers": det.workers,
            "intra_threads": det.intra_threads, "precision": det.precision,
            "engine": det.engine, "batch_size": det.batch_size, "peak_rss_mb": peak_rss_mb(),
            "arithmetic": det.arithmetic.to_dict(), "cpus": sorted(os.sched_getaffinity(0)),
            "flops_per_clip": detector_flops(det), "padding_reuse": reuse_plan(det) is not None}


def cmd_network(args: argparse.Namespace) -> dict:
    det = make_detector(args)
    if args.intra:
        det.intra_threads = args.intra
    src = open_audio(args.wav)
    clips = list(det.clip_inputs(src))
    batches = [det.batch_inputs(clips[s:s + det.batch_size], src) for s in range(0, len(clips), det.batch_size)]
    reused = reuse_plan(det) is not None and all(det.network.reuses(b) for b in batches)
    # The machine is shared: the peak is measured right before and after, under the same load.
    peaks = [measure_peaks(2, args.mm_size)]
    times, cpu = [], []
    with _intra_op_threads(det.intra_threads), ThreadPoolExecutor(det.workers) as pool:
        for i in range(args.repeats + 1):
            t0, c0 = time.perf_counter(), cpu_seconds()
            list(pool.map(det.run_network, batches))
            if i:
                times.append(time.perf_counter() - t0)
                cpu.append(cpu_seconds() - c0)
    peaks.append(measure_peaks(2, args.mm_size))
    return {"times_s": times, "cpu_s": cpu, "clips": len(clips), "workers": det.workers,
            "intra_threads": det.intra_threads, "precision": det.precision,
            "engine": det.engine, "batch_size": det.batch_size, "padding_reuse": reused,
            "arithmetic": det.arithmetic.to_dict(),
            "flops_per_clip": detector_flops(det, reused),
            "adjacent_peak": {k: [g for p in peaks for g in p[k]] for k in peaks[0]}}


def measure_peaks(repeats: int, size: int = MM_SIZE) -> dict[str, list[float]]:
    """Dense size^2 (4096^2) matmul GFLOP/s with torch's default threads: torch.mm fp32 (the
    reference peak; MKL), torch.mm bf16, and the same fp32 GEMM through oneDNN (what the conv
    kernels run on)."""
    a32, b32 = torch.randn(size, size), torch.randn(size, size)
    # Without bf16 hardware torch.mm emulates bf16 (minutes per 4096^2 product on AVX2): a 1024^2
    # corner shows the emulated rate in seconds.
    n16 = size if set(BF16_CPU_FLAGS) & read_cpu_flags() else size // 4
    a16, b16 = a32[:n16, :n16].bfloat16(), b32[:n16, :n16].bfloat16()
    cases = {"fp32": lambda: torch.mm(a32, b32), "bf16": lambda: torch.mm(a16, b16)}
    sizes = {"bf16": n16}
    if torch.backends.mkldnn.is_available():
        x, w, bias = a32.to_mkldnn(), b32.T.contiguous().to_mkldnn(), torch.zeros(size).to_mkldnn()
        cases["onednn_fp32"] = lambda: torch._C._nn.mkldnn_linear(x, w, bias)
    out: dict[str, list[float]] = {}
    with torch.inference_mode():
        for name, fn in cases.items():
            fn()
            rates = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                fn()
                rates.append(2 * sizes.get(name, size) ** 3 / (time.perf_counter() - t0) / 1e9)
            out[f"{name}_gflops"] = rates
    out["bf16_size"] = [n16]
    return out


def cmd_peak(args: argparse.Namespace) -> dict:
    return {"threads": torch.get_num_threads(), "size": args.mm_size, **measure_peaks(args.repeats, args.mm_size)}


def cmd_corpus(args: argparse.Namespace) -> dict:
    """fast vs legacy-exact decisions on every corpus file long enough to detect on, plus a
    conditioning probe: the fp32 network fed inputs rounded to bf16 (nothing else changed). If
    that alone flips decisions, the model itself is too sensitive for any bf16 scheme to agree."""
    exact = Detector.from_folder(args.model, profile="legacy-exact")
    fast = Detector.from_folder(args.model, profile="fast", arithmetic=args.arithmetic or None)
    runs: dict[str, list] = {"exact": [], "fast": [], "probe": []}
    glob: dict[str, list] = {"exact": [], "fast": [], "probe": []}
    max_diff = 0.0
    for wav in corpus_files(args.corpus):
        a, b = exact.detect(wav), fast.detect(wav)
        src = open_audio(wav)
        clips = list(exact.clip_inputs(src))
        x = exact.batch_inputs(clips, src).bfloat16().float()
        with _intra_op_threads(exact.intra_threads):
            probe = torch.cat([exact.run_network(x[s:s + 4]) for s in range(0, len(x), 4)]).numpy()
        p = aggregate(probe.astype(np.float64), a.threshold, a.min_positive)
        for key, d in (("exact", a), ("fast", b), ("probe", p)):
            runs[key].append(d.local_prediction)
            glob[key].append(d.global_prediction)
        max_diff = max(max_diff, float(np.abs(a.clip_confidence - b.clip_confidence).max()))
    return {"files": len(glob["exact"]), "seconds": int(sum(len(x) for x in runs["exact"])),
            "local_agreement": agreement(runs["exact"], runs["fast"]),
            "global_agreement": agreement([np.array(glob["exact"])], [np.array(glob["fast"])]),
            "max_abs_prob_diff": max_diff, "precision": fast.precision,
            "arithmetic": fast.arithmetic.to_dict(),
            "probe_local_agreement": agreement(runs["exact"], runs["probe"]),
            "probe_global_agreement": agreement([np.array(glob["exact"])], [np.array(glob["probe"])])}


def cmd_prepare(args: argparse.Namespace) -> dict:
    """Write the random ResNet50 model folder to --out (the conditioning probe of the agreement
    table); count the ResNet50's and the fixture's FLOPs per clip."""
    det = Detector.from_folder(FIXTURE)
    src = open_audio(args.wav)
    calibration = det.batch_inputs(list(det.clip_inputs(src)), src)
    write_random_resnet50(args.out, calibration)
    fe = det.frontend
    width = input_width(fe, fe.resample_to)
    return {"flops": {"resnet50": network_flops(resnet50_config().architecture, fe.n_mels, width),
                      "fixture": network_flops(det.artifact.config.architecture, fe.n_mels, width)}}


def cmd_int8(args: argparse.Namespace) -> dict:
    from bench.int8 import measure

    return measure(args.model, args.corpus, args.repeats, args.calibration)


def cmd_pair(args: argparse.Namespace) -> dict:
    from bench.pair import measure_pair

    return {**measure_pair(args.model, args.wav, args.repeats), "peak_rss_mb": peak_rss_mb(),
            "cpus": sorted(os.sched_getaffinity(0))}


def measure(argv: list[str]) -> dict:
    """One measurement (the command line below, without the program name) -> its result."""
    ap = argparse.ArgumentParser(prog="python -m bench.clean_worker")
    ap.add_argument("mode", choices=("detect", "network", "peak", "corpus", "prepare", "int8", "pair"))
    ap.add_argument("--out", type=Path)
    ap.add_argument("--model", type=Path)
    ap.add_argument("--wav", type=Path)
    ap.add_argument("--corpus", type=Path)
    ap.add_argument("--profile", default="legacy-exact")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1, help="untimed runs first (detect mode)")
    ap.add_argument("--batch-size", type=int, default=0, help="0: the Detector's default")
    ap.add_argument("--workers", type=int, default=0, help="0: the Detector's default")
    ap.add_argument("--intra", type=int, default=0, help="intra-op threads (network mode); 0: default")
    ap.add_argument("--engine", default="", help="onednn | channels_last | nchw; empty: the Detector's default")
    ap.add_argument("--no-reuse", action="store_true", help="oneDNN engine without padding reuse")
    ap.add_argument("--arithmetic", default="", help="force fast's arithmetic (fp32 | bf16); empty: auto")
    ap.add_argument("--mm-size", type=int, default=MM_SIZE, help="matmul peak size (peak, network modes)")
    ap.add_argument("--calibration", type=int, default=16, help="int8's calibration clips per class")
    args = ap.parse_args(argv)
    modes = {"detect": cmd_detect, "network": cmd_network, "peak": cmd_peak, "corpus": cmd_corpus,
             "prepare": cmd_prepare, "int8": cmd_int8, "pair": cmd_pair}
    # The clean env can change under a long run (the machine is shared): each row names its torch.
    return {**modes[args.mode](args), "torch": torch.__version__}


def main(argv: list[str] | None = None) -> int:
    print(RESULT_MARK + json.dumps(measure(sys.argv[1:] if argv is None else argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
