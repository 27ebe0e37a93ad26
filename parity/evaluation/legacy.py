"""The legacy column: production's own per-second confidences (fastai 1.0.61 + fastai_audio, the
path `make references` runs), never recomputed in the clean env.

Two sources, in this order, per recording:
1. references (`make references`' REFERENCES folder, verified by parity/references.py): a file whose
   audio sha256 is in the manifest, recorded with these weights (manifest model.weights_sha256),
   gives its `aggregate/confidence` rows as recorded -- no legacy env needed;
2. the legacy env, when the caller names its interpreter: `python -m convert.evaluate_legacy`
   runs convert/production.py's `predict_file` on the remaining files (MODEL/model.pkl, its hash
   checked before unpickling) and hands back JSON.
Recordings neither covers leave the column incomplete, and then it is not shown (a column scored on
other files than the others would not be comparable); the reason is reported.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from orcaport.model.errors import InputError
from orcaport.model.fileio import sha256_file

LEGACY_TIMEOUT_S = 6 * 3600
ROOT = Path(__file__).resolve().parents[2]       # the checkout (convert/ lives there, never installed)


@dataclass
class LegacyScores:
    """Per recording name: legacy's per-second confidences (rows,), and where they came from."""

    confidence: dict[str, np.ndarray] = field(default_factory=dict)
    source: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def from_references(references: Path, files: list[Path], weights_sha256: str) -> LegacyScores:
    """The recordings `references` covers (by audio sha256), when recorded with these weights."""
    from orcaport.parity.references import ReferencesError, load_references

    out = LegacyScores()
    if not (Path(references) / "manifest.json").is_file():
        out.notes.append(f"no references at {references}")
        return out
    try:
        refs = load_references(references)
    except ReferencesError as e:
        out.notes.append(f"references at {references} not used: {e}")
        return out
    if refs.manifest["model"].get("weights_sha256") != weights_sha256:
        out.notes.append(f"references at {references} were recorded with other weights: not used")
        return out
    by_sha = {f.entry["audio_sha256"]: f for f in refs.files if f.error is None}
    for path in files:
        ref = by_sha.get(sha256_file(path))
        if ref is not None:
            out.confidence[path.name] = np.asarray(ref.tensors["aggregate/confidence"], np.float64)
            out.source[path.name] = f"references ({references})"
    return out


def from_legacy_env(python: Path, model_dir: Path, files: list[Path], sha256: str | None = None) -> LegacyScores:
    """Run production's path in the legacy env on `files`. Raises InputError when it fails."""
    out = LegacyScores()
    if not files:
        return out
    if not (Path(model_dir) / "model.pkl").is_file():
        out.notes.append(f"no {Path(model_dir) / 'model.pkl'}: the legacy env has nothing to run")
        return out
    with tempfile.TemporaryDirectory(prefix="orcaport-eval-legacy-") as tmp:
        result = Path(tmp) / "legacy.json"
        cmd = [str(python), "-m", "convert.evaluate_legacy", "--model", str(model_dir), "--out", str(result),
               *(["--sha256", sha256] if sha256 else []), *[str(p) for p in files]]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=LEGACY_TIMEOUT_S)
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise InputError(f"the legacy env could not score the recordings ({last}); fix that, or "
                             "evaluate without the legacy column (LEGACY=off)")
        doc = json.loads(result.read_text())
    for path in files:
        entry = doc["files"].get(str(path))
        if entry is None or entry.get("error"):
            out.notes.append(f"legacy raised on {path.name}: {(entry or {}).get('error', 'no result')}")
            continue
        out.confidence[path.name] = np.asarray(entry["confidence"], np.float64)
        out.source[path.name] = "legacy env (convert/production.py predict_file)"
    return out


def legacy_scores(files: list[Path], model_dir: Path, weights_sha256: str, references: Path | None,
                  legacy_python: Path | None, sha256: str | None = None) -> LegacyScores:
    """References first, the legacy env for the rest (when given)."""
    scores = from_references(references, files, weights_sha256) if references else LegacyScores()
    rest = [p for p in files if p.name not in scores.confidence]
    if rest and legacy_python is not None and Path(legacy_python).exists():
        more = from_legacy_env(Path(legacy_python), model_dir, rest, sha256)
        scores.confidence.update(more.confidence)
        scores.source.update(more.source)
        scores.notes += more.notes
    elif rest:
        scores.notes.append(f"{len(rest)} recording(s) not in the references and no legacy env "
                            f"({legacy_python or 'none given'})")
    return scores
