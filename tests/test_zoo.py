"""The learner zoo (reference_outputs/zoo, made by `make zoo` in the legacy env): one real learner
per body family of fastai's model_meta, 1- and 3-channel stems, and one per fastai_audio option
(tests/test_zoo_options.py), replayed in the clean env.

Per entry: its weights rebuilt byte-for-byte from the committed residual + the pattern
(convert/zoo_weights.py; config.json's weights_sha256 proves them the converter's), `make parity`'s
replay PASSED isolated and chained against legacy's own references, the detector runs, and a
swapped pair of filters in one body conv fails parity at that conv's activation stage.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file

from convert.zoo_weights import is_patterned, pattern, rebuild
from orcaport.model.bodies import CUT, family
from orcaport.model.config import ModelConfig
from orcaport.model.detector import Detector
from orcaport.model.fileio import sha256_file
from orcaport.model.network import OrcaNet
from orcaport.model.weights import read_metadata, save_network_state
from orcaport.parity.controls import margin
from orcaport.parity.run import run_parity
from tests.paths import ROOT

ZOO = ROOT / "reference_outputs" / "zoo"
ALL = sorted(p.name for p in ZOO.iterdir() if (p / "config.json").is_file()) if ZOO.is_dir() else []
ENTRIES = [e for e in ALL if (ZOO / e / "stages").is_dir()]       # windowed references
SWAPPED_STAGE = "layer2"       # the negative control breaks a conv of this body stage


def _config(entry: str) -> ModelConfig:
    return ModelConfig.load(ZOO / entry / "config.json")


def audio_of(entry: str) -> Path:
    """The folder of recordings the entry was referenced on (zoo.json's `audio`)."""
    return ZOO / json.loads((ZOO / entry / "zoo.json").read_text()).get("audio", "audio")


def draws_of(entry: str) -> bool:
    """Whether legacy draws a random offset for this entry's windows (the runtime takes the middle)."""
    fe = _config(entry).frontend
    return fe.pad_mode == "zeros" or fe.max_to_pad is not None


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("zoo")
    return {e: root / e for e in ALL if rebuild(ZOO / e, root / e)}


def test_the_zoo_has_every_family_and_both_stems() -> None:
    configs = [_config(e) for e in ENTRIES]
    assert {family(c.architecture.body) for c in configs} == set(CUT)
    assert {c.architecture.in_channels for c in configs} == {1, 3}
    # stays small: ~0.2 MB of weights and ~1.3 MB of references per entry
    assert sum(p.stat().st_size for p in ZOO.rglob("*") if p.is_file()) < 24 * 2**20


def test_the_pattern_is_fixed_bits_in_torchs_init_range() -> None:
    w = pattern("body.conv1.weight", (64, 1, 7, 7))
    assert w.dtype == np.float32 and np.abs(w).max() <= 1 / 7 and w.std() > 0.07
    assert sha256_of(w) == sha256_of(pattern("body.conv1.weight", (64, 1, 7, 7)))
    assert not np.array_equal(w, pattern("body.conv2.weight", (64, 1, 7, 7)))
    assert is_patterned("body.layer1.0.conv1.weight", (64, 64, 3, 3))
    assert not is_patterned("body.bn1.weight", (64,)) and not is_patterned("head.blocks.0.fc.weight", (2, 32))


def sha256_of(a: np.ndarray) -> str:
    import hashlib
    return hashlib.sha256(a.tobytes()).hexdigest()


@pytest.mark.parametrize("entry", ALL)
def test_rebuilt_weights_are_the_converters_bytes(models: dict[str, Path], entry: str) -> None:
    cfg = _config(entry)
    assert sha256_file(models[entry] / "model.safetensors") == cfg.provenance["weights_sha256"]
    residual = load_file(str(ZOO / entry / "residual.safetensors"))
    assert not any(is_patterned(k, v.shape) for k, v in residual.items())


@pytest.mark.parametrize("entry", ENTRIES)
def test_zoo_parity_passes_isolated_and_chained(models: dict[str, Path], entry: str) -> None:
    result, _ = run_parity(models[entry], ZOO / entry / "stages", audio_of(entry))
    assert result.passed, result.first_failure
    checks = [c for f in result.files for c in f.checks]
    for mode in ("isolated", "chained"):
        for stage in ("input", "activations", "logits", "probs"):
            assert any(c.mode == mode and c.stage == stage and c.passed for c in checks), (mode, stage)
    layers = {c.layer for c in checks if c.stage == "activations" and c.mode == "isolated"}
    assert layers >= {"stem", "layer1", "layer2", "layer3", "layer4", "pooled"}


@pytest.mark.parametrize("entry", ENTRIES)
def test_the_detector_runs_on_every_body_and_agrees_with_legacy(models: dict[str, Path], entry: str) -> None:
    cfg = _config(entry)
    recording = next(audio_of(entry).glob("*.wav"))
    d = Detector.from_folder(models[entry]).detect(recording)
    ref = load_file(str(ZOO / entry / "stages" / f"{recording.name}.safetensors"))
    legacy = np.array([ref[f"clips/{i:02d}/probs"][cfg.positive_index] for i in range(d.clips)])
    assert d.clips == 2 and d.confidence.shape == (3,)
    if draws_of(entry):     # legacy drew its offsets at random; parity replays them, the runtime can't
        assert np.all((d.clip_confidence >= 0) & (d.clip_confidence <= 1))
    else:
        np.testing.assert_allclose(d.clip_confidence, legacy, atol=1e-4)


def _swap_filters(src: Path, dst: Path) -> str:
    """Swap output filters 0 and 1 of the first conv in SWAPPED_STAGE; re-pinned as a reconversion."""
    cfg = ModelConfig.load(src / "config.json")
    net = OrcaNet(cfg.architecture)
    conv = next(m for s in net.body_stages()[SWAPPED_STAGE] for m in s.modules() if isinstance(m, torch.nn.Conv2d))
    key = next(n for n, m in net.named_modules() if m is conv) + ".weight"
    state = {k: torch.from_numpy(v) for k, v in load_file(str(src / "model.safetensors")).items()}
    state[key] = state[key][[1, 0] + list(range(2, state[key].shape[0]))].contiguous()
    dst.mkdir()
    save_network_state(state, dst / "model.safetensors", read_metadata(src / "model.safetensors"))
    data = json.loads((src / "config.json").read_text())
    data["provenance"]["weights_sha256"] = sha256_file(dst / "model.safetensors")
    (dst / "config.json").write_text(json.dumps(data))
    return key


@pytest.mark.parametrize("entry", ENTRIES)
def test_a_swapped_weight_fails_at_its_stage(models: dict[str, Path], entry: str, tmp_path: Path) -> None:
    key = _swap_filters(models[entry], tmp_path / "swapped")
    result, _ = run_parity(tmp_path / "swapped", ZOO / entry / "stages", audio_of(entry),
                           diagnose_other_weights=True)
    check, words = margin(result)
    ff = result.first_failure
    assert (ff.stage, ff.layer) == ("activations", SWAPPED_STAGE), (key, ff, words)
    assert check is not None and (check.metrics.get("excess") or 0) > 10, (key, words)
