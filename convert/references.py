"""`make references`: record stage-by-stage reference tensors from the real legacy pipeline, on
the embedded corpus or on any folder of recordings.

    python -m convert.references --model DIR --audio DIR|FILE... --out DIR [--sha256 HEX]
        [--near-threshold 2] [--budget-mb 2000] [--threads 1]

For every audio file (a folder is scanned recursively: parity/audio_manifest.py), production
inference (convert/production.py) runs under `convert.capture` hooks, twice: a light pass over
every window keeps each clip's sample digest, logits, probs and pooled features (memory stays
flat on an hour-long file), then a full pass over the few sampled windows
(convert/reference_plan.py: first, last, most confident, nearest the threshold) keeps every stage,
and must reproduce the light pass's logits bit for bit. A file the legacy code rejects is
recorded with its error as the reference behaviour. The expected size is printed, and checked
against the budget, before anything is written.

A recording that is not a WAV (MP3, FLAC, AAC, .ts, ...) is first converted with production's own
ffmpeg step (model/transcode.py, as the detector does), and legacy runs on that WAV; the manifest
keeps the source's sha256 and the converted WAV's (parity/audio_manifest.py). A file ffmpeg cannot
read is recorded with that error, as production would fail on it.

Legacy's own output (fastai's progress bars, fastai_audio's per-clip prints, torch warnings, C-level
writes) goes to a log file, `<out>.log` beside the output by default (--log), never into the output
folder; the terminal shows one line per file with clips, elapsed time and ETA (convert/legacy_log.py).

Archives are large: each finished file is kept in `.<out>.resume/` beside the output folder, so an
interrupted run resumes without redoing it (same model, audio and settings only), and the result is
byte-identical to an uninterrupted run. The output folder is replaced only at the end, manifest
last (model/fileio.py): a kill leaves the previous references intact.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shlex
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.numpy import save as save_numpy

from convert.capture import recording
from convert.cli import write_atomically
from convert.legacy import ConvertError, ffmpeg_version, isolated_home, legacy_versions, load_trusted_learner
from convert.legacy_log import Progress, legacy_output, log_path_for
from convert.production import predict_file
from convert.reference_plan import activation_owner, clips_of, plan_within_budget, sampled_clips
from orcaport.model.artifact import load_artifact
from orcaport.model.config import ModelConfig
from orcaport.model.errors import ExitCode, OrcaportError, report_error
from orcaport.model.fileio import remove_stale_scratch, scratch_prefix, sha256_file, write_files_atomically
from orcaport.model.pipeline import chain_of
from orcaport.model.stages import ACTIVATION_LAYERS
from orcaport.parity.audio_manifest import build_entries, legacy_input, production_input, scan, tensor_file_name
from orcaport.parity.fingerprint import fingerprint

SCHEMA_VERSION = 1
WAVE_STAGES = ("load", "downmix", "resample", "mel", "db", "input")   # OrcaHello's chain
# what convert/capture.py records of a config's chain (segment: windowed mode refuses it)
CAPTURED = ("load", "downmix", "resample", "silence", "pad_signal", "mel", "db", "mfcc", "standardize",
            "delta", "input")


def wave_stages(cfg: ModelConfig) -> tuple[str, ...]:
    """The frontend stages references hold for `cfg`: its chain (model/pipeline.py) as captured."""
    return tuple(s for s in chain_of(cfg.frontend) if s in CAPTURED)
SCRATCH = "clips"   # relative; error messages are sanitised to it so manifests are byte-stable
SCRATCH_KIND = "orcaport-refs"   # $TMPDIR/orcaport-refs-<pid>-*: fastai's HOME cache and clips


def digest(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def describe(a: np.ndarray) -> dict[str, Any]:
    return {"shape": list(a.shape), "dtype": str(a.dtype)}


def run_file(learn: Any, wav: Path, work: Path, cfg: ModelConfig, light: bool,
             windows: list[list[int]] | None = None, scratch: tuple[str, ...] = ()) -> dict[str, Any]:
    """One production run under capture. -> {'result'|'error', 'decode', 'clips'}. `scratch`:
    more temporary folders to hide from error messages (a conversion's)."""
    out: dict[str, Any] = {}
    with recording(learn, light) as rec:
        def on_item(_item: Any, pred: Any) -> None:
            rec.record(rec.current, "probs", pred[2])
        try:
            out["result"] = predict_file(learn, wav, work / SCRATCH, cfg.frontend, cfg.aggregation, on_item,
                                         windows, cfg.positive_index, cfg.windowing)
        except Exception as e:  # noqa: BLE001 - the legacy failure *is* the reference behaviour
            msg = str(e)
            for folder in (str(work), *scratch):
                msg = msg.replace(folder, "<work>")
            msg = msg.splitlines()
            out["error"] = {"type": type(e).__name__, "message": msg[0] if msg else ""}
    shutil.rmtree(work / "home" / ".fastai", ignore_errors=True)   # caches are keyed by clip name
    out["decode"] = rec.file.get("decode")
    out["clips"] = dict(rec.clips)
    return out


def record_file(learn: Any, wav: Path, name: str, work: Path, cfg: ModelConfig, near: int,
                activations: bool, scratch: tuple[str, ...] = ()) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Both passes over one file -> (tensors, manifest entry)."""
    light = run_file(learn, wav, work, cfg, light=True, scratch=scratch)
    entry: dict[str, Any] = {}
    if light["decode"] is not None:
        entry["decode"] = light["decode"]
    if "error" in light:
        entry["error"] = light["error"]
        return {}, entry
    res = light["result"]
    stages = wave_stages(cfg)
    keys = res["clip_order"]
    clips = [light["clips"][k] for k in keys]
    probs = np.stack([c["probs"] for c in clips])
    full = sampled_clips(probs[:, cfg.positive_index], cfg.aggregation.threshold, near)
    best = int(np.argmax(probs[:, cfg.positive_index]))
    windows = [[int(k.split("_")[-2]), int(k.split("_")[-1])] for k in keys]
    heavy = run_file(learn, wav, work, cfg, light=False, windows=[windows[i] for i in full], scratch=scratch)
    if "error" in heavy:
        raise ConvertError(f"{name}: legacy failed on its own sampled windows ({heavy['error']['message']})")
    tensors = {"all/logits": np.stack([c["logits"] for c in clips]), "all/probs": probs,
               "all/pooled": np.stack([c["activations/pooled"] for c in clips])}
    # the random offsets legacy drew (pad_mode "zeros", crops, max_to_pad), every clip; -1: none drawn
    for name in sorted({k for c in clips for k in c if k.startswith("offsets/")}):
        tensors[f"all/{name}"] = np.array([int(c[name][0]) if name in c else -1 for c in clips], np.int64)
    for i in full:
        c = heavy["clips"][keys[i]]
        missing = [s for s in ("clip",) + stages + ("logits", "probs") if s not in c]
        if missing:
            raise ConvertError(f"{name}: capture missed stage(s) {missing[:3]}; hooks no longer match legacy")
        if not np.array_equal(c["logits"], tensors["all/logits"][i]):
            raise ConvertError(f"{name}: legacy gave clip {i} other logits on its second pass; run with "
                               "--threads 1 (the default) so legacy is deterministic")
        for stage in ("clip",) + stages + ("logits", "probs") + tuple(k for k in c if k.startswith("offsets/")):
            tensors[f"clips/{i:02d}/{stage}"] = c[stage]
        if activations and i == best:
            for layer in ACTIVATION_LAYERS:
                tensors[f"clips/{i:02d}/activations/{layer}"] = c[f"activations/{layer}"]
    tensors["aggregate/start_time_s"] = np.array(res["start_time_s"], dtype=np.int64)
    tensors["aggregate/confidence"] = np.array(res["confidence"], dtype=np.float64)
    tensors["aggregate/local_prediction"] = np.array(res["local_prediction"], dtype=np.int64)
    tensors["aggregate/global_prediction"] = np.array([res["global_prediction"]], dtype=np.int64)
    tensors["aggregate/global_confidence"] = np.array([res["global_confidence"]], dtype=np.float64)
    entry.update({
        "clips": len(clips), "rows": len(res["confidence"]), "full_clips": full,
        "activation_clips": [best] if activations else [], "clip_windows": windows,
        "clip_sha256": [bytes(c["clip"]).hex() for c in clips],
        "clip_shapes": sorted({str(c["clip/shape"].tolist()) for c in clips}),
        "stage_shapes": {s: describe(heavy["clips"][keys[full[0]]][s]) for s in ("clip",) + stages},
        **({"stages": list(stages)} if stages != WAVE_STAGES else {}),    # OrcaHello's: implied
    })
    return tensors, entry


def record_source(learn: Any, root: Path, spec: dict[str, Any], work: Path, cfg: ModelConfig, near: int,
                  activations: bool) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """One recording as production sees it: a WAV as is; anything else through production's ffmpeg
    conversion first (it must give the WAV `build_entries` hashed), or ffmpeg's refusal as its
    reference behaviour. -> (tensors, manifest entry)."""
    name = spec["name"]
    entry: dict[str, Any] = {"name": name, "audio_sha256": spec["sha256"]}
    if "wav_sha256" in spec:
        entry["wav_sha256"] = spec["wav_sha256"]
    if spec.get("conversion_error") is not None:
        return {}, {**entry, "error": {"type": "FfmpegError", "message": spec["conversion_error"]}}
    with production_input(root / name) as wav:
        if "wav_sha256" in spec and sha256_file(wav) != spec["wav_sha256"]:
            raise ConvertError(f"{name}: ffmpeg converted it to another WAV on a second run (sha256 "
                               "differs); ffmpeg is not deterministic here, so no reference can be kept")
        scratch = (str(wav.parent),) if wav != root / name else ()
        tensors, recorded = record_file(learn, wav, name, work, cfg, near, activations, scratch)
    return tensors, {**entry, **recorded}


def verified_model(model_dir: Path) -> ModelConfig:
    """config.json, after checking it and model.safetensors come from this folder's model.pkl:
    config.json names the pickle's sha256 (itself checked against model.pkl.sha256 or --sha256
    before unpickling) and pins the weights' sha256, so references are never made from a mixed folder."""
    cfg = load_artifact(model_dir).config   # refuses unpinned/tampered/swapped weights
    pkl = model_dir / "model.pkl"
    if not pkl.is_file():
        raise ConvertError(f"{pkl} not found; the references are recorded from the legacy pickle")
    if cfg.provenance.get("source_sha256") != sha256_file(pkl):
        raise ConvertError(f"{model_dir / 'config.json'} was not converted from {pkl} (source_sha256 "
                           "differs); re-run `make convert` on this model.pkl")
    return cfg


