"""The fastai-free frontend (model/audio.py, model/waveform.py, model/spectrogram.py,
model/aggregate.py), clean env.

Behaviour that a faithful replay of the legacy pipeline depends on; the same functions are checked
against pydub / torchaudio / fastai_audio / pandas themselves in test_frontend_legacy.py.
"""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from orcaport.model.aggregate import aggregate, rolling_mean_2
from orcaport.model.audio import AudioDecodeError, PcmAudio, SliceError, decode_pcm, slice_ms
from orcaport.model.waveform import cache_round_trip, clip_windows, downmix, load_clip, resample
from orcaport.model.config import FrontendConfig, WindowingConfig
from orcaport.model.pipeline import frontend_stages
from orcaport.model.frontend.offsets import OffsetError
from orcaport.model.spectrogram import (FrontendError, amplitude_to_db, check_supported, mel_filterbank,
                                        mel_spectrogram, pad_or_crop, standardize)

CFG = FrontendConfig()
SCIPY_WAVS = Path(__import__("scipy").__file__).parent / "io" / "tests" / "data"
RNG = np.random.default_rng(0)


def pcm16(frames: int, rate: int, channels: int = 1) -> PcmAudio:
    samples = RNG.integers(-32768, 32768, (frames, channels)).astype("<i2")
    return PcmAudio(samples, rate, 2)


def soundfile_round_trip(x: np.ndarray, subtype: str = "PCM_16") -> np.ndarray:
    """What legacy's patched torchaudio.save + torchaudio.load do, in memory."""
    buf = io.BytesIO()
    sf.write(buf, x.T, 20000, format="WAV", subtype=subtype)
    buf.seek(0)
    y, _ = sf.read(buf, dtype="float32")
    return y.T if y.ndim > 1 else y.reshape(1, -1)


# ---------------------------------------------------------------- cache round trip (16-bit)

EDGES = [0.0, -0.0, 1.0, -1.0, 1.0000001, -1.0000001, 1.5, -3.0, 1e9, -1e30, np.inf, -np.inf,
         np.nan, 0.5 / 32768, -0.5 / 32768, 1.5 / 32768, 32767.5 / 32768, 0.999999, 2**-31,
         1.5 * 2**-31, 65535.5 / 2**31, -65535.5 / 2**31, 3e38, 1e-40]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "PCM_32", "FLOAT"])
@pytest.mark.parametrize("channels", [1, 2])
def test_cache_round_trip_is_bit_exact_with_soundfile(dtype, subtype, channels) -> None:
    x = np.concatenate([RNG.standard_normal(20000) * 0.5, RNG.uniform(-1.3, 1.3, 20000),
                        np.arange(-40000, 40000) / 65536, EDGES, EDGES[:channels]])
    x = x.astype(dtype)[: x.size // channels * channels].reshape(channels, -1)
    with np.errstate(all="ignore"):
        ours, real = cache_round_trip(x, subtype), soundfile_round_trip(x, subtype)
    assert ours.dtype == real.dtype == np.float32 and ours.shape == real.shape
    np.testing.assert_array_equal(ours, real)          # NaN == NaN here
    assert ours.strides == real.strides                # same layout, so torch reduces alike


def test_cache_round_trip_floors_and_clips_rather_than_rounding_by_0x7fff() -> None:
    x = np.array([[1.5 / 32768, -0.25 / 32768, 1.0, 1.2, -1.0, -7.0, np.nan]], np.float32)
    expected = np.array([[1, -1, 32767, 32767, -32768, -32768, -32768]]) / 32768
    np.testing.assert_array_equal(cache_round_trip(x), expected.astype(np.float32))


# ---------------------------------------------------------------- decode / slice / load

@pytest.mark.parametrize("subtype,width", [("PCM_U8", 1), ("PCM_16", 2), ("PCM_24", 4),
                                           ("PCM_32", 4)])
def test_decode_gives_pydubs_integer_view(tmp_path: Path, subtype: str, width: int) -> None:
    ints = np.array([[0, 1], [-1, 127], [-128, 5], [100, -100]], np.int64)
    bits = {"PCM_U8": 8, "PCM_16": 16, "PCM_24": 24, "PCM_32": 32}[subtype]
    path = tmp_path / f"{subtype}.wav"
    sf.write(path, (ints * 2 ** (32 - 8)).astype(np.int32), 44100, subtype=subtype)
    pcm = decode_pcm(path)
    assert (pcm.sample_width, pcm.sample_rate, pcm.samples.shape) == (width, 44100, (4, 2))
    stored = ints << (bits - 8)                        # the values the file holds
    if bits == 24:                                     # pydub widens: low byte = sign padding
        stored = (stored << 8) | np.where(stored < 0, 0xFF, 0)
    np.testing.assert_array_equal(pcm.samples, stored)
    loaded = load_clip(pcm)                            # (channels, samples) float32
    np.testing.assert_array_equal(loaded, (pcm.samples / 2.0 ** (8 * width - 1)).T.astype(np.float32))
    if bits != 24:   # 24-bit: legacy reads pydub's widened 32-bit export, not the original file
        np.testing.assert_array_equal(loaded, sf.read(path, dtype="float32")[0].T)


def test_decode_float_wav_as_ffmpeg_and_flac_as_wav(tmp_path: Path) -> None:
    x = np.array([0.5, -0.25, 1.0, -1.0, 3.0, 2**-40], np.float32)
    sf.write(tmp_path / "f.wav", x, 8000, subtype="FLOAT")
    got = decode_pcm(tmp_path / "f.wav").samples[:, 0]
    np.testing.assert_array_equal(got, [2**30, -(2**29), 2**31 - 1, -(2**31), 2**31 - 1, 0])
    y = RNG.integers(-32768, 32768, (300, 2)).astype(np.int16)
    sf.write(tmp_path / "a.flac", y, 16000)
    np.testing.assert_array_equal(decode_pcm(tmp_path / "a.flac").samples, y)


def test_decode_refuses_what_legacy_cannot_read_faithfully(tmp_path: Path) -> None:
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "junk.wav").write_bytes(b"RIFF not really a wave file" * 4)
    sf.write(tmp_path / "x.wav", np.zeros((10, 2)), 8000, format="WAVEX", subtype="FLOAT")
    sf.write(tmp_path / "u.wav", np.zeros(10), 8000, subtype="ULAW")
    sf.write(tmp_path / "d.wav", np.zeros(10), 8000, subtype="DOUBLE")
    for name in ("empty.wav", "junk.wav", "x.wav", "u.wav", "d.wav"):
        with pytest.raises(AudioDecodeError, match="sox|re-export"):
            decode_pcm(tmp_path / name)


