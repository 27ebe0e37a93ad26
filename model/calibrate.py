"""`orcaport calibrate --model DIR --audio DIR|FILE... [--clips N]` (`make calibrate MODEL= AUDIO=`):
the int8 calibration, made once on the user's own recordings and stored in the model folder.

Which clips: the recordings in input order (folders sorted, as `orcaport detect` lists them), their
2 s clips numbered one after another; up to N (default 64) clip numbers evenly spaced over all of
them (numpy linspace, rounded), so a long archive and a folder of short files are both sampled end
to end, and the same inputs always give the same clips. Each clip goes through the runtime frontend
exactly as `orcaport detect` runs it (model/detector.py), then the body's observers see them
CALIBRATION_BATCH at a time in that order (model/quantized.py). Recordings that cannot be run
(shorter than one clip, unreadable) are skipped and listed. Nothing is written unless it all worked.

Exit codes (model/errors.py): 0 written, 2 bad usage (no quantized engine in this torch), 3 an
unusable model folder or no usable recording, 5 the model folder not writable.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import numpy as np
import torch

from orcaport.model.errors import ExitCode, InputError, OrcaportError, OutputError, UsageError, one_line

if TYPE_CHECKING:
    from orcaport.model.detector import Detector

DEFAULT_CLIPS = 64
SELECTION = ("up to {n} clips evenly spaced (numpy linspace, rounded) over all 2 s clips of the recordings "
             "in input order; observed {b} at a time in that order")


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=Path, required=True, help="converted model folder (model.safetensors + config.json)")
    p.add_argument("--audio", nargs="+", required=True, metavar="DIR|FILE",
                   help="your recordings (folders scanned recursively, files, manifests, quoted globs)")
    p.add_argument("--clips", type=int, default=DEFAULT_CLIPS,
                   help=f"at most this many clips, evenly spaced over all recordings (default {DEFAULT_CLIPS})")


def select_clips(counts: list[int], max_clips: int) -> list[tuple[int, int]]:
    """(recording index, clip index) of up to `max_clips` clips evenly spaced over all recordings'
    clips (counts[i]: recording i's clips), in order."""
    total = sum(counts)
    picks = range(total) if total <= max_clips else np.unique(np.rint(np.linspace(0, total - 1, max_clips)).astype(int))
    starts = np.cumsum([0] + counts)
    out = []
    for k in picks:
        i = int(np.searchsorted(starts, k, side="right")) - 1
        out.append((i, int(k - starts[i])))
    return out


@contextlib.contextmanager
def _wav(path: Path) -> Iterator[Path]:
    """The file as the detector reads it: WAV directly, anything else through production's ffmpeg."""
    from orcaport.model.transcode import needs_ffmpeg, production_wav

    if needs_ffmpeg(path):
        with production_wav(path) as wav:
            yield wav
    else:
        yield path


def calibration_inputs(det: Detector, files: list[Path], max_clips: int
                       ) -> tuple[list[torch.Tensor], list[dict[str, object]], list[str]]:
    """The selected clips' normalized network inputs, in order (each (1, C, H, W)); the recordings
    used (path, sha256, clips); the skipped ones ('name: error')."""
    from orcaport.model.fileio import sha256_file
    from orcaport.model.pipeline import windows_of
    from orcaport.model.source import open_audio

    counts, skipped = [], []
    for path in files:
        try:
            with _wav(path) as wav:
                src = open_audio(wav, det.stream_bytes)
                counts.append(len(windows_of(src.duration_s, path.name, det.windowing)))
        except (OrcaportError, OSError) as e:
            counts.append(0)
            skipped.append(f"{path}: {one_line(e)}")
    picks = select_clips(counts, max_clips)
    inputs: list[torch.Tensor] = []
    recordings: list[dict[str, object]] = []
    for i in sorted({i for i, _ in picks}):
        clips = [c for j, c in picks if j == i]
        with _wav(files[i]) as wav:
            src = open_audio(wav, det.stream_bytes)
            for c in clips:
                prefix = next(iter(det.clip_inputs(src, c, 1)))
                inputs.append(det.batch_inputs([prefix], src))
        recordings.append({"path": str(files[i]), "sha256": sha256_file(files[i]), "clips": len(clips)})
    return inputs, recordings, skipped


def calibrate_folder(model: Path, audio: list[Path], max_clips: int = DEFAULT_CLIPS) -> dict[str, object]:
    """Calibrate `model`'s int8 body on `audio` and store it in `model` (model/calibration.py).
    -> the stored record (the JSON), plus 'skipped'."""
    from orcaport.model.calibration import META_FILE, save_calibration
    from orcaport.model.detector import Detector
    from orcaport.model.quantized import CALIBRATION_BATCH, ENGINES, calibrate, quantized_engine

    if max_clips < 1:
        raise UsageError(f"--clips must be >= 1, got {max_clips}")
    engine = quantized_engine()
    if engine is None:
        raise UsageError(f"this torch offers no {'/'.join(ENGINES)} quantized engine on this CPU, so int8 cannot "
                         "run here; calibrate on an x86-64 machine")
    det = Detector.from_folder(model, engine="nchw", workers=1)     # the frontend; its fp32 network is not run
    inputs, recordings, skipped = calibration_inputs(det, audio, max_clips)
    if not inputs:
        raise InputError(f"no clip of the {len(audio)} recordings could be read ({skipped[0] if skipped else 'none given'}); "
                         "pass recordings of at least 2 s that `orcaport detect` runs on")
    _, state = calibrate(det.artifact.network.eval(), inputs, engine)
    selection = SELECTION.format(n=max_clips, b=CALIBRATION_BATCH)
    try:
        save_calibration(Path(model), state, det.artifact.weights_sha256, engine, recordings, len(inputs), selection)
    except OSError as e:
        raise OutputError(f"cannot write the calibration into {model} ({e.strerror or e}); make the model folder "
                          "writable") from None
    return {**json.loads((Path(model) / META_FILE).read_text()), "skipped": skipped}


def run(args: argparse.Namespace) -> int:
    from orcaport.model.inputs import collect_audio

    meta = calibrate_folder(args.model, collect_audio(args.audio), args.clips)
    for line in meta["skipped"]:
        print(f"skipped: {line}", file=sys.stderr)
    print(f"int8 calibration written: {args.model / 'int8_calibration.json'} (+ .safetensors): {meta['clips']} clips "
          f"of {len(meta['recordings'])} recordings, {meta['quantized_engine']} engine, torch {meta['torch']}, "
          f"for weights {meta['weights_sha256'][:12]}...")
    print(f"run it: orcaport detect --model {args.model} --profile fast --arithmetic int8 FILE...")
    return ExitCode.OK
