"""`make references` on a user's folder that mixes formats and repeats stems (legacy env; skipped
without one, or without ffmpeg): `a.wav`, `a.mp3` and `sub/a.wav` each get their own tensor file,
the MP3 is recorded on production's ffmpeg conversion with both hashes kept, a file ffmpeg cannot
read is recorded as ffmpeg's refusal, legacy's chatter goes to the log beside the references while
the terminal shows one line per file -- and the clean replay passes on all of it, refusing a
tampered source or converted hash."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from orcaport.model.transcode import to_wav
from orcaport.parity.references import ReferencesError
from orcaport.parity.run import run_parity
from tests.conftest import FIXTURE, ROOT, legacy_interpreter

pytestmark = [pytest.mark.legacy,
              pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg (apt-get install ffmpeg)")]


def _tone(path: Path, rate: int, seconds: float = 3.3, seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    noise = np.random.default_rng(seed).standard_normal(t.size)
    sf.write(str(path), (0.3 * np.sin(2 * np.pi * 1500 * t) + 0.05 * noise).astype(np.float32), rate,
             subtype="PCM_16")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    python = legacy_interpreter()
    tmp = tmp_path_factory.mktemp("formats")
    audio = tmp / "audio"
    _tone(audio / "a.wav", 48000)
    _tone(audio / "sub" / "a.wav", 32000, seed=1)
    _tone(tmp / "src.wav", 44100, seed=2)
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(tmp / "src.wav"), str(audio / "a.mp3")],
                   check=True)
    (audio / "bad.flac").write_bytes(b"not audio at all")
    out = tmp / "refs"
    run = subprocess.run([python, "-m", "convert.references", "--model", str(FIXTURE), "--audio", str(audio),
                          "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=900,
                         env={**os.environ, "HOME": str(tmp), "PYTHONPATH": str(ROOT)})
    assert run.returncode == 0, run.stderr[-3000:]
    return {"tmp": tmp, "audio": audio, "out": out, "stdout": run.stdout, "stderr": run.stderr,
            "manifest": json.loads((out / "manifest.json").read_text())}


def test_same_stem_recordings_coexist_and_the_clean_replay_passes(recorded: dict[str, Any]) -> None:
    out = recorded["out"]
    assert sorted(p.name for p in out.iterdir()) == ["a.mp3.safetensors", "a.wav.safetensors", "manifest.json",
                                                     "sub%2Fa.wav.safetensors"]
    result, _ = run_parity(FIXTURE, out, recorded["audio"])
    assert result.passed and result.criteria.regime == "same_machine"
    status = {f.name: f.status for f in result.files}
    assert status == {"a.mp3": "ok", "a.wav": "ok", "bad.flac": "expected-error", "sub/a.wav": "ok"}


def test_legacy_chatter_goes_to_the_log_and_the_terminal_has_one_line_per_file(recorded: dict[str, Any]) -> None:
    log = recorded["tmp"] / "refs.log"                     # beside the references, not inside
    chatter = log.read_text()
    assert "Preprocessing: Downmixing to Mono" in chatter and "UserWarning" in chatter
    terminal = (recorded["stdout"] + recorded["stderr"]).splitlines()
    progress = [ln for ln in terminal if ln.startswith("[")]
    assert [ln.split(":")[0] for ln in progress] == ["[1/4] a.mp3", "[2/4] a.wav", "[3/4] bad.flac", "[4/4] sub/a.wav"]
    assert all("elapsed" in ln and "ETA" in ln for ln in progress)
    assert "legacy error FfmpegError" in progress[2]
    others = [ln for ln in recorded["stderr"].splitlines() if not ln.startswith("[")]
    assert len(others) == 2 and others[0].startswith("references: 4 file(s)"), others
    assert others[1] == f"legacy output: {log}"
    assert json.loads(recorded["stdout"]) == {"files": 4, "out": str(recorded["out"])}     # stdout: the result only
    for noise in ("Preprocessing", "Warning", "%|", "00:00"):
        assert not any(noise in ln for ln in terminal), noise


def test_an_mp3_reference_keeps_the_sources_and_the_converted_wavs_sha256(recorded: dict[str, Any]) -> None:
    mp3 = recorded["audio"] / "a.mp3"
    to_wav(mp3, recorded["tmp"] / "by_hand.wav")             # production's command, run by hand
    entry = next(f for f in recorded["manifest"]["files"] if f["name"] == "a.mp3")
    assert entry["audio_sha256"] == _sha(mp3)
    assert entry["wav_sha256"] == _sha(recorded["tmp"] / "by_hand.wav")
    bad = next(f for f in recorded["manifest"]["files"] if f["name"] == "bad.flac")
    assert bad["wav_sha256"] is None and "ffmpeg" in bad["error"]["message"]
    assert "sox" not in bad["error"]["message"]               # the hint names the file's own tool


@pytest.mark.parametrize("tamper,match", [
    ("converted", "converts it to a WAV other than the one the references were recorded on"),
    ("source", "is not the audio the references were made from"),
])
def test_a_tampered_source_or_converted_hash_is_refused(recorded: dict[str, Any], tmp_path: Path,
                                                        tamper: str, match: str) -> None:
    refs, audio = tmp_path / "refs", tmp_path / "audio"
    shutil.copytree(recorded["out"], refs)
    shutil.copytree(recorded["audio"], audio)
    manifest = json.loads((refs / "manifest.json").read_text())
    entry = next(f for f in manifest["files"] if f["name"] == "a.mp3")
    if tamper == "converted":
        entry["wav_sha256"] = "0" * 64
        (refs / "manifest.json").write_text(json.dumps(manifest))
    else:
        (audio / "a.mp3").write_bytes((audio / "a.mp3").read_bytes() + b"\0")
    with pytest.raises(ReferencesError, match=match):
        run_parity(FIXTURE, refs, audio)
