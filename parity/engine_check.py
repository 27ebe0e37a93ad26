"""Clip probabilities and per-second confidences of the Detector (legacy-exact) for a corpus.

`make envelope` runs this in the clean env against references it just recorded on the same
machine: the fused oneDNN engine (BN folded, padding reuse) rounds differently from the plain
module the parity replay runs, and the same-machine criteria must cover what users run too.

    python -m orcaport.parity.engine_check --model DIR --corpus DIR      -> JSON on stdout
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from orcaport.model.detector import Detector, DetectorError


def detector_outputs(model: Path, corpus: Path, names: list[str]) -> dict[str, Any]:
    """-> {file: {"probs": [...], "confidence": [...], "local": [...], "global": int}}; files the
    detector refuses (shorter than a clip) are left out, as legacy raises on them."""
    det = Detector.from_folder(model)
    out: dict[str, Any] = {}
    for name in names:
        try:
            d = det.detect(corpus / name)
        except DetectorError:
            continue
        out[name] = {"probs": [float(p) for p in d.clip_confidence],
                     "confidence": [float(c) for c in d.confidence],
                     "local": [int(x) for x in d.local_prediction], "global": int(d.global_prediction)}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m orcaport.parity.engine_check", description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--corpus", type=Path, required=True)
    ap.add_argument("names", nargs="+")
    args = ap.parse_args(argv)
    json.dump(detector_outputs(args.model, args.corpus, args.names), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
