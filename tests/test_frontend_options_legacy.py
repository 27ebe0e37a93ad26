"""Every fastai_audio option beyond OrcaHello's, step by step, against legacy's own functions on the
same tensors (legacy env only):

    .venvs/legacy/bin/python -m pytest tests/test_frontend_options_legacy.py

Oracles: librosa.effects.split, fastai_audio's _merge_splits / tfm_remove_silence / segment_items
(through its real PCM_16 cache files) / tfm_padtrim_signal / tfm_crop_time, torchaudio's MFCC and
fastai_audio's torchdelta (librosa.feature.delta), and the path fastai_audio users run for
inference: AudioList.from_folder(...).split_none().label_empty() then learn.predict per item.
Random offsets legacy draws are recorded (random.randint wrapped, each draw tagged with the
fastai_audio function that made it) and replayed. Each option also has its negative control: the
clean chain without that step must fail at that stage.
"""

from __future__ import annotations

import dataclasses
import random
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

for _name in ("librosa", "torchaudio", "fastai", "audio.transform"):
    pytest.importorskip(_name, reason="legacy-only test: run it with .venvs/legacy/bin/python")

import librosa  # noqa: E402
import soundfile as sf  # noqa: E402
import torch  # noqa: E402
import torchaudio  # noqa: E402
from audio import data as fa_data  # noqa: E402
from audio import transform as fa_tfm  # noqa: E402

from orcaport.model.config import FrontendConfig  # noqa: E402
from orcaport.model.frontend.features import deltas, mfcc  # noqa: E402
from orcaport.model.frontend.segments import pad_or_trim_signal, segment_signal  # noqa: E402
from orcaport.model.frontend.silence import merge_intervals, nonsilent_intervals, remove_silence  # noqa: E402
from orcaport.model.pipeline import Frontend, run_items  # noqa: E402
from orcaport.model.predict import file_inputs  # noqa: E402
from orcaport.model.spectrogram import amplitude_to_db, mel_spectrogram, pad_or_crop  # noqa: E402
from orcaport.model.waveform import cache_round_trip  # noqa: E402
from tests.test_frontend_legacy import _load, _save, assert_same  # noqa: E402

# In the legacy env (same torch and scipy) both measured 0 on 2026-12-03 (Intel Xeon); the bounds
# are the cross-env ones of tests/test_frontend_options_both_envs_legacy.py (other kernels).
MFCC_ATOL = 1e-3          # on coefficients of magnitude up to ~1e3 (dB x sqrt(n_mels))
DELTA_ATOL = 1e-4         # dB per frame


@pytest.fixture(autouse=True)
def legacy_io(monkeypatch, tmp_path):
    monkeypatch.setattr(torchaudio, "load", _load)
    monkeypatch.setattr(torchaudio, "save", _save)
    monkeypatch.setenv("HOME", str(tmp_path))
    warnings.simplefilter("ignore")


@pytest.fixture
def draws(monkeypatch):
    """Every random.randint fastai_audio makes, as (function, value), in call order."""
    made: list[tuple[str, int]] = []
    real = random.randint

    def randint(a, b):
        made.append((sys._getframe(1).f_code.co_name, real(a, b)))
        return made[-1][1]

    monkeypatch.setattr(fa_tfm.random, "randint", randint)
    return made


