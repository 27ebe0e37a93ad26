"""Record every stage of the real legacy pipeline by wrapping and hooking it, never re-implementing it.

What is wrapped, and which stage each yields (see model/stages.py):
- `pydub.AudioSegment.from_wav` (the whole file) ........................ decode
- `pydub.AudioSegment.export` (each 2 s window as written) ................ clip
- `audio.data.downmix_item`: the torchaudio.load inside it ................ load
- `audio.data.resample_item`: the load of the downmix cache inside it ..... downmix
- `audio.data.remove_silence`: the load of the resample cache inside it .... resample (remove_silence)
- `audio.data.AudioList.add_spectro`: the load of the last cache ......... resample (or silence)
  and every `random.randint` fastai_audio draws inside it ................ offsets/<zeros_front,
                                                                           crop_start, signal_front>
- `audio.data.AudioList.create_spectro`: its signal / its output .......... pad_signal / delta
- `audio.data.MelSpectrogram` / `AmplitudeToDB` / `MFCC` / `standardize` ... mel / db / mfcc / standardize
- forward hooks on `learn.model` ...... input, activations (stem, layer1..4, pooled), logits
- `learn.predict(item)[2]` ............ probs (recorded by the caller)
Every wrapper calls the original and records its real output; the clip a tensor belongs to is
tracked by the file path flowing through fastai_audio's caches.
"""

from __future__ import annotations

import contextlib
import hashlib
import random
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch

from convert.introspect import activation_points


# fastai_audio's functions that draw random.randint, and the offset each draw is (offsets.py)
OFFSET_OF = {"tfm_pad_spectro": "zeros_front", "tfm_crop_time": "crop_start", "tfm_padtrim_signal": "signal_front"}
_SKIPPED = np.empty(0)   # marks a stage seen (twice is still an error) but not kept


