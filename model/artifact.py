"""A converted model folder: `model.safetensors` + `config.json`, loaded as one verified pair."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from orcaport.model.config import ModelConfig
from orcaport.model.fileio import sha256_file
from orcaport.model.pipeline import normalize
from orcaport.model.network import OrcaNet
from orcaport.model.weights import WeightsError, load_network, read_metadata

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


@dataclass(frozen=True)
class Artifact:
    config: ModelConfig
    network: OrcaNet
    weights_sha256: str
    config_sha256: str
    root: Path

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """fastai `normalize` on the network input (..., C, H, W), when the learner had stats."""
        return normalize(x, self.config.normalization)


def load_artifact(root: str | Path) -> Artifact:
    """Load and cross-check config.json and model.safetensors from `root`.

    The pair must come from one conversion: config.json pins the weights' sha256 and both carry the
    source pickle's sha256, so a folder where one file was altered or replaced is refused before
    a byte of the weights is parsed.
    """
    root = Path(root)
    config = ModelConfig.load(root / CONFIG_FILE)
    weights = root / WEIGHTS_FILE
    if not weights.is_file():
        raise WeightsError(f"{weights} not found; run `make convert` to create it")
    want = config.provenance.get("weights_sha256")
    if not want:
        raise WeightsError(f"{root / CONFIG_FILE} does not pin its weights (provenance.weights_sha256); "
                           "re-run `make convert`")
    got = sha256_file(weights)
    if got != want:
        raise WeightsError(f"{weights} is not the file config.json was written with (sha256 {got[:12]}... "
                           f"!= {want[:12]}...): tampered, truncated or swapped; re-run `make convert`")
    meta = read_metadata(weights)
    source = config.provenance.get("source_sha256")
    if meta.get("source_sha256") != source:
        raise WeightsError(f"{weights} and {root / CONFIG_FILE} come from different conversions "
                           f"(source sha256 {meta.get('source_sha256')} vs {source}); re-run `make convert`")
    network = load_network(weights, config)
    return Artifact(config=config, network=network, weights_sha256=got,
                    config_sha256=sha256_file(root / CONFIG_FILE), root=root)
