"""bench.train on two clips (seconds, not minutes): the inputs are the detector's own, labels line
up, one training step moves the weights, and the written folder loads and detects."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from bench.models import write_model_folder
from bench.train import HELD_OUT_SEED, SAMPLE_RATE, fit_one_cycle, make_inputs
from orcaport.model.artifact import load_artifact
from orcaport.model.detector import Detector, open_audio
from orcaport.model.network import OrcaNet
from orcaport.parity.testaudio.training import make_training_set
from tests.conftest import CORPUS, FIXTURE


def test_inputs_are_the_detectors_and_one_step_trains(tmp_path: Path) -> None:
    fixture = load_artifact(FIXTURE)
    x, y = make_inputs(HELD_OUT_SEED, 1, fixture.config)
    assert x.shape == (2, 1, 256, 312) and x.dtype == torch.float32
    assert y.tolist() == [1, 0]                               # positive first, as make_training_set
    assert fixture.config.classes[1] == "positive"

    # The same clip written as the fixture writes its WAVs, run through the real detector path.
    audio, label = make_training_set(HELD_OUT_SEED, 1, 0)[0]
    wav = tmp_path / "clip.wav"
    sf.write(str(wav), np.clip(np.round(audio * 32767.0), -32768, 32767).astype(np.int16),
             SAMPLE_RATE, subtype="PCM_16")
    det = Detector.from_folder(FIXTURE, engine="nchw")   # engine: no effect on inputs
    src = open_audio(wav)
    want = det.batch_inputs(list(det.clip_inputs(src)), src)
    assert label == "positive" and torch.equal(want[0], x[0])

    # A resnet18 on a 64x64 crop stands in for the resnet50 (same recipe, a fraction of the compute;
    # the adaptive pool takes any size).
    torch.manual_seed(0)
    net = OrcaNet(fixture.config.architecture)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    losses = fit_one_cycle(net, x[..., 96:160, :64], y, epochs=1, max_lr=1e-3, batch_size=2,
                           generator=torch.Generator().manual_seed(0))
    assert len(losses) == 1 and np.isfinite(losses[0])
    after = net.state_dict()
    assert not torch.equal(before["body.conv1.weight"], after["body.conv1.weight"])
    assert not torch.equal(before["body.bn1.running_mean"], after["body.bn1.running_mean"])

    cfg = dataclasses.replace(fixture.config, provenance={"source_sha256": "test-stand-in"})
    out = tmp_path / "models" / "trained"
    for _ in range(2):                                        # the second write replaces the first
        digest = write_model_folder(net, cfg, out)
    assert sorted(p.name for p in out.parent.iterdir()) == ["trained"]   # no scratch left behind
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    result = Detector.from_folder(out, engine="nchw").detect(CORPUS / "exact_2s0_48k_16.wav")
    assert load_artifact(out).weights_sha256 == digest
    assert result.clips == 1 and 0.0 <= float(result.clip_confidence[0]) <= 1.0
