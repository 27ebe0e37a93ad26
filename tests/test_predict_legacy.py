"""`orcaport predict` against fastai_audio's own predict path (legacy env only):

    .venvs/legacy/bin/python -m pytest tests/test_predict_legacy.py

fastai_audio's audio_predict / audio_predict_all fail as shipped (../shared/LEGACY.md); what its
users run is AudioList.from_folder(folder, config=cfg).split_none().label_empty(), then
learn.predict(x) for each item of .train.x. Here, per option combination: the same items in the
same order, each item's network input equal to legacy's (the random offsets legacy drew replayed:
random.randint wrapped and each draw tagged with the function that made it), and with the fixture
learner, (class, index, probabilities) of every item equal to learn.predict's.
"""

from __future__ import annotations

import json
import random
import shutil
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

for _name in ("librosa", "torchaudio", "fastai", "audio.transform"):
    pytest.importorskip(_name, reason="legacy-only test: run it with .venvs/legacy/bin/python")

import soundfile as sf  # noqa: E402
import torch  # noqa: E402
import torchaudio  # noqa: E402
from audio import data as fa_data  # noqa: E402
from audio import transform as fa_tfm  # noqa: E402

from convert.legacy import load_trusted_learner  # noqa: E402
from orcaport.model.config import FrontendConfig  # noqa: E402
from orcaport.model.detector import Detector  # noqa: E402
from orcaport.model.pipeline import Frontend  # noqa: E402
from orcaport.model.predict import file_inputs  # noqa: E402
from tests.paths import FIXTURE  # noqa: E402
from tests.test_frontend_legacy import _load, _save, assert_same  # noqa: E402
from tests.test_frontend_options_legacy import bursts  # noqa: E402

OFFSET_OF = {"tfm_padtrim_signal": "signal_front", "tfm_pad_spectro": "zeros_front", "tfm_crop_time": "crop_start"}
BASE = {"duration": 4000, "resample_to": 20000, "downmix": True, "pad_mode": "zeros"}   # production's
COMBOS = {
    "production": {},
    "segments": {"segment_size": 2000},
    "split+segments": {"remove_silence": "split", "segment_size": 1500},
    "trim+max_to_pad": {"remove_silence": "trim", "max_to_pad": 2500.0, "silence_threshold": 30},
    "all+crop": {"remove_silence": "all", "duration": 1000, "silence_padding": 100},
    "mfcc+standardize": {"mfcc": True, "standardize": True, "n_mfcc": 40, "pad_mode": "zeros-after"},
    "stereo+repeat": {"downmix": False, "resample_to": None, "pad_mode": "repeat", "duration": 6000},
    "delta": {"delta": True, "max_to_pad": 1000.0},
    "waveform": {"use_spectro": False, "max_to_pad": 1500.0},
}
WITH_LEARNER = ("production", "segments", "split+segments", "trim+max_to_pad", "all+crop", "mfcc+standardize",
                "delta")
FILES = {"a_44k1_stereo.wav": (5.3, 44100, 2, "PCM_16"), "b_48k_mono.wav": (3.1, 48000, 1, "PCM_24"),
         "c_20k_mono.wav": (4.0, 20000, 1, "PCM_16")}


@pytest.fixture(autouse=True)
def legacy_io(monkeypatch, tmp_path):
    monkeypatch.setattr(torchaudio, "load", _load)
    monkeypatch.setattr(torchaudio, "save", _save)
    monkeypatch.setenv("HOME", str(tmp_path))
    warnings.simplefilter("ignore")


@pytest.fixture(scope="module")
def learn():
    return load_trusted_learner(FIXTURE / "model.pkl")


@pytest.fixture(scope="module")
def learn3(learn):
    """The fixture learner with fastai_audio's 3-channel stem (`delta`: audio_learner's adapt_model,
    as _calc_channels asks), and its conversion as `make convert` does it (introspect, key map)."""
    import copy
    from types import SimpleNamespace

    from audio.learner import adapt_model

    from convert.cli import clean_state_dict
    from convert.introspect import introspect_body, introspect_head
    from orcaport.model.config import ArchitectureConfig
    from orcaport.model.network import OrcaNet

    l3 = copy.copy(learn)
    l3.model = copy.deepcopy(learn.model)
    torch.manual_seed(0)
    adapt_model(l3.model, 3)
    l3.model.eval()
    body, channels = introspect_body(l3.model[0])
    head, layout = introspect_head(l3.model[1])
    net = OrcaNet(ArchitectureConfig(body=body, in_channels=channels, head=head)).eval()
    net.load_state_dict(clean_state_dict(SimpleNamespace(model=l3.model), layout, net), strict=True)
    return l3, net


def legacy_config(fe: FrontendConfig):
    sg = fa_data.SpectrogramConfig(**{k: getattr(fe, k) for k in (
        "f_min", "f_max", "hop_length", "n_fft", "n_mels", "pad", "to_db_scale", "top_db", "win_length", "n_mfcc")})
    cfg = fa_data.AudioConfig(sg_cfg=sg)
    for k in ("duration", "max_to_pad", "pad_mode", "remove_silence", "use_spectro", "mfcc", "delta",
              "silence_padding", "silence_threshold", "segment_size", "resample_to", "standardize", "downmix"):
        setattr(cfg, k, getattr(fe, k))
    return cfg


