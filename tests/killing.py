"""SIGKILL harness for tests/test_kill.py and tests/test_kill_legacy.py: kills that provably land
inside a write, at every write the command makes (or a seeded spread of them), deterministically.

A *write event* is one step of the crash-safe write protocol (model/fileio.py): a temp of an
output fully written and about to be fsynced (`temp`), or a rename that puts a temp (or a whole
staged folder) in place (`rename`). The command runs under a wrapper (`WRAPPER`) that patches
`os.fsync` / `os.replace` / `os.rename`, counts those events, and SIGKILLs its own process at event
number `at` -- at a `temp` event after truncating that temp to half its bytes, as a kill inside
write() leaves it. A run killed there exits -SIGKILL; a run that never reached event `at` exits
normally and the test fails: no kill is ever counted that did not land inside a write.

`write_events` records the events of one complete run; `kill_at_writes` then kills a fresh run at
each chosen event and checks the output folder: its files (hidden temps aside) are each byte for
byte their previous or new version, never partial, and read as the previous set until the output
that pins the others (renamed last) is new; the only other things left are temps (and scratch
folders) of the killed processes. A last, unpatched run must then leave exactly the new set: every
stale temp removed.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

Snapshot = dict[str, str]       # file name -> sha256 of its bytes
Event = tuple[str, str]         # ("temp" | "rename", path)
TEMP_NAME = r"\.(.+)\.(\d+)-[A-Za-z0-9_]+\.tmp"   # model/fileio.py: .<output>.<pid>-<random>.tmp

WRAPPER = r"""
import atexit, json, os, re, runpy, signal, sys
at, log, module = int(sys.argv[1]), sys.argv[2], sys.argv[3]
temp = re.compile(sys.argv[4])
events = []
real_fsync, real_replace, real_rename = os.fsync, os.replace, os.rename

def event(kind, path):
    if len(events) == at:
        if kind == "temp":
            os.truncate(path, os.path.getsize(path) // 2)
        os.kill(os.getpid(), signal.SIGKILL)
    events.append((kind, path))

def fsync(fd):
    try:
        path = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        path = ""
    if temp.fullmatch(os.path.basename(path)):
        event("temp", path)
    return real_fsync(fd)

def renamer(real):
    def rename(src, dst, *a, **k):
        if temp.fullmatch(os.path.basename(os.fspath(src))) or os.path.isdir(src):
            event("rename", os.fspath(dst))
        return real(src, dst, *a, **k)
    return rename

os.fsync, os.replace, os.rename = fsync, renamer(real_replace), renamer(real_rename)
if log:
    atexit.register(lambda: open(log, "w").write(json.dumps(events)))
sys.argv = [module] + sys.argv[5:]
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""


def snapshot(folder: Path) -> Snapshot:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.iterdir()) if p.is_file()}


def is_temp_of(name: str, pid: int | None = None) -> bool:
    """`.<output>.<pid>-<random>.tmp`, written by `pid` (any pid when None)."""
    m = re.fullmatch(TEMP_NAME, name)
    return m is not None and (pid is None or int(m[2]) == pid)


def run_once(cmd: list[str], env: dict[str, str], cwd: Path, timeout: float = 900) -> float:
    """Run `cmd` to completion (it must succeed). -> seconds."""
    start = time.monotonic()
    run = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         timeout=timeout)
    assert run.returncode == 0, run.stderr.decode(errors="replace")[-3000:]
    return time.monotonic() - start


def copier(previous: Path) -> Callable[[Path], None]:
    """A Lane.reset: copy every file of `previous` over the folder (other files, temps included, stay)."""
    def reset(folder: Path) -> None:
        folder.mkdir(exist_ok=True)
        for p in previous.iterdir():
            shutil.copyfile(p, folder / p.name)
    return reset


def _wrapped(python: str, module: str, args: list[str], at: int, log: str) -> list[str]:
    return [python, "-c", WRAPPER, str(at), log, module, TEMP_NAME, *args]