def _np(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy().copy()
    return np.array(x, copy=True)


# A light recording (a long file's first pass) keeps only what references store for every clip;
# the clip samples become digests at once; every other stage is dropped before it is copied, so
# memory stays flat however long the file.
LIGHT_KEEP = ("logits", "probs", "activations/pooled")
DIGESTED = "clip"


class Patches:
    """Monkeypatches and model hooks installed for one recording, removed in reverse order."""

    def __init__(self) -> None:
        self._patches: list[tuple[Any, str, Any]] = []
        self._hooks: list[Any] = []

    def _patch(self, owner: Any, name: str, make: Callable[[Any], Any]) -> None:
        # The raw class attribute, so a classmethod is restored as a classmethod.
        original = vars(owner)[name] if isinstance(owner, type) and name in vars(owner) else getattr(owner, name)
        self._patches.append((owner, name, original))
        setattr(owner, name, make(original))

    def _patch_spectrogram_steps(self, ad: Any, record: Callable[[str, Any], None]) -> None:
        """fastai_audio's (audio.data's) spectrogram transforms and standardize, each recorded as
        its stage: mel, db, mfcc, standardize."""
        for name, stage in (("MelSpectrogram", "mel"), ("AmplitudeToDB", "db"), ("MFCC", "mfcc")):
            self._patch(ad, name, lambda o, s=stage: recording_transform(o, s, record))
        self._patch(ad, "standardize", lambda o: recording_function(o, "standardize", record))

    def uninstall(self) -> None:
        for owner, name, original in reversed(self._patches):
            setattr(owner, name, original)
        for h in self._hooks:
            h.remove()
        self._patches.clear()
        self._hooks.clear()


def recording_function(orig: Callable[..., Any], stage: str, record: Callable[[str, Any], None]) -> Callable[..., Any]:
    """`orig`, whose result is recorded as `stage`."""
    def fn(*a: Any, **k: Any) -> Any:
        y = orig(*a, **k)
        record(stage, y)
        return y
    return fn


def recording_transform(cls: type, stage: str, record: Callable[[str, Any], None]) -> type:
    """A subclass of the transform `cls` whose forward output is recorded as `stage`."""
    class Recording(cls):  # type: ignore[misc, valid-type]
        def forward(self_: Any, x: torch.Tensor) -> torch.Tensor:
            y = super().forward(x)
            record(stage, y)
            return y
    Recording.__name__ = cls.__name__
    return Recording


class Recorder(Patches):
    """Collects stage tensors per clip key (the clip's file stem, e.g. 'file_3_5')."""

    def __init__(self, light: bool = False) -> None:
        super().__init__()
        self.light = light
        self.file: dict[str, np.ndarray] = {}
        self.clips: dict[str, dict[str, np.ndarray]] = defaultdict(dict)
        self.clip_of_path: dict[str, str] = {}   # any cache path -> clip key
        self.current: str | None = None          # clip being turned into a spectrogram / predicted

    def record(self, key: str, stage: str, value: Any) -> None:
        if stage in self.clips[key]:
            raise RuntimeError(f"stage {stage} of clip {key} recorded twice; the capture is confused")
        if self.light and stage == DIGESTED:
            a = np.ascontiguousarray(_np(value))
            self.clips[key][stage] = np.frombuffer(hashlib.sha256(a.tobytes()).digest(), np.uint8)
            self.clips[key][stage + "/shape"] = np.array(a.shape, np.int64)
        elif not self.light or stage in LIGHT_KEEP or stage.startswith("offsets/"):
            self.clips[key][stage] = _np(value)
        else:
            self.clips[key][stage] = _SKIPPED

    def _key_for(self, path: Any) -> str:
        path = str(path)
        if path not in self.clip_of_path:
            self.clip_of_path[path] = Path(path).stem
        return self.clip_of_path[path]

    def install(self, learn: Any) -> None:
        import audio.data as ad
        import torchaudio
        from pydub import AudioSegment

        rec = self

        def wrap_from_wav(orig: Any) -> Any:
            def from_wav(cls_or_file: Any, *args: Any, **kwargs: Any) -> Any:
                seg = orig(cls_or_file, *args, **kwargs)
                if "decode" not in rec.file:   # an hour of audio is 345 MB: keep its digest only
                    a = np.array(seg.get_array_of_samples()).reshape(-1, seg.channels)
                    rec.file["decode"] = {"shape": list(a.shape), "dtype": str(a.dtype),
                                          "sha256": hashlib.sha256(a.tobytes()).hexdigest()}
                return seg
            return from_wav

        def wrap_export(orig: Any) -> Any:
            def export(seg: Any, out_f: Any = None, *args: Any, **kwargs: Any) -> Any:
                result = orig(seg, out_f, *args, **kwargs)
                key = Path(str(out_f)).stem
                rec.clip_of_path[str(out_f)] = key
                rec.record(key, "clip", np.array(seg.get_array_of_samples()).reshape(-1, seg.channels))
                return result
            return export

        def wrap_stage_item(orig: Any, load_stage: str) -> Any:
            """downmix_item/resample_item: what they *load* is the previous stage's output."""
            def item_fn(item: Any, config: Any, path: Any) -> Any:
                key = rec._key_for(item[0])
                real_load = torchaudio.load

                def load(p: Any, *a: Any, **k: Any) -> Any:
                    sig, sr = real_load(p, *a, **k)
                    rec.record(key, load_stage, sig)
                    return sig, sr
                torchaudio.load = load
                try:
                    out = orig(item, config, path)
                finally:
                    torchaudio.load = real_load
                for produced, _label in out:
                    rec.clip_of_path[str(produced)] = key
                return out
            return item_fn

        def wrap_add_spectro(orig: Any) -> Any:
            def add_spectro(self_: Any, fn: Any, *a: Any, **k: Any) -> Any:
                key = rec._key_for(fn)
                real_load, real_randint = torchaudio.load, random.randint
                loaded = "silence" if self_.config.remove_silence else "resample"

                def load(p: Any, *la: Any, **lk: Any) -> Any:
                    sig, sr = real_load(p, *la, **lk)
                    rec.record(key, loaded, sig)
                    return sig, sr

                def randint(lo: int, hi: int) -> int:     # fastai_audio's random offsets, by drawer
                    value = real_randint(lo, hi)
                    drawer = sys._getframe(1).f_code.co_name
                    if drawer in OFFSET_OF:
                        rec.record(key, f"offsets/{OFFSET_OF[drawer]}", np.array([value], np.int64))
                    return value
                torchaudio.load, random.randint = load, randint
                # Python's random seeded per clip: the references' two passes (and a resumed run)
                # draw the same offsets for a clip -- one of legacy's possible draws, recorded above
                random.seed(int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big"))
                rec.current = key
                try:
                    return orig(self_, fn, *a, **k)
                finally:
                    torchaudio.load, random.randint = real_load, real_randint
            return add_spectro

        def wrap_create_spectro(orig: Any) -> Any:
            def create_spectro(self_: Any, item: Any) -> Any:
                cfg = self_.config
                if rec.current is not None and (cfg.max_to_pad or cfg.segment_size):
                    rec.record(rec.current, "pad_signal", item.sig)
                out = orig(self_, item)
                if rec.current is not None and cfg.delta:
                    rec.record(rec.current, "delta", out)
                return out
            return create_spectro

        def record(stage: str, y: Any) -> None:
            if rec.current is not None:
                rec.record(rec.current, stage, y)

        self._patch(AudioSegment, "from_wav", lambda o: classmethod(wrap_from_wav(o.__func__)))
        self._patch(AudioSegment, "export", wrap_export)
        self._patch(ad, "downmix_item", lambda o: wrap_stage_item(o, "load"))
        self._patch(ad, "resample_item", lambda o: wrap_stage_item(o, "downmix"))
        self._patch(ad, "remove_silence", lambda o: wrap_stage_item(o, "resample"))
        self._patch(ad.AudioList, "add_spectro", wrap_add_spectro)
        self._patch(ad.AudioList, "create_spectro", wrap_create_spectro)
        self._patch_spectrogram_steps(ad, record)
        self._install_model_hooks(learn.model)

    def _install_model_hooks(self, model: torch.nn.Module) -> None:
        body, head = model[0], model[1]
        points = activation_points(body)     # any model_meta body: where its five stages end
        points["pooled"] = head[1]  # Flatten after the pool
        rec = self

        def pre_hook(_m: Any, inputs: tuple[torch.Tensor, ...]) -> None:
            rec.record(rec.current, "input", inputs[0][0])

        def out_hook(name: str) -> Callable[..., None]:
            def hook(_m: Any, _i: Any, output: torch.Tensor) -> None:
                rec.record(rec.current, f"activations/{name}", output[0])
            return hook

        def logits_hook(_m: Any, _i: Any, output: torch.Tensor) -> None:
            rec.record(rec.current, "logits", output[0])

        self._hooks.append(model.register_forward_pre_hook(pre_hook))
        for name, module in points.items():
            self._hooks.append(module.register_forward_hook(out_hook(name)))
        self._hooks.append(model.register_forward_hook(logits_hook))



@contextlib.contextmanager
def recording(learn: Any, light: bool = False) -> Iterator[Recorder]:
    rec = Recorder(light)
    rec.install(learn)
    try:
        yield rec
    finally:
        rec.uninstall()
