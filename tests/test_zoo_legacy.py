"""The rest of model_meta through the zoo (legacy env): every body not in the committed zoo is built,
converted and referenced exactly as `make zoo` builds its entries (convert/zoo.py), then replayed
in this process: parity PASSED isolated and chained, and the detector agrees with legacy's clip
probabilities; output filters 0 and 1 of the first conv of its `layer2` stage swapped must fail at
activations/layer2. Slow (a learner per body); skipped without the legacy env.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from convert.zoo_weights import rebuild
from orcaport.model.config import SUPPORTED_BODIES, ModelConfig
from orcaport.model.detector import Detector
from orcaport.parity.run import run_parity
from tests.conftest import legacy_interpreter
from tests.paths import ROOT
from orcaport.parity.controls import margin
from tests.test_zoo import ENTRIES, SWAPPED_STAGE, _swap_filters

OTHERS = [b for b in SUPPORTED_BODIES if b not in ENTRIES]


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("zoo")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HOME": str(out / "home")}
    done = subprocess.run([legacy_interpreter(), "-m", "convert.zoo", "--out", str(out / "zoo"), "--work",
                           str(out / "work"), "--only", *OTHERS], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=7200)
    assert done.returncode == 0, done.stderr[-3000:]
    return out / "zoo"


@pytest.mark.legacy
@pytest.mark.parametrize("body", OTHERS)
def test_every_other_model_meta_body_passes_parity_and_detects(zoo: Path, body: str, tmp_path: Path) -> None:
    rebuild(zoo / body, tmp_path / "model")
    result, _ = run_parity(tmp_path / "model", zoo / body / "stages", zoo / "audio")
    assert result.passed, result.first_failure
    modes = {(c.mode, c.stage) for f in result.files for c in f.checks if c.passed}
    assert {("isolated", "activations"), ("chained", "activations"), ("chained", "probs")} <= modes
    cfg = ModelConfig.load(zoo / body / "config.json")
    d = Detector.from_folder(tmp_path / "model").detect(zoo / "audio" / "zoo_call_8k_3s.wav")
    ref = load_file(str(zoo / body / "stages" / "zoo_call_8k_3s.wav.safetensors"))
    legacy = np.array([ref[f"clips/{i:02d}/probs"][cfg.positive_index] for i in range(d.clips)])
    np.testing.assert_allclose(d.clip_confidence, legacy, atol=1e-4)
    key = _swap_filters(tmp_path / "model", tmp_path / "swapped")
    result, _ = run_parity(tmp_path / "swapped", zoo / body / "stages", zoo / "audio", diagnose_other_weights=True)
    check, words = margin(result)
    assert (result.first_failure.stage, result.first_failure.layer) == ("activations", SWAPPED_STAGE), (key, words)
