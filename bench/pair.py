"""`fast` vs `legacy-exact` on one file, alternated inside one process: the check that `fast` is
never slower, robust to a shared machine.

Separate worker processes minutes apart see different loads from other jobs (measured here: the
same engine 0.5x-2x "faster" than itself between rounds at load average 5-8 on 2 CPUs). Both
detectors are loaded in one process and run exact, fast, exact, fast, ... on the same file, so
each pair of runs sees about the same load; the ratio is per pair, then the median.

    python -m bench.clean_worker pair --model DIR --wav FILE [--repeats N]
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

from orcaport.model.detector import Detector


def measure_pair(model: Path, wav: Path, repeats: int) -> dict[str, Any]:
    """-> per-pair wall seconds of each profile, exact/fast ratios and their median."""
    exact = Detector.from_folder(model)
    fast = Detector.from_folder(model, profile="fast")
    for det in (exact, fast):                 # warm-up: oneDNN builds its kernels on first use
        det.detect(wav)
    times: dict[str, list[float]] = {"legacy-exact": [], "fast": []}
    for i in range(repeats):
        order = (("legacy-exact", exact), ("fast", fast)) if i % 2 == 0 else (("fast", fast), ("legacy-exact", exact))
        for name, det in order:               # alternate who goes first: no systematic edge
            t0 = time.perf_counter()
            det.detect(wav)
            times[name].append(time.perf_counter() - t0)
    ratios = [e / f for e, f in zip(times["legacy-exact"], times["fast"])]
    return {"times_s": times, "ratios": ratios, "median_ratio": statistics.median(ratios),
            "arithmetic": fast.arithmetic.to_dict(), "fast_engine": fast.engine, "exact_engine": exact.engine,
            "workers": exact.workers}