@pytest.mark.skipif(not SCIPY_WAVS.is_dir(), reason="scipy's test WAVs are not installed")
def test_decode_scipy_oddities() -> None:
    assert decode_pcm(SCIPY_WAVS / "test-44100Hz-le-1ch-4bytes-early-eof.wav").frames == 236
    assert decode_pcm(SCIPY_WAVS / "test-8000Hz-le-2ch-1byteu.wav").samples.dtype == np.int8
    assert decode_pcm(SCIPY_WAVS / "test-8000Hz-le-3ch-5S-24bit.wav").samples.shape == (5, 3)
    odd = [p for pattern in ("*20bit-extra.wav", "*12bit.wav", "*64bit-float-le-wavex.wav",
                             "*be-3ch-5S-24bit.wav", "*44100Hz-be-1ch-4bytes.wav",
                             "*5S-64bit.wav", "*ulaw.wav", "*early-eof-no-data.wav")
           for p in SCIPY_WAVS.glob(pattern)]           # names vary across scipy versions
    assert len(odd) >= 5
    for path in odd:
        with pytest.raises(AudioDecodeError):
            decode_pcm(path)


def test_truncated_data_chunk_keeps_pydubs_partial_frame(tmp_path: Path) -> None:
    sf.write(tmp_path / "a.wav", RNG.integers(-999, 999, (100, 2)).astype(np.int16), 8000)
    whole = (tmp_path / "a.wav").read_bytes()
    start = whole.index(b"data") + 8
    (tmp_path / "cut.wav").write_bytes(whole[:start + 4 * 60 + 3])
    pcm = decode_pcm(tmp_path / "cut.wav")
    assert (pcm.frames, len(pcm.tail)) == (60, 3)
    # len = round(7.5 ms) = 8 ms = 64 frames: pydub appends 3 zero frames after the 3 stray bytes,
    # so the clip's frames are shifted by 3 bytes from there on
    clip = slice_ms(pcm)
    assert clip.samples.tobytes() + clip.tail == whole[start:start + 243] + bytes(12)
    assert load_clip(clip).shape == (2, 63)            # soundfile drops the last partial frame


