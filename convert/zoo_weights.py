"""The learner zoo's weights, small enough to commit: conv kernels from a fixed formula + the rest.

A zoo learner (convert/zoo.py) is one real torchvision body per family of fastai's model_meta; its
body convs hold tens of MB of floats that would not fit in a checkout. So the zoo fixes every body
conv kernel to `pattern(name, shape)` -- a pure integer hash of the clean key and element index,
scaled like PyTorch's default (Kaiming-uniform) init, the same bits on every machine -- and trains
only the BatchNorms and the head. What is committed is `residual.safetensors` (every other tensor,
~1 % of the model) and config.json; `rebuild` joins both into model.safetensors, byte-identical to
what `make convert` wrote in the legacy env: config.json's `weights_sha256` proves it.

    python -m convert.zoo_weights --zoo reference_outputs/zoo/resnet18 --out DIR
(clean env: numpy + safetensors only, no torch import beyond the runtime's own weights writer)
"""

from __future__ import annotations

import argparse
import json
import sys
import zlib
from pathlib import Path
from typing import Mapping

import numpy as np

RESIDUAL_FILE = "residual.safetensors"
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
WEIGHTS_FORMAT = "orcaport-1"       # convert/cli.py's safetensors metadata
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1, _MIX2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def is_patterned(key: str, shape: tuple[int, ...]) -> bool:
    """Body conv kernels (the bulk of every body) follow the pattern; everything else is trained."""
    return key.startswith("body.") and key.endswith(".weight") and len(shape) == 4


def pattern(key: str, shape: tuple[int, ...]) -> np.ndarray:
    """float32 array of `shape`: splitmix64 of (crc32(key), element index) mapped to
    U(-bound, bound) with bound = 1/sqrt(fan_in), torch's default Conv2d init range."""
    n = int(np.prod(shape))
    with np.errstate(over="ignore"):
        x = np.arange(n, dtype=np.uint64) * _GOLDEN + np.uint64(zlib.crc32(key.encode()))
        x = (x ^ (x >> np.uint64(30))) * _MIX1
        x = (x ^ (x >> np.uint64(27))) * _MIX2
        x = x ^ (x >> np.uint64(31))
    unit = (x >> np.uint64(11)).astype(np.float64) / float(1 << 53)        # [0, 1), exact
    fan_in = int(np.prod(shape[1:]))
    return ((2.0 * unit - 1.0) / np.sqrt(fan_in)).astype(np.float32).reshape(shape)


def split(state: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The residual: every tensor not on the pattern. Refuses a patterned key that drifted from it
    (a zoo learner whose convs were trained after all)."""
    drifted = [k for k, v in state.items() if is_patterned(k, tuple(v.shape))
               and not np.array_equal(v, pattern(k, tuple(v.shape)))]
    if drifted:
        raise ValueError(f"{len(drifted)} conv kernel(s) differ from the zoo pattern, e.g. {drifted[0]}")
    return {k: v for k, v in state.items() if not is_patterned(k, tuple(v.shape))}


def rebuild(zoo_dir: Path, out_dir: Path) -> str:
    """Write out_dir/model.safetensors + config.json from a committed zoo entry; -> its sha256,
    checked against config.json's weights_sha256 (a ValueError if they differ)."""
    import torch
    from safetensors.numpy import load_file

    from orcaport.model.config import ModelConfig
    from orcaport.model.fileio import sha256_file
    from orcaport.model.network import OrcaNet
    from orcaport.model.weights import save_network_state

    cfg = ModelConfig.load(zoo_dir / CONFIG_FILE)
    residual = load_file(str(zoo_dir / RESIDUAL_FILE))
    state = {}
    for key, t in OrcaNet(cfg.architecture).state_dict().items():
        shape = tuple(t.shape)
        if is_patterned(key, shape):
            state[key] = torch.from_numpy(pattern(key, shape))
        elif key in residual:
            state[key] = torch.from_numpy(residual[key])
        else:
            raise ValueError(f"{zoo_dir / RESIDUAL_FILE} lacks {key}")
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = {"source_sha256": cfg.provenance["source_sha256"], "format": WEIGHTS_FORMAT}
    save_network_state(state, out_dir / WEIGHTS_FILE, meta)
    sha = sha256_file(out_dir / WEIGHTS_FILE)
    want = cfg.provenance["weights_sha256"]
    if sha != want:
        raise ValueError(f"rebuilt {zoo_dir.name} weights have sha256 {sha}, not config.json's {want}")
    (out_dir / CONFIG_FILE).write_bytes((zoo_dir / CONFIG_FILE).read_bytes())
    return sha


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m convert.zoo_weights", description=__doc__.splitlines()[0])
    ap.add_argument("--zoo", type=Path, required=True, help="a committed zoo entry (config.json + residual)")
    ap.add_argument("--out", type=Path, required=True, help="folder for model.safetensors + config.json")
    args = ap.parse_args(argv)
    try:
        sha = rebuild(args.zoo, args.out)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    print(json.dumps({"out": str(args.out), "weights_sha256": sha}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
