"""References for fastai_audio's own predict (the runtime's `orcaport predict`), recorded by running
what fastai_audio users run -- `AudioList.from_folder(folder, config).split_none().label_empty()`,
then `learn.predict(x)` for each item of `.train.x` -- on each recording alone (legacy env).

    python -m convert.predict_references --model DIR --audio DIR --out DIR [--sha256 HEX]

Per recording, every stage of the learner's chain (model/pipeline.py `chain_of`, names from
model/stages.py) as legacy's own code computed it (convert/predict_capture.py), stored where it is
shared: `file/<stage>` before any fan-out (load, downmix, resample), `items/NN/<stage>` for item NN
(silence or segment pieces, pad_signal, mel, db, mfcc, standardize, delta, input),
`silence/JJ/silence` for a silence piece segment_size cuts further (`all/lineage`: each item's
piece indices, one column per fan-out of the manifest's `fans`). Steps the config leaves out of
legacy's path (downmix=False, no resample_to, to_db_scale=False) have no tensor: the manifest's
`stages` lists those recorded. Also per item: the random offsets fastai_audio drew
(`all/offsets/<name>`, -1 when none; Python's random seeded per item so a re-run draws alike),
the logits, and learn.predict's probabilities and class index (`all/logits`, `all/probs`,
`all/index`). `python -m orcaport.parity.predict_parity` replays them stage by stage.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import save as save_numpy

from convert.cli import write_atomically
from convert.legacy import ConvertError, isolated_home, load_trusted_learner, patch_torchaudio_io
from convert.predict_capture import item_seed, recording
from convert.production import legacy_audio_config
from convert.references import verified_model
from orcaport.model.config import FrontendConfig
from orcaport.model.errors import ExitCode, OrcaportError, report_error
from orcaport.model.fileio import sha256_file
from orcaport.model.pipeline import chain_of
from orcaport.parity.fingerprint import fingerprint

MANIFEST = "manifest.json"
SUFFIXES = (".wav", ".flac")
NETWORK_STAGES = ("logits", "probs")


def legacy_stages(fe: FrontendConfig) -> tuple[str, ...]:
    """The chain's stages legacy's path computes: those a config sets as a no-op run no code there."""
    skipped = {"downmix": not fe.downmix, "resample": not fe.resample_to,
               "db": not fe.to_db_scale}
    return tuple(s for s in chain_of(fe) if not skipped.get(s, False)) + NETWORK_STAGES


def record_recording(learn: Any, path: Path, fe: FrontendConfig, work: Path
                     ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """fastai_audio's predict path on `path` alone, every stage captured. -> (tensors, entry)"""
    from audio.data import AudioList

    folder = work / "in"
    shutil.rmtree(work, ignore_errors=True)
    folder.mkdir(parents=True)
    shutil.copyfile(path, folder / path.name)
    config = legacy_audio_config(fe)
    config.cache_dir = work / "cache"
    probs, index, logits = [], [], []
    with recording(learn, folder / path.name) as rec:
        x = AudioList.from_folder(folder, config=config).split_none().label_empty().train.x
        nodes = [rec.node_of(p)[1] for p in x.items]
        for i, node in enumerate(nodes):
            rec.current = node
            random.seed(item_seed(path.name, i))
            item = x.get(i)
            _, idx, p = learn.predict(item)
            logits.append(rec.nodes[node].pop("logits"))
            probs.append(p.detach().cpu().numpy())
            index.append(int(idx))
    want = legacy_stages(fe)
    got = {s for stages in rec.nodes.values() for s in stages} | set(NETWORK_STAGES)
    if nodes and (got != set(want)):
        raise ConvertError(f"{path.name}: capture recorded stages {sorted(got)}, the chain computes "
                           f"{list(want)}; the hooks no longer match legacy")
    tensors = {f"{rec.storage_key(node, nodes)}/{stage}": value
               for node, stages in rec.nodes.items() for stage, value in stages.items()}
    n_classes = len(learn.data.classes)
    tensors["all/logits"] = np.stack(logits) if logits else np.zeros((0, n_classes), np.float32)
    tensors["all/probs"] = np.stack(probs) if probs else np.zeros((0, n_classes), np.float32)
    tensors["all/index"] = np.array(index, np.int64)
    offsets = [rec.offsets.get(node, {}) for node in nodes]
    for name in sorted({k for o in offsets for k in o}):
        tensors[f"all/offsets/{name}"] = np.array([o.get(name, -1) for o in offsets], np.int64)
    fans = [rec.fan_stage[d] for d in sorted(rec.fan_stage)]
    if fans:
        tensors["all/lineage"] = np.array(nodes, np.int64).reshape(len(nodes), len(fans))
    entry = {"name": path.name, "audio_sha256": sha256_file(path), "items": len(nodes),
             "stages": [s for s in want if s in got], "fans": fans}
    return tensors, entry


def build(model_dir: Path, audio: Path, out: Path, sha256: str | None = None,
          threads: int | None = None) -> dict[str, Any]:
    cfg = verified_model(model_dir)
    if threads is not None:         # the envelope's baseline and variants: a fixed thread count
        import torch
        torch.set_num_threads(threads)
    patch_torchaudio_io()
    files = sorted(p for p in audio.iterdir() if p.suffix.lower() in SUFFIXES and p.stat().st_size > 0)
    if not files:
        raise OrcaportError(f"{audio}: no .wav or .flac recordings; pass --audio DIR holding them")
    learn = load_trusted_learner(model_dir / "model.pkl", sha256)
    outputs: dict[str, bytes] = {}
    entries = []
    with tempfile.TemporaryDirectory(prefix="orcaport-predict-refs-") as tmp, isolated_home(Path(tmp) / "home"):
        for path in files:
            tensors, entry = record_recording(learn, path, cfg.frontend, Path(tmp) / "work")
            outputs[f"{path.name}.safetensors"] = save_numpy({k: np.ascontiguousarray(v) for k, v in tensors.items()})
            entries.append(entry)
            print(f"{path.name}: {entry['items']} item(s), stages {entry['stages']}", file=sys.stderr, flush=True)
    manifest = {"mode": "predict", "schema": 2, "machine": fingerprint(), "torch_threads": threads,
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
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    args = ap.parse_args(argv)
    try:
        print(json.dumps(build(args.model, args.audio, args.out, args.sha256, args.threads)))
    except OrcaportError as e:
        return report_error("predict references", e)
    return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
