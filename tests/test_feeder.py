"""model.feeder: many files through worker processes and one batched network give each file the
Detection the Detector gives it alone -- chunk boundaries, streamed files and file order included."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from orcaport.model.detector import Detector
from orcaport.model.feeder import detect_many, plan_chunks
from orcaport.model.pipeline import TooShortError
from tests.conftest import CORPUS, FIXTURE, FLAGSHIP

STEREO = "stereo_44k1_16_10s5.wav"


@pytest.fixture(scope="module")
def exact() -> Detector:
    return Detector.from_folder(FIXTURE)


def test_many_files_equal_one_at_a_time_across_chunk_boundaries(exact: Detector, tmp_path: Path) -> None:
    # 7-clip chunks cut the 59-clip flagship mid-file; stream_bytes=0 streams every file from disk
    streaming = Detector.from_folder(FIXTURE, stream_bytes=0)
    files = [CORPUS / FLAGSHIP, CORPUS / STEREO, CORPUS / "narrow_8k_16_10s5.wav"]
    _, chunks = plan_chunks(files, streaming.stream_bytes, chunk=7)
    assert [c.count for c in chunks if c.file == 0] == [7] * 8 + [3]
    many = list(detect_many(streaming, files, workers=2, chunk=7))
    assert [d.wav_filename for d in many] == [f.name for f in files]
    for got, path in zip(many, files):
        want = exact.detect(path)
        assert got.clips == want.clips
        # same inputs; only the network's batch size differs (oneDNN may block a GEMM otherwise)
        np.testing.assert_allclose(got.clip_confidence, want.clip_confidence, rtol=0, atol=1e-5)
        assert np.array_equal(got.local_prediction, want.local_prediction)
        assert got.global_prediction == want.global_prediction


def test_a_short_file_is_refused_before_any_work(exact: Detector, tmp_path: Path) -> None:
    short = tmp_path / "short.wav"
    sf.write(str(short), np.zeros(48_000, np.int16), 48_000, subtype="PCM_16")
    with pytest.raises(TooShortError, match="shorter than one 2 s clip"):
        list(detect_many(exact, [CORPUS / FLAGSHIP, short], workers=1))
