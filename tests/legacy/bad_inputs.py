"""Legacy-env bad inputs (run by tests/test_bad_inputs_legacy.py): `convert` and `references` fed
what they must refuse, in-process through their `main`, each answer recorded as
{rc, err (stderr), out_files (what the output folder holds afterwards), ...}.
Prints one `RESULT {json}` line.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import soundfile as sf
import torch
from torch import nn

from tests.paths import CORPUS, FIXTURE  # noqa: E402 (run with the checkout on PYTHONPATH)

warnings.simplefilter("ignore")


class Marker:
    """Unpickling this creates a file: proof that a pickle was (or was not) opened."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[str, str]]:
        return open, (self.path, "w")


def run(main: Callable[[list[str]], int], args: list[str], out: Path | None = None) -> dict[str, Any]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main(args)
    files = sorted(p.name for p in out.iterdir()) if out is not None and out.is_dir() else None
    return {"rc": rc, "err": err.getvalue().strip(), "out_files": files}


def model_copy(tmp: Path, name: str) -> Path:
    """A fixture folder to tamper with: model.pkl hard-linked (read only), the rest copied."""
    dst = tmp / name
    dst.mkdir()
    for f in FIXTURE.iterdir():
        (os.link if f.name == "model.pkl" else shutil.copy)(f, dst / f.name)
    return dst


def convert_cases(tmp: Path, learners: dict[str, Path]) -> dict[str, Any]:
    from convert.cli import main
    from orcaport.model.fileio import sha256_file

    out: dict[str, Any] = {}
    marker = tmp / "UNPICKLED"
    evil = tmp / "evil" / "model.pkl"
    evil.parent.mkdir()
    torch.save(Marker(str(marker)), evil)
    sha = sha256_file(evil)
    out["marker_wrong_sha"] = run(main, ["--model", str(evil), "--out", str(tmp / "o1"), "--sha256", "0" * 64],
                                  tmp / "o1")
    out["marker_wrong_sha"]["marker"] = marker.exists()
    fe = json.loads((FIXTURE / "config.json").read_text())["frontend"]
    (tmp / "fe.json").write_text(json.dumps({**fe, "n_fft": "2560"}))
    out["frontend_bad_type"] = run(main, ["--model", str(evil), "--out", str(tmp / "o2"), "--sha256", sha,
                                          "--frontend", str(tmp / "fe.json")], tmp / "o2")
    out["frontend_bad_type"]["marker"] = marker.exists()   # refused before the pickle was opened
    # control: with its real hash the same pickle IS opened (the payload works), then refused
    out["marker_right_sha"] = run(main, ["--model", str(evil), "--out", str(tmp / "o3"), "--sha256", sha],
                                  tmp / "o3")
    out["marker_right_sha"]["marker"] = marker.exists()
    out["missing_pkl"] = run(main, ["--model", str(tmp / "nope.pkl"), "--out", str(tmp / "o4")], tmp / "o4")
    out["no_expected_sha"] = run(main, ["--model", str(evil), "--out", str(tmp / "o5")], tmp / "o5")
    out["malformed_sha"] = run(main, ["--model", str(evil), "--out", str(tmp / "o6"), "--sha256", "xyz"])
    d = tmp / "dict" / "model.pkl"
    d.parent.mkdir()
    torch.save({"model": "not a learner", "weights": [1, 2]}, d)
    out["dict_pickle"] = run(main, ["--model", str(d), "--out", str(tmp / "o7"), "--sha256", sha256_file(d)],
                             tmp / "o7")
    cut = tmp / "cut" / "model.pkl"
    cut.parent.mkdir()
    cut.write_bytes((FIXTURE / "model.pkl").read_bytes()[: 20_000_000])
    out["truncated_pkl"] = run(main, ["--model", str(cut), "--out", str(tmp / "o8"), "--sha256",
                                      sha256_file(cut)], tmp / "o8")
    flipped = model_copy(tmp, "flipped")
    blob = bytearray((flipped / "model.pkl").read_bytes())
    blob[len(blob) // 2] ^= 0x01
    (flipped / "model.pkl").unlink()   # the link: never write through it into the fixture
    (flipped / "model.pkl").write_bytes(bytes(blob))
    before = {f: (flipped / f).read_bytes() for f in ("config.json", "model.safetensors")}
    out["tampered_pkl"] = run(main, ["--model", str(flipped / "model.pkl"), "--out", str(flipped)])
    out["tampered_pkl"]["outputs_untouched"] = all((flipped / f).read_bytes() == b for f, b in before.items())
    for name, pkl in learners.items():
        out[name] = run(main, ["--model", str(pkl), "--out", str(pkl.parent / "out"), "--sha256",
                               sha256_file(pkl)], pkl.parent / "out")
    (tmp / "a_file").write_text("not a folder")
    out["out_is_file"] = run(main, ["--model", str(FIXTURE / "model.pkl"), "--out", str(tmp / "a_file")])
    return out


def references_cases(tmp: Path, other_learner: Path) -> dict[str, Any]:
    from convert.references import main
    from orcaport.model.fileio import sha256_file

    out: dict[str, Any] = {}

    def refs(model: Path, corpus: Path = CORPUS, name: str = "") -> dict[str, Any]:
        dst = tmp / f"stages_{name}"
        return run(main, ["--model", str(model), "--corpus", str(corpus), "--out", str(dst)], dst)

    m = model_copy(tmp, "weights_flipped")
    blob = bytearray((m / "model.safetensors").read_bytes())
    blob[-100] ^= 0x01
    (m / "model.safetensors").write_bytes(bytes(blob))
    out["weights_tampered"] = refs(m, name="w")
    m = model_copy(tmp, "config_bad_type")
    cfg = json.loads((m / "config.json").read_text())
    cfg["frontend"]["n_fft"] = "2560"
    (m / "config.json").write_text(json.dumps(cfg))
    out["config_bad_type"] = refs(m, name="c")
    m = model_copy(tmp, "other_pkl")   # config + weights converted from another pickle
    (m / "model.pkl").unlink()
    shutil.copy(other_learner, m / "model.pkl")
    (m / "model.pkl.sha256").write_text(sha256_file(m / "model.pkl") + "  model.pkl\n")
    out["config_not_from_pkl"] = refs(m, name="p")
    empty = tmp / "empty_corpus"
    (empty / "notes").mkdir(parents=True)
    (empty / "notes" / "readme.txt").write_text("no audio here")
    out["audio_folder_empty"] = refs(FIXTURE, empty, "m")
    out["audio_missing"] = refs(FIXTURE, tmp / "no_such_folder", "n")
    over = run(main, ["--model", str(FIXTURE), "--audio", str(CORPUS), "--out", str(tmp / "stages_b"),
                      "--budget-mb", "0.1"], tmp / "stages_b")
    out["over_budget"] = over
    old_path = os.environ["PATH"]
    os.environ["PATH"] = str(Path(sys.executable).parent)   # no ffmpeg/ffprobe on it
    try:
        out["no_ffmpeg"] = refs(FIXTURE, name="f")
    finally:
        os.environ["PATH"] = old_path
    return out


def build_learners(tmp: Path) -> dict[str, Path]:
    """Exported learners convert must refuse (bodies/heads it does not reproduce), plus one
    plain resnet18 it accepts (used as 'another model.pkl')."""
    from audio.learner import audio_learner
    from fastai.vision import models
    from tests.legacy.convert_roundtrip import make_data

    data = make_data(tmp / "data", 2, None)
    custom = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, 2))
    archs: dict[str, dict[str, Any]] = {
        # fastai 1.0.61's models.xresnet18 cannot take cnn_learner's positional `pretrained`
        "xresnet18_body": {"base_arch": lambda pretrained=False: models.xresnet18()},
        "vgg16_no_bn_body": {"base_arch": __import__("torchvision").models.vgg16},   # not in model_meta
        "custom_head": {"base_arch": models.resnet18, "custom_head": custom},
        "resnet18_other": {"base_arch": models.resnet18},
    }
    out = {}
    for name, kwargs in archs.items():
        learn = audio_learner(data, pretrained=False, **kwargs)
        path = tmp / name / "model.pkl"
        path.parent.mkdir()
        learn.export(path)
        out[name] = path
    return out


