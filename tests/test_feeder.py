"""model.feeder: many files through worker processes and one batched network give each file the
Detection the Detector gives it alone -- chunk boundaries, streamed files and file order included --
and a bad file fails alone, in its place, with its one-line error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from orcaport.model.detector import Detector
from orcaport.model.feeder import FileError, detect_many, plan_chunks
from tests.conftest import CORPUS, FIXTURE, FLAGSHIP

STEREO = "stereo_44k1_16_10s5.wav"


@pytest.fixture(scope="module")
def exact() -> Detector:
    return Detector.from_folder(FIXTURE)


def test_many_files_equal_one_at_a_time_across_chunk_boundaries(exact: Detector) -> None:
    # 7-clip chunks cut the 59-clip flagship mid-file; stream_bytes=0 streams every file from disk
    streaming = Detector.from_folder(FIXTURE, stream_bytes=0)
    files = [CORPUS / FLAGSHIP, CORPUS / STEREO, CORPUS / "narrow_8k_16_10s5.wav"]
    _, chunks, failed = plan_chunks(files, streaming.stream_bytes, chunk=7)
    assert not failed and [c.count for c in chunks if c.file == 0] == [7] * 8 + [3]
    many = list(detect_many(streaming, files, workers=2, chunk=7))
    assert [p for p, _ in many] == files
    for path, got in many:
        want = exact.detect(path)
        assert got.wav_filename == path.name and got.clips == want.clips
        # same inputs; only the network's batch size differs (oneDNN may block a GEMM otherwise)
        np.testing.assert_allclose(got.clip_confidence, want.clip_confidence, rtol=0, atol=1e-5)
        assert np.array_equal(got.local_prediction, want.local_prediction)
        assert got.global_prediction == want.global_prediction


class FailsMidFile(Detector):
    """Decoding of one named file breaks after its first chunk (a disk error, say): in the worker."""

    def clip_inputs(self, src, first=0, count=None):
        if src.path.name == "breaks.wav" and first > 0:
            raise OSError(f"{src.path}: read error at clip {first}")
        return super().clip_inputs(src, first, count)


def test_a_bad_file_fails_alone_in_its_place(exact: Detector, tmp_path: Path) -> None:
    short = tmp_path / "short.wav"
    sf.write(str(short), np.zeros(48_000, np.int16), 48_000, subtype="PCM_16")
    breaks = tmp_path / "breaks.wav"
    breaks.write_bytes((CORPUS / FLAGSHIP).read_bytes())
    det = FailsMidFile.from_folder(FIXTURE)
    files = [short, CORPUS / STEREO, breaks, CORPUS / "narrow_8k_16_10s5.wav"]
    got = list(detect_many(det, files, workers=2, chunk=4))
    assert [p for p, _ in got] == files
    assert isinstance(got[0][1], FileError) and "shorter than one 2 s clip" in str(got[0][1])
    assert isinstance(got[2][1], FileError) and "read error at clip 4" in str(got[2][1])
    for path, d in (got[1], got[3]):
        assert np.array_equal(d.local_prediction, exact.detect(path).local_prediction)


def test_default_chunks_are_the_detectors_batches_so_results_are_bit_for_bit(exact: Detector) -> None:
    # each chunk is one of Detector.batch_sizes: every network call sees a one-file run's clips
    files = [CORPUS / FLAGSHIP, CORPUS / STEREO]
    _, chunks, _ = plan_chunks(files, exact.stream_bytes, sizes=exact.batch_sizes)
    assert [c.count for c in chunks if c.file == 0] == exact.batch_sizes(59)
    for path, got in detect_many(exact, files, workers=1):
        want = exact.detect(path)
        assert np.array_equal(got.clip_confidence, want.clip_confidence)
        assert got.rows() == want.rows() and got.global_confidence == want.global_confidence
