"""Inputs production sees, decoded as production decodes them -- proven against legacy: a local HLS
playlist of AAC `.ts` segments (made with ffmpeg from a corpus file, as Orcasound's hydrophones
stream) gives, window by window, the per-second confidences that OrcaHello's live loop gives:
upstream's segment grouping, `cat`, `ffmpeg -i IN.ts OUT.wav` and FastAIModel.predict, run in the
legacy env (tests/legacy/hls_production.py, written from upstream, not from model/)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from orcaport.model.detector import Detector
from orcaport.model.inputs import detect_input
from orcaport.parity.fingerprint import fingerprint
from orcaport.parity.run import criteria, load_tolerances
from tests.conftest import CORPUS, FIXTURE, FLAGSHIP, run_legacy

WINDOW_SECONDS = 20.0        # 2 segments of 10 s per window: three windows of the 60 s flagship
pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg (apt-get install ffmpeg)")


def make_hls(src: Path, folder: Path, seconds: int = 10) -> Path:
    """`live.m3u8` + liveNNN.ts: AAC at the source's 48 kHz, as the hydrophones stream."""
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(src), "-c:a", "aac",
                    "-b:a", "128k", "-f", "hls", "-hls_time", str(seconds), "-hls_list_size", "0",
                    "-hls_segment_filename", str(folder / "live%03d.ts"), str(folder / "live.m3u8")],
                   check=True)
    return folder / "live.m3u8"


def test_hls_playlist_matches_legacy_on_productions_ffmpeg_conversion(tmp_path: Path) -> None:
    playlist = make_hls(CORPUS / FLAGSHIP, tmp_path / "hls")
    legacy = run_legacy(["tests/legacy/hls_production.py", str(playlist), str(WINDOW_SECONDS),
                         str(FIXTURE), str(tmp_path / "legacy")], home=tmp_path / "home")
    # legacy ran on this machine: the criteria its fingerprint and ours select (same-machine here),
    # and, as tests/test_detector.py's `bound`, the probs bound (a second's confidence is the mean
    # of two clip probabilities, so it is within the bound that holds for each of them)
    regime = criteria(legacy["fingerprint"], fingerprint()).regime
    bound = load_tolerances(regime=regime)[1]["probs"].atol
    clean = detect_input(Detector.from_folder(FIXTURE), playlist, window_seconds=WINDOW_SECONDS)
    assert len(clean) == len(legacy["windows"]) == 3          # + one 21 ms leftover segment, skipped
    worst = 0.0
    for d, want in zip(clean, legacy["windows"]):
        worst = max(worst, float(np.abs(d.confidence - np.array(want["confidence"])).max()))
        assert d.wav_filename.startswith(f"live.m3u8:{want['segments'][0]}..{want['segments'][-1]}@")
        np.testing.assert_allclose(d.confidence, want["confidence"], rtol=0, atol=bound)
        stable = np.abs(np.array(want["confidence"]) - 0.5) > bound
        assert (d.local_prediction[stable] == np.array(want["local_prediction"])[stable]).all()
        assert d.global_prediction == want["global_prediction"]
    print(f"HLS vs legacy ({regime}, bound {bound:g}): max |confidence diff| {worst:.3g}")
    starts = [float(d.wav_filename.rsplit("@", 1)[1][:-1]) for d in clean]
    assert starts[0] == 0.0 and 19.9 < starts[1] < 20.1 and 39.9 < starts[2] < 40.1   # #EXTINF sums
