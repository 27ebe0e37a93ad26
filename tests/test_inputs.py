"""Inputs beyond WAV: files through production's ffmpeg conversion, local HLS playlists, --follow,
and their bad inputs (one `error:` line, non-zero exit, nothing written)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

from orcaport.model.cli import main
from orcaport.model.detector import Detector
from orcaport.model.errors import ExitCode
from orcaport.model.follow import follow
from tests.conftest import CORPUS, FIXTURE, FLAGSHIP
from tests.test_hls_legacy import make_hls

SHORT = "hires_96k_24_3s2.wav"          # 3.2 s: two clips
pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg (apt-get install ffmpeg)")


@pytest.fixture(scope="module")
def det() -> Detector:
    return Detector.from_folder(FIXTURE)


@pytest.fixture(scope="module")
def hls(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_hls(CORPUS / FLAGSHIP, tmp_path_factory.mktemp("hls") / "stream")


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", *args], check=True)


def _error(capsys) -> str:
    lines = [ln for ln in capsys.readouterr().err.splitlines() if "error:" in ln]
    assert len(lines) == 1, lines
    return lines[0]


def test_an_mp3_is_detected_on_productions_ffmpeg_wav(det: Detector, tmp_path: Path) -> None:
    _ffmpeg("-i", str(CORPUS / "stereo_44k1_16_10s5.wav"), str(tmp_path / "a.mp3"))
    _ffmpeg("-i", str(tmp_path / "a.mp3"), str(tmp_path / "by_hand.wav"))   # production's command
    a, b = det.detect(tmp_path / "a.mp3"), det.detect(tmp_path / "by_hand.wav")
    assert a.wav_filename == "a.mp3"
    np.testing.assert_array_equal(a.confidence, b.confidence)


def test_playlist_gives_one_result_per_live_window(hls: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    assert main(["detect", "--model", str(FIXTURE), str(hls), "--window-seconds", "20", "--format", "json", "--output",
                 str(out), "--quiet"]) == 0
    names = [f["wav_filename"] for f in json.loads(out.read_text())["files"]]
    assert [n.split("@")[0] for n in names] == ["live.m3u8:live000.ts..live001.ts",
                                                 "live.m3u8:live002.ts..live003.ts",
                                                 "live.m3u8:live004.ts..live005.ts"]


def _copy(hls: Path, tmp: Path) -> Path:
    shutil.copytree(hls.parent, tmp / "s")
    return tmp / "s" / "live.m3u8"


@pytest.mark.parametrize("case, expect", [
    ("missing_segment", "lists 1 segment(s) missing"),
    ("truncated_ts", "truncated or not an MPEG-TS segment"),
    ("cut_at_packet", "a segment is truncated"),
    ("outside", "points outside the playlist's folder"),
    ("url", "is a URL; only local playlists are read"),
    ("too_short", "fewer than one 60 s live window"),
    ("unknown_format", "not audio ffmpeg can decode"),
    ("empty_folder", "folder holds no .wav or .flac files"),
    ("no_ffmpeg", "through ffmpeg, which is not installed; install ffmpeg"),
])
def test_bad_inputs_are_one_line_and_write_nothing(hls: Path, tmp_path: Path, capsys, monkeypatch,
                                                   case: str, expect: str) -> None:
    # a private temp folder: what is left there is this run's (other jobs share /tmp)
    (tmp_path / "tmp").mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    monkeypatch.setattr(tempfile, "tempdir", None)
    playlist = _copy(hls, tmp_path)
    target, args = playlist, ["--window-seconds", "20"]
    if case == "missing_segment":
        (playlist.parent / "live003.ts").unlink()
    elif case == "truncated_ts":
        data = (playlist.parent / "live001.ts").read_bytes()
        (playlist.parent / "live001.ts").write_bytes(data[: len(data) // 2 + 7])
    elif case == "cut_at_packet":     # whole packets, but half of them: decodes short, silently
        data = (playlist.parent / "live001.ts").read_bytes()
        (playlist.parent / "live001.ts").write_bytes(data[: 188 * (len(data) // 376)])
    elif case in ("outside", "url"):
        uri = "../../secret.ts" if case == "outside" else "https://example.org/live001.ts"
        playlist.write_text(playlist.read_text().replace("live001.ts", uri))
    elif case == "too_short":         # three 10 s segments: half a 60 s live window
        args = []
        playlist.write_text("#EXTINF".join(playlist.read_text().split("#EXTINF")[:4]))
    elif case == "unknown_format":
        target = tmp_path / "notes.xyz"
        target.write_text("not audio at all\n")
    elif case == "empty_folder":
        target = tmp_path / "empty"
        target.mkdir()
    elif case == "no_ffmpeg":
        monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    out = tmp_path / "out.csv"
    code = main(["detect", "--model", str(FIXTURE), str(target), *args, "--format", "csv", "--output",
                 str(out), "--quiet"])
    line = _error(capsys)
    # a folder with nothing to read is an unusable input; a failing file is a failed run
    want = ExitCode.BAD_INPUT if case == "empty_folder" else ExitCode.FAILED
    assert code == want and expect in line, (code, line)
    # nothing half-written: a failing single input leaves an empty table (header) or nothing at all
    assert not out.exists() or out.read_text().count("\n") == 1
    assert not list(Path(os.environ.get("TMPDIR", "/tmp")).glob("orcaport-ffmpeg-*/concat.ts"))


def test_follow_processes_each_new_input_once_across_restarts(det: Detector, hls: Path,
                                                              tmp_path: Path) -> None:
    folder = tmp_path / "incoming"
    folder.mkdir()
    shutil.copyfile(CORPUS / SHORT, folder / "a.wav")
    lines: list[str] = []

    def run() -> list[str]:
        got: list[str] = []
        assert follow(det, folder, poll_s=0, polls=1, settle_s=0, window_seconds=20,
                      out=got.append, err=got.append) == 0
        lines.extend(got)
        return [json.loads(x)["wav_filename"] for x in got]

    assert run() == ["a.wav"]
    assert run() == []                                       # a restart: nothing again
    shutil.copyfile(CORPUS / SHORT, folder / "b.wav")
    # a live playlist landing segment by segment: only complete windows, each once
    stream = folder / "stream"
    stream.mkdir()
    text = hls.read_text().split("#EXTINF")
    for name in ("live000.ts", "live001.ts", "live002.ts"):
        shutil.copyfile(hls.parent / name, stream / name)
    (stream / "live.m3u8").write_text("#EXTINF".join(text[:4]))    # lists live000..live002
    assert [n.split("@")[0] for n in run()] == ["b.wav", "live.m3u8:live000.ts..live001.ts"]
    for name in ("live003.ts", "live004.ts", "live005.ts"):
        shutil.copyfile(hls.parent / name, stream / name)
    (stream / "live.m3u8").write_text(hls.read_text())
    assert [n.split("@")[0] for n in run()] == ["live.m3u8:live002.ts..live003.ts",
                                                 "live.m3u8:live004.ts..live005.ts"]
    state = json.loads((folder / ".orcaport-follow.json").read_text())
    assert state["files"] == {"a.wav": "ok", "b.wav": "ok"} and state["windows"] == {"stream/live.m3u8": 3}
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_follow_refuses_a_corrupt_state_file(tmp_path: Path, capsys) -> None:
    (tmp_path / ".orcaport-follow.json").write_text("{half")
    assert main(["detect", "--model", str(FIXTURE), "--follow", str(tmp_path), "--polls", "1",
                 "--quiet"]) == ExitCode.BAD_INPUT
    line = _error(capsys)
    assert "state file" in line and "delete it to process the folder from scratch" in line, line


@pytest.mark.parametrize("args, expect", [
    (["x.wav", "--follow", "."], "--follow DIR takes no other inputs"),
    (["--follow", ".", "--format", "csv"], "--follow writes JSON lines to stdout"),
    ([], "no inputs; pass audio files or folders, or --follow DIR"),
])
def test_follow_usage_errors(args: list[str], expect: str, capsys) -> None:
    assert main(["detect", "--model", str(FIXTURE), *args]) == ExitCode.USAGE and expect in _error(capsys)
