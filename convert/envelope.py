"""`make envelope`: how far the legacy pipeline moves on its own, per stage, on this machine.

    python -m convert.envelope --model DIR --audio DIR|FILE... --references DIR --out envelope.json
        [--variants a,b] [--sha256 HEX] [--jobs N] [--log FILE]

Runs legacy again under each VARIANT -- PyTorch's dispatch level, MKL's instruction set and
reproducibility mode, oneDNN's max ISA, 1 vs 2 threads -- each in its own process forked from one
interpreter that imported fastai once (convert/preloaded.py; the switches are read when each library
first computes; --fresh-processes starts a new python per variant instead), as many side by side as
the usable CPUs allow (model/cpus.py). A
variant is measured on the clips that matter, not every window: each file's full-stage clips the
references already store (first, last, most confident, nearest the threshold;
convert/envelope_clips.py). The baseline is this machine's default-kernel legacy run on every
clip: the references themselves when they were recorded here with this model and one thread, else
recorded again (convert/references.py). Every stage of every variant is compared with the baseline
and with the given references (recorded on another machine unless the fingerprints match); where
the clean env exists the clean runtime and the Detector replay the baseline too (the same-machine
clean-vs-legacy figure). A rough time estimate is printed before starting and refined as runs
finish; legacy's own output goes to one log (<out>.log by default). The result, with every run's
machine fingerprint, is the envelope `python -m orcaport.parity.envelope derive` turns into
parity/tolerances.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from convert.envelope_clips import CLIPS_FILE
from convert.envelope_jobs import Job, run_jobs
from convert import preloaded
from convert.legacy_log import log_path_for
from orcaport.model.arithmetic import read_cpu_flags
from orcaport.model.cpus import available_cpus
from orcaport.model.errors import ExitCode, InputError, OrcaportError, UsageError, report_error
from orcaport.model.fileio import scratch_prefix, sha256_file, write_output_file
from orcaport.parity.audio_manifest import scan, tensor_file_name, verify
from orcaport.parity.diffstats import diff_stats
from orcaport.parity.envelope import VARIANTS, compare_clips, compare_sets, fold_stats, same_as_baseline
from orcaport.parity.fingerprint import default_kernel_environ, fingerprint, same_machine
from orcaport.parity.references import References, load_references

ROOT = Path(__file__).resolve().parents[1]
CLEAN_PYTHON = ROOT / ".venvs" / "clean" / "bin" / "python"
SCHEMA_VERSION = 2      # 2: variants measured on the full-stage clips, side by side
# The rough estimate printed before starting (refined as runs finish): the fixture's legacy costs
# on a 2-vCPU Intel Xeon (Sapphire Rapids, KVM), measured by `make envelope` there (2026-12-03).
START_S = 15.0          # a legacy process: import fastai, unpickle the learner
FORKED_START_S = 3.0    # a variant forked from the preloaded interpreter: unpickle only
CLIP_S = 0.6            # a clip of `make references` (every clip, light; the full-stage ones twice)
FULL_CLIP_S = 1.0       # a full-stage clip, every stage captured
CLEAN_S = 30.0          # the clean replay and the detector check


def clean_job(refs: Path, model: Path, root: Path, names: list[str], after: str | None) -> list[Job]:
    """The clean runtime (chained replay) and the Detector (fused oneDNN engine) against this
    machine's baseline, in one clean-env process (parity/envelope_clean.py), once `after` is done;
    none without the clean env."""
    if not CLEAN_PYTHON.exists() or not names:
        return []
    cmd = [str(CLEAN_PYTHON), "-m", "orcaport.parity.envelope_clean", "--model", str(model), "--references",
           str(refs), "--corpus", str(root), *names]
    return [Job("clean replay + detector", cmd, default_kernel_environ(), after=after)]


def drew_offsets(tensors: dict[str, np.ndarray]) -> bool:
    """Whether legacy drew a random offset for some clip of a file (pad_mode "zeros", crops, max_to_pad)."""
    return any(k.startswith("all/offsets/") and bool(np.any(v >= 0)) for k, v in tensors.items())


def detector_comparison(base: References, got: dict[str, Any], pos: int) -> dict[str, Any]:
    """engine_check's output (probs, confidences, decisions per file) against the baseline, in
    compare_sets' shape. Files where legacy drew random offsets are left out (listed): the detector
    takes its documented deterministic offset there, so the difference is the draw's, not a kernel
    path's (the report measures the draws' effect)."""
    stages: dict[str, dict[str, Any]] = {}
    flips = 0
    drawn = []
    for f in base.files:
        if f.name not in got or f.error is not None:
            continue
        if drew_offsets(f.tensors):
            drawn.append(f.name)
            continue
        fold_stats(stages, "probs", diff_stats(f.tensors["all/probs"][:, pos], np.array(got[f.name]["probs"], np.float32)))
        fold_stats(stages, "aggregate", diff_stats(f.tensors["aggregate/confidence"], np.array(got[f.name]["confidence"])))
        flips += int(np.sum(f.tensors["aggregate/local_prediction"] != np.array(got[f.name]["local"])))
    return {"stages": stages, "digests": {}, "decisions": {"local_flips": flips},
            **({"left_out_random_offsets": drawn} if drawn else {})}


def variant_environ(name: str) -> dict[str, str]:
    """The environment a legacy run of VARIANT `name` gets: its switches, and every thread pool at
    its own count (variants run side by side, one per CPU)."""
    env_vars, threads = VARIANTS[name]
    return default_kernel_environ({**env_vars, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(threads),
                                   "MKL_NUM_THREADS": str(threads)})


def variant_job(name: str, model: Path, refs: Path, audio: Path, work: Path, sha256: str | None,
                forked: bool = True) -> Job:
    threads = VARIANTS[name][1]
    cmd = [sys.executable, "-m", "convert.envelope_clips", "--model", str(model), "--references", str(refs),
           "--audio", str(audio), "--out", str(work / name), "--threads", str(threads),
           "--log", str(work / "logs" / f"{name}.log")] + (["--sha256", sha256] if sha256 else [])
    return Job(name, cmd, variant_environ(name), threads, forked=forked)


def baseline_job(model: Path, audio: list[Path], work: Path, sha256: str | None) -> Job:
    cmd = [sys.executable, "-m", "convert.references", "--model", str(model), "--audio", *map(str, audio),
           "--out", str(work / "baseline"), "--threads", "1", "--log", str(work / "logs" / "baseline.log")]
    return Job("baseline", cmd + (["--sha256", sha256] if sha256 else []), variant_environ("baseline"))


def baseline_reusable(refs: References, model: Path) -> bool:
    """The references are this machine's own default-kernel, 1-thread legacy run of this model:
    they are the baseline (recording it again would give the same bytes)."""
    man = refs.manifest
    return (same_machine(man.get("machine"), {**fingerprint(), "kernel_env": {}})
            and not man.get("machine", {}).get("kernel_env")
            and man.get("torch_threads") == 1
            and man.get("model", {}).get("weights_sha256") == sha256_file(model / "model.safetensors"))


def identical_variants(names: list[str]) -> dict[str, str]:
    """The variants that would run the baseline's very kernels on this machine -> why
    (parity/envelope.py same_as_baseline); none when this process itself runs under a switch."""
    fp = fingerprint()
    level = "" if fp["kernel_env"] else fp["cpu_capability"]
    flags = read_cpu_flags()
    return {n: why for n in names if n != "baseline" and (why := same_as_baseline(n, level, flags))}


def estimate(refs: References, names: list[str], record_baseline: bool, cpus: int, fresh: bool = False) -> str:
    """A rough time before starting (refined as runs finish): legacy starts and clips, at the
    rates measured for the fixture (START_S, FORKED_START_S, CLIP_S), run `cpus` at a time."""
    clips = sum(f.clips for f in refs.files)
    full = sum(len(f.full_clips) for f in refs.files)
    variants = [n for n in names if n != "baseline"]
    start = START_S if fresh else FORKED_START_S
    work = sum(VARIANTS[n][1] * (start + full * FULL_CLIP_S) for n in variants) + (0 if fresh else START_S)
    serial = (START_S + clips * CLIP_S) if record_baseline else 0.0
    seconds = max(serial, (work + serial + CLEAN_S) / cpus)
    return (f"envelope: {len(refs.files)} file(s), {clips} clips; baseline: "
            f"{'recorded again' if record_baseline else 'the references (this machine, default kernels)'}; "
            f"{len(variants)} variant(s) on the {full} full-stage clips ({100 * full / max(clips, 1):.0f} % of "
            f"the clips), {cpus} at a time; rough estimate {seconds / 60:.1f} min")


def measure(model: Path, audio: list[Path], committed: Path, work: Path, names: list[str], log: Path,
            sha256: str | None = None, cpus: int = 1, fresh: bool = False) -> dict[str, Any]:
    """Run the baseline (unless the references are it) and every variant, `cpus` at a time;
    compare each with the baseline and the committed references. -> the envelope."""
    if not fresh:   # the preloaded interpreter imports while the inputs are checked (variants wait for it)
        preloaded.start_in_background(work / "home")
    ref = load_references(committed)
    root, found = scan(audio)
    verify(root, [f.entry for f in ref.files])
    missing = sorted(set(found) - {f.name for f in ref.files})
    if missing:
        raise InputError(f"{audio} has recordings the references in {committed} do not ({', '.join(missing[:3])}"
                         f"{', ...' if len(missing) > 3 else ''}): run `make references` on this AUDIO= first")
    reuse = baseline_reusable(ref, model)
    skipped = identical_variants(names)
    names = [n for n in names if n not in skipped]
    (work / "logs").mkdir(parents=True)
    # the clean job first when it need not wait for a baseline: it runs while the first variant
    # starts the preloaded interpreter
    jobs = clean_job(committed, model, root, [f.name for f in ref.files if f.error is None], None) if reuse \
        else [baseline_job(model, audio, work, sha256)]
    jobs += [variant_job(n, model, committed, root, work, sha256, forked=not fresh) for n in names if n != "baseline"]
    if not reuse:
        jobs += clean_job(work / "baseline", model, root, [f.name for f in ref.files if f.error is None], "baseline")
    print(estimate(ref, names, not reuse, cpus, fresh), file=sys.stderr, flush=True)
    for name, why in skipped.items():
        print(f"envelope: {name} not run: {why} (the baseline's kernels)", file=sys.stderr, flush=True)
    started = time.monotonic()

    def progress(job: Job, done: int) -> None:
        elapsed = time.monotonic() - started
        left = elapsed / done * (len(jobs) - done)
        print(f"envelope: [{done}/{len(jobs)}] {job.name} in {job.seconds:.0f} s; "
              f"{elapsed:.0f} s elapsed, about {left:.0f} s left", file=sys.stderr, flush=True)
    try:
        run_jobs(jobs, cpus, progress, work / "logs")
    finally:
        gather_logs(work / "logs", [j.name for j in jobs if j.name in VARIANTS], log)
    base = ref if reuse else load_references(work / "baseline")
    cross = not same_machine(ref.manifest.get("machine"), base.manifest.get("machine"))
    pos = int(json.loads((model / "config.json").read_text())["positive_index"])
    runs: dict[str, Any] = {name: {"env": VARIANTS[name][0], "threads": VARIANTS[name][1],
                                   "not_run": f"the baseline's kernels: {why}"} for name, why in skipped.items()}
    comparisons = []
    if not reuse:
        runs["baseline"] = {"env": {}, "threads": 1, "seconds": round(jobs[0].seconds, 1), "measured_on": "every clip",
                            "machine": base.manifest["machine"]}
        comparisons.append({"name": "baseline vs committed", "regimes": ["cross_machine"],
                            "kind": "across machines" if cross else "kernel path, this machine",
                            **compare_sets(ref, base)})
    for job in jobs:
        if job.name not in VARIANTS or job.name == "baseline":
            continue
        files, tensors = load_clips(work / job.name)
        env, threads = VARIANTS[job.name]
        runs[job.name] = {"env": env, "threads": threads, "seconds": round(job.seconds, 1),
                          "measured_on": "full-stage clips", "machine": base.manifest["machine"]}
        regimes = ["cross_machine"] + (["same_machine"] if job.name == "threads-2" else [])
        comparisons.append({"name": f"{job.name} vs baseline", "kind": "kernel path, this machine",
                            "regimes": regimes, **compare_clips(base, files, tensors, pos)})
        if not reuse:
            comparisons.append({"name": f"{job.name} vs committed", "regimes": ["cross_machine"],
                                "kind": "across machines" if cross else "kernel path, this machine",
                                **compare_clips(ref, files, tensors, pos)})
    clean = next((j for j in jobs if j.name == "clean replay + detector"), None)
    if clean is not None:
        got = json.loads(clean.stdout)
        comparisons.append({"name": "clean vs baseline", "kind": "clean runtime, same machine",
                            "regimes": ["same_machine"], "machine": got["machine"], **got["clean"]})
        comparisons.append({"name": "detector vs baseline", "kind": "clean detector (fused engine), same machine",
                            "regimes": ["same_machine"], **detector_comparison(base, got["detector"], pos)})
    return {"schema_version": SCHEMA_VERSION, "model_weights_sha256": base.manifest["model"]["weights_sha256"],
            "committed_references": {"manifest_sha256": ref.manifest_sha256,
                                     "machine": ref.manifest.get("machine")},
            "baseline": "the references (recorded on this machine)" if reuse else "recorded again on this machine",
            "variants_measured_on": "each file's full-stage clips (first, last, most confident, nearest the "
                                    "threshold: convert/reference_plan.py), baseline on every clip",
            "gpu": "none on this machine: no CUDA variant" if not _cuda() else "see runs",
            "wall_seconds": round(time.monotonic() - started, 1), "cpus": cpus,
            "variants": runs, "comparisons": comparisons}


def load_clips(folder: Path) -> tuple[dict[str, Any], dict[str, dict[str, np.ndarray]]]:
    """A variant's output (convert/envelope_clips.py) -> (clips.json's files, tensors per file)."""
    from safetensors.numpy import load_file

    files = json.loads((folder / CLIPS_FILE).read_text())["files"]
    tensors = {name: load_file(str(folder / tensor_file_name(name))) for name, info in files.items()
               if info.get("clips") and (folder / tensor_file_name(name)).is_file()}
    return files, tensors


def gather_logs(logs: Path, names: list[str], log: Path) -> None:
    """Every child's legacy output, one after another, into one log (beside the envelope)."""
    parts = [f"===== {name} =====\n{(logs / f'{name}.log').read_text(errors='replace')}"
             for name in names if (logs / f"{name}.log").is_file()]
    write_output_file(log, "\n".join(parts), "--log")
    print(f"legacy output: {log}", file=sys.stderr, flush=True)