def test_slice_ms_follows_pydub() -> None:
    pcm = pcm16(44100 * 3 + 20, 44100, 2)              # 3000.45 ms -> len 3000
    assert pcm.length_ms == 3000
    np.testing.assert_array_equal(slice_ms(pcm, 1000, 3000).samples, pcm.samples[44100:132300])
    np.testing.assert_array_equal(slice_ms(pcm, -500).samples, pcm.samples[110250:132300])
    np.testing.assert_array_equal(slice_ms(pcm, 2500, 9999).samples, pcm.samples[110250:132300])
    assert slice_ms(pcm, 2000, 1000).frames == 0
    short = pcm16(44100 * 2 - 50, 44100)               # 1998.87 ms -> len 1999 (rounded up)
    filled = slice_ms(short, 0, 2000)                  # clamped to 1999 ms = 88155 frames
    assert filled.frames == 88155 and not filled.samples[-5:].any()
    np.testing.assert_array_equal(filled.samples[:-5], short.samples)
    with pytest.raises(SliceError, match="2 ms"):      # start far before 0: Python slicing
        slice_ms(pcm, -100000, 1000)                   # clamps it, pydub counts it as missing


def test_downmix_resample_and_windows() -> None:
    x = RNG.uniform(-1, 1, (2, 48000)).astype(np.float32)
    mono = downmix(x)
    assert mono.shape == (1, 48000) and mono.dtype == np.float32
    np.testing.assert_array_equal(mono, torch.mean(torch.from_numpy(x), 0, True).numpy())
    y = resample(mono, 48000, 20000)
    assert y.shape == (1, 20000) and y.dtype == np.float32
    assert resample(mono, 20000, 20000) is mono
    assert resample(np.zeros((1, 44100), np.float32), 44100, 20000).shape == (1, 20000)
    assert len(clip_windows(60.0)) == 59 and clip_windows(60.0)[-1] == (58, 60)
    assert clip_windows(2.9999) == [(0, 2)] and clip_windows(1.99) == []


def test_legacy_cuts_the_runtimes_windows_for_any_windowing() -> None:
    """convert/production.py's window rule (what `make references` records) is production's own at
    2 s / 1 s and the runtime's (model/waveform.py) for every other clip and hop."""
    from convert.production import clip_windows as legacy_windows
    from convert.reference_plan import clips_of

    for d in (1.99, 2.0, 3.0, 3.5, 10.49, 60.0, 61.7):
        production = [[i, i + 2] for i in range(int(np.floor(d) - 1))]     # fastai_inference.py
        assert legacy_windows(d) == production
        for clip, hop in ((2, 1), (1, 1), (1, 2), (3, 2), (4, 4), (5, 1)):
            w = WindowingConfig(clip, hop)
            assert [tuple(x) for x in legacy_windows(d, w)] == clip_windows(d, clip, hop), (d, clip, hop)
            assert clips_of(d, w) == len(clip_windows(d, clip, hop))


# ---------------------------------------------------------------- spectrogram

def clip_2s_20k() -> np.ndarray:
    t = np.arange(40000) / 20000
    return (0.3 * np.sin(2 * np.pi * 1500 * t) + 0.01 * RNG.standard_normal(40000)
            ).astype(np.float32)[None]


