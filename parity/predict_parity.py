"""Parity for fastai_audio's own predict (`orcaport predict`): replay the references that
convert/predict_references.py recorded from legacy's predict path, per recording, per item, stage
by stage (parity/predict_replay.py).

    python -m orcaport.parity.predict_parity --model DIR --references DIR --audio DIR [--out FILE]

Every stage the learner's chain computes (load, downmix, resample, silence, segment, pad_signal,
mel, db, mfcc, standardize, delta, input; then logits, probs, the class index), isolated (each step
fed legacy's stage before it) and chained (from the recording, legacy's random draws replayed),
plus the item count and each fan-out's piece count. Criteria as `make parity` chooses them (same
machine or cross machine, parity/tolerances.json); option stages take the criterion of the stage
their arithmetic comes from (parity/metrics.py OPTION_TOLERANCE). The result lists every check
(per item, per stage: the figure its criterion bounds, the verdict), a per-stage summary (worst
figure, worst fraction of tolerance) and the first failure in pipeline order.
Exit codes (model/errors.py): 0 passed, 1 failed, 3 unusable model/references/audio, 5 --out.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from safetensors.numpy import load_file

from orcaport.model.artifact import load_artifact
from orcaport.model.errors import ExitCode, InputError, OrcaportError, report_error
from orcaport.model.fileio import sha256_file, write_json_atomically
from orcaport.model.pipeline import Frontend
from orcaport.model.stages import STAGE_ORDER
from orcaport.parity.fingerprint import describe, fingerprint
from orcaport.parity.metrics import DEFAULT_TOLERANCES, tolerance_stage
from orcaport.parity.predict_replay import PredictFileReplay, item_offsets
from orcaport.parity.result import runtime_files
from orcaport.parity.run import criteria, load_tolerances

PREDICT_SCHEMA = 1      # the report's layout, as the publish gate reads it (parity/publishing/predict_report.py)
FIX = "re-record them with `make predict-references` (convert.predict_references)"
# pipeline order for reports and the first failure: the item count after the fan-outs, the
# class index after probs, a clean-side error last
ORDER = {s: k for k, s in enumerate(STAGE_ORDER[:STAGE_ORDER.index("pad_signal")] + ("items",)
                                    + STAGE_ORDER[STAGE_ORDER.index("pad_signal"):STAGE_ORDER.index("aggregate")]
                                    + ("index", "error"))}


def sort_key(c: dict[str, Any]) -> tuple[int, int, int]:
    return ORDER.get(c["stage"], len(ORDER)), c["mode"] != "isolated", c["item"] if c["item"] is not None else -1


def load_manifest(refs: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((refs / "manifest.json").read_text())
    except (OSError, ValueError) as e:
        raise InputError(f"{refs}: no readable manifest.json ({e}); run convert.predict_references") from None
    if not isinstance(manifest, dict) or manifest.get("mode") != "predict":
        raise InputError(f"{refs}: not predict-mode references; run convert.predict_references")
    for entry in manifest.get("files", []):
        if not entry.get("stages") or entry["stages"][0] != "load":
            raise InputError(f"{refs}: {entry.get('name')} holds no per-stage tensors (references of an "
                             f"older recorder); {FIX}")
    return manifest


def summarize(checks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (stage, mode): checks, failed, the worst figure and the worst fraction of tolerance."""
    rows: dict[tuple[str, str, bool], dict[str, Any]] = {}
    for c in sorted(checks, key=sort_key):     # a stage's piece counts get a row of their own
        row = rows.setdefault((c["stage"], c["mode"], c["figure"] == "count"), {
            "stage": c["stage"], "mode": c["mode"], "criterion": c["criterion"], "tolerance": c["tolerance"],
            "figure": c["figure"], "checks": 0, "failed": 0, "worst": None, "worst_excess": None})
        row["checks"] += 1
        row["failed"] += not c["passed"]
        if isinstance(c["value"], (int, float)) and c["figure"] not in ("count", "index"):
            row["worst"] = max(row["worst"] or 0.0, float(c["value"]))
        excess = c["metrics"].get("excess")
        if excess is not None:
            row["worst_excess"] = max(row["worst_excess"] or 0.0, float(excess))
    return list(rows.values())


