"""How many CPUs this process may really use: its affinity mask, capped by a cgroup CPU quota.

A Kubernetes pod with `limits.cpu: 1` (OrcaHello's production pods) still *sees* every core of
its node -- `os.cpu_count()` and the affinity mask ignore the CFS quota -- so a runtime sizing its
thread pool from them starts one thread per node core, and the quota then throttles them all in
turn: the thread-oversubscription failure upstream issue #368 describes (one prediction took 15
minutes). The quota is read from cgroup v2 `cpu.max` ("<quota> <period>" or "max <period>") or
cgroup v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us` (-1: none), rounded up to whole CPUs.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP = Path("/sys/fs/cgroup")


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def cgroup_cpu_limit(root: Path = CGROUP) -> float | None:
    """CPUs allowed by the cgroup quota (e.g. 1.0, 0.5), or None when there is no quota."""
    v2 = _read(root / "cpu.max")
    if v2:
        quota, _, period = v2.partition(" ")
        if quota != "max" and quota.isdigit() and period.isdigit() and int(period) > 0:
            return int(quota) / int(period)
        return None
    for base in (root / "cpu", root / "cpu,cpuacct", root):
        quota, period = _read(base / "cpu.cfs_quota_us"), _read(base / "cpu.cfs_period_us")
        if quota and period and quota.lstrip("-").isdigit() and period.isdigit():
            q, p = int(quota), int(period)
            return q / p if q > 0 and p > 0 else None
    return None


def available_cpus(root: Path = CGROUP) -> int:
    """min(affinity mask, ceil(cgroup quota)), at least 1."""
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    limit = cgroup_cpu_limit(root)
    return max(1, min(affinity, math.ceil(limit)) if limit else affinity)