def test_production_shapes_zero_db_tail_and_16k_filterbank() -> None:
    mel = mel_spectrogram(clip_2s_20k(), CFG)
    assert mel.shape == (1, 256, 157) and mel.dtype == torch.float32
    db = amplitude_to_db(mel, CFG.top_db)
    inp = pad_or_crop(db, CFG, 20000)
    assert inp.shape == (1, 256, 312)
    assert torch.equal(inp[..., :157], db) and torch.all(inp[..., 157:] == 0.0)
    assert db.min() < -50.0 < 0.0 < db.max()           # 0.0 dB is mid-range, not silence
    # filterbank laid out for 16 kHz: mel bins whose lower edge is above 8 kHz see nothing
    fb = mel_filterbank(CFG.n_fft // 2 + 1, CFG.f_min, CFG.f_max, CFG.n_mels, 16000)
    dead = (fb == 0).all(dim=0)
    assert dead[-1] and dead.sum() == 18 and not dead[:200].any()
    assert torch.all(mel[0, dead] == 0) and torch.all(db[0, dead] == db.max() - 100)
    # the 1.5 kHz tone lands on the bin a 16 kHz filterbank calls 1.2 kHz
    centre_hz = 700 * (10 ** (torch.linspace(0, 2595 * np.log10(1 + 10000 / 700), 258) / 2595) - 1)
    assert abs(centre_hz[1 + int(mel[0].sum(-1).argmax())] - 1200) < 40


def test_amplitude_to_db_top_db_and_standardize() -> None:
    mel = torch.tensor([[[1.0, 1e-3], [1e-12, 0.0]]])
    np.testing.assert_allclose(amplitude_to_db(mel, 80).numpy(), [[[0, -30], [-80, -80]]], rtol=1e-6)
    np.testing.assert_allclose(amplitude_to_db(mel, None).numpy(), [[[0, -30], [-100, -100]]],
                               rtol=1e-6)
    s = standardize(torch.tensor([[[-50.0, -10.0], [-30.0, -20.0]]]))
    assert s.min() == 0 and s.max() == 1 and torch.equal(standardize(torch.ones(1, 2, 2)),
                                                         torch.zeros(1, 2, 2))


def test_pad_modes_and_nondeterministic_legacy_paths() -> None:
    db = torch.arange(6, dtype=torch.float32).reshape(1, 2, 3)
    rep = pad_or_crop(db, dataclasses.replace(CFG, pad_mode="repeat", duration=100), 20000)
    assert rep.shape == (1, 2, 7) and torch.equal(rep[..., 3:6], db)
    assert pad_or_crop(db, dataclasses.replace(CFG, duration=None), 20000) is db
    zeros = dataclasses.replace(CFG, pad_mode="zeros")  # fastai_audio's default = production's
    runtime = pad_or_crop(db, zeros, 20000)             # legacy draws randint(0, 309): the middle
    assert torch.equal(runtime[..., 154:157], db) and runtime[..., :154].eq(0).all()
    replay = pad_or_crop(db, zeros, 20000, zeros_front=5)   # the offset legacy drew
    assert replay.shape == (1, 2, 312) and torch.equal(replay[..., 5:8], db)
    assert not replay[..., :5].any() and not replay[..., 8:].any()
    with pytest.raises(OffsetError, match="outside 0..309"):
        pad_or_crop(db, zeros, 20000, zeros_front=310)
    long = torch.arange(400, dtype=torch.float32).expand(1, 2, 400)     # cropped to 312 columns
    assert torch.equal(pad_or_crop(long, CFG, 20000)[0, 0, [0, -1]], torch.tensor([44.0, 355.0]))
    assert torch.equal(pad_or_crop(long, CFG, 20000, crop_start=88)[0, 0, [0, -1]], torch.tensor([88.0, 399.0]))
    with pytest.raises(OffsetError, match="crop_start=89"):
        pad_or_crop(long, CFG, 20000, crop_start=89)


@pytest.mark.parametrize("field,value", [
    ("remove_silence", "quiet"), ("silence_threshold", 0), ("n_mfcc", 300), ("pad_mode", "edge"),
    ("cache_subtype", "PCM_U8"), ("top_db", -1), ("win_length", 4096)])
def test_what_legacy_refuses_raises_naming_the_field(field: str, value) -> None:
    """Every fastai_audio option is reproduced; what is refused is what legacy refuses."""
    on = {"silence_threshold": {"remove_silence": "trim"}, "n_mfcc": {"mfcc": True}}.get(field, {})
    check_supported(dataclasses.replace(CFG, **on))
    with pytest.raises(FrontendError, match=field):
        check_supported(dataclasses.replace(CFG, **on, **{field: value}))


def test_frontend_stages_on_a_48k_stereo_clip() -> None:
    pcm = pcm16(48000 * 3, 48000, 2)
    stages = frontend_stages(slice_ms(pcm, 1000, 3000), CFG)
    assert [tuple(stages[k].shape) for k in stages] == [
        (2, 96000), (1, 96000), (1, 40000), (1, 256, 157), (1, 256, 157), (1, 256, 312)]
    grid = stages["resample"].numpy() * 32768         # on the 16-bit grid after its cache
    np.testing.assert_array_equal(grid, np.round(grid))


# ---------------------------------------------------------------- aggregation

def test_aggregate_rows_rolling_rule_and_decisions() -> None:
    agg = aggregate(np.full(59, 0.25))
    assert agg.start_time_s.tolist() == list(range(60)) and agg.confidence.shape == (60,)
    a = aggregate([0.9, 0.1, 0.7, 0.8], threshold=0.5, min_positive=3)
    np.testing.assert_array_equal(a.confidence, [0.9, 0.5, 0.39999999999999997, 0.75, 0.8])
    assert a.local_prediction.tolist() == [1, 0, 0, 1, 1] and a.global_prediction == 1
    assert a.global_confidence == (0.9 + 0.75 + 0.8) / 3 * 100
    # pandas keeps a Kahan running sum: not (a + b) / 2 in the last bit
    assert rolling_mean_2(np.array([0.1, 1e-8, 0.7]))[2] == 0.35000000499999995 != (1e-8 + 0.7) / 2
    # ... and returns a repeated value itself (GH#42064) where the running sum would not
    assert rolling_mean_2(np.array([0.1, 0.3, 0.1, 0.1]))[3] == 0.1
    one = aggregate([0.7])
    assert one.confidence.tolist() == [0.7, 0.7] and one.global_prediction == 0
    none_above = aggregate([0.1, 0.2])
    assert none_above.global_confidence == 0.0 and none_above.local_prediction.sum() == 0
    with pytest.raises(ValueError, match="KeyError"):
        aggregate([])
