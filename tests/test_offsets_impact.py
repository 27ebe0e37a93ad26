"""How far the runtime's deterministic offsets move answers against legacy's random draws
(model/frontend/offsets.py), measured on the fixture learner, several seeds of Python's `random`
(what fastai_audio draws from), and the claim it supports: the runtime's answer is no further from
a legacy run than legacy runs are from each other.

  pad_mode "zeros" (what OrcaHello production really runs): the flagship 60 s file, 59 clips of
  157 frames padded to 312 with randint(0, 155) zero columns in front;
  crops: fastai_audio's predict with duration=2000 ms on the corpus files longer than 2 s, each
  file cropped at randint(0, frames - 156).

`pytest -s` prints the figures the README quotes.
"""

from __future__ import annotations

import dataclasses
import itertools
import random

import numpy as np
import pytest
import torch

from orcaport.model.aggregate import aggregate
from orcaport.model.audio import decode_pcm, slice_ms
from orcaport.model.detector import Detector
from orcaport.model.pipeline import frontend_stages
from orcaport.model.predict import file_inputs
from orcaport.model.spectrogram import pad_or_crop
from tests.conftest import CORPUS, FLAGSHIP
from tests.test_predict import model_folder

SEEDS = range(4)


def network(det: Detector, x: torch.Tensor) -> np.ndarray:
    with det.network_context():
        return torch.cat([det.run_network(x[i:i + 8]) for i in range(0, len(x), 8)]).numpy().astype(np.float64)


def compare(a: np.ndarray, b: np.ndarray, rows: bool) -> dict[str, float]:
    d = {"mean": float(np.abs(a - b).mean()), "max": float(np.abs(a - b).max())}
    if rows:
        x, y = aggregate(a), aggregate(b)
        d.update(flips=int((x.local_prediction != y.local_prediction).sum()),
                 global_differs=int(x.global_prediction != y.global_prediction))
    return d


def spread(runtime: np.ndarray, drawn: dict[int, np.ndarray], rows: bool) -> tuple[dict, dict]:
    vs = [compare(runtime, p, rows) for p in drawn.values()]
    own = [compare(drawn[a], drawn[b], rows) for a, b in itertools.combinations(drawn, 2)]
    mean = lambda rs: {k: float(np.mean([r[k] for r in rs])) for k in rs[0]}  # noqa: E731
    return mean(vs), mean(own)


def test_zeros_padding_runtime_offset_against_legacy_draws(tmp_path) -> None:
    det = Detector.from_folder(model_folder(tmp_path / "m", pad_mode="zeros"))
    pcm = decode_pcm(CORPUS / FLAGSHIP)
    dbs = [frontend_stages(slice_ms(pcm, b * 1000, (b + 2) * 1000), det._fe, zeros_front=0)["db"] for b in range(59)]
    span = 312 - dbs[0].shape[-1]

    def probs(offsets: list[int]) -> np.ndarray:
        return network(det, torch.stack([pad_or_crop(d, det.frontend, 20000, zeros_front=o) for d, o in zip(dbs, offsets)]))

    runtime = probs([span // 2] * len(dbs))
    drawn = {}
    for s in SEEDS:
        rng = random.Random(s)
        drawn[s] = probs([rng.randint(0, span) for _ in dbs])
    vs, own = spread(runtime, drawn, rows=True)
    print(f"\npad 'zeros', {FLAGSHIP}: runtime vs legacy draws {vs}; legacy vs legacy {own}")
    assert vs["mean"] <= own["mean"] and vs["global_differs"] == own["global_differs"] == 0


def test_crop_runtime_offset_against_legacy_draws(tmp_path) -> None:
    det = Detector.from_folder(model_folder(tmp_path / "m", duration=2000), mode="predict")
    uncropped = dataclasses.replace(det._fe, cfg=dataclasses.replace(det.frontend, duration=None))
    files = sorted(p for p in CORPUS.glob("*.wav") if "short" not in p.name and "exact_2s" not in p.name)
    dbs = [torch.as_tensor(file_inputs(uncropped, p)[0][0]["input"]) for p in files]
    width = 156

    def probs(starts: list[int]) -> np.ndarray:
        return network(det, torch.stack([pad_or_crop(d, det.frontend, 20000, crop_start=s) for d, s in zip(dbs, starts)]))

    runtime = probs([(d.shape[-1] - width) // 2 for d in dbs])
    drawn = {}
    for s in SEEDS:
        rng = random.Random(s)
        drawn[s] = probs([rng.randint(0, d.shape[-1] - width) for d in dbs])
    vs, own = spread(runtime, drawn, rows=False)
    decisions = lambda p: (p > 0.5).astype(int)  # noqa: E731
    flips = np.mean([(decisions(runtime) != decisions(p)).sum() for p in drawn.values()])
    own_flips = np.mean([(decisions(drawn[a]) != decisions(drawn[b])).sum()
                         for a, b in itertools.combinations(drawn, 2)])
    print(f"\ncrop to 2 s, {len(files)} files: runtime vs legacy draws {vs}, decision flips {flips}; "
          f"legacy vs legacy {own}, flips {own_flips}")
    assert all(d.shape[-1] > width for d in dbs)
    assert vs["mean"] <= own["mean"]
