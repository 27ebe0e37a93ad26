"""Load the legacy references (reference_outputs/stages) without fastai and without unpickling.

Nothing is trusted blindly: the manifest's schema, every tensor file's sha256, and every tensor's
key, shape and dtype are verified before a single value is used. Any mismatch is a one-line
`ReferencesError` naming the file and the fix (`make references`). Runs in both environments
(stdlib + numpy + safetensors: `make envelope` compares reference sets in the legacy env).
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

from orcaport.model.errors import InputError
from orcaport.model.transcode import needs_ffmpeg
from orcaport.parity.audio_manifest import safe_relative

MANIFEST = "manifest.json"
SCHEMA_VERSION = 1
FIX = "re-run `make references` (legacy env) or restore reference_outputs/stages from git"


class ReferencesError(InputError):
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
        raise ReferencesError(f"no reference for {name} in {self.root / MANIFEST}; {FIX}")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _load_tensors(root: Path, name: str, spec: dict[str, Any]) -> dict[str, np.ndarray]:
    path = root / spec["file"]
    if not _plain_name(spec["file"]) or path.resolve().parent != root.resolve():
        raise ReferencesError(f"{name}: tensor file name {spec['file']!r} escapes {root}; {FIX}")
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        raise ReferencesError(f"{path} is missing; {FIX}") from None
    if _sha256(blob) != spec["sha256"]:
        raise ReferencesError(f"{path} does not match its sha256 in {MANIFEST} (tampered or "
                             f"truncated); {FIX}")
    try:
        tensors = load_safetensors(blob)
    except (SafetensorError, ValueError) as e:
        raise ReferencesError(f"{path} is not a readable safetensors file ({e}); {FIX}") from None
    want = spec["keys"]
    if set(tensors) != set(want):
        missing = sorted(set(want) - set(tensors))[:3]
        extra = sorted(set(tensors) - set(want))[:3]
        raise ReferencesError(f"{path}: stages differ from the manifest (missing {missing}, "
                             f"unexpected {extra}); {FIX}")
    for key, desc in want.items():
        t = tensors[key]
        if list(t.shape) != desc["shape"] or str(t.dtype) != desc["dtype"]:
            raise ReferencesError(f"{path}: {key} is {list(t.shape)} {t.dtype}, manifest says "
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
        # a config with fastai_audio options names its chain's stages; OrcaHello's are implied
        stages = ref.entry.get("stages", ["load", "downmix", "resample", "mel", "db", "input"])
        required |= {f"clips/{clip:02d}/{s}" for s in ["clip", *stages, "logits", "probs"]}
    missing = sorted(required - keys)
    if missing:
        raise ReferencesError(f"{root / MANIFEST}: {ref.name} lacks stage(s) {missing[:4]}; {FIX}")
    if len(ref.entry.get("clip_sha256", [])) != ref.clips or ref.tensors["all/probs"].shape[0] != ref.clips:
        raise ReferencesError(f"{ref.name}: clip count disagrees between manifest and tensors; {FIX}")


def _schema_error(path: Path, where: str, want: str) -> ReferencesError:
    return ReferencesError(f"{path}: {where} must be {want} (wrong manifest schema); {FIX}")


def _plain_name(name: Any) -> bool:
    """A file name that stays inside its folder: no separator, not '.', '..' or hidden."""
    return isinstance(name, str) and name != "" and Path(name).name == name and not name.startswith(".")


def check_manifest(path: Path, manifest: Any) -> None:
    """The manifest's structure, before any of it is used: every field the loader and the replay
    read has its type, and every file name is plain (a manifest cannot point outside its folder
    or the corpus)."""
    if not isinstance(manifest, dict) or manifest.get("schema_version") != SCHEMA_VERSION:
        raise ReferencesError(f"{path}: schema_version is not {SCHEMA_VERSION}; {FIX}")
    for key in ("files", "model", "legacy_versions", "command"):
        if key not in manifest:
            raise ReferencesError(f"{path}: missing field {key!r}; {FIX}")
    model = manifest["model"]
    if not isinstance(model, dict) or not isinstance(model.get("weights_sha256"), str):
        raise _schema_error(path, "model.weights_sha256", "a sha256 string")
    files = manifest["files"]
    if not isinstance(files, list) or not all(isinstance(e, dict) for e in files):
        raise _schema_error(path, "files", "a list of objects")
    seen: set[str] = set()
    for i, e in enumerate(files):
        if not safe_relative(e.get("name")):
            raise ReferencesError(f"{path}: files[{i}].name {e.get('name')!r} is not a plain file "
                                 f"name (it escapes the corpus folder); {FIX}")
        if e["name"] in seen:
            raise _schema_error(path, f"files[{i}].name {e['name']!r}", "unique")
        seen.add(e["name"])
        if not isinstance(e.get("audio_sha256"), str):
            raise _schema_error(path, f"files[{i}].audio_sha256", "a sha256 string")
        if needs_ffmpeg(Path(e["name"])):   # replayed through production's ffmpeg conversion
            if "wav_sha256" not in e:
                raise ReferencesError(f"{path}: {e['name']} is not a WAV and files[{i}] keeps no "
                                     "wav_sha256 of its ffmpeg conversion (recorded before references "
                                     "converted non-WAV audio as production does); re-run `make references`")
            if not (e["wav_sha256"] is None and "error" in e or isinstance(e["wav_sha256"], str)):
                raise _schema_error(path, f"files[{i}].wav_sha256", "a sha256 string (or null with an error)")
        if "error" in e and not isinstance(e["error"], dict):
            raise _schema_error(path, f"files[{i}].error", "an object")
        t = e.get("tensors")
        if t is None:
            continue
        if not isinstance(t, dict):
            raise _schema_error(path, f"files[{i}].tensors", "an object")
        if not _plain_name(t.get("file")):
            raise ReferencesError(f"{path}: files[{i}].tensors.file {t.get('file')!r} escapes "
                                 f"{path.parent}; {FIX}")
        keys = t.get("keys") if isinstance(t, dict) else None
        if not (isinstance(t.get("sha256"), str) and isinstance(keys, dict) and all(
                isinstance(d, dict) and isinstance(d.get("shape"), list) for d in keys.values())):
            raise _schema_error(path, f"files[{i}].tensors", "{file, sha256, keys: {key: {shape, dtype}}}")
        int_lists = [e.get(k) for k in ("full_clips", "activation_clips")]
        if not (isinstance(e.get("clips"), int) and isinstance(e.get("clip_sha256"), list)
                and isinstance(e.get("clip_windows"), list)
                and all(isinstance(v, list) and all(isinstance(x, int) for x in v) for v in int_lists)):
            raise _schema_error(path, f"files[{i}] (clips, full_clips, activation_clips, clip_sha256, "
                                "clip_windows)", "integers and lists")


def load_references(root: str | Path) -> References:
    root = Path(root)
    path = root / MANIFEST
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ReferencesError(f"{path} not found; {FIX}") from None
    try:
        manifest = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ReferencesError(f"{path} is not valid JSON ({e}); {FIX}") from None
    check_manifest(path, manifest)
    files = []
    for entry in manifest["files"]:
        ref = FileReference(name=entry["name"], entry=entry)
        if "tensors" in entry:
            ref.tensors = _load_tensors(root, entry["name"], entry["tensors"])
        elif ref.error is None:
            raise ReferencesError(f"{path}: {entry['name']} has neither tensors nor an error; {FIX}")
        _check_entry(root, ref)
        files.append(ref)
    return References(root=root, manifest=manifest, manifest_sha256=_sha256(raw), files=files)
