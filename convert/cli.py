"""`make convert`: a trusted fastai `model.pkl` -> `model.safetensors` + `config.json`, losslessly.

    python -m convert.cli --model model.pkl --out DIR [--sha256 HEX] [--frontend frontend.json]

Refuses to unpickle a file whose sha256 is not the expected one; introspects the architecture;
maps every parameter and buffer with `convert.keymap`; checks key counts, shapes and dtypes; checks
the clean network's logits against `learner.model` on a seeded batch; then writes both files
atomically. Any failure writes nothing. A hash given with --sha256 (SHA256=) that the file matched is
then recorded in `<model.pkl>.sha256` (convert/legacy.py: record_trust): later targets need no
SHA256=. Exit codes (model/errors.py): 0 written, 2 usage, 3 an
unusable or untrusted input, 5 the outputs could not be written.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import torch

from convert.introspect import introspect_learner
from convert.keymap import fastai_to_clean_keys
from convert.legacy import ConvertError, legacy_versions, load_trusted_learner, record_trust
from orcaport.model.config import FrontendConfig, ModelConfig, build_config
from orcaport.model.errors import ExitCode, OrcaportError, OutputError, report_error
from orcaport.model.fileio import sha256_file, write_files_atomically
from orcaport.model.network import OrcaNet
from orcaport.model.spectrogram import input_width
from orcaport.model.version import version
from orcaport.model.weights import serialize_state

LOGIT_ATOL = 1e-5          # the bar for "zero loss": max |clean - learner| on one batch
CHECK_BATCH = 4
CHECK_WIDTH = 157   # a 2 s clip's columns at 20 kHz / hop 256: used when the config fixes no width
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


def load_frontend(path: str | None) -> tuple[FrontendConfig, str]:
    """The frontend config is given, never read from the pickle (export() drops it)."""
    if path is None:
        return FrontendConfig(), "orcahello-production (model.config.FrontendConfig defaults)"
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ConvertError(f"cannot read frontend config {p}: {e}") from None
    return build_config(FrontendConfig, data, f"frontend config {p.name}"), f"{p.name} sha256:{sha256_file(p)}"


def clean_state_dict(learn: Any, head_layout: tuple[str, ...], net: OrcaNet) -> dict[str, torch.Tensor]:
    """Rename every learner tensor; check the result is exactly the clean model's state."""
    src = learn.model.state_dict()
    mapping = fastai_to_clean_keys(src.keys(), head_layout, net.config.body)
    out = {mapping[k]: v.detach().cpu().contiguous().clone() for k, v in src.items()}
    want = net.state_dict()
    missing = sorted(set(want) - set(out))
    unexpected = sorted(set(out) - set(want))
    if missing or unexpected:
        raise ConvertError(f"mapped keys do not match the clean model: missing {missing[:5]}, "
                           f"unexpected {unexpected[:5]}")
    if not len(out) == len(src) == len(want):    # two learner keys mapped onto one clean key
        raise ConvertError(f"{len(src)} learner tensors mapped onto {len(out)} clean keys for a "
                           f"model of {len(want)}: the key map is not one-to-one for this learner")
    for k, v in out.items():
        if v.shape != want[k].shape or v.dtype != want[k].dtype:
            raise ConvertError(f"{k}: learner {tuple(v.shape)} {v.dtype} vs clean "
                               f"{tuple(want[k].shape)} {want[k].dtype}")
    return out


def check_logits(learn: Any, net: OrcaNet, cfg: ModelConfig) -> float:
    """Max |clean - learner| logits on a seeded dB-like batch of the network's input shape."""
    fe = cfg.frontend
    # The input's shape as the frontend makes it; without resample_to/duration/hop the width follows
    # each file, and any width checks the weights (the bodies pool adaptively).
    width = input_width(fe, fe.resample_to) if fe.resample_to and fe.hop_length else None
    height = fe.n_mfcc if fe.mfcc else fe.n_mels
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(CHECK_BATCH, cfg.architecture.in_channels, height, width or CHECK_WIDTH,
                    generator=gen) * 20 - 40
    learn.model.eval()
    with torch.no_grad():
        want = learn.model(x)
        got = net(x)
    diff = (want - got).abs().max().item()
    if not diff <= LOGIT_ATOL:
        raise ConvertError(f"clean logits differ from the learner's by {diff:.3g} > {LOGIT_ATOL}")
    return diff


def write_atomically(out_dir: Path, files: dict[str, bytes | Path]) -> None:
    """model.fileio.write_files_atomically, refusing with an OutputError that names the fix."""
    try:
        write_files_atomically(out_dir, files)
    except ValueError as e:
        raise ConvertError(str(e)) from None
    except OSError as e:
        raise OutputError(f"cannot create output folder {out_dir} ({e.strerror or e}); pass a "
                          "writable folder") from None


def convert(model_pkl: Path, out_dir: Path, sha256: str | None = None, frontend: str | None = None,
            positive_class: str | None = None) -> dict[str, Any]:
    fe, fe_source = load_frontend(frontend)   # a bad frontend.json is refused before unpickling
    learn = load_trusted_learner(model_pkl, sha256)
    spec = introspect_learner(learn, positive_class)
    source_sha = sha256_file(model_pkl)
    cfg = ModelConfig(
        architecture=spec.architecture, classes=spec.classes, positive_index=spec.positive_index,
        frontend=fe, normalization=spec.normalization,
        provenance={"source_file": model_pkl.name, "source_sha256": source_sha,
                    "frontend_source": fe_source, "legacy_versions": legacy_versions(),
                    "tool": f"orcaport {version()}"},
    )
    net = OrcaNet(cfg.architecture).eval()
    state = clean_state_dict(learn, spec.head_layout, net)
    net.load_state_dict(state, strict=True)
    diff = check_logits(learn, net, cfg)
    # In memory, not in a scratch folder: a killed run leaves nothing behind in /tmp.
    weights = serialize_state(state, {"source_sha256": source_sha, "format": "orcaport-1"})
    # config.json pins the exact weights bytes: the runtime refuses a tampered or swapped file.
    cfg.provenance["weights_sha256"] = hashlib.sha256(weights).hexdigest()
    write_atomically(out_dir, {WEIGHTS_FILE: weights, CONFIG_FILE: cfg.to_json().encode()})
    record = record_trust(model_pkl, source_sha) if sha256 else None   # given once, then remembered
    return {"trusted_sha256_record": str(record) if record else None,"body": cfg.architecture.body, "tensors": len(state), "classes": list(cfg.classes),
            "positive_index": cfg.positive_index, "max_logit_diff": diff,
            "weights_sha256": sha256_file(out_dir / WEIGHTS_FILE), "out": str(out_dir)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m convert.cli", description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, type=Path, help="fastai 1.0.61 export (model.pkl)")
    ap.add_argument("--out", required=True, type=Path, help="folder for model.safetensors + config.json")
    ap.add_argument("--sha256", help="expected sha256 of --model (default: <model>.sha256 beside it)")
    ap.add_argument("--frontend", help="frontend config JSON (default: OrcaHello production)")
    ap.add_argument("--positive-class", help="class whose probability is the detection confidence")
    args = ap.parse_args(argv)
    try:
        summary = convert(args.model, args.out, args.sha256, args.frontend, args.positive_class)
    except (OrcaportError, KeyboardInterrupt) as e:
        return report_error(None, e)
    print(json.dumps(summary, indent=2))
    return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
