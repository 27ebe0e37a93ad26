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
"""

from __future__ import annotations

import dataclasses
import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from orcaport.model.pipeline import windows_of
from orcaport.model.source import AudioSource, open_audio

CHUNK_CLIPS = 256          # clips per worker item and per device batch (a ResNet50 batch fills an H100)
PREFETCH = 4               # chunks each worker prepares ahead


@dataclass(frozen=True)
class Chunk:
    file: int              # index into the paths
    first: int             # first clip
    count: int             # clips


class WaveformChunks(Dataset):
    """Chunk i -> (file index, first clip, (count, C, N') float32 waveforms), computed in a worker."""

    def __init__(self, detector, paths: Sequence[Path], chunks: Sequence[Chunk]) -> None:
        self.detector, self.paths, self.chunks = detector, list(paths), list(chunks)

    def __len__(self) -> int:
        return len(self.chunks)

    @functools.lru_cache(maxsize=2)         # per worker: a small file is decoded once, not per chunk
    def source(self, file: int) -> AudioSource:
        return open_audio(self.paths[file], self.detector.stream_bytes)

    def __getitem__(self, i: int) -> tuple[int, int, torch.Tensor]:
        c = self.chunks[i]
        src, det = self.source(c.file), self.detector
        waves = [det.clip_waveform(clip, src) for clip in det.clip_inputs(src, c.first, c.count)]
        return c.file, c.first, torch.from_numpy(np.stack(waves))


def plan_chunks(paths: Sequence[Path], stream_bytes: int, chunk: int = CHUNK_CLIPS
                ) -> tuple[list[AudioSource], list[Chunk]]:
    """Open every file's header (a small file is decoded) and cut its clips into chunks."""
    sources, chunks = [], []
    for f, path in enumerate(paths):
        src = open_audio(path, stream_bytes)
        n_clips = len(windows_of(src.duration_s, src.path))
        sources.append(dataclasses.replace(src, pcm=None))   # workers decode; the planner keeps no samples
        chunks += [Chunk(f, a, min(chunk, n_clips - a)) for a in range(0, n_clips, chunk)]
    return sources, chunks


def _one_thread(_: int) -> None:
    torch.set_num_threads(1)    # each worker is one core's worth of resampling


def detect_many(detector, paths: Sequence[str | Path], workers: int | None = None,
                chunk: int = CHUNK_CLIPS) -> Iterator:
    """Run `detector` over `paths`, yielding each file's Detection in order. workers: frontend
    processes (default: the CPUs this process may use, less one for the main process)."""
    paths = [Path(p) for p in paths]
    sources, chunks = plan_chunks(paths, detector.stream_bytes, chunk)
    workers = max(1, (len(os.sched_getaffinity(0)) - 1) if workers is None else workers)
    cuda = detector.device == "cuda"
    loader = DataLoader(WaveformChunks(detector, paths, chunks), batch_size=None, num_workers=workers,
                        worker_init_fn=_one_thread, pin_memory=cuda, prefetch_factor=PREFETCH,
                        persistent_workers=False)
    probs: list[torch.Tensor] = []
    current = 0
    with detector.network_context():
        for file, first, waves in loader:
            if file != current:          # chunks arrive in order: the previous file is complete
                yield detector.detection(torch.cat(probs).numpy(), sources[current])
                probs, current = [], file
            x = detector.spectrogram_inputs(waves.to(detector.device, non_blocking=True),
                                            sources[file].sample_rate)
            probs.append(detector.run_network(x))
    yield detector.detection(torch.cat(probs).numpy(), sources[current])
