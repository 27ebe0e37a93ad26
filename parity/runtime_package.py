"""The standalone runtime that ships next to the weights: model/'s files that need only the stdlib
and RUNTIME_DEPS, copied as the relocatable `orcaport_runtime/` package with a `load`/`detect`
entry point (RUNTIME_INIT). Used by `make publish` (parity/publish.py)."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

from parity.gate import RUNTIME_SOURCES

RUNTIME_DEPS = {"torch", "numpy", "scipy", "soundfile", "safetensors"}
RUNTIME_MODULES = ("aggregate", "artifact", "audio", "spectrogram", "waveform", "weights")   # RUNTIME_INIT's
_FROM_MODEL = re.compile(r"^(\s*)from model((?:\.\w+)*) import ", flags=re.M)

# The copied package's __init__: `load` (hash-verified) and `detect` (the production path, as
# parity/replay.py chains it). It lives here because model/ has no single entry point to copy.
RUNTIME_INIT = '''
"""orcaport runtime: the fastai-free OrcaHello detector, copied from orcaport's `model/`.

    model = load(folder)                 # model.safetensors + config.json, checked vs SHA256SUMS
    result = detect(model, "file.wav")   # .global_prediction, .global_confidence, .probs
"""
import json as _json
from dataclasses import dataclass as _dataclass
from pathlib import Path as _Path

import numpy as _np
import torch as _torch

from .aggregate import Aggregate, aggregate
from .artifact import Artifact, load_artifact
from .audio import decode_pcm, slice_ms
from .spectrogram import frontend_stages
from .waveform import clip_windows
from .weights import sha256_file

BATCH = 16   # the parity replay's batch size: same batches, same float rounding


class IntegrityError(ValueError):
    """A file of the model folder does not match SHA256SUMS or the parity report."""


@_dataclass(frozen=True, eq=False)
class Detection:
    windows: list           # [(start_s, end_s)] of each 2 s window
    probs: _np.ndarray      # (windows, classes) float32 softmax
    aggregate: Aggregate    # per-second confidences, local and global decisions
    global_prediction: int
    global_confidence: float


def verify(folder):
    """Check every file SHA256SUMS lists (sha256sum's "<hex>  <path>" lines)."""
    for line in (_Path(folder) / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split("  ", 1)
        if _Path(name).is_absolute() or ".." in _Path(name).parts:   # lexical: the Hub cache symlinks
            raise IntegrityError(f"SHA256SUMS names {name!r}, outside {folder}; download it again")
        if not (_Path(folder) / name).is_file() or sha256_file(_Path(folder) / name) != digest:
            raise IntegrityError(f"{_Path(folder) / name} does not match SHA256SUMS; download it again")


def load(folder, check=True):
    """The Artifact in `folder`, after checking its hashes and that parity.json vouches for it."""
    if check:
        verify(folder)
    art = load_artifact(folder)
    report = _Path(folder) / "parity.json"
    if check and report.is_file() and _json.loads(report.read_text())["weights_sha256"] != art.weights_sha256:
        raise IntegrityError(f"parity.json does not vouch for weights {art.weights_sha256}")
    return art


def detect(model, path):
    """Run the legacy production path on one audio file -> Detection."""
    pcm = decode_pcm(path)
    windows = clip_windows(pcm.duration_s)
    if not windows:
        raise ValueError(f"{path} is {pcm.duration_s:.2f} s: shorter than one 2 s window")
    fe, a = model.config.frontend, model.config.aggregation
    x = [model.normalize(frontend_stages(slice_ms(pcm, b * 1000, e * 1000), fe)["input"][None])[0]
         for b, e in windows]
    with _torch.inference_mode():
        logits = _torch.cat([model.network(_torch.stack(x[i:i + BATCH])) for i in range(0, len(x), BATCH)])
    probs = _torch.softmax(logits, dim=1)
    agg = aggregate(probs[:, model.config.positive_index].double().numpy(), a.threshold, a.min_positive)
    return Detection(windows, probs.numpy(), agg, agg.global_prediction, agg.global_confidence)
'''


class PublishError(Exception):
    """Staging or upload failed; str() is one line saying what happened and what to do."""


def _scan(text: str, where: Path) -> tuple[set[str], list[str]]:
    """(sibling modules imported, imports the standalone runtime cannot satisfy) of one file."""
    internal, foreign = set(), []
    for node in ast.walk(ast.parse(text, filename=str(where))):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            internal |= {node.module.split(".")[0]} if node.module else {a.name for a in node.names}
            continue
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
        foreign += [f"{n} (line {node.lineno})" for n in names if n.split(".")[0] not in
                    sys.stdlib_module_names and n.split(".")[0] not in RUNTIME_DEPS | {"__future__"}]
    return internal, foreign


def copy_runtime(dest: Path, source: Path = RUNTIME_SOURCES,
                 required: tuple[str, ...] = RUNTIME_MODULES) -> dict[str, str]:
    """Copy the standalone part of `source` (flat package) into `dest` as a relocatable package
    with the `load`/`detect` entry point; return {skipped file: why}.

    `from model.x import y` becomes `from .x import y`. A module ships when it and everything it
    imports need only the stdlib and RUNTIME_DEPS (so a CLI needing `rich` stays home); a
    module the entry point needs that cannot ship is an error, never a silent omission.
    """
    texts, scans = {}, {}
    for src in sorted(source.glob("*.py")):
        texts[src.stem] = _FROM_MODEL.sub(lambda m: f"{m[1]}from .{m[2][1:]} import ", src.read_text())
        scans[src.stem] = _scan(texts[src.stem], src)

    def why_not(name: str, seen: tuple[str, ...] = ()) -> str | None:
        if name not in scans:
            return f"model/{name}.py does not exist"
        internal, foreign = scans[name]
        if foreign:
            return f"model/{name}.py imports {foreign[0]}"
        deps = (why_not(d, seen + (name,)) for d in sorted(internal - set(seen) - {name}))
        return next((f"{r}, needed by model/{name}.py" for r in deps if r), None)

    for name in required + (("__init__",) if "__init__" in texts else ()):
        if (reason := why_not(name)) is not None:
            raise PublishError(f"the standalone runtime cannot ship: {reason}; make the runtime "
                               f"import only the stdlib and {', '.join(sorted(RUNTIME_DEPS))}")
    skipped = {f"{n}.py": r for n in texts if (r := why_not(n)) is not None}
    dest.mkdir(parents=True, exist_ok=True)
    texts.setdefault("__init__", "")
    for name, text in texts.items():
        if f"{name}.py" in skipped:
            continue
        if name == "__init__":
            text = (text.rstrip() + "\n" if text.strip() else "") + RUNTIME_INIT.lstrip()
        (dest / f"{name}.py").write_text(text)
    return skipped
