"""fastai_audio's own predict, as a runtime mode: one prediction per file, or per item when the
frontend makes several of a file (segment_size, remove_silence="split").

What runs in legacy (audio_predict / audio_predict_all fail as shipped, ../shared/LEGACY.md):
`AudioList.from_folder(folder, config=cfg).split_none().label_empty()`, then `learn.predict(x)` for
each x of `.train.x`, which returns (category, index, probabilities). Here, per file:

    read_file (soundfile float32, channels first) -> the config's chain from downmix to input
    (model/pipeline.py run_items: a fan-out step makes several items) -> the network -> softmax
    -> per item: label = classes[argmax], index = argmax, probabilities (all classes)

Items come in legacy's order (the caches list a file's pieces 0, 1, ...). Where legacy draws a
random offset (pad_mode "zeros", a crop, max_to_pad's padding) the runtime takes the middle of the
range (model/frontend/offsets.py); `offsets` replays recorded draws instead (parity, tests).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from orcaport.model.frontend.files import read_file
from orcaport.model.pipeline import Frontend, run_items

ITEM_FIELDS = ("file", "item", "start_s", "duration_s", "label", "index")


@dataclass(frozen=True)
class ItemPrediction:
    """One item's `learn.predict` answer: label (the class name), index, probabilities (all
    classes, softmax, float32 widened). start_s: where the item begins in the file (None once
    remove_silence moved it); duration_s: its signal's length, padding included."""

    file: str
    item: int
    start_s: float | None
    duration_s: float
    label: str
    index: int
    probabilities: tuple[float, ...]

    def to_dict(self, classes: Sequence[str]) -> dict[str, Any]:
        return {**{k: getattr(self, k) for k in ITEM_FIELDS},
                "probabilities": dict(zip(classes, self.probabilities))}


def item_starts(fe: Frontend, n_items: int) -> list[float | None]:
    """Each item's start in the file, in seconds: 0 for a whole file, k * segment_size for segment
    k; None after remove_silence (the pieces' places depend on the audio)."""
    if fe.cfg.remove_silence is not None:
        return [None] * n_items
    if fe.cfg.segment_size is not None:
        return [k * fe.cfg.segment_size / 1000 for k in range(n_items)]
    return [0.0] * n_items


def file_inputs(fe: Frontend, path: str | Path, offsets: Sequence[dict[str, int]] | None = None
                ) -> tuple[list[dict[str, Any]], int]:
    """A file through the chain: one {stage: tensor} per item, and the file's rate. `offsets`: per
    item, the draws legacy made ({"signal_front", "zeros_front", "crop_start"}) to replay them."""
    x, rate = read_file(path)
    chain = fe.chain
    fan = [n for n in chain if n in ("silence", "segment")]
    shared = run_items(x, fe, rate, "downmix", fan[-1]) if fan else [{}]
    items = []
    for i, stages in enumerate(shared):
        item_fe = dataclasses.replace(fe, **offsets[i]) if offsets is not None else fe
        first = chain[chain.index(fan[-1]) + 1] if fan else "downmix"
        start = stages[fan[-1]] if fan else x
        items.append({"load": x, **stages, **run_items(start, item_fe, rate, first, "input")[0]})
    return items, rate


def predict_file(detector: Any, path: str | Path, offsets: Sequence[dict[str, int]] | None = None
                 ) -> list[ItemPrediction]:
    """fastai_audio's predict on one file with a `Detector` built with mode="predict"."""
    fe: Frontend = detector._fe
    items, rate = file_inputs(fe, path, offsets)
    signal = [n for n in fe.chain if n not in fe.spectral_steps][-1]
    inputs = [torch.as_tensor(it["input"]) for it in items]
    probs: list[torch.Tensor] = []
    with detector.network_context():
        i = 0
        while i < len(inputs):                 # batches of equal shapes (widths vary without duration)
            j = i + 1
            while j < len(inputs) and j - i < detector.batch_size and inputs[j].shape == inputs[i].shape:
                j += 1
            probs.append(detector.network_probabilities(torch.stack(inputs[i:j])))
            i = j
    p = torch.cat(probs).numpy() if probs else np.zeros((0, len(detector.artifact.config.classes)), np.float32)
    classes = detector.artifact.config.classes
    out_rate = fe.rate_after_resample(rate)
    name = Path(path).name
    return [ItemPrediction(name, k, start, items[k][signal].shape[-1] / out_rate, classes[int(row.argmax())],
                           int(row.argmax()), tuple(float(v) for v in row))
            for k, (row, start) in enumerate(zip(p, item_starts(fe, len(items))))]
