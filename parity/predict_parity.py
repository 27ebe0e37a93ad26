"""Parity for fastai_audio's own predict (`orcaport predict`): replay the references that
convert/predict_references.py recorded from legacy's predict path, per recording and per item.

    python -m orcaport.parity.predict_parity --model DIR --references DIR --audio DIR [--out FILE]

Per item, chained (the recording through the config's chain, legacy's random draws replayed): the
same number of items, the network input under the `input` criterion, the probabilities under
`probs`, the class index equal; and isolated: legacy's own input through the network, probs again.
Criteria as `make parity` chooses them (same machine or cross machine, parity/tolerances.json).
Exit codes (model/errors.py): 0 passed, 1 failed, 3 unusable model/references/audio, 5 --out.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.numpy import load_file

from orcaport.model.artifact import load_artifact
from orcaport.model.errors import ExitCode, InputError, OrcaportError, report_error
from orcaport.model.fileio import sha256_file, write_json_atomically
from orcaport.model.pipeline import Frontend, probabilities
from orcaport.model.predict import file_inputs
from orcaport.parity.fingerprint import fingerprint

from orcaport.parity.metrics import DEFAULT_TOLERANCES, compare
from orcaport.parity.run import criteria, load_tolerances

OFFSETS = ("zeros_front", "crop_start", "signal_front")


def item_offsets(t: dict[str, np.ndarray], n: int) -> list[dict[str, int]]:
    return [{name: int(t[f"all/offsets/{name}"][i]) for name in OFFSETS
             if f"all/offsets/{name}" in t and t[f"all/offsets/{name}"][i] >= 0} for i in range(n)]


def replay(model: Path, refs: Path, audio: Path, tolerances: Path = DEFAULT_TOLERANCES) -> dict[str, Any]:
    art = load_artifact(model)
    try:
        manifest = json.loads((refs / "manifest.json").read_text())
    except (OSError, ValueError) as e:
        raise InputError(f"{refs}: no readable manifest.json ({e}); run convert.predict_references") from None
    if manifest.get("mode") != "predict":
        raise InputError(f"{refs}: not predict-mode references; run convert.predict_references")
    if manifest["model"]["weights_sha256"] != art.weights_sha256:
        raise InputError(f"{refs} were recorded for other weights; record them for {model}")
    regime = criteria(manifest.get("machine"), fingerprint()).regime
    _, tols = load_tolerances(tolerances, regime=regime)
    fe = Frontend(art.config.frontend, art.config.normalization)
    net = art.network.eval()
    files = []
    for entry in manifest["files"]:
        path = audio / entry["name"]
        if not path.is_file() or sha256_file(path) != entry["audio_sha256"]:
            raise InputError(f"{path}: missing or not the recording the references were made from")
        t = load_file(refs / f"{entry['name']}.safetensors")
        n = entry["items"]
        items = file_inputs(fe, path, item_offsets(t, n))[0]
        checks: list[dict[str, Any]] = [{"stage": "items", "mode": "chained", "passed": len(items) == n,
                                         "legacy": n, "clean": len(items)}]
        if len(items) == n:
            ours = [torch.as_tensor(it["input"]) for it in items]
            theirs = [torch.from_numpy(t[f"items/{i:02d}/input"]) for i in range(n)]
            with torch.inference_mode():
                for mode, xs in (("chained", ours), ("isolated", theirs)):
                    p = torch.cat([probabilities(net(x[None])) for x in xs]).numpy() if n else np.zeros((0, 0))
                    if mode == "chained":
                        for i in range(n):
                            checks.append({"stage": "input", "mode": mode, "item": i,
                                           **compare(t[f"items/{i:02d}/input"], ours[i].numpy(), tols["input"])})
                    checks.append({"stage": "probs", "mode": mode, **compare(t["all/probs"], p, tols["probs"])})
                    checks.append({"stage": "index", "mode": mode,
                                   "passed": bool(np.array_equal(p.argmax(-1), t["all/index"]))})
        files.append({"name": entry["name"], "items": n, "passed": all(c["passed"] for c in checks),
                      "checks": checks})
    return {"mode": "predict", "criteria": regime, "passed": all(f["passed"] for f in files), "files": files}


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
        bad = [f"{c['stage']} {c['mode']}" for c in f["checks"] if not c["passed"]]
        print(f"{'PASS' if f['passed'] else 'FAIL'} {f['name']}: {f['items']} item(s)" + (f"; {bad[:3]}" if bad else ""))
    print(f"PREDICT PARITY {'PASSED' if result['passed'] else 'FAILED'} ({result['criteria']} criteria)")
    return ExitCode.OK if result["passed"] else ExitCode.FAILED


if __name__ == "__main__":
    sys.exit(main())