def _cuda() -> bool:
    import torch
    return torch.cuda.is_available()


def add_run_arguments(ap: argparse.ArgumentParser) -> None:
    """The options `make envelope` and `make predict-envelope` share."""
    ap.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset")
    ap.add_argument("--sha256", help="the model.pkl sha256 you trust (else <model.pkl>.sha256)")
    ap.add_argument("--jobs", type=int, default=0, help="legacy runs at once (default: the usable CPUs)")
    ap.add_argument("--log", type=Path, help="legacy's own output (default: <out>.log beside --out)")


def checked_variants(args: argparse.Namespace) -> list[str]:
    """The baseline + --variants, each known, and a usable --jobs (else UsageError)."""
    names = ["baseline"] + [n for n in args.variants.split(",") if n and n != "baseline"]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise UsageError(f"unknown variant(s) {unknown}; known: {', '.join(VARIANTS)}")
    if args.jobs < 0:
        raise UsageError(f"--jobs {args.jobs}: pass a positive number of legacy runs at once (0: the usable CPUs)")
    return names


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m convert.envelope", description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--audio", "--corpus", type=Path, nargs="+", required=True, dest="audio",
                    help="the recordings the references were made from (a folder or files of one folder)")
    ap.add_argument("--references", type=Path, required=True, help="the references (make references)")
    ap.add_argument("--out", type=Path, required=True, help="envelope JSON to write")
    add_run_arguments(ap)
    ap.add_argument("--fresh-processes", action="store_true",
                    help="start each variant as a fresh python (default: forked from one preloaded interpreter)")
    args = ap.parse_args(argv)
    try:
        names = checked_variants(args)
        with tempfile.TemporaryDirectory(prefix=scratch_prefix("orcaport-envelope")) as tmp:
            envelope = measure(args.model, args.audio, args.references, Path(tmp), names,
                               args.log or log_path_for(args.out), args.sha256, args.jobs or available_cpus(),
                               args.fresh_processes)
        write_output_file(args.out, json.dumps(envelope, indent=1, sort_keys=True) + "\n")
    except (OrcaportError, KeyboardInterrupt) as e:
        return report_error(None, e)
    except (OSError, ValueError) as e:     # unreadable or mismatched inputs (not ours: no code of their own)
        return report_error(None, InputError(str(e)))
    print(f"wrote {args.out}: {len(envelope['comparisons'])} comparisons in {envelope['wall_seconds']:.0f} s")
    return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
