"""The clean side of `make envelope`, in one process: the runtime and the Detector against this
machine's legacy baseline (same-machine figures).

    python -m orcaport.parity.envelope_clean --model DIR --references DIR --corpus DIR NAME...
        -> JSON on stdout: {"clean": comparison, "detector": {file: outputs}, "machine": fingerprint}

"clean": the chained replay (decode to aggregate, parity/replay.py) of each file, every check's
figures folded per tolerance stage (compare_sets' shape); the isolated replay and the reports a
`make parity` writes are not needed here and not made. "detector": parity/engine_check.py's
outputs (the fused oneDNN engine users run rounds differently from the plain module the replay
runs; the same-machine criteria must cover it). One process, one torch import, for both.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from orcaport.model.artifact import load_artifact
from orcaport.parity.engine_check import detector_outputs
from orcaport.parity.envelope import fold_stats
from orcaport.parity.fingerprint import fingerprint
from orcaport.parity.metrics import envelope_stage
from orcaport.parity.references import load_references
from orcaport.parity.replay import FileReplay
from orcaport.parity.run import DEFAULT_TOLERANCES, load_tolerances


def chained_comparison(model: Path, refs_dir: Path, corpus: Path, names: list[str]) -> dict[str, Any]:
    """Each named file replayed chained against the references -> compare_sets' shape."""
    art, refs = load_artifact(model), load_references(refs_dir)
    _, tols = load_tolerances(DEFAULT_TOLERANCES, "same_machine")    # figures only: no verdict is read
    stages: dict[str, dict[str, Any]] = {}
    flips = 0
    for ref in refs.files:
        if ref.name not in names or ref.error is not None:
            continue
        replay = FileReplay(ref, corpus / ref.name, art, tols)
        replay.chained()
        for c in replay.checks:
            if c.mode != "chained" or c.metrics.get("max_abs") is None:
                continue
            fold_stats(stages, envelope_stage(c.stage, c.layer), c.metrics)   # option stages: own rows
            flips += len(c.decisions.local_flips) if c.decisions else 0
    return {"stages": dict(sorted(stages.items())), "digests": {}, "decisions": {"local_flips": flips}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m orcaport.parity.envelope_clean", description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--references", type=Path, required=True, help="this machine's legacy baseline")
    ap.add_argument("--corpus", type=Path, required=True)
    ap.add_argument("names", nargs="+")
    args = ap.parse_args(argv)
    out = {"clean": chained_comparison(args.model, args.references, args.corpus, args.names),
           "detector": detector_outputs(args.model, args.corpus, args.names), "machine": fingerprint()}
    json.dump(out, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
