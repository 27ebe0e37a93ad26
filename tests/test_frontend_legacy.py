"""The fastai-free frontend against the real legacy stack, stage by stage (legacy env only).

    .venvs/legacy/bin/python -m pytest tests/test_frontend_legacy.py

Every stage is asserted bit-exact where it is computed (`assert_same`), so each test stands alone
under -k, -x or any order.

Oracles: pydub 0.25.1 decode + slice + export, soundfile reads, torch.mean, soundfile PCM_16 cache
files on disk, scipy resample_poly, torchaudio MelSpectrogram / AmplitudeToDB, fastai_audio's own
tfm_* functions and AudioList pipeline, and OrcaHello's pandas aggregation (copied below as the
test oracle). torchaudio.load/save are patched to soundfile exactly as upstream OrcaHello does.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from pathlib import Path

import numpy as np
import pytest

for _name in ("pydub", "pandas", "librosa", "torchaudio", "fastai", "audio.transform"):
    pytest.importorskip(_name, reason="legacy-only test: run it with .venvs/legacy/bin/python "
                                      "(needs pydub, pandas, librosa, torchaudio, fastai_audio)")

import librosa  # noqa: E402
import pandas as pd  # noqa: E402
import soundfile as sf  # noqa: E402
import torch  # noqa: E402
import torchaudio  # noqa: E402
from audio import data as fa_data  # noqa: E402
from audio import transform as fa_tfm  # noqa: E402
from pydub import AudioSegment  # noqa: E402
from pydub.exceptions import TooManyMissingFrames  # noqa: E402

from orcaport.model.aggregate import aggregate  # noqa: E402
from orcaport.model.audio import AudioDecodeError, SliceError, decode_pcm, slice_ms  # noqa: E402
from orcaport.model.waveform import cache_round_trip, clip_windows, downmix, load_clip, resample  # noqa: E402
from orcaport.model.config import FrontendConfig  # noqa: E402
from orcaport.model.pipeline import frontend_stages  # noqa: E402
from orcaport.model.spectrogram import amplitude_to_db, mel_spectrogram, pad_or_crop, standardize  # noqa: E402

RATES = (48000, 44100, 96000, 8000, 16000)
SUBTYPES = ("PCM_U8", "PCM_16", "PCM_24", "PCM_32")
CFG = FrontendConfig()
SCIPY_WAVS = Path(__import__("scipy").__file__).parent / "io" / "tests" / "data"


def assert_same(stage: str, ours, theirs) -> None:
    """`ours` equals legacy's `theirs` bit for bit (as float64; NaN where both are ignored)."""
    a, b = np.asarray(ours, dtype=np.float64), np.asarray(theirs, dtype=np.float64)
    assert a.shape == b.shape, (stage, a.shape, b.shape)
    d = float(np.nanmax(np.abs(a - b))) if a.size else 0.0
    assert d == 0.0, f"{stage}: max |ours - legacy| = {d:.3g}"


def _load(filepath, *args, **kwargs):          # upstream OrcaHello's torchaudio.load patch
    data, samplerate = sf.read(str(filepath), dtype="float32")
    return torch.from_numpy(data.T if data.ndim > 1 else data.reshape(1, -1)), samplerate


def _save(filepath, src, sample_rate, *args, **kwargs):   # ... and its torchaudio.save patch
    sf.write(str(filepath), src.numpy().T if src.ndim > 1 else src.numpy().reshape(-1, 1),
             sample_rate)


@pytest.fixture(autouse=True)
def legacy_io(monkeypatch, tmp_path):
    monkeypatch.setattr(torchaudio, "load", _load)
    monkeypatch.setattr(torchaudio, "save", _save)
    monkeypatch.setenv("HOME", str(tmp_path))            # fastai_audio caches under ~/.fastai
    warnings.simplefilter("ignore")


