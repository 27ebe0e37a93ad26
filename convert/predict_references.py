"""References for fastai_audio's own predict (the runtime's `orcaport predict`), recorded by running
what fastai_audio users run -- `AudioList.from_folder(folder, config).split_none().label_empty()`,
then `learn.predict(x)` for each item of `.train.x` -- on each recording alone (legacy env).

    python -m convert.predict_references --model DIR --audio DIR --out DIR [--sha256 HEX]

Per recording, per item (a file, or each segment / silence piece): the network input legacy built
(`items/NN/input`), the random offsets fastai_audio drew for it (`all/offsets/<name>`, -1 when none;
Python's random seeded per item so a re-run draws alike), and learn.predict's probabilities and
class index (`all/probs`, `all/index`). `python -m orcaport.parity.predict_parity` replays them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import save as save_numpy

from convert.capture import OFFSET_OF
from convert.cli import write_atomically
from convert.legacy import isolated_home, load_trusted_learner, patch_torchaudio_io
from convert.production import legacy_audio_config
from convert.references import verified_model
from orcaport.model.errors import ExitCode, OrcaportError, report_error
from orcaport.model.fileio import sha256_file
from orcaport.parity.fingerprint import fingerprint

MANIFEST = "manifest.json"
SUFFIXES = (".wav", ".flac")


def record_recording(learn: Any, path: Path, fe: Any, work: Path) -> dict[str, np.ndarray]:
    """fastai_audio's predict path on `path` alone. -> its tensors"""
    from audio.data import AudioList

    folder = work / "in"
    shutil.rmtree(work, ignore_errors=True)
    folder.mkdir(parents=True)
    shutil.copyfile(path, folder / path.name)
    config = legacy_audio_config(fe)
    config.cache_dir = work / "cache"
    x = AudioList.from_folder(folder, config=config).split_none().label_empty().train.x
    real = random.randint
    tensors: dict[str, np.ndarray] = {}
    offsets: list[dict[str, int]] = []
    probs, index = [], []
    for i in range(len(x)):
        drawn: dict[str, int] = {}

        def randint(lo: int, hi: int) -> int:
            value = real(lo, hi)
            drawer = sys._getframe(1).f_code.co_name
            if drawer in OFFSET_OF:
                drawn[OFFSET_OF[drawer]] = value
            return value

        random.seed(int.from_bytes(hashlib.sha256(f"{path.name}/{i}".encode()).digest()[:8], "big"))
        random.randint = randint
        try:
            item = x.get(i)
        finally:
            random.randint = real
        offsets.append(drawn)
        _, idx, p = learn.predict(item)
        tensors[f"items/{i:02d}/input"] = item.data.detach().cpu().numpy().copy()
        probs.append(p.detach().cpu().numpy())
        index.append(int(idx))
    tensors["all/probs"] = np.stack(probs) if probs else np.zeros((0, 0), np.float32)
    tensors["all/index"] = np.array(index, np.int64)
    for name in sorted({k for o in offsets for k in o}):
        tensors[f"all/offsets/{name}"] = np.array([o.get(name, -1) for o in offsets], np.int64)
    return tensors


def build(model_dir: Path, audio: Path, out: Path, sha256: str | None = None) -> dict[str, Any]:
    cfg = verified_model(model_dir)
    patch_torchaudio_io()
    files = sorted(p for p in audio.iterdir() if p.suffix.lower() in SUFFIXES and p.stat().st_size > 0)
    if not files:
        raise OrcaportError(f"{audio}: no .wav or .flac recordings; pass --audio DIR holding them")
    learn = load_trusted_learner(model_dir / "model.pkl", sha256)
    outputs: dict[str, bytes] = {}
    entries = []
    with tempfile.TemporaryDirectory(prefix="orcaport-predict-refs-") as tmp, isolated_home(Path(tmp) / "home"):
        for path in files:
            tensors = record_recording(learn, path, cfg.frontend, Path(tmp) / "work")
            outputs[f"{path.name}.safetensors"] = save_numpy({k: np.ascontiguousarray(v) for k, v in tensors.items()})
            entries.append({"name": path.name, "audio_sha256": sha256_file(path),
                            "items": int(len(tensors["all/index"]))})
            print(f"{path.name}: {entries[-1]['items']} item(s)", file=sys.stderr, flush=True)
    manifest = {"mode": "predict", "machine": fingerprint(),
                "model": {"weights_sha256": cfg.provenance.get("weights_sha256"),
                          "config_sha256": sha256_file(model_dir / "config.json")},
                "files": entries}
    outputs[MANIFEST] = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    write_atomically(out, outputs)
    return {"files": len(entries), "items": sum(e["items"] for e in entries), "out": str(out)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m convert.predict_references", description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, required=True, help="converted model folder holding model.pkl")
    ap.add_argument("--audio", type=Path, required=True, help="folder of recordings")
    ap.add_argument("--out", type=Path, required=True, help="references folder to write")
    ap.add_argument("--sha256", default=None, help="expected sha256 of model.pkl (else its .sha256 record)")
    args = ap.parse_args(argv)
    try:
        print(json.dumps(build(args.model, args.audio, args.out, args.sha256)))
    except OrcaportError as e:
        return report_error("predict references", e)
    return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
