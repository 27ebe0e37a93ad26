"""`make variants`: `make parity` under every kernel-path variant of the envelope.

The parity verdict must not depend on which kernels this machine happens to pick: each variant of
parity/envelope.py's VARIANTS (PyTorch dispatch level, MKL instruction set and CBWR mode, oneDNN
max ISA, threads) replays the committed references in its own process, and the table shows the
verdict, the criteria that applied and each stage's worst use of its tolerance (excess: 1.0 is
exactly at the bound).

    python -m orcaport.parity.variants [--reports reports] -- --model DIR --references DIR --audio DIR
        -> reports/variants.json

The arguments after `--` are python -m orcaport.parity's (make variants passes the fixture's). Exit
codes (model/errors.py): 1 parity failed under a variant, 2 no parity arguments.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from orcaport.model.errors import ExitCode
from orcaport.model.fileio import write_json_atomically
from orcaport.parity.envelope import VARIANTS
from orcaport.parity.fingerprint import default_kernel_environ
from orcaport.parity.metrics import tolerance_stage
from orcaport.parity.result import ParityResult



def replay_variant(name: str, args: list[str]) -> dict[str, Any]:
    env_vars, threads = VARIANTS[name]
    env = default_kernel_environ({**env_vars, "OMP_NUM_THREADS": str(threads)})
    with tempfile.TemporaryDirectory(prefix="orcaport-variant-") as tmp:
        run = subprocess.run([sys.executable, "-m", "orcaport.parity", *args, "--reports", tmp],
                             env=env, capture_output=True, text=True)
        path = Path(tmp) / "parity.json"
        if not path.exists():
            return {"variant": name, "passed": False, "exit": run.returncode,
                    "error": (run.stderr.strip().splitlines() or ["?"])[-1]}
        report = ParityResult.from_json(path.read_bytes())
    worst: dict[str, float] = {}
    for c in report.all_checks():
        e = c.metrics.get("excess")
        if isinstance(e, (int, float)) and not c.tolerance.get("exact"):
            key = tolerance_stage(c.stage, c.layer)
            worst[key] = max(worst.get(key, 0.0), float(e))
    return {"variant": name, "env": env_vars, "threads": threads, "exit": run.returncode,
            "passed": report.passed, "criteria": report.criteria.regime,
            "first_failure": report.first_failure.to_dict() if report.first_failure else None,
            "unstable_seconds": report.unstable_seconds.to_dict(), "worst_excess": worst}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m orcaport.parity.variants", description=__doc__.splitlines()[0])
    ap.add_argument("--reports", type=Path, default=Path("reports"))
    ap.add_argument("parity_args", nargs="*", help="passed to python -m orcaport.parity (after --)")
    args = ap.parse_args(argv)
    if not args.parity_args:
        ap.error("pass python -m orcaport.parity's arguments after --: --model DIR --references DIR "
                 "--audio DIR (make variants does)")
    rows = []
    for name in VARIANTS:
        row = replay_variant(name, args.parity_args)
        rows.append(row)
        tops = sorted(row.get("worst_excess", {}).items(), key=lambda kv: -kv[1])[:2]
        print(f"{'PASS' if row['passed'] else 'FAIL'} {name:<20} {row.get('criteria', '-'):<14} "
              + ("closest to tolerance: " + ", ".join(f"{s} {v:.2f}" for s, v in tops) if tops
                 else row.get("error", "")), flush=True)
    path = write_json_atomically(args.reports, "variants.json", rows)
    failed = [r["variant"] for r in rows if not r["passed"]]
    if failed:
        print(f"error: parity failed under {failed}; see {path}", file=sys.stderr)
    else:
        print(f"parity passed under all {len(rows)} variants; {path}")
    return ExitCode.FAILED if failed else ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
