"""`make envelope`: how far the legacy pipeline moves on its own, per stage, on this machine.

    python -m convert.envelope --model reference_outputs/fixture --corpus reference_outputs/corpus \
        --references reference_outputs/stages --out reference_outputs/envelope.json

Records the references again (convert/references.py, in a subprocess: the kernel-path switches are
read at library load) under each VARIANT -- PyTorch's dispatch level, MKL's instruction set and
reproducibility mode, oneDNN's max ISA, 1 vs 2 threads, and CUDA with TF32 off when a GPU is there
-- and compares every stage of every variant with this machine's baseline run and with the
committed references (recorded on another machine unless the fingerprints match). Where the clean
env exists it also replays this machine's baseline references with the clean runtime: the
same-machine clean-vs-legacy figure. The result, with every run's machine fingerprint, is the
envelope that `python -m orcaport.parity.envelope derive` turns into parity/tolerances.json.
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

from convert.legacy import ConvertError
from orcaport.model.errors import ExitCode, InputError, OrcaportError, UsageError, report_error
from orcaport.model.fileio import write_output_file
from orcaport.parity.diffstats import diff_stats
from orcaport.parity.envelope import VARIANTS, compare_sets, fold_stats
from orcaport.parity.fingerprint import default_kernel_environ, same_machine
from orcaport.parity.metrics import tolerance_stage
from orcaport.parity.references import load_references

ROOT = Path(__file__).resolve().parents[1]
CLEAN_PYTHON = ROOT / ".venvs" / "clean" / "bin" / "python"
SCHEMA_VERSION = 1


def record(name: str, env: dict[str, str], threads: int, model: Path, corpus: Path, out: Path,
           sha256: str | None = None) -> float:
    """One legacy reference run under `env` into `out`. -> seconds it took."""
    cmd = [sys.executable, "-m", "convert.references", "--model", str(model), "--audio", str(corpus),
           "--out", str(out), "--threads", str(threads)] + (["--sha256", sha256] if sha256 else [])
    start = time.monotonic()
    run = subprocess.run(cmd, cwd=ROOT, env=default_kernel_environ({**env, "PYTHONPATH": str(ROOT)}),
                         capture_output=True, text=True)
    if run.returncode != 0:
        raise ConvertError(f"variant {name}: legacy reference run failed: "
                           f"{(run.stderr.strip().splitlines() or ['?'])[-1]}")
    return time.monotonic() - start


def clean_replay(refs: Path, model: Path, corpus: Path, work: Path) -> dict[str, Any] | None:
    """The clean runtime against this machine's baseline references (report-only), or None."""
    if not CLEAN_PYTHON.exists():
        return None
    reports = work / "clean-reports"
    subprocess.run([str(CLEAN_PYTHON), "-m", "orcaport.parity", "--model", str(model), "--references", str(refs),
                    "--corpus", str(corpus), "--reports", str(reports)], cwd=ROOT,
                   env=default_kernel_environ(),
                   capture_output=True, text=True)
    path = reports / "parity.json"
    return json.loads(path.read_text()) if path.exists() else None


def clean_comparison(report: dict[str, Any]) -> dict[str, Any]:
    """Fold a parity report's chained checks into compare_sets' shape."""
    stages: dict[str, dict[str, Any]] = {}
    flips = 0
    for f in report["files"]:
        for c in f["checks"]:
            if c["mode"] != "chained" or c["metrics"].get("max_abs") is None:
                continue
            fold_stats(stages, tolerance_stage(c["stage"], c.get("layer")), c["metrics"])
            flips += len((c.get("decisions") or {}).get("local_flips", []))
    return {"stages": dict(sorted(stages.items())), "digests": {},
            "decisions": {"local_flips": flips}}


