"""The option steps computed here (clean env: its numpy/scipy/torch) against legacy's own answers
computed in the legacy env (numpy 1.26, scipy 1.13, torchaudio, librosa 0.10) on the same saved
inputs (tests/legacy/frontend_options.py): librosa.effects.split and fastai_audio's merge exactly,
MFCC and deltas within bounds a few times the differences measured."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file

from orcaport.model.config import FrontendConfig
from orcaport.model.frontend.features import deltas, mfcc
from orcaport.model.frontend.silence import merge_intervals, nonsilent_intervals
from tests.conftest import run_legacy

pytestmark = pytest.mark.legacy
# Measured 2026-12-03 on an Intel Xeon (AVX-512, AMX): MFCC 0 (the same float32 ops as torchaudio),
# deltas 7.2e-6 (scipy 1.17 vs 1.13 Savitzky-Golay). Bounds: MFCC coefficients reach ~1e3, so a
# float32 sum in another kernel order may move them by ~1e-4; deltas are dB per frame.
MFCC_ATOL = 1e-3
DELTA_ATOL = 1e-4


@pytest.fixture(scope="module")
def legacy(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    tmp = tmp_path_factory.mktemp("options")
    result = run_legacy(["tests/legacy/frontend_options.py", str(tmp / "out.safetensors")], timeout=600, home=tmp)
    return result, load_file(tmp / "out.safetensors")


def test_silence_splits_equal_legacys(legacy) -> None:
    result, t = legacy
    for i, (rate, channels, thr, pad_ms) in enumerate(result["cases"]["silence"]):
        pad = int(pad_ms / 1000 * rate)
        ours = nonsilent_intervals(t[f"silence{i}/y"], thr, pad)
        assert np.array_equal(ours, t[f"silence{i}/split"]), i
        assert np.array_equal(merge_intervals(ours, pad), t[f"silence{i}/merged"]), i


def test_mfcc_and_deltas_within_measured_bounds(legacy) -> None:
    result, t = legacy
    worst = {"mfcc": 0.0, "delta": 0.0}
    for i, (rate, n_mfcc, variant) in enumerate(result["cases"]["mfcc"]):
        cfg = dataclasses.replace(FrontendConfig(), n_mfcc=n_mfcc, **variant)
        got = mfcc(torch.from_numpy(t[f"mfcc{i}/y"]), cfg, rate).numpy()
        assert got.shape == t[f"mfcc{i}/out"].shape
        worst["mfcc"] = max(worst["mfcc"], float(np.abs(got - t[f"mfcc{i}/out"]).max()))
    for i, _ in enumerate(result["cases"]["delta"]):
        got = deltas(torch.from_numpy(t[f"delta{i}/spec"])).numpy()
        worst["delta"] = max(worst["delta"], float(np.abs(got - t[f"delta{i}/out"]).max()))
    print(f"\nclean vs legacy env: {worst} (legacy: numpy {result['numpy']}, scipy {result['scipy']}, "
          f"torch {result['torch']}; here numpy {np.__version__}, torch {torch.__version__})")
    assert worst["mfcc"] <= MFCC_ATOL and worst["delta"] <= DELTA_ATOL
