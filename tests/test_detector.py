"""model.detector: legacy-exact equals the committed legacy references; streaming, shared seconds
and batching change no number; the fast profile agrees on decisions; errors are one clear line."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from orcaport.model.audio import AudioDecodeError, decode_pcm, slice_ms
from orcaport.model.waveform import clip_windows
from orcaport.model.detector import Detector, DetectorError, open_audio
from orcaport.model.pipeline import frontend_stages
from orcaport.parity.fingerprint import fingerprint
from orcaport.parity.references import load_references
from orcaport.parity.run import criteria, load_tolerances
from tests.conftest import CORPUS, FIXTURE, FLAGSHIP, ROOT
from tests.conftest import REFS as STAGES

STEREO = "stereo_44k1_16_10s5.wav"
NARROW = "narrow_8k_16_10s5.wav"
SCIPY_WAVS = sorted((Path(np.__file__).parents[1] / "scipy" / "io" / "tests" / "data").glob("*.wav"))


@pytest.fixture(scope="module")
def refs():
    return load_references(STAGES)


@pytest.fixture(scope="module")
def bound(refs) -> float:
    """parity/tolerances.json's per-second confidence bound under the criteria that apply between
    the references' machine and this one (the envelope-derived cross-machine one elsewhere)."""
    regime = criteria(refs.manifest.get("machine"), fingerprint()).regime
    return load_tolerances(regime=regime)[1]["probs"].atol


@pytest.fixture(scope="module")
def exact() -> Detector:
    return Detector.from_folder(FIXTURE)


@pytest.fixture(scope="module")
def plain() -> Detector:
    """The unmodified OrcaNet module (no BN folding, no oneDNN layouts), as parity runs it."""
    return Detector.from_folder(FIXTURE, engine="nchw")


@pytest.mark.parametrize("engine", ["exact", "plain"])
@pytest.mark.parametrize("name", [FLAGSHIP, STEREO, NARROW, "hires_96k_24_3s2.wav"])
def test_legacy_exact_matches_legacy_references(request, refs, bound: float, name: str, engine: str) -> None:
    exact = request.getfixturevalue(engine)
    ref = refs.file(name)
    d = exact.detect(CORPUS / name)
    t = ref.tensors
    assert d.clips == ref.clips
    np.testing.assert_allclose(d.clip_confidence, t["all/probs"][:, exact.positive_index], rtol=0, atol=bound)
    np.testing.assert_allclose(d.confidence, t["aggregate/confidence"], rtol=0, atol=bound)
    # identical decisions, except where legacy's own confidence is within the envelope of 0.5
    stable = np.abs(t["aggregate/confidence"] - 0.5) > bound
    np.testing.assert_array_equal(d.local_prediction[stable], t["aggregate/local_prediction"][stable])
    if stable.all():
        assert d.global_prediction == int(t["aggregate/global_prediction"][0])
        assert d.global_confidence == pytest.approx(float(t["aggregate/global_confidence"][0]), abs=100 * bound)
    assert list(d.start_time_s) == list(range(ref.clips + 1))
    if name == FLAGSHIP:
        assert len(d.rows()) == 60 and d.wav_filename == name and d.profile == "legacy-exact"
        legacy = d.legacy_dict()
        assert set(legacy) == {"submission", "local_predictions", "local_confidences",
                               "global_prediction", "global_confidence"}
        assert legacy["submission"][59] == {"wav_filename": name, "start_time_s": 59, "duration_s": 1.0,
                                            "confidence": float(d.confidence[59])}


@pytest.mark.parametrize("name", [STEREO, NARROW, "hires_96k_24_3s2.wav", "float32_48k_3s2.wav"])
def test_shared_seconds_give_legacy_clips_and_inputs_bit_for_bit(exact: Detector, refs, name: str) -> None:
    """Each second decoded/downmixed/round-tripped once and shared by two clips == legacy's clip."""
    src = open_audio(CORPUS / name)
    segs = list(src.segments(len(clip_windows(src.duration_s)) + 1))
    clips = [np.concatenate(segs[i:i + 2]) for i in range(len(segs) - 1)]
    assert [hashlib.sha256(c.tobytes()).hexdigest() for c in clips] == refs.file(name).entry["clip_sha256"]
    pcm = decode_pcm(CORPUS / name)
    for i, shared in enumerate(exact.clip_inputs(src)):
        want = frontend_stages(slice_ms(pcm, i * 1000, (i + 2) * 1000), exact.frontend)["input"]
        assert torch.equal(exact.batch_inputs([shared], src)[0], want), f"clip {i}"


@pytest.mark.parametrize("path", SCIPY_WAVS + sorted(CORPUS.glob("*.wav")), ids=lambda p: p.name)
def test_streaming_reader_accepts_and_decodes_exactly_as_decode_pcm(path: Path) -> None:
    try:
        pcm = decode_pcm(path)
    except AudioDecodeError as e:
        with pytest.raises(AudioDecodeError) as got:
            open_audio(path, stream_bytes=0)
        assert str(got.value) == str(e)
        return
    src = open_audio(path, stream_bytes=0)
    assert src.pcm is None
    assert (src.sample_rate, src.channels, src.frames, src.sample_width) == \
        (pcm.sample_rate, pcm.channels, pcm.frames, pcm.sample_width)
    n = len(clip_windows(src.duration_s))
    if n:
        got = np.concatenate(list(src.segments(n + 1)))
        assert got.dtype == pcm.samples.dtype
        np.testing.assert_array_equal(got, pcm.samples[:len(got)])


