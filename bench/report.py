"""Turn raw bench measurements into derived figures, target verdicts and a markdown table."""

from __future__ import annotations

import statistics
from typing import Any

from bench.cuda_report import cuda_lines

PIPELINES = ("legacy", "legacy-exact", "fast")
LABELS = {"legacy": "legacy fastai (FastAIModel.predict)", "legacy-exact": "orcaport legacy-exact (fp32)",
          "fast": "orcaport fast"}
TARGETS = {"exact_speedup": 1.5, "exact_peak_fraction": 0.65, "fast_speedup": 4.0,
           "fast_local_agreement": 0.995, "fast_global_agreement": 1.0, "hour_rss_mb": 1536.0,
           "fast_vs_exact": 1.0, "pod_rss_mb": 3072.0, "cuda_h100_clips_per_s": 3000.0}
# fast >= legacy-exact is checked with this much run-to-run noise allowed: where the CPU has no
# bf16, `fast` IS legacy-exact's engine, and two runs of one engine differ by a few % here.
NOISE = 0.03


def median(xs: list[float]) -> float:
    return float(statistics.median(xs)) if xs else float("nan")


def network_figures(run: dict[str, Any], flops: int, peak: dict[str, Any]) -> dict[str, Any]:
    """A `network` worker run -> its median, GFLOP/s and fractions of the measured peaks.
    flops: the whole network's per clip. GFLOP/s counts what ran (`flops_per_clip`: less with
    padding reuse); `effective_gflops` counts the whole network, i.e. the throughput it amounts to."""
    t = median(run["times_s"])
    gflops = (run.get("flops_per_clip") or flops) * run["clips"] / t / 1e9
    # Prefer the peak measured in the same process right before/after (same machine load).
    near = {k: median(v) for k, v in run.get("adjacent_peak", {}).items()}
    fp32 = near.get("fp32_gflops") or peak["fp32_gflops"]
    onednn = near.get("onednn_fp32_gflops") or peak.get("onednn_fp32_gflops")
    # the peak of the arithmetic the network actually runs: oneDNN fp32 GEMM, or bf16 torch.mm
    # (which oneDNN runs with AVX512-BF16 here) for the fast profile
    own = (near.get("bf16_gflops") or peak.get("bf16_gflops")) if "bfloat16" in run.get("precision", "") else onednn
    out = {**run, "median_s": t, "gflops": gflops, "effective_gflops": flops * run["clips"] / t / 1e9,
           "peak_used_gflops": {"fp32": fp32, "onednn_fp32": onednn, "same_precision": own},
           "fraction_of_fp32_peak": gflops / fp32, "cpu_s_per_clip": median(run.get("cpu_s", [])) / run["clips"]}
    if onednn:
        out["fraction_of_onednn_fp32_peak"] = gflops / onednn
    if own:
        out["fraction_of_same_precision_peak"] = gflops / own
    return out


