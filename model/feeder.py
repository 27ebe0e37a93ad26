"""Many files through one accelerator: the waveform stages in worker processes, the spectrogram
stages and the network batched on the device, so the CPU work of the next chunks overlaps the GPU.

    workers (CPU processes)  decode -> clip -> load -> downmix -> resample   (B, C, N') float32
    device (main process)    mel -> db -> input -> network -> probs           (B,)
    main process             aggregate, per file, in file order

Why: one 2 s clip's waveform stages cost a few ms of one CPU core (resample_poly), its mel/dB
as much again, and a GPU runs the whole ResNet50 batch in less; so the device takes mel/dB too
and the cores that are left do nothing but resample. torch's DataLoader moves the chunks through
shared memory and keeps their order. Every stage is the Detector's own function
(`clip_inputs`, `clip_waveform`, `spectrogram_inputs`, `run_network`): this module only schedules.
By default a file's chunks are the Detector's own network batches (`Detector.batch_sizes`), so
every network call sees the clips it sees in a one-file run and each file's result is the same
bits as `Detector.detect` (tests/test_feeder.py, tests/test_cli_many.py); a fixed `chunk` trades
that for bigger GPU batches (bench/cuda.py).
"""

from __future__ import annotations

import dataclasses
import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from orcaport.model.pipeline import windows_of
from orcaport.model.source import AudioSource, DetectorError, open_audio

CHUNK_CLIPS = 256          # fixed chunks: clips per worker item and per device batch (fills an H100)
PREFETCH = 4               # chunks each worker prepares ahead


# What a bad file raises (a one-line user error): it fails that file only, never the whole run.
FILE_ERRORS = (ValueError, OSError)


@dataclass(frozen=True)
class Chunk:
    file: int              # index into the paths
    first: int             # first clip
    count: int             # clips


class WaveformChunks(Dataset):
    """Chunk i -> (file index, first clip, (count, C, N') float32 waveforms or None, error or None),
    computed in a worker. A bad file's error travels as its one-line message (picklable)."""

    def __init__(self, detector, paths: Sequence[Path], chunks: Sequence[Chunk]) -> None:
        self.detector, self.paths, self.chunks = detector, list(paths), list(chunks)

    def __len__(self) -> int:
        return len(self.chunks)

    @functools.lru_cache(maxsize=2)         # per worker: a small file is decoded once, not per chunk
    def source(self, file: int) -> AudioSource:
        return open_audio(self.paths[file], self.detector.stream_bytes)

    def __getitem__(self, i: int) -> tuple[int, int, torch.Tensor | None, str | None]:
        c = self.chunks[i]
        det = self.detector
        try:
            src = self.source(c.file)
            waves = [det.clip_waveform(clip, src) for clip in det.clip_inputs(src, c.first, c.count)]
        except FILE_ERRORS as e:
            return c.file, c.first, None, one_line(e)
        return c.file, c.first, torch.from_numpy(np.stack(waves)), None


class FileError(DetectorError):
    """One file of a many-file run could not be processed (the others were)."""


def one_line(e: BaseException) -> str:
    return str(e).splitlines()[0] if str(e) else type(e).__name__


def plan_chunks(paths: Sequence[Path], stream_bytes: int, chunk: int = CHUNK_CLIPS,
                sizes: Callable[[int], Sequence[int]] | None = None
                ) -> tuple[dict[int, AudioSource], list[Chunk], dict[int, str]]:
    """Open every file's header (a small file is decoded) and cut its clips into chunks of `chunk`
    clips, or of `sizes(clips)` (e.g. `Detector.batch_sizes`) when given.
    -> (sources by file index, chunks in order, errors by file index for files refused here)"""
    sources, chunks, failed = {}, [], {}
    for f, path in enumerate(paths):
        try:
            src = open_audio(path, stream_bytes)
            n_clips = len(windows_of(src.duration_s, src.path))
        except FILE_ERRORS as e:
            failed[f] = one_line(e)
            continue
        sources[f] = dataclasses.replace(src, pcm=None)   # workers decode; the planner keeps no samples
        counts = list(sizes(n_clips)) if sizes is not None else [min(chunk, n_clips - a)
                                                                  for a in range(0, n_clips, chunk)]
        firsts = np.cumsum([0] + counts[:-1])
        chunks += [Chunk(f, int(a), n) for a, n in zip(firsts, counts)]
    return sources, chunks, failed


def _one_thread(_: int) -> None:
    torch.set_num_threads(1)    # each worker is one core's worth of resampling


def detect_many(detector, paths: Sequence[str | Path], workers: int | None = None,
                chunk: int | None = None, threshold: float | None = None,
                min_positive: int | None = None) -> Iterator[tuple[Path, Any]]:
    """Run `detector` over `paths`, yielding (path, Detection) -- or (path, FileError) for a file
    that could not be processed -- for every path, in order. workers: frontend processes
    (default: the CPUs this process may use, less one for the main process); chunk: clips per
    chunk (default: the detector's own batches, which make each file's result bit for bit a
    one-file run's); threshold / min_positive: as `Detector.detect`'s."""
    paths = [Path(p) for p in paths]
    sizes = detector.batch_sizes if chunk is None else None
    sources, chunks, failed = plan_chunks(paths, detector.stream_bytes, chunk or CHUNK_CLIPS, sizes)
    workers = max(1, (len(os.sched_getaffinity(0)) - 1) if workers is None else workers)
    loader = DataLoader(WaveformChunks(detector, paths, chunks), batch_size=None, num_workers=workers,
                        worker_init_fn=_one_thread, pin_memory=detector.device == "cuda",
                        prefetch_factor=PREFETCH)
    probs: dict[int, list[torch.Tensor]] = {f: [] for f in sources}

    def finish(f: int) -> tuple[Path, Any]:
        if f in failed:
            return paths[f], FileError(failed[f])
        return paths[f], detector.detection(torch.cat(probs.pop(f)).numpy(), sources[f], threshold,
                                            min_positive)

    done = 0                              # files before this one have been yielded
    with detector.network_context():
        for file, _, waves, error in loader:    # chunks arrive in order
            while done < file:
                yield finish(done)
                done += 1
            if error is not None:
                failed.setdefault(file, error)
            if file in failed:
                continue
            x = detector.spectrogram_inputs(waves.to(detector.device, non_blocking=True),
                                            sources[file].sample_rate)
            probs[file].append(detector.run_network(x))
    while done < len(paths):
        yield finish(done)
        done += 1
