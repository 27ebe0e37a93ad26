"""Any folder of recordings as a reference corpus: scanned recursively, names that never leave the
folder, one tensor file per distinct recording, changed audio caught; and what a reference set keeps per file."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from convert.reference_plan import estimate, plan_within_budget, sampled_clips
from orcaport.model.config import ModelConfig
from orcaport.model.fileio import sha256_file
from orcaport.model.transcode import to_wav
from orcaport.parity.audio_manifest import AudioFolderError, build_entries, safe_relative, scan, tensor_file_name, verify
from tests.conftest import FIXTURE


def _wav(path: Path, seconds: float, rate: int = 16000, channels: int = 1) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.zeros((int(seconds * rate), channels)), rate, subtype="PCM_16")


@pytest.mark.parametrize("name,ok", [("a.wav", True), ("site/a.wav", True), ("../a.wav", False),
                                     ("/etc/passwd", False), ("site/../../a.wav", False),
                                     (".hidden/a.wav", False), ("a\\b.wav", False), ("", False)])
def test_only_relative_names_inside_the_folder_are_safe(name: str, ok: bool) -> None:
    assert safe_relative(name) is ok


def test_a_folder_is_scanned_recursively_in_name_order_skipping_hidden_and_non_audio(tmp_path: Path) -> None:
    _wav(tmp_path / "b" / "x.wav", 3)
    _wav(tmp_path / "a.wav", 2.5, 32000, 2)
    _wav(tmp_path / ".trash" / "old.wav", 3)
    (tmp_path / "notes.txt").write_text("not audio")
    root, names = scan([tmp_path])
    assert root == tmp_path and names == ["a.wav", "b/x.wav"]
    entries = build_entries(root, names)
    assert entries[0]["sample_rate"] == 32000 and entries[0]["channels"] == 2
    assert entries[0]["duration_s"] == pytest.approx(2.5) and entries[0]["format"] == "WAV"
    assert [tensor_file_name(n) for n in names] == ["a.wav.safetensors", "b%2Fx.wav.safetensors"]


def test_distinct_recordings_never_share_a_tensor_file() -> None:
    names = ["a.wav", "a.mp3", "a.wav.wav", "sub/a.wav", "sub__a.wav", "sub%2Fa.wav", "x%25/a.wav",
             "sub/a/b.wav", "sub%2Fa/b.wav"]
    files = [tensor_file_name(n) for n in names]
    assert len(set(files)) == len(names)
    assert all("/" not in f and not f.startswith(".") for f in files)


def test_an_empty_folder_and_a_name_too_long_to_flatten_are_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(AudioFolderError, match="holds no audio file.*AUDIO="):
        scan([tmp_path / "empty"])
    deep = tmp_path / "c" / ("d" * 120) / ("e" * 120) / "a.wav"     # each part fits, the flat name not
    _wav(deep, 3)
    _wav(tmp_path / "c" / "a.flac", 3)
    root, names = scan([tmp_path / "c"])
    with pytest.raises(AudioFolderError, match="path too long to name its references file"):
        build_entries(root, names)


def test_a_changed_or_missing_recording_is_caught_on_replay(tmp_path: Path) -> None:
    _wav(tmp_path / "s" / "a.wav", 3)
    entries = build_entries(*scan([tmp_path]))
    verify(tmp_path, entries)
    _wav(tmp_path / "s" / "a.wav", 3.5)
    with pytest.raises(AudioFolderError, match="is not the audio the references were made from"):
        verify(tmp_path, entries)
    with pytest.raises(AudioFolderError, match="outside the audio folder"):
        verify(tmp_path, [{"name": "../a.wav", "sha256": "0"}])


def test_sampled_clips_include_the_ones_nearest_the_threshold() -> None:
    probs = np.array([0.9, 0.2, 0.51, 0.99, 0.47, 0.1])
    assert sampled_clips(probs, 0.5, 2) == [0, 2, 3, 4, 5]      # first, last, best, two nearest
    assert sampled_clips(probs, 0.5, 0) == [0, 3, 5]
    assert sampled_clips(np.array([0.3]), 0.5, 2) == [0]


def test_budget_drops_near_threshold_clips_before_refusing() -> None:
    cfg = ModelConfig.load(FIXTURE / "config.json")
    hour = [{"name": "h.wav", "sample_rate": 48000, "channels": 1, "duration_s": 3600.0}]
    full = estimate(hour, cfg, 2)
    assert full["clips"] == 3599 and full["full_clips"] == 5
    near, est = plan_within_budget(hour, cfg, 2, full["bytes"] - 1)
    assert near < 2 and est["bytes"] < full["bytes"]
    with pytest.raises(ValueError, match="BUDGET_MB="):
        plan_within_budget(hour, cfg, 2, 1000)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg (apt-get install ffmpeg)")
def test_a_non_wav_entry_keeps_both_hashes_and_either_changed_is_refused(tmp_path: Path) -> None:
    _wav(tmp_path / "src.wav", 3, 44100)
    (tmp_path / "audio").mkdir()
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(tmp_path / "src.wav"),
                    str(tmp_path / "audio" / "a.mp3")], check=True)
    _wav(tmp_path / "audio" / "a.wav", 3)
    entries = build_entries(*scan([tmp_path / "audio"]))
    mp3, wav = entries
    to_wav(tmp_path / "audio" / "a.mp3", tmp_path / "by_hand.wav")       # production's command
    assert mp3["wav_sha256"] == sha256_file(tmp_path / "by_hand.wav") != mp3["sha256"]
    assert mp3["wav"]["subtype"] == "PCM_16" and mp3["wav"]["sample_rate"] == 44100
    assert "wav_sha256" not in wav                                       # a WAV is read as is
    verify(tmp_path / "audio", entries)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PATH", str(tmp_path / "nowhere"))
        with pytest.raises(AudioFolderError, match="through ffmpeg, which is not installed; install ffmpeg"):
            verify(tmp_path / "audio", entries)
    with pytest.raises(AudioFolderError, match="converts it to a WAV other than the one"):
        verify(tmp_path / "audio", [{**mp3, "wav_sha256": "0" * 64}])
    with pytest.raises(AudioFolderError, match="keep no sha256 of its production conversion"):
        verify(tmp_path / "audio", [{k: v for k, v in mp3.items() if k != "wav_sha256"}])
    (tmp_path / "audio" / "a.mp3").write_bytes((tmp_path / "audio" / "a.mp3").read_bytes()[:-1])
    with pytest.raises(AudioFolderError, match="is not the audio the references were made from"):
        verify(tmp_path / "audio", [mp3])
