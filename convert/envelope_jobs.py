"""The child processes of `make envelope`, run side by side: each a legacy run (a variant, or the
baseline's references; forked from the preloaded interpreter or a fresh python) or the clean job,
as many at once as the CPUs given allow, a job waiting for the one it needs."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

from convert.legacy import ConvertError
from convert.preloaded import run_forked

ROOT = Path(__file__).resolve().parents[1]


@dataclasses.dataclass
class Job:
    """One child process of the envelope: a legacy run (a variant, or the baseline's references)
    or the clean replay; `cpus` it occupies while it runs."""
    name: str
    cmd: list[str]
    env: dict[str, str]
    cpus: int = 1
    ok_codes: tuple[int, ...] = (0,)
    after: str | None = None          # starts once this job is done
    forked: bool = False              # from the preloaded legacy interpreter (convert/preloaded.py)
    seconds: float | None = None
    stdout: str = ""

    def run(self, logs: Path) -> tuple[int, str, str]:
        """-> (exit code, stdout, stderr)."""
        if self.forked:
            return run_forked(self.env, self.cmd[2], self.cmd[3:], logs, logs.parent / "home")
        done = subprocess.run(self.cmd, cwd=ROOT, env=self.env, capture_output=True, text=True)
        return done.returncode, done.stdout, done.stderr


def run_jobs(jobs: list[Job], cpus: int, progress: Callable[[Job, int], None], logs: Path) -> None:
    """Run `jobs` side by side, as many at once as `cpus` allow (a 2-thread job counts 2), in
    order; ConvertError naming the first that failed (after the running ones finished)."""
    free, lock = cpus, threading.Condition()
    done: list[Job] = []
    failed: list[tuple[Job, str]] = []

    def one(job: Job) -> None:
        nonlocal free
        need = min(job.cpus, cpus)
        with lock:
            lock.wait_for(lambda: failed or (free >= need and (job.after is None or
                                                               any(d.name == job.after for d in done))))
            if failed:
                return
            free -= need
        start = time.monotonic()
        try:
            code, stdout, stderr = job.run(logs)
        finally:
            with lock:
                free += need
                lock.notify_all()
        job.seconds, job.stdout = time.monotonic() - start, stdout
        with lock:
            if code not in job.ok_codes:
                failed.append((job, stderr.strip()))
            else:
                done.append(job)
                progress(job, len(done))

    with ThreadPoolExecutor(max_workers=len(jobs) or 1) as pool:
        for f in [pool.submit(one, j) for j in jobs]:
            f.result()
    if failed:
        job, err = failed[0]
        lines = err.splitlines()
        for line in lines[-12:]:
            print(f"  | {line}", file=sys.stderr)
        first = next((ln for ln in lines if ln.startswith("error:")), lines[-1] if lines else "?")
        raise ConvertError(f"{job.name}: its run failed: {first.removeprefix('error: ')}")