def write_events(python: str, module: str, args: list[str], env: dict[str, str], cwd: Path) -> list[Event]:
    """`python -m module args` run to completion under the wrapper. -> its write events, in order."""
    with tempfile.TemporaryDirectory(prefix="orcaport-kill-log-") as tmp:
        log = Path(tmp) / "events.json"
        run = subprocess.run(_wrapped(python, module, args, -1, str(log)), cwd=cwd, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=900)
        assert run.returncode == 0, run.stderr.decode(errors="replace")[-3000:]
        return [tuple(e) for e in json.loads(log.read_text())]


def kill_at_write(python: str, module: str, args: list[str], at: int, env: dict[str, str],
                  cwd: Path) -> int:
    """`python -m module args`, SIGKILLed by itself at its write event number `at` (asserted: a run
    that ends any other way fails). -> the killed process's pid."""
    proc = subprocess.Popen(_wrapped(python, module, args, at, ""), cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, err = proc.communicate(timeout=900)
    assert proc.returncode == -signal.SIGKILL, (
        f"write event {at} was never reached (exit {proc.returncode}): the kill did not land inside "
        f"a write\n{err.decode(errors='replace')[-2000:]}")
    return proc.pid


@dataclass
class Lane:
    """One output folder, the kills run on it, and (optionally) its own TMPDIR for scratch."""

    folder: Path
    reset: Callable[[Path], None]          # puts the previous outputs in place (temps are left)
    scratch: Path | None = None            # TMPDIR of this lane's runs, checked for leftovers
    outcomes: list[dict] = field(default_factory=list)
    killed: set[int] = field(default_factory=set)


@dataclass
class Campaign:
    python: str
    module: str
    args: Callable[[Path], list[str]]      # output folder -> the module's arguments
    env: dict[str, str]
    cwd: Path
    previous: Snapshot
    new: Snapshot
    pin: str | None = None                 # the output renamed last: it vouches for the others
    scratch_kind: str = ""                 # scratch folders are <kind>-<pid>-*

    def env_of(self, lane: Lane) -> dict[str, str]:
        return self.env if lane.scratch is None else {**self.env, "TMPDIR": str(lane.scratch)}


def _scratch(c: Campaign, lane: Lane) -> list[str]:
    if lane.scratch is None:
        return []
    return sorted(p.name for p in lane.scratch.iterdir() if p.name.startswith(c.scratch_kind + "-"))


def check_after_kill(c: Campaign, lane: Lane, pid: int, event: Event) -> dict:
    """Every output is byte for byte its previous or its new version, never partial; while the pin
    (the output renamed last, which vouches for the others) is the previous one, the set reads as
    the previous; once it is new, every output is new. Temps and scratch folders are only those of
    runs killed so far (a later run removes them when it gets that far)."""
    lane.killed.add(pid)
    files = snapshot(lane.folder)
    temps = sorted(n for n in files if n.startswith(".") and n.endswith(".tmp"))
    assert all(any(is_temp_of(n, k) for k in lane.killed) for n in temps), \
        f"a temp not of a killed run {sorted(lane.killed)}: {temps}"
    outputs = {n: h for n, h in files.items() if n not in temps}
    partial = sorted(n for n, h in outputs.items() if h not in (c.previous.get(n), c.new.get(n)))
    assert not partial, f"kill at {event} left partial or foreign output(s): {partial}"
    pin_new = c.pin is not None and outputs.get(c.pin) == c.new.get(c.pin) != c.previous.get(c.pin)
    state = "previous" if outputs == c.previous else "new" if outputs == c.new else None
    if state is None:
        assert not pin_new and outputs.get(c.pin) == c.previous.get(c.pin), (
            f"kill at {event}: {c.pin} is new but not every output is: "
            f"{sorted(n for n in c.new if outputs.get(n) != c.new[n])}")
        state = f"previous {c.pin}, some new views"
    scratch = _scratch(c, lane)
    assert all(any(n.startswith(f"{c.scratch_kind}-{k}-") for k in lane.killed) for n in scratch), scratch
    return {"event": event, "state": state, "temps": len(temps), "scratch": len(scratch)}


def pick(events: list[Event], count: int | None, seed: int) -> list[int]:
    """Every event (count None or >= len), else `count` of them spread evenly with seeded jitter,
    always the first temp, the first rename and the last event."""
    n = len(events)
    if count is None or count >= n:
        return list(range(n))
    must = {next(i for i, e in enumerate(events) if e[0] == "temp"),
            next(i for i, e in enumerate(events) if e[0] == "rename"), n - 1}
    rng = random.Random(seed)
    rest = [i for i in range(n) if i not in must]
    m = count - len(must)
    if m <= 0:
        return sorted(must)[:count]
    bounds = [k * len(rest) // m for k in range(m + 1)]          # m disjoint, non-empty strata
    spread = [rest[lo + int(rng.random() * (hi - lo))] for lo, hi in zip(bounds, bounds[1:])]
    return sorted(must | set(spread))


def kill_at_writes(c: Campaign, lanes: list[Lane], events: list[Event], count: int | None = None,
                   seed: int = 0) -> list[dict]:
    """One killed run per chosen event of `events` (`write_events` of a complete run), each from the
    previous outputs (the temps earlier kills left stay), spread over the lanes; then each lane runs
    unpatched to completion and must hold exactly the new set, no temp, no scratch. -> outcomes."""
    assert {kind for kind, _ in events} == {"temp", "rename"}, events
    chosen = pick(events, count, seed)

    def work(lane: Lane, indices: list[int]) -> None:
        for at in indices:
            lane.reset(lane.folder)
            pid = kill_at_write(c.python, c.module, c.args(lane.folder), at, c.env_of(lane), c.cwd)
            lane.outcomes.append(check_after_kill(c, lane, pid, events[at]))
        run_once([c.python, "-m", c.module, *c.args(lane.folder)], c.env_of(lane), c.cwd)
        assert snapshot(lane.folder) == c.new, "the completing run left temps or a wrong set"
        assert not _scratch(c, lane), f"scratch folders left after a completing run: {_scratch(c, lane)}"

    with ThreadPoolExecutor(len(lanes)) as pool:
        for f in [pool.submit(work, lane, chosen[i::len(lanes)]) for i, lane in enumerate(lanes)]:
            f.result()
    outcomes = [o for lane in lanes for o in lane.outcomes]
    assert sorted(o["event"] for o in outcomes) == sorted(events[i] for i in chosen)
    return outcomes


def output_of(event: Event) -> str:
    """The output an event writes: a temp's output name, or a rename's destination name."""
    name = os.path.basename(event[1])
    m = re.fullmatch(TEMP_NAME, name)
    return m[1] if event[0] == "temp" and m else name


def summary(name: str, outcomes: list[dict], events: list[Event]) -> str:
    states = dict(Counter(o["state"] for o in outcomes))
    kinds = {k: sum(o["event"][0] == k for o in outcomes) for k in ("temp", "rename")}
    return (f"{name}: {len(outcomes)} kills inside writes (of {len(events)} write events; {kinds}), "
            f"every one left an intact set {states}; kills that left temps: "
            f"{sum(o['temps'] > 0 for o in outcomes)}, scratch: {sum(o['scratch'] > 0 for o in outcomes)}")


def first_event(events: list[Event], kind: str, output: str | None = None) -> int:
    """Index of the first `kind` event (writing `output`, when given)."""
    for i, e in enumerate(events):
        if e[0] == kind and output in (None, output_of(e)):
            return i
    raise AssertionError(f"no {kind} event{' on ' + output if output else ''} in {events}")
