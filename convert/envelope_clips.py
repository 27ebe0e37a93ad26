"""One kernel-path variant of `make envelope`, measured on the clips that matter: legacy run again
on the full-stage clips a reference set already stores (the first, the last, the most confident
and the ones nearest the threshold: convert/reference_plan.py), every stage captured.

    python -m convert.envelope_clips --model DIR --references DIR --audio DIR --out DIR
        [--sha256 HEX] [--threads 1] [--log FILE]

Runs under whatever kernel-path environment its parent set (the switches are read at library
load, so each variant is its own process; convert/envelope.py starts them). For each file of the
references' manifest: the same recording (a non-WAV converted with production's ffmpeg step, as
references do), production inference on those windows only (convert/references.run_file: the same
capture hooks), and OUT/<tensor file> with the references' own keys for those clips --
clips/NN/{clip,<the references' chain>,logits,probs}, clips/NN/pooled, and
clips/NN/activations/<layer> for the clip the references keep activations of. The chain is the
manifest entry's `stages` (an option learner's: silence, pad_signal, mfcc, standardize, delta ...;
OrcaHello's load..input when absent), and clips/NN/offsets/<name> keeps the random offsets legacy
drew for the clip: the capture seeds Python's random per clip name (convert/capture.py), as the
references did, so a variant draws the references' offsets and the envelope checks it does. A file legacy
refused in the references is run whole again (it fails early) to see it refused the same way.
OUT/clips.json lists per file its decode digest, the clips measured or the error. Legacy's output
goes to --log; the terminal gets one line per file.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.numpy import save as save_numpy

from convert.legacy import ConvertError, isolated_home, load_trusted_learner
from convert.legacy_log import Progress, legacy_output, log_path_for
from convert.references import WAVE_STAGES, run_file, verified_model
from orcaport.model.config import ModelConfig
from orcaport.model.errors import ExitCode, OrcaportError, report_error
from orcaport.model.fileio import scratch_prefix, write_files_atomically
from orcaport.model.stages import ACTIVATION_LAYERS
from orcaport.parity.audio_manifest import production_input, tensor_file_name

CLIPS_FILE = "clips.json"


def clip_keys(entry: dict[str, Any]) -> tuple[str, ...]:
    """The per-clip stages the references hold for a file: its own chain (implied OrcaHello's)."""
    return ("clip",) + tuple(entry.get("stages", WAVE_STAGES)) + ("logits", "probs")


def window_index(key: str, windows: list[list[int]]) -> int:
    """A captured clip's key ('<stem>_<begin>_<end>') -> its index among the file's windows."""
    begin, end = (int(x) for x in key.split("_")[-2:])
    return windows.index([begin, end])


def clip_tensors(entry: dict[str, Any], clips: dict[str, dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """A file's captured clips under the references' keys (clip index from its window)."""
    windows = entry["clip_windows"]
    keys = clip_keys(entry)
    out: dict[str, np.ndarray] = {}
    for key, c in clips.items():
        i = window_index(key, windows)
        missing = [s for s in keys if s not in c]
        if missing:
            raise ConvertError(f"{entry['name']}: clip {i} has no stage(s) {missing[:3]} that the references "
                               "hold; re-record them with `make references` on this model")
        for stage in keys + tuple(k for k in c if k.startswith("offsets/")):
            out[f"clips/{i:02d}/{stage}"] = c[stage]
        out[f"clips/{i:02d}/pooled"] = c["activations/pooled"]
        if i in entry.get("activation_clips", []):
            for layer in ACTIVATION_LAYERS:
                out[f"clips/{i:02d}/activations/{layer}"] = c[f"activations/{layer}"]
    return out


def measure_file(learn: Any, audio: Path, entry: dict[str, Any], work: Path, cfg: ModelConfig) -> tuple[dict, dict]:
    """One file of the references, on its full-stage clips. -> (tensors, clips.json entry)."""
    name = entry["name"]
    if entry.get("error", {}).get("type") == "FfmpegError":     # no legacy run: ffmpeg refused it
        return {}, {"error": entry["error"]}
    with production_input(audio / name) as wav:
        scratch = (str(wav.parent),) if wav != audio / name else ()
        if "error" in entry:
            run = run_file(learn, wav, work, cfg, light=True, scratch=scratch)
        else:
            windows = [entry["clip_windows"][i] for i in entry["full_clips"]]
            run = run_file(learn, wav, work, cfg, light=False, windows=windows, scratch=scratch)
    info: dict[str, Any] = {"decode": run["decode"]}
    if "error" in run:
        return {}, {**info, "error": run["error"]}
    if "error" in entry:
        return {}, info                                         # ran where the references failed
    return clip_tensors(entry, run["clips"]), {**info, "clips": sorted(window_index(k, entry["clip_windows"])
                                                                         for k in run["clips"])}


def measure(model: Path, references: Path, audio: Path, out: Path, work: Path, sha256: str | None,
            threads: int, terminal: Any) -> dict[str, Any]:
    manifest = json.loads((references / "manifest.json").read_text())
    learn = load_trusted_learner(model / "model.pkl", sha256)
    cfg = verified_model(model)
    torch.set_num_threads(threads)
    files = manifest["files"]
    progress = Progress(terminal, len(files), sum(len(f.get("full_clips", [])) for f in files))
    staged: dict[str, bytes] = {}
    listing: dict[str, Any] = {}
    for entry in files:
        tensors, info = measure_file(learn, audio, entry, work, cfg)
        if tensors:
            staged[tensor_file_name(entry["name"])] = save_numpy(tensors)
        listing[entry["name"]] = info
        progress.file_done(entry["name"], len(info.get("clips", [])),
                           f"legacy error {info['error']['type']}" if "error" in info else "full-stage clips")
    summary = {"threads": threads, "files": listing}
    staged[CLIPS_FILE] = (json.dumps(summary, indent=1, sort_keys=True) + "\n").encode()
    write_files_atomically(out, staged)
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m convert.envelope_clips", description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, required=True, help="folder with model.pkl(+.sha256), config.json")
    ap.add_argument("--references", type=Path, required=True, help="the reference set whose clips to measure")
    ap.add_argument("--audio", type=Path, required=True, help="the folder those references were recorded from")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--sha256", help="the model.pkl sha256 you trust (else <model.pkl>.sha256)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--log", type=Path, help="legacy's own output (default: <out>.log beside --out)")
    args = ap.parse_args(argv)
    try:
        with legacy_output(args.log or log_path_for(args.out)) as terminal:
            with tempfile.TemporaryDirectory(prefix=scratch_prefix("orcaport-envelope")) as tmp, \
                    isolated_home(Path(tmp) / "home"):
                measure(args.model, args.references, args.audio, args.out, Path(tmp), args.sha256,
                        args.threads, terminal)
    except (OrcaportError, KeyboardInterrupt) as e:
        return report_error(None, e)
    return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
