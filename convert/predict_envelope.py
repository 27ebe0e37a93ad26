"""`make predict-envelope`: how far fastai_audio's own predict path moves on its own, per stage, on
this machine -- `make envelope` for predict mode.

    python -m convert.predict_envelope --model DIR --audio DIR --references PREDICT_REFS --out FILE.json
        [--variants a,b] [--sha256 HEX] [--jobs N] [--log FILE]

Records fastai_audio's predict (convert/predict_references.py: every stage of the learner's chain,
per file and per item) again under each kernel-path VARIANT of the windowed envelope, forked from
the preloaded legacy interpreter (convert/preloaded.py), side by side (convert/envelope_jobs.py),
and once as this machine's baseline (default kernels, 1 thread). Each item's stages, logits and
probabilities are compared with the baseline's and with the given references (recorded on another
machine unless the fingerprints match); the random draws, item counts and class indices must be
equal (a variant that cut or drew otherwise is an error: its stages would compare other signals).
Where the clean env exists, the clean runtime replays the baseline chained (the same-machine
clean-vs-legacy figure). `python -m orcaport.parity.envelope derive` turns the result into a
predict-mode tolerances file: every stage measured gets its own entry, option stages included,
which `make predict-parity TOLERANCES=` then applies.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file

from convert import preloaded
from convert.envelope import (CLEAN_PYTHON, ROOT, add_run_arguments, checked_variants, gather_logs,
                             identical_variants, variant_environ)
from convert.envelope_jobs import Job, run_jobs
from convert.legacy_log import log_path_for
from orcaport.model.cpus import available_cpus
from orcaport.model.errors import ExitCode, InputError, OrcaportError, report_error
from orcaport.model.fileio import scratch_prefix, sha256_file, write_output_file
from orcaport.parity.diffstats import diff_stats
from orcaport.parity.envelope import VARIANTS, fold_stats
from orcaport.parity.fingerprint import default_kernel_environ, fingerprint, same_machine

MANIFEST = "manifest.json"
EXACT_KEYS = ("all/index", "all/lineage")       # and all/offsets/*: equal, or the run is not comparable


def stage_of(key: str) -> str:
    """A predict reference key (convert/predict_references.py) -> its stage name."""
    return key.rsplit("/", 1)[-1]


def compare_runs(base: Path, other: Path) -> dict[str, Any]:
    """Every stage tensor of `other`'s predict references against `base`'s (max over files and
    items). -> {stages, digests}; InputError when items, draws or class indices differ."""
    manifest = json.loads((base / MANIFEST).read_text())
    other_files = {f["name"]: f for f in json.loads((other / MANIFEST).read_text())["files"]}
    stages: dict[str, dict[str, Any]] = {}
    digests = {"offsets": {"compared": 0, "differ": 0}, "index": {"compared": 0, "differ": 0}}
    for entry in manifest["files"]:
        o = other_files.get(entry["name"])
        if o is None or o["items"] != entry["items"]:
            raise InputError(f"{other.name}: {entry['name']} gave {o and o['items']} item(s), the baseline "
                             f"{entry['items']}; a variant must cut the same pieces to be compared")
        a = load_file(str(base / f"{entry['name']}.safetensors"))
        b = load_file(str(other / f"{entry['name']}.safetensors"))
        for key in sorted(a):
            if key.startswith("all/offsets/") or key in EXACT_KEYS:
                kind = "index" if key == "all/index" else "offsets"
                digests[kind]["compared"] += 1
                if key not in b or not np.array_equal(a[key], b[key]):
                    if kind == "offsets" or key == "all/lineage":
                        raise InputError(f"{other.name}: {entry['name']} {key} differs from the baseline's "
                                         "(other random draws or pieces): re-record with this checkout")
                    digests[kind]["differ"] += 1
                continue
            if key not in b or a[key].shape != b[key].shape:
                raise InputError(f"{other.name}: {entry['name']} {key} missing or of another shape")
            fold_stats(stages, stage_of(key), diff_stats(a[key], b[key]))
    return {"stages": dict(sorted(stages.items())), "digests": digests}


def clean_comparison(model: Path, base: Path, audio: Path, work: Path) -> dict[str, Any] | None:
    """The clean runtime replaying the baseline chained (orcaport.parity.predict_parity), its
    figures folded per stage; None without the clean env."""
    if not CLEAN_PYTHON.exists():
        return None
    out = work / "clean.json"
    done = subprocess.run([str(CLEAN_PYTHON), "-m", "orcaport.parity.predict_parity", "--model", str(model),
                           "--references", str(base), "--audio", str(audio), "--out", str(out)],
                          cwd=ROOT, env=default_kernel_environ(), capture_output=True, text=True)
    if not out.is_file():       # 0 passed, 1 failed: either way its figures are the comparison
        raise InputError(f"the clean replay of the baseline did not run: {done.stderr.strip()[-300:]}")
    stages: dict[str, dict[str, Any]] = {}
    for f in json.loads(out.read_text())["files"]:
        for c in f["checks"]:
            if c["mode"] == "chained" and c["figure"] not in ("count", "index") and "max_abs" in c["metrics"]:
                fold_stats(stages, c["stage"], c["metrics"])
    return {"stages": dict(sorted(stages.items())), "digests": {}}


def predict_job(name: str, model: Path, audio: Path, work: Path, sha256: str | None) -> Job:
    threads = VARIANTS[name][1]
    cmd = [sys.executable, "-m", "convert.predict_references", "--model", str(model), "--audio", str(audio),
           "--out", str(work / name), "--threads", str(threads)] + (["--sha256", sha256] if sha256 else [])
    return Job(name, cmd, variant_environ(name), threads, forked=True)


def measure(model: Path, audio: Path, committed: Path, work: Path, names: list[str], log: Path,
            sha256: str | None = None, cpus: int = 1) -> dict[str, Any]:
    """The baseline and every variant, `cpus` at a time, each compared with the baseline (and the
    baseline with the committed references). -> the predict-mode envelope."""
    manifest = json.loads((committed / MANIFEST).read_text()) if (committed / MANIFEST).is_file() else {}
    if manifest.get("mode") != "predict":
        raise InputError(f"{committed} holds no predict references; run `make predict-references` first")
    if manifest["model"]["weights_sha256"] != sha256_file(model / "model.safetensors"):
        raise InputError(f"{committed} were recorded for other weights than {model}; run "
                         "`make predict-references` with this MODEL= first")
    preloaded.start_in_background(work / "home")
    skipped = identical_variants(names)
    names = [n for n in names if n not in skipped]
    (work / "logs").mkdir(parents=True)
    jobs = [predict_job(n, model, audio, work, sha256) for n in names]
    started = time.monotonic()
    run_jobs(jobs, cpus, lambda job, done: print(f"predict envelope: [{done}/{len(jobs)}] {job.name} in "
                                                 f"{job.seconds:.0f} s", file=sys.stderr, flush=True), work / "logs")
    gather_logs(work / "logs", names, log)
    base = work / "baseline"
    base_machine = json.loads((base / MANIFEST).read_text())["machine"]
    cross = not same_machine(manifest.get("machine"), base_machine)
    runs: dict[str, Any] = {n: {"env": VARIANTS[n][0], "threads": VARIANTS[n][1],
                                "not_run": f"the baseline's kernels: {why}"} for n, why in skipped.items()}
    comparisons = [{"name": "baseline vs committed", "regimes": ["cross_machine"],
                    "kind": "across machines" if cross else "kernel path, this machine",
                    **compare_runs(base, committed)}]
    for job in jobs:
        runs[job.name] = {"env": VARIANTS[job.name][0], "threads": VARIANTS[job.name][1],
                          "seconds": round(job.seconds or 0.0, 1), "machine": base_machine}
        if job.name != "baseline":
            comparisons.append({"name": f"{job.name} vs baseline", "kind": "kernel path, this machine",
                                "regimes": ["cross_machine"] + (["same_machine"] if job.name == "threads-2" else []),
                                **compare_runs(base, work / job.name)})
    clean = clean_comparison(model, base, audio, work)
    if clean is not None:
        comparisons.append({"name": "clean vs baseline", "kind": "clean runtime, same machine",
                            "regimes": ["same_machine"], **clean})
    return {"mode": "predict", "schema_version": 1,
            "model_weights_sha256": manifest["model"]["weights_sha256"],
            "committed_references": {"machine": manifest.get("machine")},
            "baseline": "recorded again on this machine (default kernels, 1 thread)",
            "wall_seconds": round(time.monotonic() - started, 1), "cpus": cpus,
            "variants": runs, "comparisons": comparisons, "machine": fingerprint()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m convert.predict_envelope", description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--audio", type=Path, required=True, help="the folder the predict references were made from")
    ap.add_argument("--references", type=Path, required=True, help="the predict references (make predict-references)")
    ap.add_argument("--out", type=Path, required=True, help="envelope JSON to write")
    add_run_arguments(ap)
    args = ap.parse_args(argv)
    try:
        names = checked_variants(args)
        with tempfile.TemporaryDirectory(prefix=scratch_prefix("orcaport-predict-envelope")) as tmp:
            envelope = measure(args.model, args.audio, args.references, Path(tmp), names,
                               args.log or log_path_for(args.out), args.sha256, args.jobs or available_cpus())
        write_output_file(args.out, json.dumps(envelope, indent=1, sort_keys=True) + "\n")
    except (OrcaportError, KeyboardInterrupt) as e:
        return report_error(None, e)
    except (OSError, ValueError) as e:
        return report_error(None, InputError(str(e)))
    print(f"wrote {args.out}: {len(envelope['comparisons'])} comparisons in {envelope['wall_seconds']:.0f} s")
    return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
