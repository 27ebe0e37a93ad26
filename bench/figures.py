"""`make bench`'s derived figures, recomputed from the raw worker results after every row.

The raw results live in res["raw"] (what each worker printed, appended as its row finishes):

    peaks    [peak run, ...]                         matmul peaks, one per round and one at the end
    runs     {model: {pipeline: [detect run, ...]}}  whole pipeline, one per round
    nets     {model: {profile: [network run, ...]}}  network alone, one per round
    hour     {profile: detect run}                   the long file, fixture
    one_cpu  {"60s"|"hour": {pipeline: run}}         pinned to one CPU

`derive` turns whatever is there into the figures the report shows (res["peak"], ["figures"],
["hour"], ["one_cpu"], ["targets"], ...), so a partial run renders the rows it has. Results from
before raw rows were kept (no res["raw"]) are left as they are.
"""

from __future__ import annotations

from typing import Any

from bench.report import median, paired_speedup, summarize, verdicts

PIPELINES = ("legacy", "legacy-exact", "fast")
ONE_CPU_WORKLOADS = {"60s": "resnet50", "hour": "fixture"}   # file -> the model it runs on 1 CPU


def peak_figures(peaks: list[dict]) -> dict[str, Any]:
    out: dict[str, Any] = {"threads": peaks[0]["threads"], "size": peaks[0]["size"],
                           "bf16_size": peaks[0].get("bf16_size", [peaks[0]["size"]])[0]}
    for key in ("fp32", "bf16", "onednn_fp32"):
        samples = [g for p in peaks for g in p.get(f"{key}_gflops", [])]
        out[f"{key}_gflops"] = median(samples) if samples else None
        out[f"{key}_samples"] = samples
    return out


def merge_runs(nets: list[dict] | None) -> dict[str, Any] | None:
    """Several `network` worker runs as one (times pooled across rounds)."""
    if not nets:
        return None
    peaks = [n.get("adjacent_peak", {}) for n in nets]
    return {**nets[0], "times_s": [t for n in nets for t in n["times_s"]],
            "cpu_s": [c for n in nets for c in n.get("cpu_s", [])],
            "adjacent_peak": {k: [g for p in peaks for g in p.get(k, [])] for k in peaks[0]}}


def pipeline_figures(raw: dict[str, Any], flops: dict[str, int], peak: dict[str, Any]) -> dict[str, Any]:
    """Per model and pipeline: medians over rounds, speed-ups paired per round with legacy."""
    out: dict[str, Any] = {}
    for model, runs in raw.get("runs", {}).items():
        legacy = runs.get("legacy") or None
        figs = {p: summarize(rs, flops[model], peak, merge_runs(raw.get("nets", {}).get(model, {}).get(p)), legacy)
                for p, rs in runs.items() if rs}
        if figs.get("fast") and runs.get("legacy-exact"):    # paired per round, like the legacy ratios
            figs["fast"]["fast_vs_exact"] = paired_speedup(runs["legacy-exact"], runs["fast"], "times_s")
        out[model] = figs
    return out


def hour_figures(raw: dict[str, Any], flops: int, peak: dict[str, Any]) -> dict[str, Any]:
    return {profile: {**summarize([run], flops, peak), "measured": run.get("measured"),
                      "loadavg_after": run.get("loadavg_after")}
            for profile, run in raw.get("hour", {}).items()}


def one_cpu_figures(raw: dict[str, Any], flops: dict[str, int], peak: dict[str, Any],
                    wavs: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, runs in raw.get("one_cpu", {}).items():
        model = ONE_CPU_WORKLOADS[key]
        legacy = [runs["legacy"]] if runs.get("legacy") else None
        figs = {p: summarize([r], flops[model], peak, None, legacy) for p, r in runs.items()}
        for p, f in figs.items():
            f["loadavg_before"] = round(runs[p]["loadavg_before"], 2)
            f["arithmetic"] = runs[p].get("arithmetic")
        if "fast" in figs and "legacy-exact" in runs:
            figs["fast"]["fast_vs_exact"] = paired_speedup([runs["legacy-exact"]], [runs["fast"]], "times_s")
        out[key] = {"model": model, "wav": wavs[key], "figures": figs,
                    "measured": max(r.get("measured") or "" for r in runs.values())}
    return out


def derive(res: dict[str, Any]) -> None:
    """Recompute, in place, every figure of `res` that res["raw"] has runs for."""
    raw = res.get("raw")
    if not raw:
        return
    if raw.get("peaks"):
        res["peak"] = peak_figures(raw["peaks"])
    flops = {m: int(g * 1e9) for m, g in res.get("flops_gflop", {}).items()}
    peak = res.get("peak")
    if peak and flops:
        if raw.get("runs"):
            res["figures"] = pipeline_figures(raw, flops, peak)
        if raw.get("hour"):
            res["hour"] = hour_figures(raw, flops["fixture"], peak)
        if raw.get("one_cpu"):
            res["one_cpu"] = one_cpu_figures(raw, flops, peak, raw.get("one_cpu_wavs", {}))
    runs = raw.get("runs", {})
    clean_runs = [r for m in runs.values() for p, rs in m.items() if p != "legacy" for r in rs]
    if clean_runs:
        res["audio_s"], res["clips"] = clean_runs[0]["audio_s"], clean_runs[0]["clips"]
        res["worker_loadavg"] = sorted(r["loadavg_before"] for m in runs.values() for rs in m.values() for r in rs)
    fast = [r for m in ("resnet50", "fixture") for r in runs.get(m, {}).get("fast", [])]
    if fast:
        res["fast_arithmetic"] = fast[0]["arithmetic"]
    res["targets"] = verdicts(res)
