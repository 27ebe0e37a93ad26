"""`make bench`'s envelope row: `make envelope` against `make references` on the same folder, one run.

The folder is the README-flow test's (tests/legacy/own_model.py: a ResNet50 learner with classes
ambient/boat/whale and seven recordings mixing formats, rates and subfolders), made once under
build/bench/own. Each round runs `make references $V` then `make envelope $V` exactly as the README
writes them (fresh REFERENCES/ENVELOPE per round, the model converted once), and the ratio is
envelope wall time / references wall time within the round; the figure is the median over rounds.
Issue 19's target: ratio <= 3. Never in CI.

    python -m bench.envelope [--rounds 2] [--out bench/envelope.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
LEGACY_PYTHON = ROOT / ".venvs" / "legacy" / "bin" / "python"
WORK = ROOT / "build" / "bench" / "own"
TARGET_RATIO = 3.0


def user_folder(work: Path) -> tuple[Path, Path]:
    """The README-flow test's learner (converted, trust recorded) and recordings, made once."""
    model, audio = work / "model", work / "recordings"
    if not (model / "config.json").is_file():
        shutil.rmtree(work, ignore_errors=True)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        subprocess.run([str(LEGACY_PYTHON), "tests/legacy/own_model.py", str(work)], cwd=ROOT, env=env, check=True,
                       stdout=subprocess.DEVNULL)
        sha = hashlib.sha256((model / "model.pkl").read_bytes()).hexdigest()
        subprocess.run(["make", "convert", f"MODEL={model}", f"SHA256={sha}", "POSITIVE=whale"], cwd=ROOT,
                       check=True, stdout=subprocess.DEVNULL)
    return model, audio


def timed_make(target: str, variables: list[str]) -> float:
    """Wall seconds of `make target variables` (its output kept only on failure)."""
    start = time.monotonic()
    run = subprocess.run(["make", target, *variables], cwd=ROOT, capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError(f"make {target} failed ({run.returncode}): {run.stderr.strip()[-1500:]}")
    return time.monotonic() - start


def one_round(model: Path, audio: Path, scratch: Path) -> dict[str, Any]:
    v = [f"MODEL={model}", f"AUDIO={audio}", f"REFERENCES={scratch / 'refs'}", f"REPORTS={scratch / 'reports'}",
         f"TOLERANCES={scratch / 'tolerances.json'}"]
    refs = timed_make("references", v)
    envelope = timed_make("envelope", v + [f"ENVELOPE={scratch / 'envelope.json'}"])
    measured = json.loads((scratch / "envelope.json").read_text())
    return {"references_s": round(refs, 1), "envelope_s": round(envelope, 1), "ratio": round(envelope / refs, 2),
            "variants": len(measured["variants"]), "comparisons": len(measured["comparisons"]),
            "load_average_after": [round(x, 2) for x in os.getloadavg()]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.envelope", description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "envelope.json")
    args = ap.parse_args(argv)
    if not LEGACY_PYTHON.exists():
        print("bench.envelope: not run (no legacy env: make env-legacy)", file=sys.stderr)
        return 1
    from bench.machine import lscpu
    from orcaport.model.fileio import write_output_file

    model, audio = user_folder(WORK)
    recordings = sorted(p for p in audio.rglob("*") if p.is_file())
    rounds = []
    for i in range(args.rounds):
        with tempfile.TemporaryDirectory(dir=WORK.parent) as tmp:
            rounds.append(one_round(model, audio, Path(tmp)))
        print(f"bench.envelope: round {i + 1}: {rounds[-1]}", file=sys.stderr, flush=True)
    cpu = lscpu()
    ratio = statistics.median(r["ratio"] for r in rounds)
    doc = {"machine": f"{cpu['model_name']} model {cpu['model']}, "
                      + " ".join(f for f, on in cpu["key_flags"].items() if on),
           "lscpu": cpu, "cpus": os.cpu_count(), "folder": f"{len(recordings)} recordings (tests/legacy/own_model.py)",
           "model": "ResNet50, classes ambient/boat/whale", "rounds": rounds, "median_ratio": ratio,
           "target_ratio": TARGET_RATIO, "met": ratio <= TARGET_RATIO}
    write_output_file(args.out, json.dumps(doc, indent=1) + "\n")
    print(f"envelope / references: {ratio:.2f}x (target <= {TARGET_RATIO:g}); wrote {args.out}")
    return 0 if doc["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