def detector_comparison(base: Any, model: Path, corpus: Path) -> dict[str, Any] | None:
    """The Detector (fused oneDNN engine) against this machine's baseline references: probs and
    per-second confidences (compare_sets' shape), or None without the clean env."""
    names = [f.name for f in base.files if f.error is None]
    if not CLEAN_PYTHON.exists() or not names:
        return None
    run = subprocess.run([str(CLEAN_PYTHON), "-m", "orcaport.parity.engine_check", "--model", str(model),
                          "--corpus", str(corpus), *names], cwd=ROOT, capture_output=True, text=True,
                         env=default_kernel_environ())
    if run.returncode != 0:
        raise ConvertError(f"clean detector run failed: {(run.stderr.strip().splitlines() or ['?'])[-1]}")
    got = json.loads(run.stdout)
    stages: dict[str, dict[str, Any]] = {}
    flips = 0
    pos = int(json.loads((model / "config.json").read_text())["positive_index"])
    for f in base.files:
        if f.name not in got:
            continue
        fold_stats(stages, "probs", diff_stats(f.tensors["all/probs"][:, pos], np.array(got[f.name]["probs"], np.float32)))
        fold_stats(stages, "aggregate", diff_stats(f.tensors["aggregate/confidence"], np.array(got[f.name]["confidence"])))
        flips += int(np.sum(f.tensors["aggregate/local_prediction"] != np.array(got[f.name]["local"])))
    return {"stages": stages, "digests": {}, "decisions": {"local_flips": flips}}


def measure(model: Path, corpus: Path, committed: Path, work: Path, names: list[str],
            sha256: str | None = None) -> dict[str, Any]:
    runs: dict[str, Any] = {}
    for name in names:
        env, threads = VARIANTS[name]
        seconds = record(name, env, threads, model, corpus, work / name, sha256)
        runs[name] = {"env": env, "threads": threads, "seconds": round(seconds, 1),
                      "machine": json.loads((work / name / "manifest.json").read_text())["machine"]}
        print(f"envelope: {name} recorded in {seconds:.0f} s", file=sys.stderr, flush=True)
    base = load_references(work / "baseline")
    ref = load_references(committed)
    cross = not same_machine(ref.manifest.get("machine"), base.manifest.get("machine"))
    comparisons = []
    for name in names:
        other = load_references(work / name)
        if name != "baseline":
            regimes = ["cross_machine"] + (["same_machine"] if name == "threads-2" else [])
            comparisons.append({"name": f"{name} vs baseline", "kind": "kernel path, this machine",
                                "regimes": regimes, **compare_sets(base, other)})
        comparisons.append({"name": f"{name} vs committed", "regimes": ["cross_machine"],
                            "kind": "across machines" if cross else "kernel path, this machine",
                            **compare_sets(ref, other)})
    report = clean_replay(work / "baseline", model, corpus, work)
    if report is not None:
        comparisons.append({"name": "clean vs baseline", "kind": "clean runtime, same machine",
                            "regimes": ["same_machine"], "machine": report["environment"].get("machine_fingerprint"),
                            **clean_comparison(report)})
    detector = detector_comparison(base, model, corpus)
    if detector is not None:
        comparisons.append({"name": "detector vs baseline", "kind": "clean detector (fused engine), same machine",
                            "regimes": ["same_machine"], **detector})
    return {"schema_version": SCHEMA_VERSION, "model_weights_sha256": base.manifest["model"]["weights_sha256"],
            "committed_references": {"manifest_sha256": ref.manifest_sha256,
                                     "machine": ref.manifest.get("machine")},
            "gpu": "none on this machine: no CUDA variant" if not _cuda() else "see runs",
            "variants": runs, "comparisons": comparisons}


def _cuda() -> bool:
    import torch
    return torch.cuda.is_available()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m convert.envelope", description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--corpus", type=Path, required=True)
    ap.add_argument("--references", type=Path, required=True, help="the committed references")
    ap.add_argument("--out", type=Path, required=True, help="envelope JSON to write")
    ap.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset")
    ap.add_argument("--sha256", help="the model.pkl sha256 you trust (else <model.pkl>.sha256)")
    args = ap.parse_args(argv)
    names = ["baseline"] + [n for n in args.variants.split(",") if n and n != "baseline"]
    unknown = [n for n in names if n not in VARIANTS]
    try:
        if unknown:
            raise UsageError(f"unknown variant(s) {unknown}; known: {', '.join(VARIANTS)}")
        with tempfile.TemporaryDirectory(prefix="orcaport-envelope-") as tmp:
            envelope = measure(args.model, args.corpus, args.references, Path(tmp), names, args.sha256)
        write_output_file(args.out, json.dumps(envelope, indent=1, sort_keys=True) + "\n")
    except (OrcaportError, KeyboardInterrupt) as e:
        return report_error(None, e)
    except (OSError, ValueError) as e:     # unreadable or mismatched inputs (not ours: no code of their own)
        return report_error(None, InputError(str(e)))
    print(f"wrote {args.out}: {len(envelope['comparisons'])} comparisons")
    return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
