"""Running one bench measurement in its own process (its peak RSS its own) and reading its result.

Workers print one `RESULT {json}` line on stdout; anything else they print is theirs. A worker
that exits non-zero, prints no result or runs too long is a WorkerError (bench/rows.py) carrying
its stderr tail, which `make bench` records in the failed row.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import soundfile as sf

from bench.rows import WorkerError

ROOT = Path(__file__).resolve().parents[1]
RESULT_MARK = "RESULT "


def pin_to_one_cpu() -> None:
    """preexec_fn of a 1-CPU worker: the affinity `taskset -c <cpu>` sets (the first CPU this
    process may use), so the worker's own thread sizing sees one CPU, as in a 1-CPU pod."""
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


def worker(python: str, module: str, args: list[Any], timeout: int = 3600, one_cpu: bool = False) -> dict[str, Any]:
    """Run `python -m module args` from the repo root; return its RESULT json, or WorkerError
    (its stderr tail as detail). one_cpu: pinned to one CPU, every thread pool at 1."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if one_cpu:
        env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    load = os.getloadavg()[0]
    shown = " ".join(Path(str(a)).name if "/" in str(a) else str(a) for a in args)
    try:
        out = subprocess.run([python, "-m", module, *map(str, args)], cwd=ROOT, env=env, capture_output=True,
                             text=True, timeout=timeout, preexec_fn=pin_to_one_cpu if one_cpu else None)
    except subprocess.TimeoutExpired as e:
        raise WorkerError(f"{module} {shown} ran past {timeout} s", str(e.stderr or "")[-3000:]) from None
    at = out.stdout.rfind(RESULT_MARK + "{")
    if out.returncode != 0 or at < 0:
        last = (out.stderr.strip().splitlines() or ["(no stderr)"])[-1]
        raise WorkerError(f"{module} {shown} exited {out.returncode}: {last}", out.stderr[-3000:])
    res = json.loads(out.stdout[at + len(RESULT_MARK):].splitlines()[0])
    res["loadavg_before"] = load
    timing = res.get("times_s") or res.get("fp32_gflops") or res.get("local_agreement") or res.get("flops")
    print(f"  {module.split('.')[-1]} {shown}: {timing}", file=sys.stderr, flush=True)
    return res


def write_tiled(src: Path, dest: Path, seconds: int) -> Path:
    """`dest`: `src` repeated to `seconds` long, written block by block (never held whole)."""
    data, rate = sf.read(str(src), dtype="int16", always_2d=True)
    with sf.SoundFile(str(dest), "w", samplerate=rate, channels=data.shape[1], subtype="PCM_16") as f:
        left = seconds * rate
        while left > 0:
            f.write(data[:left])
            left -= min(left, len(data))
    return dest


def torch_version(python: str) -> str | None:
    if not Path(python).exists():
        return None
    out = subprocess.run([python, "-c", "import torch; print(torch.__version__)"], capture_output=True, text=True)
    return out.stdout.strip() or None