def bursts(seconds: float, rate: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    """Tone bursts in faint noise: loud and silent stretches of random lengths. -> (C, N) float32"""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    gate = np.repeat(rng.random(int(seconds * 8) + 1) > 0.55, rate // 8 + 1)[:n]
    x = np.where(gate, 0.4 * np.sin(2 * np.pi * rng.uniform(300, 3000) * t), 0.0)
    x = x[None] * rng.uniform(0.3, 1.0, (channels, 1)) + 1e-4 * rng.standard_normal((channels, n))
    return x.astype(np.float32)


# -- remove_silence --------------------------------------------------------------------------------
@pytest.mark.parametrize("rate,channels", [(20000, 1), (16000, 2), (44100, 1)])
@pytest.mark.parametrize("threshold,pad_ms", [(20, 200), (40, 50), (10, 700), (60, 13)])
def test_silence_intervals_and_merge_match_librosa_and_fastai_audio(rate, channels, threshold, pad_ms) -> None:
    for seed in range(4):
        y = bursts(6.3, rate, channels, seed)
        pad = int(pad_ms / 1000 * rate)
        ref = librosa.effects.split(y, top_db=threshold, hop_length=pad)
        ours = nonsilent_intervals(y, threshold, pad)
        assert np.array_equal(ours, ref), (seed, ours.tolist(), ref.tolist())
        assert np.array_equal(merge_intervals(ours, pad), fa_tfm._merge_splits(ref, pad))
        for mode in ("trim", "split", "all"):
            theirs = fa_tfm.tfm_remove_silence(torch.from_numpy(y), rate, mode, threshold, pad_ms)
            got = remove_silence(y, rate, mode, threshold, pad_ms)
            assert len(got) == len(theirs), (mode, seed)
            for a, b in zip(got, theirs):
                assert_same(f"silence/{mode}", a, b)


def test_silence_negative_control_and_short_signals() -> None:
    y = bursts(6.3, 20000, 1, 3)
    theirs = fa_tfm.tfm_remove_silence(torch.from_numpy(y), 20000, "trim", 20, 200)[0]
    assert theirs.shape[-1] < y.shape[-1]            # ablated (no step): fails at "silence"
    assert remove_silence(y, 20000, "trim", 20, 200)[0].shape == theirs.shape
    short = y[:, :3000]                              # shorter than the padding: kept whole
    assert [p.shape for p in remove_silence(short, 20000, "split", 20, 200)] == [
        p.shape for p in fa_tfm.tfm_remove_silence(torch.from_numpy(short), 20000, "split", 20, 200)]


# -- segment_size, max_to_pad ------------------------------------------------------------------------
@pytest.mark.parametrize("seconds", [5.0, 4.0, 1.3])
def test_segments_through_fastai_audios_cache_files(tmp_path, seconds) -> None:
    rate = 20000
    y = cache_round_trip(bursts(seconds, rate))            # as the resample cache left it
    src = tmp_path / "in.wav"
    sf.write(src, y[0], rate)
    config = fa_data.AudioConfig(segment_size=2000)
    config.cache_dir, config._sr = tmp_path / "cache", rate
    files = [f for f, _ in fa_data.segment_items((src, "x"), config, tmp_path)]
    fe = Frontend(FrontendConfig(segment_size=2000, resample_to=None, downmix=False))
    ours = run_items(y, fe, rate, "segment", "segment")
    assert len(ours) == len(files) == int(seconds // 2) + 1
    for stages, f in zip(ours, files):
        assert_same("segment", stages["segment"], torchaudio.load(f)[0])
    assert len(segment_signal(y, rate, 2000)) == len(files)


@pytest.mark.parametrize("n", [5000, 20000, 29999, 30000, 41000])
def test_padtrim_matches_tfm_padtrim_signal_with_the_draw_replayed(draws, n) -> None:
    sig = torch.from_numpy(bursts(3.0, 20000, 2)[:, :n])
    theirs = fa_tfm.tfm_padtrim_signal(sig, 30000, pad_mode="zeros")
    drawn = [v for f, v in draws if f == "tfm_padtrim_signal"]
    assert len(drawn) == (n < 30000)
    assert_same("pad_signal", pad_or_trim_signal(sig.numpy(), 30000, drawn[0] if drawn else None), theirs)
    if drawn and drawn[0] != (30000 - n) // 2:       # ablated: the runtime's offset is not the draw
        assert not np.array_equal(pad_or_trim_signal(sig.numpy(), 30000), theirs.numpy())


# -- pad_mode "zeros", crops -------------------------------------------------------------------------
@pytest.mark.parametrize("frames", [100, 157, 312, 313, 500, 1000])
def test_crop_and_zeros_pad_match_tfm_crop_time_with_the_draw_replayed(draws, frames) -> None:
    db = torch.randn(2, 64, frames)
    cfg = FrontendConfig(pad_mode="zeros")
    theirs, start, _ = fa_tfm.tfm_crop_time(db, 20000, 4000, 256, "zeros")
    (func, value), = draws
    kw = {"crop_start": value} if func == "tfm_crop_time" else {"zeros_front": value}
    assert func == ("tfm_crop_time" if frames > 312 else "tfm_pad_spectro")
    assert_same("input", pad_or_crop(db, cfg, 20000, **kw), theirs)
    assert start is None or start == value * 256


# -- mfcc, delta -------------------------------------------------------------------------------------
@pytest.mark.parametrize("rate,n_mfcc,variant", [(20000, 20, {}), (16000, 40, {"f_max": None}),
                                                  (44100, 13, {"n_mels": 64, "n_fft": 1024, "hop_length": 512})])
def test_mfcc_matches_torchaudio_mfcc(rate, n_mfcc, variant) -> None:
    cfg = dataclasses.replace(FrontendConfig(), n_mfcc=n_mfcc, **variant)
    sg = fa_data.SpectrogramConfig(**{k: getattr(cfg, k) for k in (
        "f_min", "f_max", "hop_length", "n_fft", "n_mels", "pad", "to_db_scale", "top_db", "win_length", "n_mfcc")})
    worst = 0.0
    for seed in range(3):
        y = torch.from_numpy(bursts(2.5, rate, 1 + seed % 2, seed))
        theirs = torchaudio.transforms.MFCC(sample_rate=rate, n_mfcc=n_mfcc, melkwargs=sg.mel_args())(y)
        ours = mfcc(y, cfg, rate)
        assert ours.shape == theirs.shape
        worst = max(worst, float((ours - theirs).abs().max()))
        # negative control: the plain mel path (16 kHz filterbank, top_db 100) is not MFCC
        plain = amplitude_to_db(mel_spectrogram(y, cfg), cfg.top_db)
        assert plain.shape[-2] != theirs.shape[-2] or (plain - theirs).abs().max() > 1.0
    print(f"mfcc max |ours - torchaudio| = {worst:.3g}")
    assert worst <= MFCC_ATOL


def test_deltas_match_fastai_audio_torchdelta() -> None:
    worst = 0.0
    for seed, (c, h, t) in enumerate([(1, 256, 157), (2, 64, 9), (1, 20, 312)]):
        spec = torch.from_numpy(np.random.default_rng(seed).normal(-40, 20, (c, h, t)).astype(np.float32))
        theirs = torch.cat([torch.stack([m, fa_tfm.torchdelta(m), fa_tfm.torchdelta(m, order=2)]) for m in spec])
        ours = deltas(spec)
        assert ours.shape == theirs.shape == (3 * c, h, t) and ours.dtype == theirs.dtype
        worst = max(worst, float((ours - theirs).abs().max()))
        # negative control: torchaudio's compute_deltas (win_length 5, replicate padding) is NOT what
        # fastai_audio computes -- it calls librosa's Savitzky-Golay delta, width 9
        other = torchaudio.functional.compute_deltas(spec)
        assert (other - theirs[1::3]).abs().max() > 1.0
    print(f"delta max |ours - torchdelta| = {worst:.3g}")
    assert worst <= DELTA_ATOL
    with pytest.raises(ValueError, match="Delta not possible"):
        fa_tfm.torchdelta(torch.zeros(4, 8))
    with pytest.raises(ValueError, match="Delta not possible"):
        deltas(torch.zeros(1, 4, 8))
