"""`make bench`'s int8 candidate for CPUs without bf16 hardware: is it worth a runtime path?

Issue 15 allows `fast` an int8 network on CPUs without AVX512-BF16/AMX only if it keeps >= 99.5 %
local and 100 % global decision agreement with fp32. This measures the cheapest int8 there is in
the clean env -- torch's post-training static quantization (FX graph mode, `x86` backend: fbgemm /
oneDNN VNNI kernels, per-channel int8 weights, activations calibrated by histogram) -- on a
model folder: agreement with the fp32 detector on the corpus, and network time per clip against
the fp32 oneDNN engine, same batches (4), same threads.

Calibration uses training clips (bench/train.py's training seed), never the corpus it is scored on.
Shapes: calibration (32, 1, n_mels, width) float32; corpus inputs per file (clips, 1, n_mels, width).
The int8 network is model/quantized.py's, the one `orcaport detect --arithmetic int8` runs; only its
calibration differs (training clips here, the user's recordings there: `orcaport calibrate`).
This is a measurement: model/ never imports it.

    python -m bench.clean_worker int8 --model DIR --corpus DIR
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from bench.models import agreement, corpus_files
from bench.train import TRAIN_SEED, make_inputs
from orcaport.model.aggregate import aggregate
from orcaport.model.detector import Detector, _intra_op_threads, open_audio
from orcaport.model.quantized import calibrate, quantized_engine

CALIBRATION_PER_CLASS = 16
BATCH = 4


def quantize(det: Detector, calibration: torch.Tensor) -> torch.nn.Module:
    """`det`'s fp32 OrcaNet -> the int8 network `orcaport detect --arithmetic int8` runs (model/quantized.py:
    body int8, head fp32), calibrated here on `calibration` instead of a stored calibration."""
    net = det.artifact.network.eval()
    return calibrate(net, [calibration], quantized_engine())[0]


def _probs(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, positive: int) -> np.ndarray:
    with torch.inference_mode():
        return torch.cat([torch.softmax(fn(x[s:s + BATCH]).float(), dim=1)[:, positive]
                          for s in range(0, len(x), BATCH)]).numpy()


def measure(model: Path, corpus: Path, repeats: int = 3,
            calibration_per_class: int = CALIBRATION_PER_CLASS) -> dict[str, Any]:
    """int8 vs fp32 (the legacy-exact engine): decisions on the corpus, network ms per clip."""
    det = Detector.from_folder(model, workers=1)
    t0 = time.perf_counter()
    calibration, _ = make_inputs(TRAIN_SEED, calibration_per_class, det.artifact.config)
    with _intra_op_threads(1):
        q = quantize(det, calibration)
        quantize_s = time.perf_counter() - t0
        local: dict[str, list] = {"fp32": [], "int8": []}
        glob: dict[str, list] = {"fp32": [], "int8": []}
        max_diff, inputs = 0.0, []
        for wav in corpus_files(corpus):
            src = open_audio(wav)
            x = det.batch_inputs(list(det.clip_inputs(src)), src)
            inputs.append(x)
            for key, fn in (("fp32", det.network), ("int8", q)):
                p = _probs(fn, x, det.positive_index)
                agg = aggregate(p.astype(np.float64), 0.5, 3)
                local[key].append(agg.local_prediction)
                glob[key].append(agg.global_prediction)
                if key == "fp32":
                    ref = p
            max_diff = max(max_diff, float(np.abs(p - ref).max()))
        # Speed: the same 32 inputs through both, alternated, one thread each (the 1-CPU question).
        x = torch.cat(inputs)[:32]
        times: dict[str, list[float]] = {"fp32": [], "int8": []}
        for _ in range(repeats + 1):
            for key, fn in (("fp32", det.network), ("int8", q)):
                t = time.perf_counter()
                _probs(fn, x, det.positive_index)
                times[key].append((time.perf_counter() - t) / len(x))
    ms = {k: 1000 * float(np.median(v[1:])) for k, v in times.items()}
    return {"method": "FX post-training static quantization of the body (head fp32, model/quantized.py), "
                      f"{quantized_engine()} engine (fbgemm/oneDNN VNNI), calibrated on {2 * calibration_per_class} training clips",
            "files": len(glob["fp32"]), "seconds": int(sum(len(v) for v in local["fp32"])),
            "local_agreement": agreement(local["fp32"], local["int8"]),
            "global_agreement": agreement([np.array(glob["fp32"])], [np.array(glob["int8"])]),
            "max_abs_prob_diff": max_diff, "fp32_ms_per_clip": ms["fp32"], "int8_ms_per_clip": ms["int8"],
            "speedup": ms["fp32"] / ms["int8"], "threads": 1, "batch": BATCH, "quantize_s": quantize_s}
