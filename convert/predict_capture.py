"""Record every stage of fastai_audio's own predict path (legacy env) by wrapping it, never
re-implementing it: `AudioList.from_folder(folder, config).split_none().label_empty()`, then
`learn.predict(x)` for each item of `.train.x` (../shared/LEGACY.md).

A stage is what the next function *loads* or what a transform returns (model/stages.py names):
- every `torchaudio.load` inside `downmix_item` / `resample_item` / `remove_silence` /
  `segment_items` / `AudioList.open`: the original file -> load; a cache file -> the stage that
  wrote it (downmix_item -> downmix, resample_item -> resample, remove_silence -> silence,
  segment_items -> segment);
- `AudioList.create_spectro`: its signal (max_to_pad / segment_size set) -> pad_signal, its output
  (delta set) -> delta; a waveform learner's opened signal -> pad_signal;
- `audio.data.MelSpectrogram` / `AmplitudeToDB` / `MFCC` / `standardize` -> mel / db / mfcc / standardize;
- `random.randint` inside `AudioList.open`, tagged by the drawing function -> offsets (capture.OFFSET_OF);
- forward hooks on `learn.model` -> input, logits.
Where a tensor belongs: a *node* is the lineage of a signal through the fan-out steps, () for the
file, (j,) for remove_silence's piece j, (j, k) for segment k of it ...; the items are the nodes
`x.items` ends with. `storage_key` names each node in the references.
"""

from __future__ import annotations

import contextlib
import hashlib
import random
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from convert.capture import OFFSET_OF, Patches, _np

Node = tuple[int, ...]
# fastai_audio's preprocessing functions (audio/data.py), the stage each one's cache files hold,
# and whether it turns one signal into several (a fan-out)
PREPROCESS = (("downmix_item", "downmix", False), ("resample_item", "resample", False),
              ("remove_silence", "silence", True), ("segment_items", "segment", True))


def item_seed(name: str, i: int) -> int:
    """Python's random seeded per item, so a re-run draws the same offsets (one of legacy's draws)."""
    return int.from_bytes(hashlib.sha256(f"{name}/{i}".encode()).digest()[:8], "big")


class PredictRecorder(Patches):
    """Stage tensors per node of one recording, while fastai_audio preprocesses and predicts it."""

    def __init__(self, original: Path) -> None:
        super().__init__()
        self.original = str(original)
        self.nodes: dict[Node, dict[str, np.ndarray]] = defaultdict(dict)
        self.fan_stage: dict[int, str] = {}        # lineage depth -> the fan-out stage that made it
        self.made: dict[str, tuple[str, Node]] = {}  # cache file -> (stage it holds, node)
        self.offsets: dict[Node, dict[str, int]] = defaultdict(dict)
        self.current: Node | None = None          # the item being opened / predicted
        self._scope = 0                           # > 0 inside a wrapped fastai_audio function

    # -- bookkeeping -------------------------------------------------------------------------------
    def record(self, node: Node, stage: str, value: Any) -> None:
        if stage in self.nodes[node]:
            raise RuntimeError(f"stage {stage} of node {node} recorded twice; the capture is confused")
        self.nodes[node][stage] = _np(value)

    def node_of(self, path: Any) -> tuple[str, Node]:
        """(the stage a file holds, its node): the original file is `load` of node ()."""
        path = str(path)
        if Path(path).resolve() == Path(self.original).resolve():
            return "load", ()
        if path not in self.made:
            raise RuntimeError(f"fastai_audio loaded {Path(path).name}, which no wrapped step wrote")
        return self.made[path]

    # -- install -----------------------------------------------------------------------------------
    def install(self, learn: Any) -> None:
        import audio.data as ad
        import torchaudio

        rec = self

        def wrap_load(orig: Any) -> Any:
            def load(path: Any, *a: Any, **k: Any) -> Any:
                sig, sr = orig(path, *a, **k)
                if rec._scope:       # not _set_sr / _set_nchannels' peeks before preprocessing
                    stage, node = rec.node_of(path)
                    if stage not in rec.nodes[node]:   # AudioItem may reload what open loaded
                        rec.record(node, stage, sig)
                return sig, sr
            return load

        def wrap_preprocess(orig: Any, stage: str, fans: bool) -> Any:
            def step(item: Any, config: Any, path: Any) -> Any:
                _, parent = rec.node_of(item[0])
                rec._scope += 1
                try:
                    out = orig(item, config, path)
                finally:
                    rec._scope -= 1
                for j, (produced, _label) in enumerate(out):
                    node = parent + (j,) if fans else parent
                    if fans:
                        rec.fan_stage[len(node)] = stage
                    rec.made[str(produced)] = (stage, node)
                return out
            return step

        def wrap_open(orig: Any) -> Any:
            def open_(self_: Any, fn: Any) -> Any:
                real_randint = random.randint

                def randint(lo: int, hi: int) -> int:     # fastai_audio's random offsets, by drawer
                    value = real_randint(lo, hi)
                    drawer = sys._getframe(1).f_code.co_name
                    if drawer in OFFSET_OF and rec.current is not None:
                        rec.offsets[rec.current][OFFSET_OF[drawer]] = value
                    return value
                random.randint = randint
                rec._scope += 1
                try:
                    item = orig(self_, fn)
                finally:
                    random.randint = real_randint
                    rec._scope -= 1
                cfg = self_.config
                if not cfg.use_spectro and (cfg.max_to_pad or cfg.segment_size):
                    rec.record(rec.current, "pad_signal", item.sig)
                return item
            return open_

        def wrap_create_spectro(orig: Any) -> Any:
            def create_spectro(self_: Any, item: Any) -> Any:
                cfg = self_.config
                if cfg.max_to_pad or cfg.segment_size:
                    rec.record(rec.current, "pad_signal", item.sig)
                out = orig(self_, item)
                if cfg.delta:
                    rec.record(rec.current, "delta", out)
                return out
            return create_spectro

        def record(stage: str, y: Any) -> None:
            rec.record(rec.current, stage, y)

        self._patch(torchaudio, "load", wrap_load)
        for name, stage, fans in PREPROCESS:
            self._patch(ad, name, lambda o, s=stage, f=fans: wrap_preprocess(o, s, f))
        self._patch(ad.AudioList, "open", wrap_open)
        self._patch(ad.AudioList, "create_spectro", wrap_create_spectro)
        self._patch_spectrogram_steps(ad, record)

        def pre_hook(_m: Any, inputs: tuple[torch.Tensor, ...]) -> None:
            rec.record(rec.current, "input", inputs[0][0])

        def logits_hook(_m: Any, _i: Any, output: torch.Tensor) -> None:
            rec.record(rec.current, "logits", output[0])

        self._hooks += [learn.model.register_forward_pre_hook(pre_hook),
                        learn.model.register_forward_hook(logits_hook)]

    # -- naming --------------------------------------------------------------------------------
    def storage_key(self, node: Node, items: list[Node]) -> str:
        """'file' for the file's node, 'items/NN' for item NN's, '<fan stage>/JJ' for a piece that
        a later fan-out splits further (e.g. 'silence/03', remove_silence's piece 3, before
        segment_size cuts it; deeper lineages join their indices: 'x/03-01')."""
        if node in items:
            return f"items/{items.index(node):02d}"
        if node == ():
            return "file"
        return f"{self.fan_stage[len(node)]}/" + "-".join(f"{j:02d}" for j in node)


@contextlib.contextmanager
def recording(learn: Any, original: Path) -> Iterator[PredictRecorder]:
    rec = PredictRecorder(original)
    rec.install(learn)
    try:
        yield rec
    finally:
        rec.uninstall()
