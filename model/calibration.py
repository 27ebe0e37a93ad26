"""The int8 calibration stored in a model folder, beside the weights it was made for:

    int8_calibration.safetensors   the body's activation observers' state (model/quantized.py):
                                   per observer min_val, max_val, histogram, eps -- float32 tensors
    int8_calibration.json          what pins it: the weights' sha256 it was calibrated for, the
                                   tensors file's sha256, torch version, quantized engine, and the
                                   recordings (path, sha256, clips used) and clip selection

Written once by `orcaport calibrate` / `make calibrate` (model/calibrate.py), both files atomically,
the JSON last (model/fileio.py). Loaded by `orcaport detect --arithmetic int8`, `make evaluate` and
`make publish`; safetensors + JSON only (no pickle). Every refusal is one line naming the fix.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from orcaport.model.errors import ExitCode
from orcaport.model.fileio import sha256_file, write_files_atomically
from orcaport.model.source import DetectorError

if TYPE_CHECKING:
    from orcaport.model.artifact import Artifact
    from orcaport.model.quantized import QuantizedNet

TENSORS_FILE = "int8_calibration.safetensors"
META_FILE = "int8_calibration.json"
FILES = (TENSORS_FILE, META_FILE)          # the order they are written in (the pinning one last)
KIND = "orcaport int8 calibration"
SCHEMA_VERSION = 1
QCONFIG = "torch.ao get_default_qconfig_mapping(engine) on the body (HistogramObserver activations, per-channel weights); head fp32"


class CalibrationError(DetectorError):
    """The model folder's int8 calibration is missing, stale, corrupt or from another torch (exit 3)."""

    exit_code = ExitCode.BAD_INPUT


def remake(folder: Path) -> str:
    return f"run `make calibrate MODEL={folder} AUDIO=<your recordings>` (orcaport calibrate --model {folder} --audio ...)"


@dataclass(frozen=True)
class Calibration:
    """A loaded calibration: the observer state and its record (the JSON)."""

    state: dict[str, torch.Tensor]
    meta: dict[str, Any]
    folder: Path

    def describe(self) -> str:
        m = self.meta
        return (f"int8 body, fp32 head, calibrated on {m['clips']} clips of {len(m['recordings'])} recordings "
                f"({m['created'][:10]})")

    def summary(self) -> dict[str, Any]:
        """For reports: where it came from, without the per-recording list."""
        m = self.meta
        return {"file": str(self.folder / META_FILE), "tensors_sha256": m["tensors_sha256"], "clips": m["clips"],
                "recordings": len(m["recordings"]), "created": m["created"], "torch": m["torch"],
                "quantized_engine": m["quantized_engine"], "selection": m["selection"]}


def save_calibration(folder: Path, state: dict[str, torch.Tensor], weights_sha256: str, engine: str,
                     recordings: list[dict[str, Any]], clips: int, selection: str) -> Path:
    """Write both files into `folder` atomically. -> the JSON's path."""
    from orcaport.model.weights import serialize_state     # byte-deterministic (safetensors' own is not)

    data = serialize_state(state, metadata={"format": "pt", "kind": KIND})
    meta = {"kind": KIND, "schema_version": SCHEMA_VERSION, "weights_sha256": weights_sha256,
            "tensors_file": TENSORS_FILE, "tensors_sha256": hashlib.sha256(data).hexdigest(),
            "observers": len({k.split(".")[0] for k in state}), "torch": torch.__version__,
            "quantized_engine": engine, "qconfig": QCONFIG, "clips": clips, "selection": selection,
            "recordings": recordings,
            "created": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    write_files_atomically(folder, {TENSORS_FILE: data, META_FILE: json.dumps(meta, indent=2) + "\n"})
    return folder / META_FILE


def read_meta(folder: Path) -> dict[str, Any]:
    """The JSON record, checked for shape only. Raises CalibrationError (missing or corrupt)."""
    path = Path(folder) / META_FILE
    if not path.is_file():
        raise CalibrationError(f"{folder} has no int8 calibration ({META_FILE} missing): int8 needs one made "
                               f"on your recordings; {remake(folder)}")
    try:
        meta = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CalibrationError(f"{path} is unreadable or corrupt ({type(e).__name__}); {remake(folder)}") from None
    need = ("weights_sha256", "tensors_sha256", "torch", "quantized_engine", "clips", "recordings", "created", "selection")
    if not isinstance(meta, dict) or meta.get("kind") != KIND or meta.get("schema_version") != SCHEMA_VERSION \
            or any(k not in meta for k in need):
        raise CalibrationError(f"{path} is not an int8 calibration of this toolkit (corrupt or another "
                               f"version); {remake(folder)}")
    return meta


def load_calibration(folder: Path, weights_sha256: str) -> Calibration:
    """The calibration for the weights with `weights_sha256`, every byte checked against its pins.
    Raises CalibrationError: missing, made for other weights, tensors missing/altered/corrupt."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    folder = Path(folder)
    meta = read_meta(folder)
    path = folder / META_FILE
    if meta["weights_sha256"] != weights_sha256:
        raise CalibrationError(f"{path} was made for other weights (sha256 {str(meta['weights_sha256'])[:12]}..., "
                               f"the model is {weights_sha256[:12]}...): stale or tampered; {remake(folder)}")
    tensors = folder / TENSORS_FILE
    if not tensors.is_file():
        raise CalibrationError(f"{tensors} is missing (its {META_FILE} is there); {remake(folder)}")
    if sha256_file(tensors) != meta["tensors_sha256"]:
        raise CalibrationError(f"{tensors} is not the file {META_FILE} was written with (sha256 differs): "
                               f"corrupt or tampered; {remake(folder)}")
    try:
        state = load(tensors.read_bytes())
    except (SafetensorError, ValueError, OSError) as e:
        raise CalibrationError(f"{tensors} is corrupt ({type(e).__name__}); {remake(folder)}") from None
    if not state or any(t.dtype != torch.float32 for t in state.values()):
        raise CalibrationError(f"{tensors} holds no float32 observer state; {remake(folder)}")
    return Calibration(state, meta, folder)


def int8_network(artifact: Artifact) -> tuple[QuantizedNet, Calibration]:
    """The quantized network (model/quantized.py) rebuilt from the artifact folder's calibration; no
    audio is run. The engine is the calibration's where this torch has it, else the other server
    engine (x86 and fbgemm share the qconfig). -> (QuantizedNet, Calibration)"""
    from orcaport.model.quantized import ObserverMismatch, build, quantized_engine, supported_engines
    from orcaport.model.spectrogram import input_width

    folder, net, fe = artifact.root, artifact.network.eval(), artifact.config.frontend
    cal = load_calibration(folder, artifact.weights_sha256)
    stored = cal.meta["quantized_engine"]
    engine = stored if stored in supported_engines() else quantized_engine()
    width = input_width(fe, fe.resample_to) if fe.resample_to and fe.use_spectro else None
    example = torch.zeros(1, net.config.in_channels, fe.n_mfcc if fe.mfcc else fe.n_mels, width or 128)   # traced only
    try:
        return build(net, cal.state, engine, example), cal
    except ObserverMismatch as e:
        raise CalibrationError(f"{folder / META_FILE} was made with torch {cal.meta['torch']}, whose quantized "
                               f"graph differs from this torch {torch.__version__}'s ({e}); {remake(folder)}") from None
