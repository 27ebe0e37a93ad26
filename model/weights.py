"""`model.safetensors` <-> `OrcaNet`: strict loading, atomic and byte-deterministic saving.

Loading never remaps keys and never unpickles: the converter owns the fastai -> OrcaNet name map,
so any mismatch here means the weights and config.json come from different conversions.
Saving writes the safetensors format itself because the `safetensors` writer serialises the
metadata from a hash map, whose order (hence the file's bytes and sha256) changes between runs.
Otherwise the layout is the library's own (same tensor order, header fields and padding), so with
at most one metadata key the bytes equal `safetensors.torch.save`'s.
"""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path
from typing import Mapping

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file

from orcaport.model.config import ArchitectureConfig, ModelConfig
from orcaport.model.errors import OrcaportError
from orcaport.model.fileio import write_file_atomically
from orcaport.model.network import OrcaNet

FIX_HINT = "re-run `make convert` on the model.pkl that produced config.json"
SHOW_FIRST = 5             # names listed per kind of mismatch; the rest are counted
HEADER_ALIGN = 8           # safetensors pads the JSON header so tensor data starts 8-byte aligned
DTYPE_CODES: dict[torch.dtype, str] = {
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
    torch.uint8: "U8", torch.bool: "BOOL",
}


class WeightsError(OrcaportError, ValueError):
    """The weights file is missing, corrupt, or does not fit the network config.json describes."""


def _listing(kind: str, items: list[str]) -> str:
    shown = ", ".join(items[:SHOW_FIRST])
    more = f" (+{len(items) - SHOW_FIRST} more)" if len(items) > SHOW_FIRST else ""
    return f"{len(items)} {kind}: {shown}{more}"


def check_state_dict(expected: Mapping[str, torch.Tensor], found: Mapping[str, torch.Tensor],
                     source: str = "weights") -> None:
    """Raise WeightsError unless `found` has exactly `expected`'s keys, shapes and dtypes."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    shared = sorted(set(expected) & set(found))
    shapes = [f"{k} {tuple(found[k].shape)} != {tuple(expected[k].shape)}" for k in shared
              if found[k].shape != expected[k].shape]
    # A dtype change (e.g. fp16 weights) would be silently cast by load_state_dict: refuse it.
    dtypes = [f"{k} {found[k].dtype} != {expected[k].dtype}" for k in shared
              if found[k].dtype != expected[k].dtype]
    problems = [_listing(kind, items) for kind, items in (
        ("missing keys", missing), ("unexpected keys", unexpected),
        ("shape mismatches", shapes), ("dtype mismatches", dtypes)) if items]
    if problems:
        raise WeightsError(f"{source} does not match the network in config.json: "
                           + "; ".join(problems) + f". Fix: {FIX_HINT}")


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise WeightsError(f"{path} not found; run `make convert` to create it")
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, ValueError, OSError, RuntimeError) as e:
        raise WeightsError(f"{path} is truncated or not a safetensors file ({e}); "
                           "re-run `make convert`") from None


def load_network(weights_path: str | Path, config: ArchitectureConfig | ModelConfig) -> OrcaNet:
    """Build the network `config` describes and load `weights_path` into it, strictly.

    Returns a CPU float32 `OrcaNet` in eval mode. Raises WeightsError on any key, shape or dtype
    mismatch (all listed) and on a missing, truncated or corrupt file.
    """
    arch = config.architecture if isinstance(config, ModelConfig) else config
    path = Path(weights_path)
    state = _read_tensors(path)
    net = OrcaNet(arch)
    check_state_dict(net.state_dict(), state, source=str(path))
    net.load_state_dict(state, strict=True)
    return net.eval()


def read_metadata(weights_path: str | Path) -> dict[str, str]:
    """The `__metadata__` str->str map of a safetensors file (provenance written by the converter)."""
    path = Path(weights_path)
    if not path.is_file():
        raise WeightsError(f"{path} not found; run `make convert` to create it")
    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except (SafetensorError, ValueError, OSError, RuntimeError) as e:
        raise WeightsError(f"{path} is truncated or not a safetensors file ({e}); "
                           "re-run `make convert`") from None


def _raw_bytes(t: torch.Tensor) -> bytes:
    """Native (little-endian) bytes of a contiguous CPU tensor, any dtype incl. bf16."""
    flat = t.reshape(-1)
    return flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b""


def serialize_state(state_dict: Mapping[str, torch.Tensor],
                    metadata: Mapping[str, str] | None = None) -> bytes:
    """safetensors bytes that depend only on the tensors and metadata (never on dict order)."""
    if sys.byteorder != "little":   # safetensors is little-endian; we copy native bytes
        raise WeightsError("saving safetensors needs a little-endian machine")
    meta = dict(metadata or {})
    bad = [k for k, v in meta.items() if not (isinstance(k, str) and isinstance(v, str))]
    if bad:
        raise WeightsError(f"metadata must map str to str; offending keys: {bad[:SHOW_FIRST]}")
    tensors: dict[str, torch.Tensor] = {}
    for name, value in state_dict.items():
        if not isinstance(name, str) or not isinstance(value, torch.Tensor):
            raise WeightsError(f"state_dict entry {name!r} is not a str -> Tensor pair")
        if value.dtype not in DTYPE_CODES:
            raise WeightsError(f"{name}: dtype {value.dtype} cannot be stored")
        tensors[name] = value.detach().to("cpu").contiguous()
    # Widest dtype first, then by name (the order safetensors itself uses): every tensor starts
    # aligned to its element size, and the order is a pure function of the contents.
    order = sorted(tensors, key=lambda k: (-tensors[k].element_size(), k))
    # Insertion order is the byte order: sorted metadata, then tensors in data order.
    header: dict[str, object] = {"__metadata__": dict(sorted(meta.items()))} if meta else {}
    offset = 0
    for name in order:
        t = tensors[name]
        size = t.numel() * t.element_size()
        header[name] = {"dtype": DTYPE_CODES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + size]}
        offset += size
    head = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    head += b" " * (-len(head) % HEADER_ALIGN)
    return b"".join([struct.pack("<Q", len(head)), head] + [_raw_bytes(tensors[k]) for k in order])


def save_network_state(state_dict: Mapping[str, torch.Tensor], path: str | Path,
                       metadata: Mapping[str, str] | None = None) -> Path:
    """Write `state_dict` to `path` as safetensors, atomically and byte-deterministically.

    Tensors keep their dtype (BN `num_batches_tracked` stays int64). The file appears complete or
    not at all (model/fileio.py: a fsynced temp sibling renamed over `path`).
    """
    return write_file_atomically(Path(path), serialize_state(state_dict, metadata))
