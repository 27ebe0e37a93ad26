"""The `--ray` flags of `orcaport detect` and their checks. Ray-free: the core CLI imports this
module; Ray itself is imported only when a run asks for it (`run_ray_detect`)."""

from __future__ import annotations

import argparse
import importlib.util
import re
import socket
from typing import Any

from orcaport.model.cli import _positive_int   # detect's own check for N >= 1 flags
from orcaport.model.errors import RemoteError, UsageError

# local: a private Ray in this process (or the cluster $RAY_ADDRESS names); auto: the cluster
# `ray start` made on this machine; host:port: a cluster's GCS; ray://host:port: Ray Client.
ADDRESS = re.compile(r"^(local|auto|(ray://)?[A-Za-z0-9_.\-]+:\d{1,5})$")
INSTALL_RAY = "pip install 'orcaport[ray]'"
CONNECT_TIMEOUT_S = 5.0


class RayClusterError(RemoteError):
    """The Ray cluster could not be reached or started (exit 6)."""


def _cpus(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def configure_ray(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("Ray (the orcaport[ray] extra; see the README's `--ray` section)")
    g.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="run on a Ray cluster: waveform steps as CPU tasks, spectrogram + network in "
                        "actors (GPUs when the cluster has them). ADDRESS: local (default: a private "
                        "Ray here), auto, host:port or ray://host:port. Inputs may be URLs (fsspec: "
                        "file://, http(s)://, s3://...), manifests or HLS archive folders; --output "
                        "DIR is required and a rerun with the same DIR resumes")
    g.add_argument("--actors", type=_positive_int, default=None, metavar="N",
                   help="--ray: network actors (default: GPUs x --actors-per-gpu, or one per node "
                        "on a CPU cluster)")
    g.add_argument("--actors-per-gpu", type=_positive_int, default=1, metavar="N",
                   help="--ray: network actors sharing one GPU (each takes 1/N of it)")
    g.add_argument("--actor-cpus", type=_cpus, default=1.0, metavar="CPUS",
                   help="--ray: CPUs each network actor reserves (its threads run the batches)")
    g.add_argument("--task-cpus", type=_cpus, default=1.0, metavar="CPUS",
                   help="--ray: CPUs each waveform task reserves: a node runs its CPUs / this "
                        "many tasks at once")
    g.add_argument("--in-flight", type=_positive_int, default=None, metavar="N",
                   help="--ray: files (or windows) submitted ahead of the results (default: 2 x the "
                        "cluster's CPUs); bounds the object store's use")


def check_address(address: str) -> str:
    """The --ray ADDRESS, or UsageError naming the forms (an input path after a bare --ray lands
    here: argparse cannot tell them apart)."""
    if not ADDRESS.match(address):
        raise UsageError(f"--ray {address!r} is not a Ray address (local, auto, host:port or "
                         "ray://host:port); write --ray=ADDRESS, or put a bare --ray after the inputs")
    return address


def run_ray_detect(args: argparse.Namespace) -> int:
    """`orcaport detect ... --ray`: checks what needs no Ray, then hands over to ray_detect."""
    check_address(args.ray)
    if args.follow is not None:
        raise UsageError("--ray runs a finished archive; --follow watches a folder on one machine: "
                         "use one or the other")
    if not args.inputs:
        raise UsageError("no inputs; pass files, folders, manifests, globs or URLs")
    if args.model is None:
        raise UsageError("no model; pass --model DIR, a folder holding model.safetensors + config.json")
    if args.output is None:
        raise UsageError("--ray writes a run folder; pass --output DIR (rerun with the same DIR to resume)")
    if importlib.util.find_spec("ray") is None:
        raise UsageError(f"--ray needs Ray, which is not installed here; {INSTALL_RAY}")
    check_reachable(args.ray)
    from orcaport.model.scale.ray_detect import run

    return run(args)


def check_reachable(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """A host:port (or ray://host:port) address must accept a TCP connection within `timeout_s`:
    ray.init itself retries an unreachable cluster for minutes before it gives up."""
    if address in ("local", "auto"):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as e:
        raise RayClusterError(f"nothing answers at --ray {address} ({e.strerror or type(e).__name__}); "
                              "start the cluster (`ray start --head`) or check the address") from None


def ray_init_kwargs(address: str) -> dict[str, Any]:
    """ray.init's arguments for an ADDRESS (local: no address, so $RAY_ADDRESS still applies)."""
    base: dict[str, Any] = {"log_to_driver": False, "configure_logging": False}
    return base if address == "local" else {**base, "address": address}