def legacy_items(folder: Path, fe: FrontendConfig, cache: Path):
    """fastai_audio's predict path on a folder of one file: its items and each one's draws."""
    cfg = legacy_config(fe)
    cfg.cache_dir = cache
    x = fa_data.AudioList.from_folder(folder, config=cfg).split_none().label_empty().train.x
    made: list[tuple[str, int]] = []
    real = random.randint

    def randint(a, b):
        made.append((sys._getframe(1).f_code.co_name, real(a, b)))
        return made[-1][1]

    items, offsets = [], []
    fa_tfm.random.randint = randint
    try:
        for i in range(len(x)):
            del made[:]
            items.append(x.get(i))
            offsets.append({OFFSET_OF[f]: v for f, v in made})
    finally:
        fa_tfm.random.randint = real
    return items, offsets


def model_folder(tmp: Path, fe: dict) -> Path:
    tmp.mkdir()
    shutil.copy(FIXTURE / "model.safetensors", tmp)
    config = json.loads((FIXTURE / "config.json").read_text())
    config["frontend"].update(fe)
    (tmp / "config.json").write_text(json.dumps(config))
    return tmp


def predictor_for(tmp: Path, fe_dict: dict, learn, learn3, combo: str):
    if combo not in WITH_LEARNER:
        return None, None
    if not fe_dict.get("delta"):
        return Detector.from_folder(model_folder(tmp, fe_dict), mode="predict"), learn
    import dataclasses

    from orcaport.model.artifact import Artifact, load_artifact
    from orcaport.model.config import ArchitectureConfig

    art = load_artifact(model_folder(tmp, fe_dict))
    l3, net = learn3
    config = dataclasses.replace(art.config, architecture=dataclasses.replace(art.config.architecture, in_channels=3))
    return Detector(Artifact(config, net, art.weights_sha256, art.config_sha256, art.root), mode="predict"), l3


@pytest.mark.parametrize("combo", sorted(COMBOS))
def test_predict_mode_matches_fastai_audios_predict_path(tmp_path, learn, learn3, combo) -> None:
    fe_dict = {**BASE, **COMBOS[combo]}
    fe = Frontend(FrontendConfig(**fe_dict))
    predictor, learner = predictor_for(tmp_path / "model", fe_dict, learn, learn3, combo)
    counts, worst = {}, 0.0
    for k, (name, (seconds, rate, channels, subtype)) in enumerate(sorted(FILES.items())):
        folder = tmp_path / name
        folder.mkdir()
        sf.write(folder / name, bursts(seconds, rate, channels, seed=k).T, rate, subtype=subtype)
        theirs, offsets = legacy_items(folder, fe.cfg, tmp_path / "cache" / name)
        ours = file_inputs(fe, folder / name, offsets)[0]
        counts[name] = len(ours)
        assert len(ours) == len(theirs), (name, len(ours), len(theirs))
        for i, (item, ref) in enumerate(zip(ours, theirs)):
            assert_same(f"{name}[{i}] input", item["input"], ref.data)
        if predictor is not None:
            got = predictor.predict(folder / name, offsets)
            for p, ref in zip(got, theirs):
                label, index, probs = learner.predict(ref)
                assert (p.label, p.index) == (str(label), int(index)), (name, p.item)
                worst = max(worst, float(np.abs(np.asarray(p.probabilities) - probs.numpy()).max()))
    print(f"{combo}: items {counts}, max |p - learn.predict| = {worst:.3g}")
    assert worst <= 1e-5
    if combo in ("segments", "split+segments"):
        assert max(counts.values()) > 1                  # several items per file


def test_a_learner_converts_with_every_one_channel_option_and_predicts(tmp_path) -> None:
    """`make convert` (convert.cli.convert) with a frontend config setting every option a 1-channel
    learner can have; the folder loads and fastai_audio's predict runs on it."""
    from convert.cli import convert

    fe = {**json.loads((FIXTURE / "config.json").read_text())["frontend"],
          **{"segment_size": 1500, "remove_silence": "split", "silence_threshold": 30, "silence_padding": 150,
             "max_to_pad": 2000.0, "mfcc": True, "n_mfcc": 32, "standardize": True, "pad_mode": "zeros"}}
    (tmp_path / "fe.json").write_text(json.dumps(fe))
    convert(FIXTURE / "model.pkl", tmp_path / "out", None, str(tmp_path / "fe.json"))
    written = json.loads((tmp_path / "out" / "config.json").read_text())["frontend"]
    assert {k: written[k] for k in fe} == fe
    sf.write(tmp_path / "a.wav", bursts(4.2, 48000).T, 48000, subtype="PCM_16")
    got = Detector.from_folder(tmp_path / "out", mode="predict").predict(tmp_path / "a.wav")
    assert len(got) >= 2 and all(abs(sum(p.probabilities) - 1) < 1e-5 for p in got)
