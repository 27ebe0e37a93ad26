"""model/cpus.py: a cgroup CPU quota caps the detector's thread pool (a 1-CPU pod sees every core)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from orcaport.model.cpus import available_cpus, cgroup_cpu_limit


@pytest.mark.parametrize("cpu_max, want", [
    ("max 100000", None), ("100000 100000", 1.0), ("150000 100000", 1.5), ("50000 100000", 0.5), ("junk", None),
])
def test_cgroup_v2_quota(tmp_path: Path, cpu_max: str, want: float | None) -> None:
    (tmp_path / "cpu.max").write_text(cpu_max + "\n")
    assert cgroup_cpu_limit(tmp_path) == want


@pytest.mark.parametrize("quota, want", [("-1", None), ("100000", 1.0), ("250000", 2.5)])
def test_cgroup_v1_quota(tmp_path: Path, quota: str, want: float | None) -> None:
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text(quota + "\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert cgroup_cpu_limit(tmp_path) == want


def test_available_cpus_is_capped_by_the_quota_and_never_zero(tmp_path: Path) -> None:
    affinity = len(os.sched_getaffinity(0))
    assert available_cpus(tmp_path) == affinity                      # no cgroup files: no quota
    (tmp_path / "cpu.max").write_text("50000 100000\n")
    assert available_cpus(tmp_path) == 1                              # half a CPU -> 1 worker
    (tmp_path / "cpu.max").write_text(f"{(affinity + 3) * 100000} 100000\n")
    assert available_cpus(tmp_path) == affinity                      # quota above the mask
