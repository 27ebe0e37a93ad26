"""The GPU rows of bench/results.md: `make bench-cuda`'s bench/cuda.json, measured on a GPU machine
(when one was lent), rendered beside the CPU figures of `make bench`."""

from __future__ import annotations

from typing import Any


def cuda_lines(res: dict[str, Any]) -> list[str]:
    """The GPU rows: `make bench-cuda` on a lent GPU machine (bench/cuda.json), not this machine."""
    cuda = res.get("cuda")
    if not cuda:
        return ["", "CUDA rows: none. No GPU was available to this run; they are left empty, not estimated."]
    m = cuda["machine"]
    flags = ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in m["key_flags"].items())
    lines = ["", f"CUDA: `make bench-cuda` on **{cuda['gpu']}** (torch {cuda['torch']}, CUDA {cuda['cuda']}, cuDNN "
             f"{cuda['cudnn']}), host {m['cpu']} x {m['cpus']} CPUs ({flags}), {cuda['date']}. The trained "
             f"ResNet50 stand-in (trained there, held-out accuracy {cuda['training']['held_out_accuracy']:.2f}), "
             f"the whole detector (model/feeder.py: {cuda['workers']} frontend worker processes doing the waveform "
             "steps, mel/dB/pad and the network batched on the GPU) over a folder of one-hour 48 kHz files:", "",
             "| profile | arithmetic | files | audio h | wall s | clips/s | x realtime | h per hydrophone-year "
             "| GPU memory peak MB | network alone clips/s |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for p, w in cuda["whole"].items():
        lines.append(f"| {p} | {w['arithmetic']} ({w['why']}) | {w['files']} | {w['audio_hours']:g} | {w['wall_s']:.1f} "
                     f"| **{w['clips_per_s']:.0f}** | {w['x_realtime']:.0f} | {w['hours_for_one_hydrophone_year']:.2f} "
                     f"| {w['gpu_memory_peak_mb']} | {cuda['network_alone'][p]['clips_per_s']:.0f} |")
    fe = cuda["frontend_alone"]
    lines += ["", f"Frontend alone (the workers with no GPU in the loop, {fe['workers']} processes, {fe['clips']} clips): "
              f"{fe['clips_per_s']:.0f} clips/s.", "",
              f"Decisions, GPU vs the CPU detector (legacy-exact, {cuda['cpu_check']['engine']}) on the same weights, "
              "check set of 3 files:", "",
              "| GPU profile | seconds | local agreement | global agreement | max abs prob diff | positive seconds |",
              "|---|---:|---:|---:|---:|---:|"]
    for p, a in cuda["agreement_vs_cpu"].items():
        lines.append(f"| {p} | {a['seconds']} | {100 * a['local_agreement']:.2f} % | {100 * a['global_agreement']:.1f} % "
                     f"| {a['max_abs_prob_diff']:.2g} | {a['positive_seconds']} |")
    return lines
