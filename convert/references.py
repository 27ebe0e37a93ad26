"""`make references`: record stage-by-stage reference tensors from the real legacy pipeline.

    python -m convert.references --model reference_outputs/fixture --corpus reference_outputs/corpus \
        --out reference_outputs/stages

For every corpus file, production inference (convert/production.py) runs under `convert.capture`
hooks. Stored per file, as safetensors (never pickles):
- `clips/<i>/<stage>` full tensors for a few *sampled* clips (first, last, most confident), with
  `clips/<i>/activations/<layer>` for the most confident clip of the flagship file;
- `all/logits`, `all/probs`, `all/pooled` for every clip; `aggregate/*` for the file;
- exact integer stages (`decode`, every clip's `clip`) as sha256 digests in the manifest.
A file the legacy code rejects is recorded with its error as the reference behaviour.
Runs single-threaded (bit-reproducible); a second run on 2 threads gives the noise floor.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.numpy import save as save_numpy

from convert.capture import recording
from convert.cli import write_atomically
from convert.legacy import ConvertError, ffmpeg_version, isolated_home, legacy_versions, load_trusted_learner, sha256_file
from convert.production import predict_file
from model.artifact import load_artifact
from model.config import ConfigError, ModelConfig
from model.stages import ACTIVATION_LAYERS, CLIP_STAGES
from model.weights import WeightsError
from parity.atomic import remove_stale_scratch, scratch_prefix
from parity.fingerprint import fingerprint

SCHEMA_VERSION = 1
FLAGSHIP = "hydrophone_48k_mono16_60s.wav"
WAVE_STAGES = ("load", "downmix", "resample", "mel", "db", "input")
SCRATCH = "clips"   # relative; error messages are sanitised to it so manifests are byte-stable
SCRATCH_KIND = "orcaport-refs"   # $TMPDIR/orcaport-refs-<pid>-*: fastai's HOME cache and clips


def digest(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def describe(a: np.ndarray) -> dict[str, Any]:
    return {"shape": list(a.shape), "dtype": str(a.dtype)}


def run_file(learn: Any, wav: Path, work: Path, cfg: ModelConfig) -> dict[str, Any]:
    """One production run under capture. -> {'result'|'error', 'decode', 'clips'}."""
    out: dict[str, Any] = {}
    with recording(learn) as rec:
        def on_item(_item: Any, pred: Any) -> None:
            rec.record(rec.current, "probs", pred[2])
        try:
            out["result"] = predict_file(learn, wav, work / SCRATCH, cfg.frontend, cfg.aggregation, on_item)
        except Exception as e:  # noqa: BLE001 - the legacy failure *is* the reference behaviour
            msg = str(e).replace(str(work), "<work>").splitlines()
            out["error"] = {"type": type(e).__name__, "message": msg[0] if msg else ""}
    out["decode"] = rec.file.get("decode")
    out["clips"] = dict(rec.clips)
    return out


def sampled_clips(name: str, probs: np.ndarray) -> tuple[list[int], list[int]]:
    """-> (clips stored in full, clips whose activations are stored). Keeps references small."""
    n = len(probs)
    best = int(np.argmax(probs[:, 1])) if n else 0
    full = sorted({0, n - 1, best}) if name == FLAGSHIP else [best]
    acts = [best] if name == FLAGSHIP else []
    return full, acts


def pack_file(name: str, run: dict[str, Any]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Turn one captured run into (tensors, manifest entry)."""
    tensors: dict[str, np.ndarray] = {}
    entry: dict[str, Any] = {}
    if run["decode"] is not None:
        entry["decode"] = {**describe(run["decode"]), "sha256": digest(run["decode"])}
    if "error" in run:
        entry["error"] = run["error"]
        return tensors, entry
    res = run["result"]
    keys = res["clip_order"]
    clips = [run["clips"][k] for k in keys]
    missing = [(k, s) for k, c in zip(keys, clips) for s in CLIP_STAGES if s != "activations" and s not in c]
    if missing:
        raise ConvertError(f"{name}: capture missed stage(s) {missing[:3]}; hooks no longer match legacy")
    probs = np.stack([c["probs"] for c in clips])
    full, acts = sampled_clips(name, probs)
    tensors["all/logits"] = np.stack([c["logits"] for c in clips])
    tensors["all/probs"] = probs
    tensors["all/pooled"] = np.stack([c["activations/pooled"] for c in clips])
    for i in full:
        for stage in ("clip",) + WAVE_STAGES + ("logits", "probs"):
            tensors[f"clips/{i:02d}/{stage}"] = clips[i][stage]
    for i in acts:
        for layer in ACTIVATION_LAYERS:
            tensors[f"clips/{i:02d}/activations/{layer}"] = clips[i][f"activations/{layer}"]
    tensors["aggregate/start_time_s"] = np.array(res["start_time_s"], dtype=np.int64)
    tensors["aggregate/confidence"] = np.array(res["confidence"], dtype=np.float64)
    tensors["aggregate/local_prediction"] = np.array(res["local_prediction"], dtype=np.int64)
    tensors["aggregate/global_prediction"] = np.array([res["global_prediction"]], dtype=np.int64)
    tensors["aggregate/global_confidence"] = np.array([res["global_confidence"]], dtype=np.float64)
    entry.update({
        "clips": len(clips), "rows": len(res["confidence"]), "full_clips": full, "activation_clips": acts,
        "clip_windows": [[int(k.split("_")[-2]), int(k.split("_")[-1])] for k in keys],
        "clip_sha256": [digest(c["clip"]) for c in clips],
        "clip_shapes": sorted({str(list(c["clip"].shape)) for c in clips}),
        "stage_shapes": {s: describe(clips[full[0]][s]) for s in ("clip",) + WAVE_STAGES},
    })
    return tensors, entry


