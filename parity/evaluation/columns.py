"""The runtime's columns of an evaluation: `legacy-exact` and `fast` in each arithmetic this machine
offers, run on the same frontend inputs (the frontend is legacy's in every profile: only the
network's arithmetic differs), so each file's audio is decoded and transformed once.

    legacy-exact   fp32, the parity-checked path
    fast/fp32      on the CPU the legacy-exact engine itself (model/arithmetic.py): its numbers
                   are legacy-exact's, not run twice
    fast/bf16      where the CPU has AVX512-BF16/AMX (never emulated: that is slower than fp32)
    fast/fp16      on CUDA, when torch sees a GPU
    fast/int8      model/quantized.py's int8 body + fp32 head (FX post-training static
                   quantization, x86/fbgemm engine), where torch has that engine. With a calibration
                   stored in the model folder (`make calibrate`) it is exactly what `orcaport detect
                   --profile fast --arithmetic int8` runs (the same Detector); without one (or with
                   one refused as stale/corrupt, said in its note) it is calibrated here on
                   CALIBRATION_PER_CLASS x 2 synthetic training clips (never the evaluated audio),
                   labelled as such: a number to look at, not a deployable arithmetic

Each column yields per file the runtime's own Detection (model/detector.py `detection`), so the
per-second rows are computed exactly as `orcaport detect` computes them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from orcaport.model.arithmetic import BF16_CPU_FLAGS, read_cpu_flags
from orcaport.model.audio import PcmAudio
from orcaport.model.detection import Detection
from orcaport.model.detector import Detector
from orcaport.model.pipeline import frontend_stages, normalize
from orcaport.model.quantized import quantized_engine
from orcaport.model.source import open_audio
from orcaport.model.transcode import needs_ffmpeg, production_wav

CALIBRATION_SEED = 20261121         # the fixture's training seed (convert/fixture.py, bench/train.py)
CALIBRATION_PER_CLASS = 16
INPUT_BATCH = 16                    # clips whose frontend runs before their networks do


@dataclass
class Column:
    """One way of running the model. runner: normalized inputs (B, C, n_mels, width) -> (B,) P(positive)."""

    name: str
    arithmetic: str
    note: str = ""
    runner: Callable[[torch.Tensor], torch.Tensor] | None = None
    same_as: str | None = None        # numbers taken from that column (same engine, same arithmetic)
    detector: Detector | None = None
    seconds: float = 0.0              # network wall time over the whole set
    calibration: dict | None = None   # int8: the stored calibration's summary ("stored": False when synthetic)
    results: dict[str, Detection] = field(default_factory=dict)


def _detector_runner(det: Detector) -> Callable[[torch.Tensor], torch.Tensor]:
    def run(x: torch.Tensor) -> torch.Tensor:
        with det.network_context():
            return torch.cat([det.run_network(x[s:s + det.batch_size]) for s in range(0, len(x), det.batch_size)])
    return run


def calibration_inputs(det: Detector) -> torch.Tensor:
    """(2 * CALIBRATION_PER_CLASS, C, n_mels, width) normalized inputs of synthetic training clips,
    through the runtime frontend (int16 PCM at 48 kHz, as the fixture's WAVs)."""
    from orcaport.parity.testaudio.training import make_training_set

    fe = det.artifact.config.frontend
    clips = make_training_set(CALIBRATION_SEED, CALIBRATION_PER_CLASS, CALIBRATION_PER_CLASS)
    xs = []
    for audio, _ in clips:
        pcm = np.clip(np.round(audio * 32767.0), -32768, 32767).astype("<i2")[:, None]
        xs.append(frontend_stages(PcmAudio(np.ascontiguousarray(pcm), 48_000, 2), fe)["input"])
    return normalize(torch.stack(xs), det.artifact.config.normalization)


def int8_runner(det: Detector) -> Callable[[torch.Tensor], torch.Tensor]:
    """The int8 network calibrated on synthetic training clips (model/quantized.py, as bench/int8.py)."""
    from orcaport.model.pipeline import probabilities
    from orcaport.model.quantized import calibrate, quantized_engine

    quantized, _ = calibrate(det.artifact.network.eval(), [calibration_inputs(det)], quantized_engine())
    positive = det.positive_index

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return torch.cat([probabilities(quantized(x[s:s + 4]).float())[:, positive] for s in range(0, len(x), 4)])
    return run


def int8_column(model: Path, base: Detector) -> Column:
    """fast/int8 from the model folder's stored calibration (what detect runs), else synthetic."""
    from orcaport.model.calibration import META_FILE, CalibrationError

    name, arith = "fast/int8", "int8 body, fp32 head"
    try:
        det = Detector.from_folder(model, profile="fast", arithmetic="int8")
    except CalibrationError as e:
        why = (f"no {META_FILE} in the model folder" if not (Path(model) / META_FILE).is_file()
               else f"stored calibration refused: {e}")
        note = (f"SYNTHETIC calibration ({2 * CALIBRATION_PER_CLASS} training clips), not deployable as is ({why}); "
                "`make calibrate` on your recordings, then re-evaluate")
        return Column(name, arith, note, int8_runner(base), calibration={"stored": False, "why": why})
    cal = det.calibration
    return Column(name, arith, f"stored calibration: {cal.describe()}; what `orcaport detect --profile fast "
                  "--arithmetic int8` runs", _detector_runner(det), detector=det,
                  calibration={"stored": True, **cal.summary()})


def plan_columns(model: Path, cpu_flags: frozenset[str] | None = None, cuda: bool | None = None,
                 int8: bool = True) -> tuple[Detector, list[Column]]:
    """The columns this machine offers. -> (the legacy-exact detector, columns)."""
    flags = read_cpu_flags() if cpu_flags is None else cpu_flags
    cuda = torch.cuda.is_available() if cuda is None else cuda
    base = Detector.from_folder(model)
    cols = [Column("legacy-exact", "fp32", "the parity-checked path", _detector_runner(base), detector=base),
            Column("fast/fp32", "fp32", "the legacy-exact engine on the CPU: same numbers", same_as="legacy-exact")]
    seen = [f for f in BF16_CPU_FLAGS if f in flags]
    if seen:
        det = Detector.from_folder(model, profile="fast", arithmetic="bf16", cpu_flags=flags)
        cols.append(Column("fast/bf16", det.precision, f"CPU has {', '.join(seen)}", _detector_runner(det), detector=det))
    if cuda:
        det = Detector.from_folder(model, profile="fast", device="cuda", arithmetic="fp16")
        cols.append(Column("fast/fp16", det.precision, f"CUDA: {torch.cuda.get_device_name(0)}",
                           _detector_runner(det), detector=det))
    if int8 and quantized_engine() is not None:
        cols.append(int8_column(model, base))
    return base, cols


def file_inputs(base: Detector, path: Path) -> Iterator[tuple[torch.Tensor, object]]:
    """Batches of one file's normalized inputs and its AudioSource (non-WAV through ffmpeg, as detect)."""
    if needs_ffmpeg(path):
        with production_wav(path) as wav:
            yield from file_inputs(base, wav)
        return
    src = open_audio(path, base.stream_bytes)
    batch: list[np.ndarray] = []
    for clip in base.clip_inputs(src):
        batch.append(clip)
        if len(batch) == INPUT_BATCH:
            yield base.batch_inputs(batch, src), src
            batch = []
    if batch:
        yield base.batch_inputs(batch, src), src


def run_columns(base: Detector, columns: list[Column], files: list[Path], threshold: float | None = None,
                progress: Callable[[str], None] | None = None) -> None:
    """Fill each column's results: file name -> Detection (aliases copy their source's)."""
    run = [c for c in columns if c.runner is not None]
    for path in files:
        if progress:
            progress(path.name)
        probs: dict[str, list[torch.Tensor]] = {c.name: [] for c in run}
        src = None
        for x, src in file_inputs(base, path):
            for c in run:
                t = time.perf_counter()
                probs[c.name].append(c.runner(x).float().cpu())
                c.seconds += time.perf_counter() - t
        if src is None:
            continue
        for c in run:
            d = base.detection(torch.cat(probs[c.name]).numpy(), src, threshold)
            c.results[path.name] = d
    by_name = {c.name: c for c in columns}
    for c in columns:
        if c.same_as is not None:
            c.results = dict(by_name[c.same_as].results)