def replay(model: Path, refs: Path, audio: Path, tolerances: Path = DEFAULT_TOLERANCES) -> dict[str, Any]:
    art = load_artifact(model)
    manifest = load_manifest(refs)
    if manifest["model"]["weights_sha256"] != art.weights_sha256:
        raise InputError(f"{refs} were recorded for other weights; record them for {model}")
    here = fingerprint()
    crit = criteria(manifest.get("machine"), here)
    tol_info, tols = load_tolerances(tolerances, regime=crit.regime, mode="predict")
    wanted = {s for f in manifest["files"] for s in f["stages"]} - {"index"}
    lacking = sorted(s for s in wanted if tolerance_stage(s, None, tols) not in tols)
    if lacking:     # a predict envelope's file holds the stages its learner ran, no others
        raise InputError(f"{tolerances} has no criterion for stage(s) {lacking}; derive one from this "
                         "learner's `make predict-envelope`, or pass parity/tolerances.json")
    fe = Frontend(art.config.frontend, art.config.normalization)
    net = art.network.eval()
    files = []
    for entry in manifest["files"]:
        path = audio / entry["name"]
        if not path.is_file() or sha256_file(path) != entry["audio_sha256"]:
            raise InputError(f"{path}: missing or not the recording the references were made from")
        try:
            t = load_file(refs / f"{entry['name']}.safetensors")
        except (OSError, ValueError) as e:
            raise InputError(f"{refs / entry['name']}.safetensors unreadable ({e}); {FIX}") from None
        n = int(entry["items"])
        checks = sorted(PredictFileReplay(entry, t, path, fe, net, tols, item_offsets(t, n)).run(), key=sort_key)
        failed = [c for c in checks if not c["passed"]]
        files.append({"name": entry["name"], "items": n, "stages": entry["stages"], "passed": not failed,
                      "first_failure": _where(failed[0]) if failed else None,
                      "summary": summarize(checks), "checks": checks})
    every = [c for f in files for c in f["checks"]]
    failed = sorted((c for c in every if not c["passed"]), key=sort_key)
    # identity (what `make publish`'s gate checks before the verdict): parity/publishing/predict_report.py
    identity = {"schema_version": PREDICT_SCHEMA, "profile": "legacy-exact", "weights_sha256": art.weights_sha256,
                "references_weights_sha256": manifest["model"]["weights_sha256"],
                "config_sha256": sha256_file(model / "config.json"),
                "references_manifest_sha256": sha256_file(refs / "manifest.json"),
                "tolerances": {"version": tol_info.version, "sha256": tol_info.sha256, "regime": tol_info.regime},
                "runtime_files": runtime_files()}
    return {"mode": "predict", **identity, "criteria": crit.regime, "criteria_why": crit.why,
            "recorded_on": crit.recorded_on, "replayed_on": crit.replayed_on or describe(here),
            "passed": bool(files) and not failed, "first_failure": _where(failed[0]) if failed else None,
            "summary": summarize(every), "files": files}


def _where(c: dict[str, Any]) -> dict[str, Any]:
    return {k: c[k] for k in ("stage", "mode", "item", "key", "figure", "value", "tolerance")}


def _fmt(v: Any) -> str:
    return "-" if v is None else f"{v:.3g}" if isinstance(v, float) else str(v)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m orcaport.parity.predict_parity", description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--references", type=Path, required=True)
    ap.add_argument("--audio", type=Path, required=True)
    ap.add_argument("--tolerances", type=Path, default=DEFAULT_TOLERANCES)
    ap.add_argument("--out", type=Path, default=None, help="write the result JSON here")
    args = ap.parse_args(argv)
    try:
        result = replay(args.model, args.references, args.audio, args.tolerances)
        if args.out is not None:
            write_json_atomically(args.out.parent, args.out.name, result)
    except OrcaportError as e:
        return report_error("predict parity", e)
    for f in result["files"]:
        where = f["first_failure"]
        print(f"{'PASS' if f['passed'] else 'FAIL'} {f['name']}: {f['items']} item(s)"
              + (f"; first failure {where['stage']} {where['mode']} item {where['item']}" if where else ""))
        for row in f["summary"]:
            if row["figure"] == "count":
                print(f"  {row['stage']:<12} {row['mode']:<9} {row['checks']:>3} count(s)  {row['failed']:>2} failed  "
                      "(items / pieces: as many as legacy's)")
                continue
            print(f"  {row['stage']:<12} {row['mode']:<9} {row['checks']:>3} check(s) {row['failed']:>2} failed  "
                  f"worst {row['figure']} {_fmt(row['worst'])} ({_fmt(row['worst_excess'])} of {row['tolerance']}, "
                  f"criterion {row['criterion']})")
    print(f"PREDICT PARITY {'PASSED' if result['passed'] else 'FAILED'} ({result['criteria']} criteria)")
    return ExitCode.OK if result["passed"] else ExitCode.FAILED


if __name__ == "__main__":
    sys.exit(main())