def nan_and_rate_in_legacy(tmp: Path) -> dict[str, Any]:
    """What legacy (pydub + ffmpeg) makes of a float WAV holding NaN/Inf, and of a 500 Hz WAV."""
    from pydub import AudioSegment

    x = np.full(4800, 0.25, np.float32)
    x[[100, 200, 300]] = [np.nan, np.inf, -np.inf]
    sf.write(tmp / "nan.wav", x, 48000, subtype="FLOAT")
    seg = AudioSegment.from_wav(str(tmp / "nan.wav"))
    s = np.array(seg.get_array_of_samples())
    sf.write(tmp / "r500.wav", np.zeros(5000, np.int16), 500, subtype="PCM_16")
    slow = AudioSegment.from_wav(str(tmp / "r500.wav"))
    # beyond full scale but < 2^32: ffmpeg saturates, and the clean decode gives the same ints
    from orcaport.model.audio import decode_pcm

    big = np.array([1.5, -1.5, 3.0, -3.0, 1e9, -1e9, 0.25, -0.0, 0.9999999], np.float32)
    sf.write(tmp / "big.wav", big, 48000, subtype="FLOAT")
    legacy = np.array(AudioSegment.from_wav(str(tmp / "big.wav")).get_array_of_samples()).tolist()
    # >= 2^32: the answer depends on the sample's place in ffmpeg's buffers (SIMD block or tail)
    placed = {}
    for n in (9, 64):
        sf.write(tmp / "huge.wav", np.full(n, 1e10, np.float32), 48000, subtype="FLOAT")
        placed[n] = int(np.array(AudioSegment.from_wav(str(tmp / "huge.wav")).get_array_of_samples())[0])
    return {"nan_inf_samples": [int(s[i]) for i in (100, 200, 300)], "finite_sample": int(s[0]),
            "rate_500_frame_rate": slow.frame_rate, "rate_500_ms": len(slow),
            "big_floats_legacy": legacy, "big_floats_clean": decode_pcm(tmp / "big.wav").samples[:, 0].tolist(),
            "huge_first_sample_by_file_length": placed}


def main() -> None:
    from convert.legacy import isolated_home, patch_torchaudio_io

    patch_torchaudio_io()
    with tempfile.TemporaryDirectory() as tmp_name, isolated_home(Path(tmp_name) / "home"):
        tmp = Path(tmp_name)
        learners = build_learners(tmp)
        other = learners.pop("resnet18_other")
        (tmp / "conv").mkdir()
        (tmp / "refs").mkdir()
        result = {"convert": convert_cases(tmp / "conv", learners),
                  "references": references_cases(tmp / "refs", other),
                  "legacy_audio": nan_and_rate_in_legacy(tmp)}
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    sys.exit(main())
