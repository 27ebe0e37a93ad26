"""`make zoo`: one tiny learner per body family of fastai's model_meta and one per fastai_audio
option, converted and referenced.

    python -m convert.zoo --out reference_outputs/zoo [--only resnet18 opt_mfcc ...] [--work DIR]

Each entry is a real `audio_learner(models.<body>, pretrained=False)` trained, with its entry's
AudioConfig options, on synthetic call-vs-noise clips at 8 kHz through a small frontend
(ZOO_FRONTEND: 64 mels x 93 frames, every body's strides fit), its body convs fixed to
convert/zoo_weights.py's pattern (so the checkout holds ~1 % of each model), BatchNorms and head
trained for one short epoch. Then exactly what a user runs: `make convert` (convert/cli.py), `make
references` (windowed mode, convert/references.py) and, for option entries, `make
predict-references` (fastai_audio's own predict, convert/predict_references.py) on the entry's
recording, then `make predict-envelope` (convert/predict_envelope.py: predict mode's own tolerances).
Committed per entry: config.json, residual.safetensors, stages/ (windowed references), predict/
(predict references), predict_envelope.json + predict_tolerances.json, zoo.json; the model.pkl
stays in --work.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch

from convert.legacy import isolated_home, legacy_versions, patch_torchaudio_io, seed_everything
from convert.production import legacy_audio_config
from orcaport.model.config import SUPPORTED_BODIES, FrontendConfig
from orcaport.model.fileio import replace_folder, sha256_file
from orcaport.parity.testaudio.training import make_training_set

ZOO_AUDIO = "zoo_call_8k_3s.wav"         # 2 windows: noise, then a call
PREDICT_ENVELOPE, PREDICT_TOLERANCES = "predict_envelope.json", "predict_tolerances.json"
GAPS_AUDIO = "zoo_gaps_8k_3s.wav"        # two calls apart, in near-silence: what silence options cut


@dataclass(frozen=True)
class ZooEntry:
    arch: str                            # fastai models.<arch>
    changes: dict[str, Any] = field(default_factory=dict)    # AudioConfig options over ZOO_FRONTEND
    audio: str = "audio"                 # the entry's recordings, a folder of the zoo
    modes: tuple[str, ...] = ("windowed",)   # windowed: `make references`; predict: fastai_audio's
    windowing: dict[str, int] = field(default_factory=dict)  # config.json's, edited as a user would


def _option(changes: dict[str, Any], modes: tuple[str, ...] = ("windowed", "predict")) -> ZooEntry:
    # squeezenet1_1: the smallest residual, and its strides take 40 MFCC rows
    return ZooEntry("squeezenet1_1", changes, "audio_options", modes)


# One per body family (`delta` also gives the 3-channel stem), one per fastai_audio option.
ZOO: dict[str, ZooEntry] = {
    "resnet18": ZooEntry("resnet18"),
    "densenet121": ZooEntry("densenet121"),
    "vgg11_bn": ZooEntry("vgg11_bn"),
    "squeezenet1_1": ZooEntry("squeezenet1_1"),
    "alexnet": ZooEntry("alexnet"),
    "mobilenet_v2": ZooEntry("mobilenet_v2"),
    "squeezenet1_1_delta": ZooEntry("squeezenet1_1", {"delta": True}),
    "opt_mfcc": _option({"mfcc": True, "n_mfcc": 40}),
    "opt_standardize": _option({"standardize": True}),
    # a 2 s window (63 frames) padded to 79 at a random front, the 3 s file (94) cropped at a random offset
    "opt_zeros": _option({"pad_mode": "zeros", "duration": 2500}),
    "opt_trim": _option({"remove_silence": "trim"}),
    "opt_all": _option({"remove_silence": "all"}),
    "opt_max_to_pad": _option({"max_to_pad": 1500.0}),
    "opt_delta": _option({"delta": True}),           # the 3-channel stem, both modes
    # several items per file: fastai_audio's predict only (windowed detection refuses them)
    "opt_split": _option({"remove_silence": "split"}, ("predict",)),
    "opt_segment_size": _option({"segment_size": 1000}, ("predict",)),
    # windowed detection's other clips: 1 s clips every 2 s (windows at 0 and 2 s; rows every 2 s)
    "opt_windows": ZooEntry("squeezenet1_1", {}, "audio_options", ("windowed",),
                            {"clip_seconds": 1, "hop_seconds": 2}),
}
# 8 kHz, 64 mels, 3 s target width (93 frames; a 2 s clip's 63 frames padded after with 0.0 dB):
# small tensors, and AlexNet's stride-4 stem still leaves its three max pools something to pool.
ZOO_FRONTEND = dict(resample_to=8000, n_fft=512, hop_length=256, n_mels=64, f_max=4000.0, duration=3000)
SAMPLE_RATE = 8000          # the training clips and the test recording
SEED = 20261203
CLIPS_PER_CLASS = {"train": 8, "valid": 4}
LIN_FTRS = [32]             # a small head: the residual stays small
EPOCHS, MAX_LR, BATCH = 1, 1e-2, 4


def frontend(changes: dict[str, Any]) -> FrontendConfig:
    return FrontendConfig(**{**ZOO_FRONTEND, **changes})


def write_audio(path: Path) -> None:
    """3 s at 8 kHz: 1 s of noise, then a 2 s call (so the two clips differ)."""
    clips = make_training_set(SEED + 7, 1, 1, seconds=2.0, sample_rate=SAMPLE_RATE)
    call, noise = clips[0][0], clips[1][0]
    x = np.concatenate([noise[:SAMPLE_RATE], call])
    pcm = np.clip(np.round(x * 32767.0), -32768, 32767).astype(np.int16)
    sf.write(str(path), pcm, SAMPLE_RATE, subtype="PCM_16")


def write_gaps_audio(path: Path) -> None:
    """3 s at 8 kHz: calls at 0.1-0.9 s and 1.6-2.5 s over a -60 dBFS floor, so silence is cut:
    "trim" keeps 0.1-2.5 s, "split" two pieces, "all" both joined."""
    from orcaport.parity.testaudio.synth import pulsed_call

    rng = np.random.default_rng(SEED + 11)
    x = 1e-3 * rng.standard_normal(3 * SAMPLE_RATE)
    for start, seconds in ((0.1, 0.8), (1.6, 0.9)):
        call = 0.25 * pulsed_call(rng, seconds, SAMPLE_RATE)
        x[int(start * SAMPLE_RATE):int(start * SAMPLE_RATE) + len(call)] += call
    pcm = np.clip(np.round(x * 32767.0), -32768, 32767).astype(np.int16)
    sf.write(str(path), pcm, SAMPLE_RATE, subtype="PCM_16")


AUDIO_WRITERS = {("audio", ZOO_AUDIO): write_audio, ("audio_options", GAPS_AUDIO): write_gaps_audio}


def write_data(root: Path) -> None:
    for split, n in CLIPS_PER_CLASS.items():
        for i, (audio, label) in enumerate(make_training_set(SEED + len(split), n, n, 2.0, SAMPLE_RATE)):
            folder = root / split / label
            folder.mkdir(parents=True, exist_ok=True)
            pcm = np.clip(np.round(np.asarray(audio) * 32767.0), -32768, 32767).astype(np.int16)
            sf.write(str(folder / f"{i:03d}.wav"), pcm, SAMPLE_RATE, subtype="PCM_16")


def train(arch: str, fe: FrontendConfig, data_root: Path) -> tuple[Any, float]:
    """audio_learner on `arch`, body convs on the zoo pattern and frozen, the rest trained."""
    from audio.data import AudioList
    from audio.learner import audio_learner
    from fastai.vision import models

    from convert.introspect import introspect_body, introspect_head
    from convert.keymap import fastai_to_clean_keys
    from convert.zoo_weights import is_patterned, pattern

    seed_everything(SEED)
    config = legacy_audio_config(fe)
    # fastai_audio keys its spectrogram cache by file path, not by config: one cache per config, or
    # a `delta` learner would train on the 1-channel spectrograms an earlier entry cached.
    config.cache_dir = data_root.parent / "cache" / hashlib.sha256(repr(sorted(
        dataclasses.asdict(fe).items())).encode()).hexdigest()[:16]
    data = (AudioList.from_folder(data_root, config=config)
            .split_by_folder(train="train", valid="valid").label_from_folder()
            .databunch(bs=BATCH, num_workers=0))
    learn = audio_learner(data, base_arch=getattr(models, arch), pretrained=False, lin_ftrs=LIN_FTRS)
    body, _ = introspect_body(learn.model[0])
    _, layout = introspect_head(learn.model[1])
    params = dict(learn.model.named_parameters())
    names = fastai_to_clean_keys(learn.model.state_dict().keys(), layout, body)
    with torch.no_grad():
        for key, clean in names.items():
            if key in params and is_patterned(clean, tuple(params[key].shape)):
                params[key].copy_(torch.from_numpy(pattern(clean, tuple(params[key].shape))))
                params[key].requires_grad_(False)
    t0 = time.time()
    learn.fit_one_cycle(EPOCHS, MAX_LR, wd=0.0)       # no weight decay: it would move frozen convs
    return learn, time.time() - t0


def build_entry(name: str, work: Path, audio_root: Path) -> dict[str, bytes]:
    """Train, export, convert, reference one zoo entry -> its committed files (relative name: bytes)."""
    from safetensors.numpy import load_file, save_file

    from convert.cli import convert
    from convert.zoo_weights import split

    spec = ZOO.get(name, ZooEntry(name))          # any other model_meta body: 1 channel
    fe = frontend(spec.changes)
    entry = work / name
    learn, seconds = train(spec.arch, fe, work / "data")
    model = entry / "model"
    model.mkdir(parents=True)
    learn.export(model / "model.pkl")
    fe_json = entry / "frontend.json"
    fe_json.write_text(json.dumps(dataclasses.asdict(fe), indent=2, sort_keys=True))
    summary = convert(model / "model.pkl", model, sha256_file(model / "model.pkl"), str(fe_json))
    if spec.windowing:
        config = json.loads((model / "config.json").read_text())
        config["windowing"] = {**config["windowing"], **spec.windowing}
        (model / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    recorders = {"windowed": ("stages", "convert.references", ["--near-threshold", "0"]),
                 "predict": ("predict", "convert.predict_references", [])}
    files: dict[str, bytes] = {}
    for mode in spec.modes:
        folder, module, extra = recorders[mode]
        subprocess.run([sys.executable, "-m", module, "--model", str(model), "--audio",
                        str(audio_root / spec.audio), "--out", str(entry / folder), *extra], check=True)
        for f in sorted((entry / folder).iterdir()):
            files[f"{name}/{folder}/{f.name}"] = f.read_bytes()
    if "predict" in spec.modes:     # predict mode's own tolerances: `make predict-envelope`
        files.update(predict_envelope(name, model, audio_root / spec.audio, entry))
    residual = split(load_file(str(model / "model.safetensors")))
    save_file(residual, str(entry / "residual.safetensors"))
    files[f"{name}/config.json"] = (model / "config.json").read_bytes()
    files[f"{name}/residual.safetensors"] = (entry / "residual.safetensors").read_bytes()
    files[f"{name}/zoo.json"] = (json.dumps({
        "arch": spec.arch, "frontend_changes": spec.changes, "audio": spec.audio, "modes": list(spec.modes),
        **({"windowing": spec.windowing} if spec.windowing else {}),
        "train_seconds": round(seconds, 1),
        "valid_accuracy": float(learn.validate()[1]), "convert": {k: summary[k] for k in (
            "body", "tensors", "max_logit_diff", "weights_sha256")},
        "legacy_versions": legacy_versions()}, indent=2, sort_keys=True) + "\n").encode()
    return files


def predict_envelope(name: str, model: Path, audio: Path, entry: Path) -> dict[str, bytes]:
    """`make predict-envelope` on the entry -> its predict_envelope.json + predict_tolerances.json."""
    from orcaport.parity.envelope import derive_files, render

    out = entry / PREDICT_ENVELOPE
    subprocess.run([sys.executable, "-m", "convert.predict_envelope", "--model", str(model), "--audio", str(audio),
                    "--references", str(entry / "predict"), "--out", str(out)], check=True)
    return {f"{name}/{PREDICT_ENVELOPE}": out.read_bytes(),
            f"{name}/{PREDICT_TOLERANCES}": render(derive_files(out))}


def _fill(tmp: Path, folder: str, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        top, _, inner = rel.partition("/")
        if top == folder:
            (tmp / inner).parent.mkdir(parents=True, exist_ok=True)
            (tmp / inner).write_bytes(data)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m convert.zoo", description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--only", nargs="+", choices=sorted(set(ZOO) | set(SUPPORTED_BODIES)),
                    help="build these entries only (any model_meta body: beyond the committed zoo)")
    ap.add_argument("--work", type=Path, help="keep the learners and scratch files here")
    args = ap.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="orcaport-zoo-"))
    patch_torchaudio_io()
    try:
        with isolated_home(work / "home"):
            files = {}
            for (folder, recording), write in AUDIO_WRITERS.items():
                (work / folder).mkdir(parents=True, exist_ok=True)
                write(work / folder / recording)
                files[f"{folder}/{recording}"] = (work / folder / recording).read_bytes()
            if not (work / "data").is_dir():
                write_data(work / "data")
            for name in args.only or list(ZOO):
                shutil.rmtree(work / name, ignore_errors=True)
                files.update(build_entry(name, work, work))
                print(f"zoo: {name} built", flush=True)
        for folder in sorted({rel.split("/")[0] for rel in files}):    # each entry replaced whole
            replace_folder(args.out / folder, lambda tmp, folder=folder: _fill(tmp, folder, files))
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
