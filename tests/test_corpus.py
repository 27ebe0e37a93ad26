"""The synthesizer is deterministic and says what it did; the committed corpus is what corpus.json says."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from orcaport.parity.testaudio import corpus as corpus_mod
from orcaport.parity.testaudio.corpus import CORPUS, CorpusError, load_corpus_manifest, write_file
from orcaport.parity.testaudio.synth import CallSpec, sin_cycles, synth_recording
from orcaport.parity.testaudio.training import LABELS, make_training_set, synth_clip, training_example
from tests.conftest import CORPUS as CORPUS_DIR, FLAGSHIP  # CORPUS here is the corpus specs

SPECS = {spec.name: spec for spec in CORPUS}
PSD_FRAME = 2048
BAND_HZ = (1000.0, 8000.0)


def _band_psd_db(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Per-frame power (dB) of the 1-8 kHz bins: Hann frames, half overlap."""
    frames = np.lib.stride_tricks.sliding_window_view(audio, PSD_FRAME)[::PSD_FRAME // 2]
    power = np.abs(np.fft.rfft(frames * np.hanning(PSD_FRAME), axis=1)) ** 2
    freqs = np.fft.rfftfreq(PSD_FRAME, 1.0 / sample_rate)
    return 10.0 * np.log10(power[:, (freqs >= BAND_HZ[0]) & (freqs < BAND_HZ[1])] + 1e-30)


def _entry(manifest: dict, name: str) -> dict:
    return next(e for e in manifest["files"] if e["name"] == name)


@pytest.fixture(scope="module")
def manifest() -> dict:
    return load_corpus_manifest(CORPUS_DIR)


# --- synthesizer -------------------------------------------------------------------------------

def test_sin_cycles_is_an_accurate_sine() -> None:
    x = np.random.default_rng(0).uniform(-50.0, 50.0, 10_000)
    assert np.max(np.abs(sin_cycles(x) - np.sin(2.0 * np.pi * x))) < 1e-12


def test_same_seed_same_clip_different_seed_different_clip() -> None:
    clip = lambda seed: synth_clip(np.random.default_rng(seed), 1.0, 16_000, calls=1)  # noqa: E731
    assert np.array_equal(clip(3), clip(3))
    assert not np.allclose(clip(3), clip(4))


def test_training_set_labels_shapes_and_per_example_seeds() -> None:
    small = make_training_set(5, 2, 2, seconds=1.0, sample_rate=16_000)
    assert [label for _, label in small] == [LABELS[1]] * 2 + [LABELS[0]] * 2
    for audio, _ in small:
        assert audio.dtype == np.float64 and audio.shape == (16_000,)
        assert np.all(np.isfinite(audio)) and np.max(np.abs(audio)) <= 1.0
    # Each example has its own seed: growing the set never changes the examples already in it.
    bigger = make_training_set(5, 3, 1, seconds=1.0, sample_rate=16_000)
    assert all(np.array_equal(a, b) for (a, _), (b, _) in zip(small[:2], bigger[:2]))
    assert np.array_equal(small[2][0], bigger[3][0])


def test_events_are_where_the_call_energy_is() -> None:
    """Background and calls use separate streams: removing the call changes only its own span."""
    sr, seconds = 16_000, 3.0
    quiet, none = synth_recording(11, seconds, sr, [])
    loud, events = synth_recording(11, seconds, sr, [CallSpec(1.0, "call", 6.0, 0.8)])
    assert none == [] and [(e.start_s, e.end_s, e.kind) for e in events] == [(1.0, 1.8, "call")]
    changed = np.flatnonzero(loud != quiet)
    assert changed.min() >= int(1.0 * sr) and changed.max() < int(1.8 * sr)
    assert len(changed) > 0.9 * 0.8 * sr


def test_positive_clips_carry_more_harmonic_energy_than_negatives() -> None:
    """Harmonics stand out of the 1-8 kHz floor in positives; negatives (ships with tonal whines
    included) do so less, on average: the detector has something real, not trivial, to learn."""
    def peakiness(audio: np.ndarray) -> float:
        band = _band_psd_db(audio, 48_000)
        return float(np.mean(np.percentile(band, 99, axis=1) - np.median(band, axis=1)))

    pos = [peakiness(training_example(seed, i, True)) for seed in range(3) for i in range(8)]
    neg = [peakiness(training_example(seed, i, False)) for seed in range(3) for i in range(8)]
    assert np.mean(pos) > np.mean(neg) + 2.0
    assert np.mean(np.array(pos) > np.median(neg)) > 0.6
    assert np.mean(np.array(neg) > np.median(pos)) > 0.0   # some negatives look busy: not trivial


# --- committed corpus --------------------------------------------------------------------------

def test_manifest_lists_every_corpus_file_with_matching_hashes(manifest: dict) -> None:
    assert [e["name"] for e in manifest["files"]] == [spec.name for spec in CORPUS]


@pytest.mark.parametrize("name", list(SPECS))
def test_file_has_the_promised_format(manifest: dict, name: str) -> None:
    spec, entry, info = SPECS[name], _entry(manifest, name), sf.info(str(CORPUS_DIR / name))
    assert (info.format, info.samplerate, info.channels, info.subtype, info.frames) == \
        ("WAV", spec.sample_rate, spec.channels, spec.subtype, spec.frames)
    assert (entry["sample_rate"], entry["channels"], entry["subtype"], entry["frames"]) == \
        (spec.sample_rate, spec.channels, spec.subtype, spec.frames)
    assert entry["duration_s"] == spec.frames / spec.sample_rate


def test_durations_cover_the_window_edge_cases(manifest: dict) -> None:
    durations = {e["name"]: e["duration_s"] for e in manifest["files"]}
    assert durations[FLAGSHIP] == 60.0 and durations["exact_2s0_48k_16.wav"] == 2.0
    assert durations["short_1s5_48k_16.wav"] < 2.0


def test_flipped_byte_and_missing_files_are_reported(tmp_path: Path) -> None:
    shutil.copytree(CORPUS_DIR, tmp_path, dirs_exist_ok=True)
    victim = tmp_path / "exact_2s0_48k_16.wav"
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x01
    victim.write_bytes(data)
    with pytest.raises(CorpusError, match="exact_2s0_48k_16.wav.*make corpus") as info:
        load_corpus_manifest(tmp_path)
    assert "\n" not in str(info.value)
    victim.unlink()
    with pytest.raises(CorpusError, match="missing.*make corpus"):
        load_corpus_manifest(tmp_path)
    with pytest.raises(CorpusError, match="corpus.json is missing.*make corpus"):
        load_corpus_manifest(tmp_path / "nowhere")


@pytest.mark.parametrize("name", [n for n in SPECS if n != FLAGSHIP])   # the 60 s one takes ~3 s
def test_regeneration_is_byte_identical(manifest: dict, tmp_path: Path, name: str) -> None:
    """No timestamps (libsndfile's float PEAK chunk), no drift between the code and the committed
    bytes or events (`make corpus` was run after the last change)."""
    assert write_file(SPECS[name], tmp_path) == _entry(manifest, name)


def test_failed_write_leaves_the_old_file_and_no_tmp(tmp_path: Path, monkeypatch) -> None:
    spec = SPECS["silence_48k_16_3s2.wav"]
    write_file(spec, tmp_path)
    before = (tmp_path / spec.name).read_bytes()

    def broken_write(file, *args, **kwargs):      # the WAV is encoded in memory, then written atomically
        file.write(b"RIFF partial")
        raise OSError("disk full")

    monkeypatch.setattr(corpus_mod.sf, "write", broken_write)
    with pytest.raises(OSError, match="disk full"):
        write_file(spec, tmp_path)
    assert (tmp_path / spec.name).read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [spec.name]


def test_silence_is_digital_zero() -> None:
    audio, _ = sf.read(str(CORPUS_DIR / "silence_48k_16_3s2.wav"), dtype="int16")
    assert not audio.any()


def test_clipping_file_sits_on_both_rails() -> None:
    audio, _ = sf.read(str(CORPUS_DIR / "clipping_48k_16_3s2.wav"), dtype="int16")
    assert np.sum(audio == 32767) > 1000 and np.sum(audio == -32768) > 1000


def test_dc_offset_file_has_its_offset() -> None:
    audio, _ = sf.read(str(CORPUS_DIR / "dc_offset_48k_16_3s2.wav"))
    assert abs(float(np.mean(audio)) - 0.3) < 0.01


def test_stereo_channels_differ_only_inside_their_events(manifest: dict) -> None:
    """Shared background, channel-specific calls: so the downmix really differs from channel 0."""
    name = "stereo_44k1_16_10s5.wav"
    audio, sr = sf.read(str(CORPUS_DIR / name), dtype="int16")
    events = _entry(manifest, name)["events"]
    assert {e["channel"] for e in events} == {0, 1}
    inside = np.zeros(len(audio), bool)
    for e in events:
        inside[int(round(e["start_s"] * sr)):int(round(e["end_s"] * sr))] = True
    differs = audio[:, 0] != audio[:, 1]
    assert not differs[~inside].any() and differs[inside].mean() > 0.5


def test_flagship_calls_stand_out_at_their_recorded_times(manifest: dict) -> None:
    """In each event window with SNR >= 0 dB, the strongest 1-8 kHz bins rise well above nearby
    call-free audio; call-free windows compared the same way do not."""
    audio, sr = sf.read(str(CORPUS_DIR / FLAGSHIP))
    events = _entry(manifest, FLAGSHIP)["events"]
    busy = np.zeros(len(audio), bool)
    for e in events:
        busy[int(e["start_s"] * sr):int(e["end_s"] * sr)] = True
    free = [s for s in np.arange(0.0, 59.0, 0.25)
            if not busy[max(0, int((s - 0.25) * sr)):int((s + 1.25) * sr)].any()]
    assert len(free) > 40

    def contrast(start: float, end: float) -> float:
        near = [s for s in free if abs(s - start) < 5.0 and s != start]
        base = np.median([np.mean(10 ** (_band_psd_db(audio[int(s * sr):int((s + 1) * sr)], sr) / 10), 0)
                          for s in near], axis=0)
        here = np.mean(10 ** (_band_psd_db(audio[int(start * sr):int(end * sr)], sr) / 10), 0)
        return float(np.percentile(10 * np.log10(here / base), 95))

    strong = [e for e in events if e["snr_db"] >= 0]
    assert len(strong) >= 8
    for e in strong:
        assert contrast(e["start_s"], e["end_s"]) > 6.0, e
    for s in free[::6]:
        assert contrast(s, s + 1.0) < 3.0, s