def resume_dir(out: Path) -> Path:
    return out.parent / f".{out.name}.resume"


def open_resume(out: Path, key: dict[str, Any]) -> Path:
    """The resume folder for this exact job: kept when its key matches, else started afresh."""
    folder = resume_dir(out)
    key_blob = (json.dumps(key, sort_keys=True) + "\n").encode()
    if not (folder / "job.json").is_file() or (folder / "job.json").read_bytes() != key_blob:
        shutil.rmtree(folder, ignore_errors=True)
        write_files_atomically(folder, {"job.json": key_blob})
    return folder


def build(model_dir: Path, audio: list[Path], out: Path, work: Path, sha256: str | None = None,
          threads: int = 1, near: int = 2, budget_mb: float = 2000.0,
          terminal: Any = None) -> dict[str, Any]:
    """Record the references of `audio` into `out`. `terminal`: where the project's own lines go
    (legacy's output is redirected by the caller: convert/legacy_log.py); default stderr."""
    terminal = terminal or sys.stderr
    if ffmpeg_version() is None:
        raise ConvertError("ffmpeg/ffprobe not found: production images install ffmpeg, convert every "
                           "non-WAV recording with it, and pydub decodes float WAVs through it; "
                           "`apt-get install ffmpeg`, then retry")
    root, names = scan(audio)
    entries = build_entries(root, names)
    learn = load_trusted_learner(model_dir / "model.pkl", sha256)   # hash-gated: refuses a tampered pickle
    cfg = verified_model(model_dir)
    try:
        near, est = plan_within_budget(entries, cfg, near, int(budget_mb * 1e6))
    except ValueError as e:
        raise ConvertError(str(e)) from None
    print(f"references: {len(entries)} file(s), {est['clips']} clips, {est['full_clips']} stored in full; "
          f"expected <= {est['bytes'] / 1e6:.1f} MB (budget {budget_mb:g} MB)", file=terminal, flush=True)
    torch.set_num_threads(threads)
    owner = activation_owner([e["name"] for e in entries
                              if clips_of(legacy_input(e).get("duration_s"), cfg.windowing)])
    model = {"pkl_sha256": sha256_file(model_dir / "model.pkl"),
             "weights_sha256": sha256_file(model_dir / "model.safetensors"),
             "config_sha256": sha256_file(model_dir / "config.json")}
    settings = {"near_threshold": near, "activations_of": owner, "torch_threads": threads}
    resume = open_resume(out, {"model": model, "audio": entries, "settings": settings})
    files: list[dict[str, Any]] = []
    progress = Progress(terminal, len(entries), est["clips"])
    for spec in entries:
        tname = tensor_file_name(spec["name"])
        done = resume / (tname + ".json")
        if done.is_file():
            files.append(json.loads(done.read_text()))
            progress.file_done(spec["name"], int(files[-1].get("clips", 0)), "done earlier", measured=False)
            continue
        tensors, entry = record_source(learn, root, spec, work, cfg, near, spec["name"] == owner)
        staged: dict[str, bytes] = {}
        if tensors:
            blob = save_numpy(tensors)
            staged[tname] = blob
            entry["tensors"] = {"file": tname, "sha256": hashlib.sha256(blob).hexdigest(),
                                "keys": {k: describe(v) for k, v in sorted(tensors.items())}}
        staged[done.name] = (json.dumps(entry, sort_keys=True) + "\n").encode()
        write_files_atomically(resume, staged)      # the entry last: it marks the file done
        files.append(entry)
        progress.file_done(spec["name"], int(entry.get("clips", 0)),
                           f"legacy error {entry['error']['type']}" if "error" in entry
                           else f"{entry['clips']} clips, {entry['rows']} rows")
    manifest = {
        "schema_version": SCHEMA_VERSION,
        # What was made from what; the output folder is left out so a rebuild elsewhere (e.g. a
        # test's temp dir) is byte-identical.
        "command": "make references  # python -m convert.references " + " ".join(
            shlex.quote(str(p)) for p in ("--model", model_dir, "--audio", *audio)),
        "model": model, "audio": entries, "sampling": settings,
        "legacy_versions": legacy_versions(), "torch_threads": threads,
        # where these numbers were computed: parity picks same- or cross-machine criteria by it
        "machine": fingerprint(), "files": files,
    }
    outputs: dict[str, bytes | Path] = {f["tensors"]["file"]: resume / f["tensors"]["file"] for f in files if "tensors" in f}
    outputs["manifest.json"] = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    write_atomically(out, outputs)   # manifest last: it only ever describes files already in place
    shutil.rmtree(resume, ignore_errors=True)
    return manifest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m convert.references", description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, required=True, help="folder with model.pkl(+.sha256), config.json")
    ap.add_argument("--audio", "--corpus", type=Path, nargs="+", required=True, dest="audio",
                    help="a folder of recordings (scanned recursively) or files of one folder")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--sha256", help="the model.pkl sha256 you trust (else <model.pkl>.sha256)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1: deterministic)")
    ap.add_argument("--near-threshold", type=int, default=2, help="clips nearest the threshold stored in full")
    ap.add_argument("--budget-mb", type=float, default=2000.0, help="refuse references larger than this")
    ap.add_argument("--log", type=Path, help="legacy's own output (default: <out>.log beside --out)")
    args = ap.parse_args(argv)
    code = None
    try:
        remove_stale_scratch(Path(tempfile.gettempdir()), SCRATCH_KIND)   # left by a killed run
        with legacy_output(args.log or log_path_for(args.out)) as terminal:
            try:
                with tempfile.TemporaryDirectory(prefix=scratch_prefix(SCRATCH_KIND)) as tmp, \
                        isolated_home(Path(tmp) / "home"):
                    manifest = build(args.model, args.audio, args.out, Path(tmp), args.sha256,
                                     args.threads, args.near_threshold, args.budget_mb, terminal)
            except (OrcaportError, KeyboardInterrupt) as e:
                code = report_error(None, e, terminal)   # the one line first, then the log's tail
                raise
    except (OrcaportError, KeyboardInterrupt) as e:
        return report_error(None, e) if code is None else code
    print(json.dumps({"files": len(manifest["files"]), "out": str(args.out)}))
    return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