def test_streaming_and_batching_equal_the_whole_file_result(tmp_path: Path) -> None:
    """A 25 s stereo file: streamed from disk in any batch size / worker count == decoded whole."""
    x, sr = sf.read(str(CORPUS / STEREO), dtype="int16")
    wav = tmp_path / "long_stereo.wav"
    sf.write(str(wav), np.concatenate([x, x, x[: int(4.2 * sr)]]), sr, subtype="PCM_16")
    whole = Detector.from_folder(FIXTURE, batch_size=16, workers=1).detect(wav)
    assert whole.clips == 24
    for batch, workers in ((1, 1), (5, 2), (32, 3)):
        streamed = Detector.from_folder(FIXTURE, batch_size=batch, workers=workers, stream_bytes=0)
        d = streamed.detect(wav)
        np.testing.assert_allclose(d.clip_confidence, whole.clip_confidence, rtol=0, atol=1e-6)
        np.testing.assert_array_equal(d.local_prediction, whole.local_prediction)
        assert d.global_prediction == whole.global_prediction


def test_progress_reports_every_clip(exact: Detector) -> None:
    seen: list[tuple[int, int]] = []
    exact.detect(CORPUS / STEREO, progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (9, 9) and [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_threshold_and_min_positive_override(exact: Detector) -> None:
    d = exact.detect(CORPUS / STEREO, threshold=0.99, min_positive=60)
    assert d.threshold == 0.99 and d.min_positive == 60 and d.global_prediction == 0
    np.testing.assert_array_equal(d.local_prediction, (d.confidence > 0.99).astype(int))


def test_fast_profile_agrees_with_fp32_on_decisions(exact: Detector) -> None:
    """fast's bf16 arithmetic, on any CPU (the bf16 flag is injected; tests/test_arithmetic.py
    covers the choice itself)."""
    fast = Detector.from_folder(FIXTURE, profile="fast", cpu_flags=frozenset({"avx512_bf16"}))
    assert fast.precision in ("bfloat16 (onednn)", "bfloat16 autocast")
    for name in (FLAGSHIP, STEREO):
        a, b = exact.detect(CORPUS / name), fast.detect(CORPUS / name)
        assert b.profile == "fast"
        assert np.mean(a.local_prediction == b.local_prediction) >= 0.95
        assert a.global_prediction == b.global_prediction
        assert np.abs(a.clip_confidence - b.clip_confidence).max() < 0.1   # bf16, not garbage


def test_too_short_audio_is_a_clear_error(exact: Detector) -> None:
    with pytest.raises(DetectorError, match=r"1\.50 s of audio is shorter than one 2 s clip"):
        exact.detect(CORPUS / "short_1s5_48k_16.wav")


def test_unreadable_audio_is_a_clear_error(exact: Detector, tmp_path: Path) -> None:
    bad = tmp_path / "notes.wav"
    bad.write_text("not audio\n")
    with pytest.raises(AudioDecodeError, match="not decodable audio") as e:
        exact.detect(bad)
    assert "\n" not in str(e.value) and "convert it with" in str(e.value)
    with pytest.raises(DetectorError, match="no such audio file"):
        exact.detect(tmp_path / "missing.wav")


def test_missing_model_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DetectorError, match=r"model folder .* not found; pass --model DIR") as e:
        Detector.from_folder(tmp_path / "nope")
    assert "\n" not in str(e.value)


def test_bad_arguments_are_refused(exact: Detector) -> None:
    with pytest.raises(DetectorError, match="unknown profile"):
        Detector(exact.artifact, profile="turbo")
    with pytest.raises(DetectorError, match="unknown engine"):
        Detector(exact.artifact, engine="tensorrt")
    with pytest.raises(DetectorError, match="batch size"):
        Detector(exact.artifact, batch_size=-1)
    if not torch.cuda.is_available():
        with pytest.raises(DetectorError, match="no CUDA GPU; use --device cpu"):
            Detector(exact.artifact, device="cuda")


@pytest.mark.parametrize("kind", ["rate", "nan"])
def test_streamed_files_get_the_same_refusals_as_whole_decodes(tmp_path: Path, kind: str) -> None:
    """Above STREAM_BYTES the detector reads the file itself: it must refuse what decode_pcm does."""
    path = tmp_path / f"{kind}.wav"
    if kind == "rate":
        sf.write(str(path), np.zeros(3000, dtype=np.int16), 500, subtype="PCM_16")
    else:
        x = np.zeros(48000 * 3, dtype=np.float32)
        x[1234] = np.nan
        sf.write(str(path), x, 48000, subtype="FLOAT")
    with pytest.raises(AudioDecodeError, match="sample rate|NaN"):
        src = open_audio(path, stream_bytes=0)        # force the streaming path
        list(src.segments(int(src.duration_s)))
