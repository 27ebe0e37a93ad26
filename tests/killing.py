"""SIGKILL harness for tests/test_kill.py and tests/test_kill_legacy.py.

`kill_campaign` runs a command N times, each killed (the whole process group, as `kill -9` of a
job) after a seeded random delay spread over the command's runtime (measured under the same load),
and after every kill
checks the output folder: its files (hidden temps aside) are byte for byte the previous set or the
complete new set, never a mix, never a partial file; the only other things left are temps (and
scratch folders) named after the killed process. A last, uninterrupted run must then leave exactly
the new set: every stale temp removed. Lanes run in parallel, each in its own folder.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

Snapshot = dict[str, str]       # file name -> sha256 of its bytes


def snapshot(folder: Path) -> Snapshot:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.iterdir()) if p.is_file()}


def is_temp_of(name: str, pid: int | None = None) -> bool:
    """`.<output>.<pid>-<random>.tmp`, written by `pid` (any pid when None)."""
    m = re.fullmatch(r"\..+\.(\d+)-[A-Za-z0-9_]+\.tmp", name)
    return m is not None and (pid is None or int(m[1]) == pid)


def run_once(cmd: list[str], env: dict[str, str], cwd: Path, delay: float | None = None,
             timeout: float = 600) -> tuple[int, int, float]:
    """Run `cmd`; SIGKILL its process group after `delay` s (None: let it finish).
    -> (pid, returncode, seconds)."""
    start = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        proc.wait(timeout=timeout if delay is None else delay)
    except subprocess.TimeoutExpired:
        if delay is None:
            raise
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.stderr:
        proc.stderr.close()
    if delay is None:
        assert proc.returncode == 0, err[-3000:]
    return proc.pid, proc.returncode, time.monotonic() - start


@dataclass
class Lane:
    """One output folder, the kills run on it, and (optionally) its own TMPDIR for scratch."""

    folder: Path
    reset: Callable[[Path], None]          # puts the previous outputs in place
    scratch: Path | None = None            # TMPDIR of this lane's runs, checked for leftovers
    outcomes: list[dict] = field(default_factory=list)
    killed: set[int] = field(default_factory=set)


@dataclass
class Campaign:
    cmd: Callable[[Path], list[str]]       # output folder -> command line
    env: dict[str, str]
    cwd: Path
    previous: Snapshot
    new: Snapshot
    scratch_kind: str = ""                 # scratch folders are <kind>-<pid>-*


def _scratch(c: Campaign, lane: Lane) -> list[str]:
    if lane.scratch is None:
        return []
    return sorted(p.name for p in lane.scratch.iterdir() if p.name.startswith(c.scratch_kind + "-"))


def check_after_kill(c: Campaign, lane: Lane, pid: int, rc: int, delay: float) -> dict:
    """Outputs are exactly the previous or the new set; temps and scratch folders are only those
    of runs killed so far (a later run removes them when it gets that far)."""
    lane.killed.add(pid)
    files = snapshot(lane.folder)
    temps = sorted(n for n in files if n.startswith(".") and n.endswith(".tmp"))
    assert all(any(is_temp_of(n, k) for k in lane.killed) for n in temps), \
        f"a temp not of a killed run {sorted(lane.killed)}: {temps}"
    outputs = {n: h for n, h in files.items() if n not in temps}
    state = "previous" if outputs == c.previous else "new" if outputs == c.new else None
    assert state is not None, (f"kill at {delay:.2f}s left a mixed or partial set: "
                               f"{sorted(n for n in outputs if outputs[n] != c.previous.get(n))}")
    scratch = _scratch(c, lane)
    assert all(any(n.startswith(f"{c.scratch_kind}-{k}-") for k in lane.killed) for n in scratch), scratch
    return {"delay": round(delay, 2), "rc": rc, "state": state, "temps": len(temps), "scratch": len(scratch)}


def kill_campaign(c: Campaign, lanes: list[Lane], kills: int, seed: int) -> tuple[list[dict], float]:
    """Each lane first runs the command to completion from the previous set (it must give exactly
    the new set), all lanes at once: the slowest of those runs is the runtime, measured under the
    same load as the kills. Then `kills` kills over all lanes, delays spread evenly (seeded jitter)
over [0, 1.1 * runtime];
    then each lane runs to completion and must hold exactly the new set, no temp, no scratch.
    -> (outcomes, runtime)."""
    def complete(lane: Lane) -> float:
        _, _, seconds = run_once(c.cmd(lane.folder), _env(c, lane), c.cwd)
        assert snapshot(lane.folder) == c.new, "the completing run left temps or a wrong set"
        assert not _scratch(c, lane), f"scratch folders left after a completing run: {_scratch(c, lane)}"
        return seconds

    def warm_up(lane: Lane) -> float:
        lane.reset(lane.folder)
        return complete(lane)

    def work(lane: Lane, delays: list[float]) -> None:
        for delay in delays:
            # each kill starts from the previous outputs, keeping whatever temps earlier kills left
            if {n: h for n, h in snapshot(lane.folder).items() if n in c.previous} != c.previous:
                lane.reset(lane.folder)
            pid, rc, _ = run_once(c.cmd(lane.folder), _env(c, lane), c.cwd, delay)
            lane.outcomes.append(check_after_kill(c, lane, pid, rc, delay))
        complete(lane)

    with ThreadPoolExecutor(len(lanes)) as pool:
        runtime = max(pool.map(warm_up, lanes))
        rng = random.Random(seed)   # stratified: one delay in each 1/kills of the span, jittered
        delays = [(i + rng.random()) / kills * 1.1 * runtime for i in range(kills)]
        rng.shuffle(delays)
        for f in [pool.submit(work, lane, delays[i::len(lanes)]) for i, lane in enumerate(lanes)]:
            f.result()
    return [o for lane in lanes for o in lane.outcomes], runtime


def _env(c: Campaign, lane: Lane) -> dict[str, str]:
    return c.env if lane.scratch is None else {**c.env, "TMPDIR": str(lane.scratch)}


KILL_ON_RENAME = """
import os, runpy, signal, sys
real, names, at = os.replace, set(sys.argv[1].split(",")), int(sys.argv[2])
seen = []
def replace(src, dst, *a, **k):
    if os.path.basename(str(dst)) in names and str(src).endswith(".tmp"):
        if len(seen) == at:
            os.kill(os.getpid(), signal.SIGKILL)
        seen.append(dst)
    return real(src, dst, *a, **k)
os.replace = replace
module = sys.argv[3]
sys.argv = [module] + sys.argv[4:]
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""


def kill_on_rename(python: str, module: str, args: list[str], outputs: list[str], at: int,
                   env: dict[str, str], cwd: Path) -> tuple[int, int]:
    """Run `python -m module args`, SIGKILLed by itself just before its rename number `at` of an
    output in `outputs` (0: every temp written, none renamed). -> (pid, returncode)."""
    proc = subprocess.Popen([python, "-c", KILL_ON_RENAME, ",".join(outputs), str(at), module, *args],
                            cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc.pid, proc.wait(timeout=600)