def noise_floor(learn: Any, wav: Path, work: Path, cfg: ModelConfig, first: dict[str, Any]) -> dict[str, float]:
    """Max |difference| per stage between the 1-thread reference run and a 2-thread rerun."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2 if threads == 1 else 1)
    try:
        second = run_file(learn, wav, work / "rerun", cfg)
    finally:
        torch.set_num_threads(threads)
    floor: dict[str, float] = {}
    for key, stages in first["clips"].items():
        for stage, a in stages.items():
            b = second["clips"][key][stage]
            d = float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))) if a.size else 0.0
            floor[stage] = max(floor.get(stage, 0.0), d)
    a = np.array(first["result"]["confidence"])
    b = np.array(second["result"]["confidence"])
    floor["aggregate/confidence"] = float(np.max(np.abs(a - b)))
    return dict(sorted(floor.items()))


def verified_model(model_dir: Path) -> ModelConfig:
    """config.json, after checking it and model.safetensors come from this folder's model.pkl:
    config.json names the pickle's sha256 (itself checked against model.pkl.sha256 before
    unpickling) and pins the weights' sha256, so references are never made from a mixed folder."""
    cfg = load_artifact(model_dir).config   # refuses unpinned/tampered/swapped weights
    pkl = model_dir / "model.pkl"
    if not pkl.is_file():
        raise ConvertError(f"{pkl} not found; the references are recorded from the legacy pickle")
    if cfg.provenance.get("source_sha256") != sha256_file(pkl):
        raise ConvertError(f"{model_dir / 'config.json'} was not converted from {pkl} (source_sha256 "
                           "differs); re-run `make convert` on this model.pkl")
    return cfg


def corpus_files(corpus: Path) -> list[dict[str, Any]]:
    """corpus.json's entries, each a plain file name in `corpus` (names from a manifest never
    reach outside its folder) whose audio matches its sha256."""
    path = corpus / "corpus.json"
    try:
        entries = json.loads(path.read_text())["files"]
        names = [e["name"] for e in entries]
        well_formed = all(isinstance(n, str) and isinstance(e["sha256"], str)
                          for n, e in zip(names, entries))
    except FileNotFoundError:
        raise ConvertError(f"{path} not found; run `make corpus` or pass --corpus") from None
    except (OSError, ValueError, KeyError, TypeError):
        well_formed = False
    if not well_formed:
        raise ConvertError(f"{path} is not a corpus manifest (a 'files' list of name/sha256 "
                           "entries); run `make corpus`")
    bad = [n for n in names if Path(n).name != n or n.startswith(".")]
    if bad:
        raise ConvertError(f"{path} names {bad[0]!r}, not a plain file name inside {corpus}; "
                           "run `make corpus`")
    stems = [Path(n).stem for n in names]
    if len(set(stems)) != len(stems):
        raise ConvertError(f"{path} lists two files with one stem; their references would collide")
    for e in entries:   # all of them before any legacy run: no minutes spent on a stale corpus
        wav = corpus / e["name"]
        if not wav.is_file() or sha256_file(wav) != e["sha256"]:
            raise ConvertError(f"{wav} does not match corpus.json; run `make corpus` first")
    return entries


