"""`make bench`: legacy fastai pipeline vs the fastai-free Detector, same machine, same files, one run.

Never run in CI. Every measurement runs in its own subprocess (its peak RSS is its own): legacy
in .venvs/legacy (`convert.production.predict_file`, skipped when that env is missing), clean in
this interpreter. Legacy and clean runs are interleaved round by round so that load from other
jobs on a shared machine hits both alike; figures are medians.

Each measurement is a row (bench/rows.py): OUT/results.json and OUT/results.md are rewritten as
each row completes, a failing row is recorded with its error while the others go on, and the run
exits 1 when any row failed. `--smoke` runs every row on tiny inputs in seconds, clean rows in
this process (the test suite's check that every code path runs; its figures mean nothing).

    python -m bench [--rounds 2] [--repeats 3] [--skip-legacy] [--skip-hour] [--quick] [--smoke]
                    [--out DIR] [--render] [--hour-only] [--pair-only]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import resource
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.figures import ONE_CPU_WORKLOADS, derive
from bench.machine import cpu_name, lscpu
from bench.report import markdown, network_figures, refresh
from bench.rows import Rows, now
from bench.workers import torch_version, worker, write_tiled
from orcaport.model.errors import OrcaportError, report_error

# No torch here (except in --smoke): Linux carries this process's RSS high-water mark into every
# worker it starts, so it stays small for the workers' ru_maxrss to be their own.

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "reference_outputs" / "fixture"
CORPUS = ROOT / "reference_outputs" / "corpus"
STAGES = ROOT / "reference_outputs" / "stages"
WAV = CORPUS / "hydrophone_48k_mono16_60s.wav"
LEGACY_PYTHON = ROOT / ".venvs" / "legacy" / "bin" / "python"
TRAINED = ROOT / "build" / "bench" / "resnet50-trained"
HOUR_S = 3600
# --smoke: a 2-clip file as the workload, two short corpus files for agreement and int8
SMOKE_WAV = "clipping_48k_16_3s2.wav"
SMOKE_CORPUS = ("exact_2s0_48k_16.wav", SMOKE_WAV)


@dataclasses.dataclass(frozen=True)
class Plan:
    """What one run measures. The defaults are `make bench`'s; `smoke` is the test suite's."""
    rounds: int = 2                  # interleaved legacy/clean rounds (medians over them)
    repeats: int = 3                 # timed runs per worker, after `warmup` untimed ones
    warmup: int = 1                  # the first call builds oneDNN's kernels: never timed
    wav: Path = WAV                  # the workload: 60 s, 59 clips (OrcaHello's 1-minute segments)
    corpus: Path = CORPUS            # agreement and int8 are scored on every file of it
    hour_s: int = HOUR_S             # the long file: `wav` tiled to this many seconds
    mm_size: int = 4096              # matmul peak size (large enough to reach the peak)
    peak_repeats: int = 5
    calibration_per_class: int = 16  # int8's calibration clips per class
    pair_repeats: int = 7            # fast/legacy-exact pairs alternated in one process
    stand_in: Path | None = None     # the clean side's "resnet50": None trains it (bench/train.py)
    probe_agreement: bool = True     # the random ResNet50's agreement row (the conditioning probe)
    legacy: bool = True
    hour: bool = True                # the long-file rows (hour, and the 1-CPU long file)
    in_process: bool = False         # clean workers run in this process (smoke: no RSS, no timing)
    variants: tuple[str, ...] | None = None   # network variants to run (None: every one of VARIANTS)
    pair_cpus: tuple[str, ...] = ("2 CPUs", "1 CPU")
    corpus_models: tuple[str, ...] = ("resnet50", "fixture")   # agreement and int8 rows


def smoke_plan(tmp: Path, legacy: bool) -> Plan:
    corpus = tmp / "corpus"
    corpus.mkdir()
    for name in SMOKE_CORPUS:
        (corpus / name).symlink_to(CORPUS / name)
    (corpus / "corpus.json").write_text(json.dumps({"files": [{"name": n} for n in SMOKE_CORPUS]}))
    # A ResNet50 costs ~7 CPU-s per Detector build (oneDNN's trial passes): the fixture's ResNet18
    # takes the ResNet50's place on the clean side (legacy still builds its ResNet50 learner).
    # Variants that only resize batches or pools run the same code as another: one per engine,
    # padding reuse and arithmetic.
    paths: dict[tuple, str] = {}
    for label, extra in VARIANTS.items():
        sizing = {i for i, x in enumerate(extra) if x in SIZING_FLAGS}
        paths.setdefault(tuple(x for i, x in enumerate(extra) if i not in sizing and i - 1 not in sizing), label)
    return Plan(rounds=1, repeats=1, warmup=0, wav=corpus / SMOKE_WAV, corpus=corpus, hour_s=8, mm_size=256,
                peak_repeats=1, calibration_per_class=2, pair_repeats=1, stand_in=FIXTURE,
                probe_agreement=False, legacy=legacy, in_process=True, variants=tuple(paths.values()), pair_cpus=("2 CPUs",),
                corpus_models=("fixture",))          # the stand-in *is* the fixture here: no second row


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


SIZING_FLAGS = ("--batch-size", "--workers", "--intra")   # each takes a number


class Bench:
    """One run: its plan, its results dict and its rows (each written as it completes)."""

    def __init__(self, plan: Plan, res: dict[str, Any], out: Path) -> None:
        self.plan, self.res = plan, res
        self.rows = Rows(res, out, markdown, derive)
        self.raw: dict[str, Any] = res.setdefault("raw", {})
        self.models: dict[str, Path] = {}

    def clean(self, mode: str, *args: Any, one_cpu: bool = False) -> dict[str, Any]:
        argv = [mode, *args, "--mm-size", self.plan.mm_size]
        if not self.plan.in_process:
            return worker(sys.executable, "bench.clean_worker", argv, one_cpu=one_cpu)
        from bench.clean_worker import measure

        return {**json.loads(json.dumps(measure([str(a) for a in argv]))), "loadavg_before": os.getloadavg()[0]}

    def legacy(self, model: str, wav: Path, *args: Any, one_cpu: bool = False) -> dict[str, Any]:
        extra = ["--threads", 1] if one_cpu else []
        return worker(str(LEGACY_PYTHON), "bench.legacy_worker",
                      ["--model", model, "--wav", wav, "--warmup", self.plan.warmup, *args, *extra], one_cpu=one_cpu)

    def row(self, name: str, path: tuple[str, ...], measure, needs: tuple[str, ...] = (),
            append: bool = False) -> dict[str, Any] | None:
        """Row `name`: its run kept at res["raw"][path...] (appended to a list with `append`),
        stamped with when it ended and the load then."""
        def keep(run: dict[str, Any]) -> None:
            run.update(measured=now(), loadavg_after=round(os.getloadavg()[0], 2))
            node = self.raw
            for key in path[:-1]:
                node = node.setdefault(key, {})
            if append:
                node.setdefault(path[-1], []).append(run)
            else:
                node[path[-1]] = run
        return self.rows.run(name, measure, needs, keep)

    # ------------------------------------------------------------------ the rows, in run order
    def prepare(self, tmp: Path) -> None:
        """The random ResNet50 (the agreement table's probe) and both networks' FLOPs; then the
        trained ResNet50 stand-in (bench/train.py, kept in build/) unless the plan names one."""
        probe = tmp / "resnet50-random"

        def flops(run: dict[str, Any]) -> None:
            self.res["flops_gflop"] = {k: v / 1e9 for k, v in run["flops"].items()}
        self.rows.run("prepare", lambda: self.clean("prepare", "--wav", self.plan.wav, "--out", probe), keep=flops)
        trained = self.plan.stand_in or self.rows.run("train", trained_resnet50)
        self.models = {"resnet50": trained, "fixture": FIXTURE, "resnet50-random": probe}
        if trained is None:
            del self.models["resnet50"]

    def rounds(self) -> None:
        """Interleaved rounds: peak, then per model legacy -> legacy-exact -> fast (whole pipeline
        and network alone); a final peak. A series that failed once is not run again."""
        rep = ["--repeats", self.plan.repeats]
        for r in range(1, self.plan.rounds + 1):
            self.row(f"round {r}/peak", ("peaks",), lambda: self.clean("peak", "--repeats", self.plan.peak_repeats),
                     append=True)
            for name in ("resnet50", "fixture"):
                if name not in self.models:
                    continue
                before = (f"round {r - 1}/{name}/",) if r > 1 else ()
                if self.plan.legacy:
                    self.row(f"round {r}/{name}/legacy", ("runs", name, "legacy"),
                             lambda: self.legacy(name, self.plan.wav, *rep),
                             needs=tuple(b + "legacy" for b in before), append=True)
                for profile in ("legacy-exact", "fast"):
                    common = ["--model", self.models[name], "--wav", self.plan.wav, "--profile", profile, *rep]
                    self.row(f"round {r}/{name}/{profile}", ("runs", name, profile),
                             lambda: self.clean("detect", *common, "--warmup", self.plan.warmup),
                             needs=tuple(b + profile for b in before), append=True)
                    self.row(f"round {r}/{name}/{profile} network", ("nets", name, profile),
                             lambda: self.clean("network", *common),
                             needs=tuple(b + profile + " network" for b in before), append=True)
        self.row("final peak", ("peaks",), lambda: self.clean("peak", "--repeats", self.plan.peak_repeats), append=True)

    def parity(self) -> None:
        """The fixture's legacy-exact result on the workload vs the committed legacy references."""
        def check() -> dict[str, Any]:
            import numpy as np
            from orcaport.parity.references import load_references

            run = self.raw["runs"]["fixture"]["legacy-exact"][0]
            t = load_references(STAGES).file(self.plan.wav.name).tensors
            probs = np.asarray(run["clip_confidence"])
            return {"max_abs_prob_diff": float(np.abs(probs - t["all/probs"][:, 1]).max()),
                    "local_identical": run["local_prediction"] == t["aggregate/local_prediction"].tolist(),
                    "global_identical": run["global_prediction"] == int(t["aggregate/global_prediction"][0])}
        self.rows.run("parity", check, needs=("round 1/fixture/legacy-exact",),
                      keep=lambda v: self.res.__setitem__("parity", v))

    def pairs(self) -> None:
        """fast vs legacy-exact alternated in one process (bench/pair.py), on 2 CPUs and pinned to one."""
        for key in self.plan.pair_cpus:
            one = key == "1 CPU"
            self.rows.run(f"pair/{key}", lambda: {
                **self.clean("pair", "--model", self.models["resnet50"], "--wav", self.plan.wav,
                             "--repeats", self.plan.pair_repeats, one_cpu=one),
                "model": "resnet50", "wav": self.plan.wav.name, "measured": now()},
                needs=() if self.plan.stand_in else ("train",),
                keep=lambda v: self.res.setdefault("pair", {}).__setitem__(key, v))

    def variants(self) -> None:
        """The ResNet50 network alone under each design choice (bf16 ones only on bf16 CPUs)."""
        bf16 = bf16_cpu(self.res)
        self.res["network_variants_skipped"] = [] if bf16 else [v for v, e in VARIANTS.items() if "bf16" in e]
        for label, extra in VARIANTS.items():
            if (bf16 or "bf16" not in extra) and label in (self.plan.variants or VARIANTS):
                self.rows.run(f"variant/{label}", lambda: network_figures(
                    self.clean("network", "--model", self.models["resnet50"], "--wav", self.plan.wav,
                               "--repeats", self.plan.repeats, *extra),
                    int(self.res["flops_gflop"]["resnet50"] * 1e9), self.res["peak"]),
                    needs=("prepare",) if self.plan.stand_in else ("prepare", "train"),
                    keep=lambda v: self.res.setdefault("network_variants", {}).__setitem__(label, v))

    def corpus_rows(self) -> None:
        """fast vs fp32 decisions on the corpus, then the int8 candidate, per model."""
        for section, mode, models, extra in (
                ("agreement", "corpus", self.plan.corpus_models + ("resnet50-random",) * self.plan.probe_agreement, []),
                ("int8", "int8", self.plan.corpus_models, ["--calibration", self.plan.calibration_per_class])):
            for name in models:
                if name in self.models:
                    self.rows.run(f"{section}/{name}", lambda: self.clean(
                        mode, "--model", self.models[name], "--corpus", self.plan.corpus, *extra),
                        keep=lambda v: self.res.setdefault(section, {}).__setitem__(name, v))

    def long_file(self, tmp: Path) -> None:
        """The fixture on the long file, each profile; then a 1-CPU pod: the workload on the
        ResNet50 and the long file on the fixture, each pipeline pinned to one CPU."""
        hour = write_tiled(self.plan.wav, tmp / f"{self.plan.wav.stem}_{self.plan.hour_s}s.wav", self.plan.hour_s)
        once = ["--repeats", 1, "--warmup", 0]
        for profile in ("legacy-exact", "fast"):
            self.row(f"hour/{profile}", ("hour", profile),
                     lambda: self.clean("detect", "--model", FIXTURE, "--wav", hour, "--profile", profile, *once))
        self.raw["one_cpu_wavs"] = {"60s": self.plan.wav.name, "hour": hour.name}
        for key, wav, rep in (("60s", self.plan.wav, ["--repeats", self.plan.repeats, "--warmup", self.plan.warmup]),
                              ("hour", hour, once)):
            model = ONE_CPU_WORKLOADS[key]
            if model not in self.models:
                continue
            if self.plan.legacy:
                self.row(f"1 CPU/{key}/legacy", ("one_cpu", key, "legacy"),
                         lambda: self.legacy(model, wav, *rep, one_cpu=True))
            for profile in ("legacy-exact", "fast"):
                self.row(f"1 CPU/{key}/{profile}", ("one_cpu", key, profile), lambda: self.clean(
                    "detect", "--model", self.models[model], "--wav", wav, "--profile", profile, *rep, one_cpu=True))


def planned_rows(plan: Plan, bf16_cpu: bool) -> list[str]:
    """Every row a run of `plan` measures, in run order (a run that stopped lists the rest as not run)."""
    models = ("resnet50", "fixture")
    rows = ["prepare"] + ([] if plan.stand_in else ["train"])
    for r in range(1, plan.rounds + 1):
        rows.append(f"round {r}/peak")
        for m in models:
            rows += [f"round {r}/{m}/legacy"] * plan.legacy
            rows += [f"round {r}/{m}/{p}{n}" for p in ("legacy-exact", "fast") for n in ("", " network")]
    rows += ["final peak", "parity"]
    rows += [f"agreement/{m}" for m in plan.corpus_models + ("resnet50-random",) * plan.probe_agreement]
    rows += [f"int8/{m}" for m in plan.corpus_models] + [f"pair/{k}" for k in plan.pair_cpus]
    rows += [f"variant/{v}" for v, extra in VARIANTS.items()
             if (bf16_cpu or "bf16" not in extra) and v in (plan.variants or VARIANTS)]
    if plan.hour:
        rows += ["hour/legacy-exact", "hour/fast"]
        rows += [f"1 CPU/{key}/{p}" for key in ONE_CPU_WORKLOADS for p in ("legacy",) * plan.legacy + ("legacy-exact", "fast")]
    return rows


def bf16_cpu(res: dict[str, Any]) -> bool:
    return any(res["machine"]["lscpu"]["key_flags"][f] for f in ("avx512_bf16", "amx_bf16"))


def trained_resnet50() -> Path:
    """The trained OrcaHello-shaped ResNet50 (bench/train.py), trained once (~7 min) and kept in
    build/ (git-ignored): speed does not depend on the weights, decision agreement does, and
    random weights say nothing about real ones (see bench/train.py)."""
    if not (TRAINED / "config.json").is_file():
        print(f"bench: training the ResNet50 stand-in into {TRAINED} (once, ~7 min)", file=sys.stderr, flush=True)
        worker(sys.executable, "bench.train", ["--out", TRAINED], timeout=3600)
    return TRAINED


def cuda_results(out: Path) -> dict[str, Any] | None:
    """The GPU rows: `make bench-cuda`'s OUT/cuda.json, measured on a GPU machine when one was
    lent (this machine may have none); None when there is none -- never estimated."""
    path = out / "cuda.json"
    return json.loads(path.read_text()) if path.is_file() else None


def machine(use_legacy: bool) -> dict[str, Any]:
    return {"cpu": cpu_name(), "cpus": len(os.sched_getaffinity(0)), "python": platform.python_version(),
            "torch": torch_version(sys.executable),
            "legacy_torch": torch_version(str(LEGACY_PYTHON)) if use_legacy else None,
            "loadavg_start": round(os.getloadavg()[0], 2), "lscpu": lscpu()}


def main(argv: list[str] | None = None) -> int:
    try:
        return run(argv)
    except (OrcaportError, KeyboardInterrupt) as e:    # the rows measured so far are on disk
        return int(report_error("bench", e))


def run(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=Plan.rounds, help="interleaved legacy/clean rounds")
    ap.add_argument("--repeats", type=int, default=Plan.repeats, help="timed runs per worker (after a warm-up)")
    ap.add_argument("--skip-legacy", action="store_true")
    ap.add_argument("--skip-hour", action="store_true")
    ap.add_argument("--quick", action="store_true", help="1 round x 1 repeat, no 1-hour file")
    ap.add_argument("--smoke", action="store_true",
                    help="every row on tiny inputs, clean rows in this process: checks code paths, measures nothing")
    ap.add_argument("--out", type=Path, default=ROOT / "bench")
    ap.add_argument("--render", action="store_true", help="re-render OUT/results.json, measure nothing")
    ap.add_argument("--hour-only", action="store_true",
                    help="re-measure only the long-file rows (1-hour file, 1 CPU) into OUT/results.json")
    ap.add_argument("--pair-only", action="store_true",
                    help="measure only fast vs legacy-exact alternated in one process, into OUT/results.json")
    ap.add_argument("--only", type=lambda v: [x for x in v.split(",") if x], default=[],
                    help=f"measure only these sections ({','.join(SECTIONS)}) into OUT/results.json, after "
                         "the rows it has (e.g. to finish a run that was stopped)")
    args = ap.parse_args(argv)
    use_legacy = LEGACY_PYTHON.exists() and not args.skip_legacy
    if not use_legacy:
        print(f"bench: legacy pipeline skipped ({LEGACY_PYTHON} missing or --skip-legacy)", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="orcaport-bench-") as tmp:
        unknown = sorted(set(args.only) - set(SECTIONS))
        if unknown:
            ap.error(f"--only {','.join(unknown)}: the sections are {','.join(SECTIONS)}")
        if args.smoke:
            plan = smoke_plan(Path(tmp), use_legacy)
        else:
            quick = dict(rounds=1, repeats=1, hour=False) if args.quick else {}
            plan = Plan(**{"rounds": args.rounds, "repeats": args.repeats, "hour": not args.skip_hour,
                           **quick, "legacy": use_legacy})
        if args.render or args.hour_only or args.pair_only or args.only:
            return again(args, plan, Path(tmp))
        res: dict[str, Any] = {"date": now(), "machine": machine(use_legacy), "wav": plan.wav.name,
                               "settings": {"rounds": plan.rounds, "repeats": plan.repeats, "smoke": args.smoke},
                               "cuda": cuda_results(args.out)}
        bench = Bench(plan, res, args.out)
        res["machine"]["orchestrator_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        bench.prepare(Path(tmp))
        bench.rounds()
        bench.parity()
        bench.corpus_rows()       # decisions (agreement, int8) before more timings: cheap, and
        bench.pairs()             # a slow shared machine still gets them by a deadline
        bench.variants()
        if plan.hour:
            bench.long_file(Path(tmp))
        res["machine"]["loadavg_end"] = round(os.getloadavg()[0], 2)
        code = bench.rows.finish(planned_rows(plan, bf16_cpu(res)))
    if (args.out / "results.md").is_file():
        print((args.out / "results.md").read_text())
    return int(code)


SECTIONS = ("corpus", "pairs", "variants", "long")   # --only: what a run after the rounds measures


def again(args: argparse.Namespace, plan: Plan, tmp: Path) -> int:
    """--render, or --only SECTIONS (and the older --hour-only / --pair-only) into the saved
    OUT/results.json: the rows it has stand, the sections named are measured (again) after them."""
    res = json.loads((args.out / "results.json").read_text())
    res["cuda"] = cuda_results(args.out)
    planned = planned_rows(plan, bf16_cpu(res)) if "rows" in res else []   # older results kept no rows
    bench = Bench(plan, res, args.out)
    if args.render and "raw" not in res:
        refresh(res)
    only = set(args.only) | ({"pairs"} if args.pair_only else set()) | ({"long"} if args.hour_only else set())
    bench.models = {"resnet50": plan.stand_in or TRAINED, "fixture": FIXTURE}
    if only & {"corpus", "variants"}:         # the random ResNet50 lived in the first run's temp folder
        bench.prepare(tmp)
    for name, section in (("corpus", bench.corpus_rows), ("pairs", bench.pairs), ("variants", bench.variants)):
        if name in only:
            section()
    if "long" in only:
        bench.long_file(tmp)
    if only:                                   # --render measures nothing: the run's own end stands
        res["machine"]["loadavg_end"] = round(os.getloadavg()[0], 2)
    code = bench.rows.finish(planned)
    print((args.out / "results.md").read_text())
    return int(code)


if __name__ == "__main__":
    sys.exit(main())
