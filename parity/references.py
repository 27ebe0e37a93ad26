"""Load the legacy references (reference_outputs/stages) without fastai and without unpickling.

Nothing is trusted blindly: the manifest's schema, every tensor file's sha256, and every tensor's
key, shape and dtype are verified before a single value is used. Any mismatch is a one-line
`ReferenceError` naming the file and the fix (`make references`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load as load_safetensors

MANIFEST = "manifest.json"
SCHEMA_VERSION = 1
FIX = "re-run `make references` (legacy env) or restore reference_outputs/stages from git"


class ReferenceError(ValueError):
    """References are missing, tampered with, or do not describe what they claim."""


@dataclass
class FileReference:
    """One corpus file's legacy behaviour: its stage tensors, or the error legacy raised."""

    name: str
    entry: dict[str, Any]
    tensors: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def error(self) -> dict[str, str] | None:
        return self.entry.get("error")

    @property
    def clips(self) -> int:
        return int(self.entry.get("clips", 0))

    @property
    def full_clips(self) -> list[int]:
        return [int(i) for i in self.entry.get("full_clips", [])]

    @property
    def activation_clips(self) -> list[int]:
        return [int(i) for i in self.entry.get("activation_clips", [])]

    def clip_stage(self, clip: int, stage: str) -> np.ndarray:
        return self.tensors[f"clips/{clip:02d}/{stage}"]


@dataclass
class References:
    root: Path
    manifest: dict[str, Any]
    manifest_sha256: str
    files: list[FileReference]

    def file(self, name: str) -> FileReference:
        for f in self.files:
            if f.name == name:
                return f
        raise ReferenceError(f"no reference for {name} in {self.root / MANIFEST}; {FIX}")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _load_tensors(root: Path, name: str, spec: dict[str, Any]) -> dict[str, np.ndarray]:
    path = root / spec["file"]
    if path.name != spec["file"] or path.resolve().parent != root.resolve():
        raise ReferenceError(f"{name}: tensor file name {spec['file']!r} escapes {root}; {FIX}")
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        raise ReferenceError(f"{path} is missing; {FIX}") from None
    if _sha256(blob) != spec["sha256"]:
        raise ReferenceError(f"{path} does not match its sha256 in {MANIFEST} (tampered or "
                             f"truncated); {FIX}")
    try:
        tensors = load_safetensors(blob)
    except (SafetensorError, ValueError) as e:
        raise ReferenceError(f"{path} is not a readable safetensors file ({e}); {FIX}") from None
    want = spec["keys"]
    if set(tensors) != set(want):
        missing = sorted(set(want) - set(tensors))[:3]
        extra = sorted(set(tensors) - set(want))[:3]
        raise ReferenceError(f"{path}: stages differ from the manifest (missing {missing}, "
                             f"unexpected {extra}); {FIX}")
    for key, desc in want.items():
        t = tensors[key]
        if list(t.shape) != desc["shape"] or str(t.dtype) != desc["dtype"]:
            raise ReferenceError(f"{path}: {key} is {list(t.shape)} {t.dtype}, manifest says "
                                 f"{desc['shape']} {desc['dtype']}; {FIX}")
    return tensors


def _check_entry(root: Path, ref: FileReference) -> None:
    """Stage-list sanity: a successful file must hold every clip-level stage it promises."""
    if ref.error is not None:
        return
    keys = set(ref.tensors)
    required = {"all/logits", "all/probs", "all/pooled", "aggregate/confidence",
                "aggregate/local_prediction", "aggregate/global_prediction",
                "aggregate/global_confidence", "aggregate/start_time_s"}
    for clip in ref.full_clips:
        required |= {f"clips/{clip:02d}/{s}" for s in
                     ("clip", "load", "downmix", "resample", "mel", "db", "input", "logits", "probs")}
    missing = sorted(required - keys)
    if missing:
        raise ReferenceError(f"{root / MANIFEST}: {ref.name} lacks stage(s) {missing[:4]}; {FIX}")
    if len(ref.entry.get("clip_sha256", [])) != ref.clips or ref.tensors["all/probs"].shape[0] != ref.clips:
        raise ReferenceError(f"{ref.name}: clip count disagrees between manifest and tensors; {FIX}")


def load_references(root: str | Path) -> References:
    root = Path(root)
    path = root / MANIFEST
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ReferenceError(f"{path} not found; {FIX}") from None
    try:
        manifest = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ReferenceError(f"{path} is not valid JSON ({e}); {FIX}") from None
    if not isinstance(manifest, dict) or manifest.get("schema_version") != SCHEMA_VERSION:
        raise ReferenceError(f"{path}: schema_version is not {SCHEMA_VERSION}; {FIX}")
    for key in ("files", "model", "legacy_versions", "command"):
        if key not in manifest:
            raise ReferenceError(f"{path}: missing field {key!r}; {FIX}")
    files = []
    for entry in manifest["files"]:
        ref = FileReference(name=entry["name"], entry=entry)
        if "tensors" in entry:
            ref.tensors = _load_tensors(root, entry["name"], entry["tensors"])
        elif ref.error is None:
            raise ReferenceError(f"{path}: {entry['name']} has neither tensors nor an error; {FIX}")
        _check_entry(root, ref)
        files.append(ref)
    return References(root=root, manifest=manifest, manifest_sha256=_sha256(raw), files=files)