def build(model_dir: Path, corpus: Path, out: Path, work: Path, threads: int = 1,
          noise: bool = True) -> dict[str, Any]:
    """`threads` > 1 and `noise=False` serve `make envelope`'s variants (convert/envelope.py)."""
    if ffmpeg_version() is None:
        raise ConvertError("ffmpeg/ffprobe not found: production images install ffmpeg and pydub "
                           "decodes float WAVs through it; `apt-get install ffmpeg`, then retry")
    entries = corpus_files(corpus)
    learn = load_trusted_learner(model_dir / "model.pkl")   # hash-gated: refuses a tampered pickle
    cfg = verified_model(model_dir)
    torch.set_num_threads(threads)
    files: list[dict[str, Any]] = []
    staged: dict[str, bytes] = {}
    flagship_run = None
    for spec in entries:
        wav = corpus / spec["name"]
        run = run_file(learn, wav, work, cfg)
        tensors, entry = pack_file(spec["name"], run)
        entry = {"name": spec["name"], "audio_sha256": spec["sha256"], **entry}
        if tensors:
            blob = save_numpy(tensors)
            tensors_name = Path(spec["name"]).stem + ".safetensors"
            staged[tensors_name] = blob
            entry["tensors"] = {"file": tensors_name, "sha256": hashlib.sha256(blob).hexdigest(),
                                "keys": {k: describe(v) for k, v in sorted(tensors.items())}}
        files.append(entry)
        if spec["name"] == FLAGSHIP:
            flagship_run = run
        print(f"{spec['name']}: " + (f"error {entry['error']['type']}" if "error" in entry
                                     else f"{entry['clips']} clips, {entry['rows']} rows"), file=sys.stderr)
    manifest = {
        "schema_version": SCHEMA_VERSION,
        # What was made from what; the output folder is left out so a rebuild elsewhere (e.g. a
        # test's temp dir) is byte-identical.
        "command": "make references  # python -m convert.references " + " ".join(
            shlex.quote(str(p)) for p in ("--model", model_dir, "--corpus", corpus)),
        "model": {"pkl_sha256": sha256_file(model_dir / "model.pkl"),
                  "weights_sha256": sha256_file(model_dir / "model.safetensors"),
                  "config_sha256": sha256_file(model_dir / "config.json")},
        "corpus_sha256": sha256_file(corpus / "corpus.json"),
        "legacy_versions": legacy_versions(),
        "torch_threads": threads,
        # where these numbers were computed: parity picks same- or cross-machine criteria by it
        "machine": fingerprint(),
        "noise_floor": noise_floor(learn, corpus / FLAGSHIP, work, cfg, flagship_run)
        if flagship_run and noise else {},
        "files": files,
    }
    staged["manifest.json"] = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    write_atomically(out, staged)   # manifest last: it only ever describes files already in place
    return manifest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m convert.references", description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, required=True, help="folder with model.pkl(+.sha256), config.json")
    ap.add_argument("--corpus", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1: the references)")
    ap.add_argument("--no-noise-floor", action="store_true", help="skip the 2-thread flagship rerun")
    args = ap.parse_args(argv)
    try:
        remove_stale_scratch(Path(tempfile.gettempdir()), SCRATCH_KIND)   # left by a killed run
        with tempfile.TemporaryDirectory(prefix=scratch_prefix(SCRATCH_KIND)) as tmp:
            with isolated_home(Path(tmp) / "home"):
                manifest = build(args.model, args.corpus, args.out, Path(tmp), args.threads,
                                 not args.no_noise_floor)
    except (ConvertError, ConfigError, WeightsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps({"files": len(manifest["files"]), "noise_floor": manifest["noise_floor"]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
