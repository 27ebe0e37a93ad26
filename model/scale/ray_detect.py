"""`orcaport detect ... --ray [ADDRESS]`: the detector on a Ray cluster (the `orcaport[ray]` extra).

    driver         plan the items (model/scale/sources.py), skip those the run folder has finished,
                   submit, write each result + its manifest line as it arrives (run_folder.py)
    CPU tasks      `prepare`: fetch (fsspec) + production's ffmpeg conversion + the waveform steps
                   (decode, load, downmix, resample)                 -> (clips, C, N') float32
    actors         `NetworkActor.detect`: spectrogram steps + network + aggregation, one model per
                   actor, on a GPU (a fraction of one with --actors-per-gpu) or on CPUs

Why Ray core tasks and actors, not Ray Data (read -> map_batches -> write):
- same bits everywhere: a file's network batches must be the one-process run's
  (`Detector.batch_sizes`, shared with `orcaport detect` and the feeder); map_batches cuts batches
  across files and blocks, which moves probabilities by ~1e-5 (oneDNN blocks GEMMs by batch);
- exactly once, per file: the driver is the only writer and records each item once, in the run
  manifest it resumes from; Ray Data's writers and retries work per block, not per input file;
- a bad file fails alone: a task's error is that item's, the rest of the run goes on;
- Ray Data needs pandas and pyarrow, which the clean runtime never imports.
Ray does the rest: placement on CPUs/GPUs, retries of tasks whose worker died (`max_retries`),
restarts of killed actors with their calls retried (`max_restarts`, `max_task_retries`), moving
waveforms through its object store. A retried item still reaches the driver once.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterator

import numpy as np
import ray
from ray.exceptions import RayError, RayTaskError

from orcaport.model.arithmetic import choose
from orcaport.model.artifact import CONFIG_FILE, WEIGHTS_FILE, load_artifact
from orcaport.model.calibration import FILES as CALIBRATION_FILES, load_calibration
from orcaport.model.cpus import available_cpus
from orcaport.model.detector import MAX_WORKERS, Detector
from orcaport.model.errors import UsageError, one_line
from orcaport.model.feeder import FILE_ERRORS
from orcaport.model.pipeline import Frontend
from orcaport.model.scale.options import RayClusterError, ray_init_kwargs
from orcaport.model.scale.progress import RunProgress
from orcaport.model.scale.run_folder import OUTPUT_NAMES, SUMMARY, RunFolder
from orcaport.model.scale.sources import WorkItem, item_waveforms, plan_inputs
from orcaport.model.source import STREAM_BYTES, AudioSource

RETRIES = 3                 # a killed worker's task / a killed actor: run again this many times
OUTPUT_EVERY_S = 60.0       # detections.<format> rewritten at most this often during a run


@ray.remote(max_retries=RETRIES)   # system failures only: a file's own error is not retried
def prepare(item: WorkItem, fe: Frontend, stream_bytes: int
            ) -> tuple[AudioSource, np.ndarray, dict[str, float]]:
    return item_waveforms(item, fe, stream_bytes)


@ray.remote(max_restarts=RETRIES, max_task_retries=RETRIES)
class NetworkActor:
    """One loaded model (verified like `--model DIR`) running the spectrogram steps and the network."""

    def __init__(self, model_files: dict[str, bytes], options: dict[str, Any]) -> None:
        with tempfile.TemporaryDirectory(prefix="orcaport-model-") as tmp:
            for name, data in model_files.items():
                (Path(tmp) / name).write_bytes(data)
            self.det = Detector.from_folder(tmp, **options)

    def describe(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "node": ray.get_runtime_context().get_node_id(),
                "device": self.det.device, "arithmetic": self.det.arithmetic.to_dict()}

    def detect(self, name: str, src: AudioSource, waves: np.ndarray, seconds: dict[str, float],
               threshold: float | None, min_positive: int | None) -> tuple[Any, dict[str, float]]:
        t0 = time.perf_counter()
        probs = self.det.waveform_probabilities(waves, src.sample_rate)
        d = replace(self.det.detection(probs, src, threshold, min_positive), wav_filename=name)
        return d, {**seconds, "network": time.perf_counter() - t0}


def connect(address: str) -> None:
    kwargs = ray_init_kwargs(address)
    if address == "local" and "RAY_ADDRESS" not in os.environ:
        kwargs["include_dashboard"] = False        # a private Ray for this run only
    try:
        ray.init(logging_level=logging.ERROR, **kwargs)
    except Exception as e:     # noqa: BLE001 -- ray.init raises ConnectionError, ValueError, RuntimeError...
        where = "start a private Ray here" if address == "local" else f"reach the Ray cluster at {address}"
        raise RayClusterError(f"cannot {where} ({one_line(e)}); start the cluster (`ray start --head`) "
                              "or check --ray ADDRESS") from None


def settings_of(args: argparse.Namespace, weights_sha256: str) -> dict[str, Any]:
    """What the results depend on: a resumed run must have the same (run_folder.py)."""
    return {"weights_sha256": weights_sha256, "profile": args.profile, "arithmetic": args.arithmetic,
            "threshold": args.threshold, "min_positive": args.min_positive,
            "window_seconds": args.window_seconds, "batch_size": args.batch_size}


def run(args: argparse.Namespace) -> int:
    items = plan_inputs(args.inputs, args.window_seconds)
    artifact = load_artifact(args.model)                 # a bad model folder fails here, not in actors
    if choose(args.profile, args.device, args.arithmetic).name == "int8":     # so does a bad calibration
        load_calibration(args.model, artifact.weights_sha256)
    folder = RunFolder(args.output, settings_of(args, artifact.weights_sha256))
    todo = [i for i in items if not folder.finished(i)]
    connect(args.ray)
    try:
        return _run(args, artifact, folder, items, todo)
    finally:
        ray.shutdown()


@contextlib.contextmanager
def ctrl_c_between_items() -> Iterator[list[int]]:
    """Ctrl-C (SIGINT) only noted while the driver loop runs; the loop stops at its next turn (at
    most ray.wait's 1 s later), outside any Ray call. Raised inside one, the KeyboardInterrupt did
    not reliably stop the loop: once in CI (2026-12-03) a driver interrupted after 2 of 8 items ran
    on to the end and exited 0. -> a list that is non-empty once Ctrl-C was pressed."""
    pressed: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: pressed.append(signum))
    try:
        yield pressed
    finally:
        signal.signal(signal.SIGINT, previous)


def _run(args: argparse.Namespace, artifact: Any, folder: RunFolder, items: list[WorkItem],
         todo: list[WorkItem]) -> int:
    resources = ray.cluster_resources()
    gpus = resources.get("GPU", 0.0)
    nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
    if args.device == "cuda" and not gpus:
        raise UsageError("--device cuda, but the Ray cluster has no GPU; drop --device or add GPU nodes")
    device = "cuda" if gpus else "cpu"
    n_actors = args.actors or (max(1, int(gpus * args.actors_per_gpu)) if gpus else nodes)
    # The driver's batch partition (same as `orcaport detect` here): every node returns its bits.
    options = {"profile": args.profile, "device": device, "batch_size": args.batch_size,
               "arithmetic": args.arithmetic, "workers": min(available_cpus(), MAX_WORKERS)}
    # the int8 calibration travels with the model where it is there (an int8 run needs it)
    model_ref = ray.put({n: (args.model / n).read_bytes() for n in (WEIGHTS_FILE, CONFIG_FILE, *CALIBRATION_FILES)
                         if n in (WEIGHTS_FILE, CONFIG_FILE) or (args.model / n).is_file()})
    # SPREAD: one actor per node before a second on any (a CPU cluster's default is one per node)
    actor_cls = NetworkActor.options(num_cpus=args.actor_cpus, scheduling_strategy="SPREAD",
                                     num_gpus=1.0 / args.actors_per_gpu if gpus else 0)
    actors = [actor_cls.remote(model_ref, options) for _ in range(n_actors)]
    fe_ref = ray.put(Frontend.of(artifact.config))
    task = prepare.options(num_cpus=args.task_cpus, num_returns=3)
    max_in_flight = args.in_flight or max(2, int(2 * resources.get("CPU", 1)))
    try:
        described = ray.get([a.describe.remote() for a in actors])
    except RayError as e:        # a model the actors cannot load, a node without the package...
        raise RayClusterError(f"the network actors could not start ({one_line(e)}); check that every "
                              "node has orcaport[ray] installed and the cluster's logs") from None
    arithmetic = described[0]["arithmetic"]

    load = [0] * n_actors
    in_flight: dict[Any, tuple[WorkItem, int, int]] = {}        # ref -> (item, actor, attempt)
    queue = [(item, 1) for item in reversed(todo)]              # popped from the end: input order
    last_output = time.perf_counter()
    with RunProgress(len(items), len(items) - len(todo), args.quiet) as progress, ctrl_c_between_items() as stop:
        try:
            while queue or in_flight:
                if stop:        # Ctrl-C: stop here, between two Ray calls (finished work is kept)
                    raise KeyboardInterrupt
                while queue and len(in_flight) < max_in_flight:
                    item, attempt = queue.pop()
                    a = load.index(min(load))                    # the least busy actor
                    src, waves, seconds = task.remote(item, fe_ref, STREAM_BYTES)
                    ref = actors[a].detect.remote(item.name, src, waves, seconds, args.threshold,
                                                  args.min_positive)
                    in_flight[ref] = (item, a, attempt)
                    load[a] += 1
                ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=1.0)
                for ref in ready:
                    item, a, attempt = in_flight.pop(ref)
                    load[a] -= 1
                    _finish(ref, item, attempt, folder, progress, queue)
                if time.perf_counter() - last_output > OUTPUT_EVERY_S:
                    write_outputs(args, folder, items, arithmetic, device)
                    last_output = time.perf_counter()
        finally:
            write_outputs(args, folder, items, arithmetic, device)
            summary = {**progress.summary(nodes, n_actors, device),
                       "actor_nodes": len({d["node"] for d in described})}
            folder.write(SUMMARY, _json(summary))
            progress.report(summary)
    _, failed = folder.results(items)
    return 1 if failed else 0


def _finish(ref: Any, item: WorkItem, attempt: int, folder: RunFolder, progress: RunProgress,
            queue: list[tuple[WorkItem, int]]) -> None:
    """Record one item's result or error (once), or put it back when its worker died."""
    try:
        d, seconds = ray.get(ref)
    except RayTaskError as e:
        cause = getattr(e, "cause", None)
        if not isinstance(cause, FILE_ERRORS):
            raise                                # a bug, not a bad file: stop (finished work is kept)
        folder.record_error(item, one_line(cause))
        progress.say(f"error: {one_line(cause)}")
        progress.done(0, {}, failed=True)
        return
    except RayError as e:                        # a worker / actor / object lost past Ray's own retries
        if attempt <= RETRIES:
            queue.append((item, attempt + 1))
            return
        folder.record_error(item, f"{item.name}: lost {attempt} times ({type(e).__name__}); "
                                  "check the cluster's logs and rerun with the same --output")
        progress.done(0, {}, failed=True)
        return
    t0 = time.perf_counter()
    folder.record_ok(item, d, seconds)
    progress.done(d.clips, {**seconds, "write": time.perf_counter() - t0})


def _json(doc: Any) -> str:
    import json

    return json.dumps(doc, indent=2) + "\n"


def write_outputs(args: argparse.Namespace, folder: RunFolder, items: list[WorkItem],
                  arithmetic: dict[str, Any], device: str) -> None:
    """detections.<format> from every finished item, in input order (table -> json)."""
    from orcaport.model.cli import render_csv, render_json
    from orcaport.model.review_formats import render_audacity, render_raven

    fmt = args.format if args.format in OUTPUT_NAMES else "json"
    done, failed = folder.results(items)
    detections = [d for _, d in done]
    cfg = load_config(args.model)
    if fmt == "json":
        text = render_json(detections, [(Path(n), m) for n, m in failed],
                           SimpleNamespace(model=args.model, profile=args.profile, device=device), arithmetic)
    elif fmt == "csv":
        text = render_csv(detections)
    elif fmt == "raven":
        text = render_raven(done, cfg.frontend)
    else:
        text = render_audacity(done, cfg.classes[cfg.positive_index])
    folder.write(OUTPUT_NAMES[fmt], text)


def load_config(model: Path) -> Any:
    from orcaport.model.config import ModelConfig

    return ModelConfig.load(model / CONFIG_FILE)