def synth(path: Path, rate: int, channels: int, subtype: str, seconds: float = 3.5) -> None:
    """A chirp plus noise, one channel driven into full-scale clipping (resample overshoots it)."""
    rng = np.random.default_rng(rate + channels)
    t = np.arange(int(rate * seconds)) / rate
    x = 0.5 * np.sin(2 * np.pi * (200 + 0.3 * rate * t / seconds) * t)[:, None]
    x = x + 0.05 * rng.standard_normal((t.size, channels))
    x[: rate // 2, 0] = np.clip(3 * np.sign(np.sin(2 * np.pi * 700 * t[: rate // 2])), -1, 1)
    sf.write(path, np.clip(x, -1, 1), rate, subtype=subtype)


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("subtype", SUBTYPES)
@pytest.mark.parametrize("channels", [1, 2])
def test_decode_slice_export_load_match_pydub(tmp_path, rate, subtype, channels) -> None:
    path = tmp_path / "in.wav"
    synth(path, rate, channels, subtype)
    seg, pcm = AudioSegment.from_wav(str(path)), decode_pcm(path)
    assert (pcm.sample_width, pcm.sample_rate, pcm.channels) == (seg.sample_width, seg.frame_rate,
                                                                 seg.channels)
    assert pcm.samples.tobytes() + pcm.tail == seg.raw_data             # decode: byte-exact
    windows = clip_windows(pcm.duration_s)
    duration = librosa.get_duration(path=str(path))     # production's window count
    assert windows == [(i, i + 2) for i in range(int(math.floor(duration) - 1))]
    cuts = [(b * 1000, e * 1000) for b, e in windows] + [(-500, None), (3400, 9999), (7, 7.5)]
    for begin, end in cuts:
        clip, ref = slice_ms(pcm, begin, end), seg[begin:end]
        assert clip.samples.tobytes() + clip.tail == ref.raw_data, (begin, end)   # clip
        ref.export(str(tmp_path / "clip.wav"), format="wav")
        assert_same("load", load_clip(clip), torchaudio.load(tmp_path / "clip.wav")[0])
    with pytest.raises(TooManyMissingFrames):
        seg[-100000:1000]
    with pytest.raises(SliceError):
        slice_ms(pcm, -100000, 1000)


@pytest.mark.skipif(not SCIPY_WAVS.is_dir(), reason="scipy's test WAVs are not installed")
def test_scipy_wavs_decode_like_pydub_or_are_refused() -> None:
    for path in sorted(SCIPY_WAVS.glob("test-*.wav")):
        try:
            ours = decode_pcm(path)
        except AudioDecodeError:
            continue                     # refused: legacy fails or misreads it (see decode_pcm)
        try:
            seg = AudioSegment.from_wav(str(path))
        except FileNotFoundError:        # legacy needs ffmpeg for it (float): not installed here
            continue
        assert ours.samples.tobytes() + ours.tail == seg.raw_data, path.name


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("channels", [1, 2, 3])
def test_downmix_resample_and_their_caches_match_fastai_audio(tmp_path, rate, channels) -> None:
    path = tmp_path / "in.wav"
    synth(path, rate, channels, "PCM_24", seconds=2.0)
    AudioSegment.from_wav(str(path)).export(str(tmp_path / "clip.wav"), format="wav")
    sig, sr = torchaudio.load(tmp_path / "clip.wav")      # as fastai_audio reads the pydub clip
    x = load_clip(decode_pcm(path))
    dm_ref = fa_tfm.tfm_downmix(sig)
    assert_same("downmix_mean", downmix(x), dm_ref)
    files = fa_data.make_cache([dm_ref], sr, fa_data.AudioConfig(), "dm", tmp_path / "a", [])
    dm_loaded, _ = torchaudio.load(files[0])              # the real PCM_16 file on disk
    ours = cache_round_trip(downmix(x))
    assert_same("downmix", ours, dm_loaded)
    rs_ref = fa_tfm.tfm_resample(dm_loaded, sr, 20000)
    rs = resample(ours, sr, 20000)
    assert rs.dtype == rs_ref.numpy().dtype
    assert_same("resample_poly", rs, rs_ref)
    files = fa_data.make_cache([rs_ref], 20000, fa_data.AudioConfig(), "rs", tmp_path / "b", [])
    assert_same("resample", cache_round_trip(rs), torchaudio.load(files[0])[0])
    # no downmix: the resample cache stores every channel (the (C, N) layout must survive)
    multi = fa_tfm.tfm_resample(sig, sr, 20000)
    files = fa_data.make_cache([multi], 20000, fa_data.AudioConfig(), "rs", tmp_path / "c", [])
    assert_same("resample", cache_round_trip(resample(x, sr, 20000)), torchaudio.load(files[0])[0])


SPECTRO_VARIANTS = [{}, {"win_length": 2048, "pad": 100}, {"f_max": None, "top_db": None},
                    {"n_mels": 128, "n_fft": 1024, "hop_length": 512, "f_min": 50.0}]


@pytest.mark.parametrize("variant", SPECTRO_VARIANTS, ids=lambda v: ",".join(v) or "production")
def test_mel_and_db_match_torchaudio(variant) -> None:
    cfg = dataclasses.replace(CFG, **variant)
    sg = fa_data.SpectrogramConfig(**{k: getattr(cfg, k) for k in (
        "f_min", "f_max", "hop_length", "n_fft", "n_mels", "pad", "to_db_scale", "top_db",
        "win_length", "n_mfcc")})
    rng = np.random.default_rng(1)
    for channels, n in ((1, 40000), (1, 40321), (2, 30000)):
        wave = torch.from_numpy((rng.standard_normal((channels, n)) * 0.2).astype(np.float32))
        ref = torchaudio.transforms.MelSpectrogram(**sg.mel_args())(wave)
        mel = mel_spectrogram(wave.numpy(), cfg)
        assert_same("mel", mel, ref)
        assert_same("mel_rel", (mel - ref).abs() / ref.abs().clamp(min=1e-30), torch.zeros_like(ref))
        assert_same("db", amplitude_to_db(mel, cfg.top_db),
               torchaudio.transforms.AmplitudeToDB(top_db=sg.top_db)(ref))
        assert_same("standardize", standardize(ref.clone()), fa_tfm.standardize(ref.clone()))


@pytest.mark.parametrize("frames", [1, 100, 157, 311, 312])
@pytest.mark.parametrize("mode", ["zeros-after", "repeat", "ZEROS-AFTER"])
def test_pad_matches_tfm_crop_time(frames, mode) -> None:
    db = torch.randn(1, 256, frames)
    cfg = dataclasses.replace(CFG, pad_mode=mode)
    ref, _, _ = fa_tfm.tfm_crop_time(db, 20000, 4000, 256, mode)
    assert_same("input", pad_or_crop(db, cfg, 20000), ref)
    if frames == 312:                 # an exact fit: legacy's "zeros" draws randint(0, 0) == 0
        zeros = dataclasses.replace(CFG, pad_mode="zeros")
        assert_same("input", pad_or_crop(db, zeros, 20000), fa_tfm.tfm_crop_time(db, 20000, 4000, 256)[0])


@pytest.mark.parametrize("pad_mode", ["zeros", "zeros-after"])
def test_whole_frontend_matches_fastai_audio_audiolist(tmp_path, monkeypatch, pad_mode) -> None:
    """Production's own steps: pydub clips exported to a folder, AudioList.from_folder with the
    production AudioConfig, each item's spectrogram vs frontend_stages()["input"]. Production
    never sets pad_mode, so it runs fastai_audio's default "zeros" (random front padding): the
    offsets it draws are recorded and replayed."""
    clips = tmp_path / "clips"
    clips.mkdir()
    ours = {}
    for rate, channels, subtype in ((48000, 2, "PCM_16"), (44100, 1, "PCM_24"), (16000, 1, "PCM_U8"),
                                    (96000, 2, "PCM_32"), (20000, 1, "PCM_16")):
        src = tmp_path / f"f{rate}.wav"
        synth(src, rate, channels, subtype, seconds=4.2)
        seg, pcm = AudioSegment.from_wav(str(src)), decode_pcm(src)
        for begin, end in clip_windows(librosa.get_duration(path=str(src))):
            name = f"f{rate}_{begin}_{end}.wav"
            seg[begin * 1000:end * 1000].export(str(clips / name), format="wav")
            ours[name] = slice_ms(pcm, begin * 1000, end * 1000)
    config = fa_data.AudioConfig(standardize=False, sg_cfg=fa_data.SpectrogramConfig(
        f_min=0.0, f_max=10000, hop_length=256, n_fft=2560, n_mels=256, pad=0, to_db_scale=True,
        top_db=100, win_length=None, n_mfcc=20))
    config.duration, config.resample_to, config.downmix = 4000, 20000, True
    if pad_mode != "zeros":              # "zeros" is the default production runs with
        config.pad_mode = pad_mode
    config.cache_dir = cache = tmp_path / ".fastai" / "cache"
    x = fa_data.AudioList.from_folder(clips, config=config).split_none().label_empty().train.x
    assert len(x) == len(ours) == 15
    by_folder = {"0.wav-" + fa_data.md5(str(cache / "dm_" / f"{n}-{fa_data.md5(str(clips / n))}"
                                            / "0.wav")): n for n in ours}
    drawn: list[int] = []
    randint = fa_tfm.random.randint
    monkeypatch.setattr(fa_tfm.random, "randint", lambda a, b: drawn.append(randint(a, b)) or drawn[-1])
    cfg = dataclasses.replace(CFG, pad_mode=pad_mode)
    for i in range(len(x)):
        spectro = x.get(i).spectro                     # one draw per item for "zeros"
        front = drawn[-1] if pad_mode == "zeros" else None
        stages = frontend_stages(ours[by_folder[Path(x.items[i]).parent.name]], cfg, front)
        assert_same("end_to_end_input", stages["input"], spectro)
    assert len(drawn) == (15 if pad_mode == "zeros" else 0)
    assert pad_mode != "zeros" or len(set(drawn)) > 1   # production's offsets really vary


def legacy_aggregation(confidences, threshold=0.5, min_positive=3):
    """OrcaHello FastAIModel.predict's aggregation, copied as the oracle (file names -> starts)."""
    prediction = pd.DataFrame({"FilePath": [f"x_{i}_{i + 2}.wav" for i in range(len(confidences))],
                               "confidence": confidences})
    prediction["confidence"] = prediction.confidence.astype(float)
    prediction["start_time_s"] = prediction.FilePath.apply(lambda x: int(x.split("_")[-2]))
    prediction = prediction.sort_values(["start_time_s"]).reset_index(drop=True)
    submission = pd.DataFrame({"wav_filename": "x.wav", "duration_s": 1.0,
                               "confidence": list(prediction.rolling(2)["confidence"].mean().values)}
                              ).reset_index().rename(columns={"index": "start_time_s"})
    submission.loc[0, "confidence"] = prediction.confidence[0]
    last = pd.DataFrame({"wav_filename": "x.wav",
                         "start_time_s": [submission.start_time_s.max() + 1], "duration_s": 1.0,
                         "confidence": [prediction.confidence[prediction.shape[0] - 1]]})
    submission = pd.concat([submission, last], ignore_index=True)
    local = list((submission["confidence"] > threshold).astype(int))
    glob_conf = submission.loc[(submission["confidence"] > threshold), "confidence"].mean() * 100
    glob_conf = 0 if pd.isnull(glob_conf) else glob_conf
    return submission, local, int(sum(local) >= min_positive), glob_conf


def test_aggregate_matches_pandas_production_code() -> None:
    rng = np.random.default_rng(2)
    cases = [[0.7], [0.2, 0.9], [0.1, 1e-8, 0.7], [0.1, 0.3, 0.1, 0.1], list(np.full(59, 0.75))]
    cases += [list((1 / (1 + np.exp(-rng.normal(0, 4, int(rng.integers(1, 120)))))).astype(np.float32))
              for _ in range(300)]
    cases += [list(rng.choice([1e-8, 0.3, 0.5, 0.7, 0.99999994], int(rng.integers(2, 80))))
              for _ in range(300)]
    for conf in cases:
        submission, local, glob_pred, glob_conf = legacy_aggregation(conf)
        agg = aggregate([float(c) for c in conf])
        assert agg.start_time_s.tolist() == submission.start_time_s.tolist()
        assert np.array_equal(agg.confidence, submission.confidence.to_numpy()), conf
        assert agg.local_prediction.tolist() == local and agg.global_prediction == glob_pred
        assert agg.global_confidence == glob_conf
    with pytest.raises(KeyError):
        legacy_aggregation([])
    with pytest.raises(ValueError, match="KeyError"):
        aggregate([])
