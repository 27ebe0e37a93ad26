"""A local Ray cluster for the `--ray` tests, started and stopped by the test itself.

The Ray side env (envs/ray_env.sh; .ci/run builds it) holds Ray; the clean env that runs pytest
does not, so every Ray process -- `ray start` nodes, drivers -- runs with that env's python.
`ray stop` would stop every Ray on the machine, so a cluster is stopped by pid instead: the
processes whose command line names the cluster's own temp dir, and their descendants.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.paths import ROOT

RAY_PYTHON = Path(os.environ.get("ORCAPORT_RAY_PYTHON", ROOT / ".venvs" / "ray" / "bin" / "python"))
NODE_CPUS = 2
OBJECT_STORE_BYTES = 200 << 20
START_TIMEOUT_S = 120


def ray_env(token: str) -> dict[str, str]:
    """The environment of a cluster's processes and its drivers: token authentication with the
    cluster's own token (never ~/.ray's), no usage stats."""
    return {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token,
            "RAY_USAGE_STATS_ENABLED": "0", "PYTHONUNBUFFERED": "1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _procs() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) of every process we can see."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        out[int(entry)] = (ppid, cmd)
    return out


def processes_of(temp_dir: str) -> dict[int, str]:
    """pid -> command line of the cluster's processes: those naming `temp_dir`, and descendants."""
    procs = _procs()
    mine = {pid for pid, (_, cmd) in procs.items() if temp_dir in cmd}
    grew = True
    while grew:
        kids = {pid for pid, (ppid, _) in procs.items() if ppid in mine} - mine
        mine |= kids
        grew = bool(kids)
    return {pid: procs[pid][1] for pid in mine}


@dataclass
class LocalCluster:
    """`ray start --head` + (nodes - 1) x `ray start --address`, all on 127.0.0.1."""

    nodes: int = 2
    temp_dir: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="orcaray-", dir="/tmp"))
    port: int = field(default_factory=free_port)
    token: str = field(default_factory=lambda: secrets.token_hex(32))

    @property
    def env(self) -> dict[str, str]:
        return ray_env(self.token)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _ray(self, *args: str) -> None:
        cmd = [str(RAY_PYTHON), "-m", "ray.scripts.scripts", "start", "--node-ip-address=127.0.0.1",
               f"--num-cpus={NODE_CPUS}", "--num-gpus=0", f"--temp-dir={self.temp_dir}",
               f"--object-store-memory={OBJECT_STORE_BYTES}", "--disable-usage-stats", *args]
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=START_TIMEOUT_S, env=self.env)
        if run.returncode != 0:
            raise RuntimeError((run.stdout + run.stderr).strip().splitlines()[-1:])

    def start(self) -> "LocalCluster":
        self._ray("--head", f"--port={self.port}", "--include-dashboard=false")
        for _ in range(self.nodes - 1):
            self._ray(f"--address={self.address}")
        return self

    def worker_pids(self, proctitle: str) -> list[int]:
        """Ray worker processes whose title starts with `proctitle` (e.g. 'ray::NetworkActor')."""
        return sorted(pid for pid, cmd in processes_of(self.temp_dir).items() if cmd.startswith(proctitle))

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM every process of this cluster, SIGKILL what is left after `grace_s`."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            pids = processes_of(self.temp_dir)
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + grace_s
            while time.monotonic() < deadline and _alive(processes_of(self.temp_dir)):
                time.sleep(0.2)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def _alive(pids: dict[int, str]) -> bool:
    """Any of `pids` still running (a zombie waiting for its reaper does not count)."""
    for pid in pids:
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                return True
        except (OSError, IndexError):
            pass
    return False