def paired_speedup(legacy: list[dict[str, Any]], runs: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """legacy / clean per round (the two ran back to back, under about the same load), then the
    median over rounds: steadier on a shared machine than a ratio of overall medians."""
    ratios = [median(lg[key]) / median(r[key]) for lg, r in zip(legacy, runs) if lg.get(key) and r.get(key)]
    return {"median": median(ratios) if ratios else None, "per_round": ratios}


def summarize(runs: list[dict[str, Any]], flops: int, peak: dict[str, Any],
              network: dict[str, Any] | None = None, legacy: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Median over every timed run of every round. -> the figures one table row shows."""
    times = [t for r in runs for t in r["times_s"]]
    clips, audio_s = runs[0]["clips"], runs[0].get("audio_s", 60.0)
    t = median(times)
    out = {"runs_s": times, "median_s": t, "clips": clips, "clips_per_s": clips / t,
           "s_per_audio_hour": t * 3600.0 / audio_s, "x_realtime": audio_s / t,
           "cpu_s_per_clip": median([c for r in runs for c in r.get("cpu_s", [])]) / clips,
           "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
           "end_to_end_gflops": flops * clips / t / 1e9}
    if network is not None:
        out["network"] = network_figures(network, flops, peak)
    if legacy and legacy is not runs:
        out["speedup_vs_legacy"] = paired_speedup(legacy, runs, "times_s")       # wall clock
        out["cpu_speedup_vs_legacy"] = paired_speedup(legacy, runs, "cpu_s")     # CPU seconds
    return out


def verdicts(res: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, for the ResNet50 shape, each with its measured value and met/missed."""
    r50 = res.get("figures", {}).get("resnet50", {})
    out: list[dict[str, Any]] = []

    def add(name: str, measured: float | None, target: float, op: str = ">=", applies: bool | str = True) -> None:
        met = None if measured is None else (measured >= target if op == ">=" else measured < target)
        out.append({"target": name, "goal": f"{op} {target:g}", "measured": measured,
                    "met": met if applies is True else (applies or "n/a")})

    # The 4x goal is fast's on a bf16 CPU; elsewhere fast is fp32 and its goal is >= legacy-exact.
    bf16 = (res.get("fast_arithmetic") or {}).get("name", "bf16") != "fp32"
    for profile, key in (("legacy-exact", "exact_speedup"), ("fast", "fast_speedup")):
        fig = r50.get(profile, {})
        note = "" if profile == "legacy-exact" else " [goal for bf16 CPUs]"
        add(f"ResNet50 {profile} clips/s vs legacy (x, wall clock, paired per round){note}",
            fig.get("speedup_vs_legacy", {}).get("median"), TARGETS[key], applies=profile != "fast" or bf16)
        add(f"ResNet50 {profile} vs legacy (x, CPU seconds per clip, paired per round){note}",
            fig.get("cpu_speedup_vs_legacy", {}).get("median"), TARGETS[key], applies=profile != "fast" or bf16)
    net = r50.get("legacy-exact", {}).get("network")
    add("ResNet50 legacy-exact network GFLOP/s / fp32 torch.mm peak",
        net["fraction_of_fp32_peak"] if net else None, TARGETS["exact_peak_fraction"])
    add("(stricter) ResNet50 legacy-exact network GFLOP/s / fp32 oneDNN GEMM peak",
        net.get("fraction_of_onednn_fp32_peak") if net else None, TARGETS["exact_peak_fraction"])
    parity = res.get("parity", {})
    add("fixture legacy-exact vs legacy references: max abs prob diff (parity bar 1e-5)",
        parity.get("max_abs_prob_diff"), 1e-5, "<")
    fast = r50.get("fast", {})
    if r50.get("legacy-exact") and fast:
        ratio = fast.get("fast_vs_exact", {}).get("median")
        # Informational: processes minutes apart see different load on a shared machine; the check
        # is the in-process alternation below (both profiles under the same load).
        add(f"ResNet50 fast / legacy-exact clips/s, 2 CPUs, separate processes per round ({NOISE:.0%} noise "
            "allowed)", ratio, TARGETS["fast_vs_exact"] - NOISE, applies="info")
    for key, pair in res.get("pair", {}).items():
        add(f"ResNet50 fast / legacy-exact clips/s, {key}, alternated in one process ({NOISE:.0%} noise allowed)",
            pair["median_ratio"], TARGETS["fast_vs_exact"] - NOISE)
    for key, one in res.get("one_cpu", {}).items():
        figs = one["figures"]
        ratio = figs["fast"].get("fast_vs_exact", {}).get("median")
        add(f"1 CPU, {one['model']} on the {key} file: fast / legacy-exact clips/s, separate processes "
            f"({NOISE:.0%} noise allowed)", ratio, TARGETS["fast_vs_exact"] - NOISE, applies="info")
        for p, f in figs.items():
            add(f"1 CPU, {one['model']} on the {key} file, {p}: peak RSS (MB) within a 3 GB pod",
                f["peak_rss_mb"], TARGETS["pod_rss_mb"], "<")
    for model in ("fixture", "resnet50"):
        agr = res.get("agreement", {}).get(model)
        add(f"{model} fast vs fp32 local decision agreement (corpus)",
            agr["local_agreement"] if agr else None, TARGETS["fast_local_agreement"])
        add(f"{model} fast vs fp32 global decision agreement (corpus)",
            agr["global_agreement"] if agr else None, TARGETS["fast_global_agreement"])
    for profile, hour in res.get("hour", {}).items():
        add(f"1-hour 48 kHz file, {profile}: peak RSS (MB)", hour["peak_rss_mb"], TARGETS["hour_rss_mb"], "<")
    cuda = res.get("cuda")
    if cuda:
        on_h100 = "H100" in cuda["gpu"]
        add(f"CUDA ({cuda['gpu']}) fast, whole detector over {cuda['whole']['fast']['audio_hours']:g} h: clips/s "
            "[goal on an H100]", cuda["whole"]["fast"]["clips_per_s"], TARGETS["cuda_h100_clips_per_s"],
            applies=on_h100)
        for profile, a in cuda["agreement_vs_cpu"].items():
            add(f"CUDA {profile} vs CPU legacy-exact, local decision agreement", a["local_agreement"],
                TARGETS["fast_local_agreement"])
            add(f"CUDA {profile} vs CPU legacy-exact, global decision agreement", a["global_agreement"],
                TARGETS["fast_global_agreement"])
    return out


def _f(x: float | None, fmt: str) -> str:
    return "n/a" if x is None else format(x, fmt)


def _pct(net: dict[str, Any] | None, key: str) -> str:
    """A network figure's fraction `key` as a whole percentage, or n/a."""
    return _f(100 * net[key] if net and key in net else None, ".0f")


def _gf(net: dict[str, Any] | None) -> str:
    if not net:
        return "n/a"
    eff = net.get("effective_gflops", net["gflops"])
    return f"{net['gflops']:.0f}" + (f" ({eff:.0f})" if abs(eff - net["gflops"]) > 0.5 else "")


def _ratio(r: dict[str, Any] | None) -> str:
    if not r or r.get("median") is None:
        return "n/a"
    return f"{r['median']:.2f}x ({', '.join(f'{v:.2f}' for v in r['per_round'])})"


def refresh(res: dict[str, Any]) -> dict[str, Any]:
    """Recompute the derived network figures and verdicts of a saved results.json (after a
    report change: `python -m bench --render`), without measuring anything again."""
    full = {model: int(g * 1e9) for model, g in res["flops_gflop"].items()}
    for model, figs in res["figures"].items():
        for f in figs.values():
            if f.get("network"):
                f["network"] = network_figures(f["network"], full[model], res["peak"])
    for name, v in res.get("network_variants", {}).items():
        res["network_variants"][name] = network_figures(v, full["resnet50"], res["peak"])
    res["targets"] = verdicts(res)
    return res


def _label(p: str, f: dict[str, Any]) -> str:
    """Pipeline name; fast's with the arithmetic it chose."""
    if p != "fast":
        return LABELS[p]
    arith = ((f.get("network") or {}).get("arithmetic") or {}).get("name") or f.get("precision", "")
    return f"{LABELS[p]} ({arith})"


def _lscpu(m: dict[str, Any]) -> str:
    info = m.get("lscpu") or {}
    flags = ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in info.get("key_flags", {}).items())
    return f"{info.get('model_name')} (model {info.get('model')}, {info.get('hypervisor') or 'bare metal'}); {flags}"


def _arith(a: dict[str, Any] | None) -> str:
    return "n/a" if not a else f"**{a['name']}** ({a['source']}: {a['reason']})"


def _loads(res: dict[str, Any]) -> str:
    loads = res.get("worker_loadavg") or []
    if not loads:
        return "n/a"
    return f"min {min(loads):.2f}, median {median(loads):.2f}, max {max(loads):.2f} (2 CPUs)"


def one_cpu_lines(res: dict[str, Any]) -> list[str]:
    """The 1-CPU pod table: each pipeline pinned to one CPU with one thread."""
    if not res.get("one_cpu"):
        return []
    lines = ["", "1 CPU (each run pinned to one CPU, as `taskset -c 0`, torch/OpenMP/MKL threads = 1): what a "
             "1 CPU / 3 GB pod gets. 60 s file: ResNet50, median of the timed runs after a warm-up; 1-hour "
             "file: the fixture, one run:", "",
             "| file | model | pipeline | arithmetic | wall s | s per 60 s of audio | x realtime | clips/s "
             "| vs legacy | fast / exact | peak RSS MB | load avg at start |",
             "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for key, one in res["one_cpu"].items():
        for p in PIPELINES:
            f = one["figures"].get(p)
            if not f:
                continue
            arith = (f.get("arithmetic") or {}).get("name", "fp32")
            ratio = _ratio(f.get("speedup_vs_legacy")) if p != "legacy" else "1.00x"
            vs_exact = _ratio(f.get("fast_vs_exact")) if p == "fast" else ""
            lines.append(f"| {one['wav']} | {one['model']} | {LABELS[p]} | {arith if p != 'legacy' else 'fp32'} "
                         f"| {f['median_s']:.1f} | {60 / f['x_realtime']:.2f} | {f['x_realtime']:.1f} "
                         f"| {f['clips_per_s']:.2f} | {ratio} | {vs_exact} | {f['peak_rss_mb']:.0f} "
                         f"| {f.get('loadavg_before', 'n/a')} |")
    return lines


def pair_lines(res: dict[str, Any]) -> list[str]:
    if not res.get("pair"):
        return []
    lines = ["", "fast vs legacy-exact alternated in ONE process (bench/pair.py: each pair of runs sees the "
             "same load; separate processes minutes apart do not on a shared machine), ResNet50, 60 s file:", "",
             "| CPUs | fast arithmetic | legacy-exact s (per run) | fast s (per run) | exact/fast per pair | median "
             "| load avg at start | measured |", "|---|---|---|---|---|---:|---:|---|"]
    for key, p in res["pair"].items():
        fmt = lambda xs: ", ".join(f"{x:.2f}" for x in xs)  # noqa: E731
        lines.append(f"| {key} | {p['arithmetic']['name']} | {fmt(p['times_s']['legacy-exact'])} "
                     f"| {fmt(p['times_s']['fast'])} | {fmt(p['ratios'])} | {p['median_ratio']:.2f}x "
                     f"| {p.get('loadavg_before', float('nan')):.2f} | {p.get('measured', 'n/a')} |")
    return lines


def int8_lines(res: dict[str, Any]) -> list[str]:
    if not res.get("int8"):
        return []
    first = next(iter(res["int8"].values()))
    lines = ["", f"int8 candidate for CPUs without bf16 ({first['method']}; one thread, batch {first['batch']}); "
             "`fast` may use it only at >= 99.5 % local and 100 % global agreement with fp32:", "",
             "| model | local agreement | global agreement | max abs prob diff | fp32 ms/clip | int8 ms/clip "
             "| speed-up | used by fast |", "|---|---:|---:|---:|---:|---:|---:|---|"]
    for model, r in res["int8"].items():
        ok = r["local_agreement"] >= TARGETS["fast_local_agreement"] and r["global_agreement"] >= 1.0
        lines.append(f"| {model} | {100 * r['local_agreement']:.2f} % | {100 * r['global_agreement']:.1f} % "
                     f"| {r['max_abs_prob_diff']:.3f} | {r['fp32_ms_per_clip']:.1f} | {r['int8_ms_per_clip']:.1f} "
                     f"| {r['speedup']:.2f}x | {'could be' if ok else 'no: misses the agreement bar'} |")
    return lines


def rows_lines(res: dict[str, Any]) -> list[str]:
    """The run's state, and every row that was not measured (failed, skipped, interrupted)."""
    rows = res.get("rows")
    if rows is None:                   # results from before rows were kept
        return []
    bad = {n: r for n, r in rows.items() if r["status"] != "ok"}
    state = {"running": "**still running** (rows are written as they finish)", "complete": "complete",
             "incomplete": "**incomplete**: the rows below were not measured"}.get(res.get("status"), res.get("status"))
    lines = ["", f"Run {state}; {len(rows) - len(bad)} of {len(rows)} rows measured, last written "
             f"{res.get('updated', 'n/a')}."]
    if bad:
        lines += ["", "| row | status | error | finished (load avg) |", "|---|---|---|---|"]
        lines += [f"| {n} | {r['status']} | {r.get('error', '').replace('|', '/')} | {r['finished']} ({r['loadavg']}) |"
                  for n, r in bad.items()]
    return lines


def header_lines(res: dict[str, Any]) -> list[str]:
    m, peak = res["machine"], res.get("peak")
    smoke = " -- **smoke run: tiny inputs, the figures mean nothing**" if res.get("settings", {}).get("smoke") else ""
    lines = [f"### `make bench` ({res['date']}){smoke}", "",
             f"{m['cpu']}, {m['cpus']} CPUs, torch {m['torch']} (clean) / {m.get('legacy_torch') or 'n/a'} "
             f"(legacy); load average {m['loadavg_start']} at start, {m.get('loadavg_end', 'n/a (still running)')} "
             "at end (the machine is shared: other jobs compete for the same CPUs, so absolute rates vary "
             "run to run; legacy and clean were interleaved round by round).", "",
             f"lscpu: {_lscpu(m)}.", "",
             f"`fast` chose {_arith(res.get('fast_arithmetic'))}. Load average seen by each worker at its "
             f"start: {_loads(res)}."]
    if peak and "audio_s" in res:
        lines += ["", f"Workload: `{res['wav']}` ({res['audio_s']:.0f} s, {res['clips']} clips), median of "
                  f"{res['settings']['rounds']} rounds x {res['settings']['repeats']} timed runs after a warm-up. "
                  f"fp32 matmul peak (torch.mm {peak['size']}^2, {peak['threads']} threads, MKL): "
                  f"**{_f(peak['fp32_gflops'], '.0f')} GFLOP/s**; the same fp32 GEMM through oneDNN: "
                  f"{_f(peak.get('onednn_fp32_gflops'), '.0f')} GFLOP/s; bf16 torch.mm: "
                  f"{_f(peak['bf16_gflops'], '.1f')} GFLOP/s"
                  f"{'' if peak.get('bf16_size', peak['size']) == peak['size'] else ' (%d^2: emulated, no bf16 hardware)' % peak['bf16_size']}."]
    return lines + rows_lines(res)


def markdown(res: dict[str, Any]) -> str:
    lines = header_lines(res)
    lines += ["", "Speed-ups are legacy/clean per round (back to back, same load), median over rounds; the "
              "per-round values are in brackets (a round where another job hit the legacy run shows up as "
              "an outlier). '% own peak': of the oneDNN fp32 GEMM for fp32, of bf16 torch.mm for bf16.", "",
              "Network GFLOP/s count the FLOPs that ran (padding reuse skips ~18 % of them); in brackets, "
              "the whole network's FLOPs per second of network time: the throughput it amounts to.", "",
              "| model | pipeline | clips/s | s per audio hour | x realtime | vs legacy (wall) | CPU-s per clip "
              "| vs legacy (CPU) | peak RSS MB | network GFLOP/s (whole-network rate) | % torch.mm fp32 peak | % own peak |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for model, figs in res.get("figures", {}).items():
        for p in PIPELINES:
            f = figs.get(p)
            if not f:
                continue
            net = f.get("network")
            speedup, cpu_speedup = (_ratio(f.get(k)) if p != "legacy" else "1.00x"
                                    for k in ("speedup_vs_legacy", "cpu_speedup_vs_legacy"))
            lines.append(
                f"| {model} ({res['flops_gflop'][model]:.1f} GFLOP/clip) | {_label(p, f)} | {f['clips_per_s']:.2f} "
                f"| {f['s_per_audio_hour']:.0f} | {f['x_realtime']:.1f} "
                f"| {speedup} | {f['cpu_s_per_clip']:.3f} | {cpu_speedup} "
                f"| {f['peak_rss_mb']:.0f} | {_gf(net)} "
                f"| {_pct(net, 'fraction_of_fp32_peak')} | {_pct(net, 'fraction_of_same_precision_peak')} |")
    if res.get("network_variants"):
        lines += ["", f"Network alone (ResNet50, the file's {res.get('clips')} inputs; the design choices, measured):", "",
                  "| variant | wall ms/clip | CPU ms/clip | GFLOP/s (whole-network rate) | % torch.mm fp32 peak | % own peak |",
                  "|---|---:|---:|---:|---:|---:|"]
        for name, v in res["network_variants"].items():
            lines.append(f"| {name} | {1000 * v['median_s'] / v['clips']:.1f} | {1000 * v['cpu_s_per_clip']:.1f} "
                         f"| {_gf(v)} | {_pct(v, 'fraction_of_fp32_peak')} "
                         f"| {_pct(v, 'fraction_of_same_precision_peak')} |")
        for name in res.get("network_variants_skipped", []):
            lines.append(f"| {name} | not run: this CPU has no AVX512-BF16/AMX, bf16 would be emulated "
                         "(fast never picks it here) | | | | |")
    if res.get("hour"):
        lines += ["", "1-hour 48 kHz mono file (fixture model, streamed from disk, one run each):", "",
                  "| profile | wall s | x realtime | clips/s | CPU-s per clip | peak RSS MB | measured (load avg after) |",
                  "|---|---:|---:|---:|---:|---:|---|"]
        for profile, h in res["hour"].items():
            lines.append(f"| {profile} | {h['median_s']:.0f} | {h['x_realtime']:.1f} | {h['clips_per_s']:.1f} "
                         f"| {h['cpu_s_per_clip']:.3f} | {h['peak_rss_mb']:.0f} "
                         f"| {h.get('measured', res['date'])} ({h.get('loadavg_after', 'n/a')}) |")
    lines += pair_lines(res) + one_cpu_lines(res) + int8_lines(res)
    lines += cuda_lines(res)   # bench/cuda_report.py
    if res.get("agreement"):
        lines += ["", "fast vs legacy-exact decisions on the whole corpus (files >= 2 s). resnet50: the trained "
                  "stand-in (bench/train.py); resnet50-random: random weights, BN calibrated. Probe: the fp32 "
                  "network fed inputs merely rounded to bf16 -- a model that flips there is too sensitive for "
                  "any bf16 scheme:", "", "| model | files | seconds | local agreement | global agreement "
                  "| max abs prob diff | probe local | probe global |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for model, a in res["agreement"].items():
            lines.append(f"| {model} | {a['files']} | {a['seconds']} | {100 * a['local_agreement']:.2f} % "
                         f"| {100 * a['global_agreement']:.1f} % | {a['max_abs_prob_diff']:.4f} "
                         f"| {100 * a['probe_local_agreement']:.2f} % | {100 * a['probe_global_agreement']:.1f} % |")
    lines += ["", "| target | goal | measured | met |", "|---|---|---:|---|"]
    for v in res.get("targets", []):
        met = {True: "yes", False: "**no**", None: "not measured", "n/a": "n/a here (fast is fp32)",
               "info": "informational (separate processes: the check is the in-process pair)"}[v["met"]]
        lines.append(f"| {v['target']} | {v['goal']} | {_f(v['measured'], '.4g')} | {met} |")
    return "\n".join(lines) + "\n"
