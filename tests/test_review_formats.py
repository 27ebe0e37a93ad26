"""model/events.py + model/review_formats.py + `orcaport detect --format raven|audacity`: one row per
detection event, parsed back with the exact column names and the per-second rows' times."""

from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import numpy as np
import pytest

from orcaport.model.cli import main
from orcaport.model.detector import Detection, Detector
from orcaport.model.errors import ExitCode
from orcaport.model.events import merge_events
from orcaport.model.review_formats import RAVEN_COLUMNS, ReviewFormatError, band_hz, render_audacity, render_raven
from tests.conftest import CORPUS, FIXTURE

RAVEN_OWN = ("Selection", "View", "Channel", "Begin Time (s)", "End Time (s)", "Low Freq (Hz)", "High Freq (Hz)")


def detection(name: str, local: list[int], duration_s: float | None = None) -> Detection:
    n = len(local)
    conf = np.linspace(0.1, 0.9, n) if n else np.zeros(0)
    conf = np.where(np.array(local, dtype=bool), np.maximum(conf, 0.6), np.minimum(conf, 0.4))
    return Detection(name, "legacy-exact", max(n - 1, 0), float(duration_s or n), np.zeros(max(n - 1, 0)),
                     np.arange(n), conf, np.array(local, dtype=np.int64), int(sum(local) >= 3),
                     0.0, 0.5, 3, 48000)


def positive_seconds(d: Detection) -> set[int]:
    return {int(t) for t, p in zip(d.start_time_s, d.local_prediction) if p}


def seconds_of(start: float, end: float) -> set[int]:
    assert start == int(start) and end == int(end), "event edges fall on whole seconds"
    return set(range(int(start), int(end)))


@pytest.mark.parametrize("local, want", [
    ([0, 0, 0], []),                                    # no positive second: no event
    ([1, 1, 0, 1], [(0, 2, 2), (3, 4, 1)]),             # positive at the last row: ends at its end
    ([1, 1, 1], [(0, 3, 3)]),                           # every row positive: one event
    ([0, 1, 0, 1, 1, 0], [(1, 2, 1), (3, 5, 2)]),
    ([], []),
])
def test_events_merge_consecutive_positive_seconds(local: list[int], want: list[tuple]) -> None:
    d = detection("a.wav", local)
    events = merge_events(d.wav_filename, d.start_time_s, d.confidence, d.local_prediction)
    assert [(e.start_s, e.end_s, e.seconds) for e in events] == want
    for e in events:
        rows = d.confidence[int(e.start_s):int(e.end_s)]
        assert e.peak_confidence == pytest.approx(rows.max()) and e.mean_confidence == pytest.approx(rows.mean())


@pytest.fixture(scope="module")
def corpus_runs() -> list[tuple[Path, Detection]]:
    det = Detector.from_folder(FIXTURE)
    files = sorted(p for p in CORPUS.glob("*.wav") if p.name != "short_1s5_48k_16.wav")
    return [(p, det.detect(p)) for p in files]


def read_raven(text: str) -> tuple[list[str], list[dict[str, str]]]:
    rows = list(csv.reader(io.StringIO(text), delimiter="\t"))
    return rows[0], [dict(zip(rows[0], r)) for r in rows[1:]]


def test_raven_table_of_the_corpus_parses_back(corpus_runs) -> None:
    fe = Detector.from_folder(FIXTURE).frontend
    text = render_raven(corpus_runs, fe)
    text.encode("utf-8")                                                # Raven reads UTF-8 text
    header, rows = read_raven(text)
    assert tuple(header) == RAVEN_COLUMNS and tuple(header[:7]) == RAVEN_OWN
    assert [int(r["Selection"]) for r in rows] == list(range(1, len(rows) + 1))
    assert {r["View"] for r in rows} == {"Spectrogram 1"} and {r["Channel"] for r in rows} == {"1"}
    assert {(r["Low Freq (Hz)"], r["High Freq (Hz)"]) for r in rows} == {("0.0", "10000.0")}
    offset = 0.0
    for path, d in corpus_runs:
        mine = [r for r in rows if r["Begin Path"] == str(path.resolve())]
        assert all(r["Begin File"] == path.name for r in mine)
        got: set[int] = set()
        for r in mine:
            start = float(r["File Offset (s)"])       # 6 decimals written: exact to 1e-6
            end = round(start + float(r["End Time (s)"]) - float(r["Begin Time (s)"]), 6)
            assert float(r["Begin Time (s)"]) == pytest.approx(offset + start, abs=1e-6)   # sequence timeline
            assert int(r["Positive Seconds"]) == end - start
            assert got.isdisjoint(seconds_of(start, end))
            got |= seconds_of(start, end)
        assert got == positive_seconds(d), path.name                   # events == the per-second rows
        offset += d.duration_s
    assert len(rows) >= 5, "the corpus has calls"


def test_audacity_labels_of_the_corpus_parse_back(corpus_runs) -> None:
    text = render_audacity(corpus_runs, "positive")
    lines = text.splitlines()
    assert text.endswith("\n") or not text
    by_file: dict[str, set[int]] = {p.name: set() for p, _ in corpus_runs}
    for line in lines:
        start, end, label = line.split("\t")
        assert len(start.split(".")[1]) == 6 and float(start) < float(end)  # region labels, 6 decimals
        name, _, text_part = label.partition(": ")
        assert text_part.startswith("positive peak ")
        by_file[name] |= seconds_of(float(start), float(end))
    for path, d in corpus_runs:
        assert by_file[path.name] == positive_seconds(d), path.name


def test_one_file_labels_carry_no_file_name_and_empty_outputs_are_valid() -> None:
    one = [(Path("x.wav"), detection("x.wav", [0, 1, 1]))]
    assert render_audacity(one, "positive") == "1.000000\t3.000000\tpositive peak 0.900 mean 0.750\n"
    none = [(Path("y.wav"), detection("y.wav", [0, 0]))]
    assert render_audacity(none, "positive") == ""
    header, rows = read_raven(render_raven(none, Detector.from_folder(FIXTURE).frontend))
    assert tuple(header) == RAVEN_COLUMNS and rows == []


def test_several_files_number_selections_on_one_sequence_timeline() -> None:
    files = [(Path("a.wav"), detection("a.wav", [1, 0, 1], duration_s=3.5)),
             (Path("b.wav"), detection("b.wav", [0, 0], duration_s=2.25)),
             (Path("c.wav"), detection("c.wav", [0, 1, 1], duration_s=3.0))]
    _, rows = read_raven(render_raven(files, Detector.from_folder(FIXTURE).frontend))
    keys = ("Selection", "Begin File", "Begin Time (s)", "End Time (s)", "File Offset (s)")
    got = [tuple(r[k] for k in keys) for r in rows]
    assert got == [("1", "a.wav", "0.000000", "1.000000", "0.000000"),
                   ("2", "a.wav", "2.000000", "3.000000", "2.000000"),
                   ("3", "c.wav", "6.750000", "8.750000", "1.000000")]


def test_band_follows_the_frontend() -> None:
    fe = Detector.from_folder(FIXTURE).frontend
    assert band_hz(fe, 8000) == (0.0, 10000.0)             # resampled to 20 kHz first
    no_resample = type(fe)(**{**fe.__dict__, "resample_to": None})
    assert band_hz(no_resample, 8000) == (0.0, 4000.0)     # capped at the file's Nyquist


def test_a_name_with_a_tab_is_refused() -> None:
    bad = [(Path("a\tb.wav"), detection("a\tb.wav", [1, 1]))]
    with pytest.raises(ReviewFormatError, match="contains a tab or line break.*rename the file"):
        render_raven(bad, Detector.from_folder(FIXTURE).frontend)
    with pytest.raises(ReviewFormatError, match="rename the file"):
        render_audacity(bad + bad, "positive")


@pytest.mark.parametrize("fmt", ["raven", "audacity"])
def test_cli_writes_the_formats_atomically(capsys, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"det.{fmt}.txt"
    wav = str(CORPUS / "hydrophone_48k_mono16_60s.wav")
    code = main(["detect", "--quiet", "--model", str(FIXTURE), "--format", fmt, "--output", str(out), wav])
    assert code == 0, capsys.readouterr().err
    text = out.read_text(encoding="utf-8")
    assert text.startswith("Selection\tView\t") if fmt == "raven" else text.split("\t")[0] == "1.000000"
    assert [p.name for p in tmp_path.iterdir()] == [out.name]            # no temp left behind


def test_cli_refuses_a_tab_in_a_file_name_and_writes_nothing(capsys, tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(CORPUS / "exact_2s0_48k_16.wav", src / "a\tb.wav")
    out = tmp_path / "out.txt"
    assert main(["detect", "--quiet", "--model", str(FIXTURE), "--format", "raven", "--output", str(out),
                 str(src)]) == ExitCode.BAD_INPUT
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "contains a tab or line break" in err and "rename the file" in err
    assert not out.exists()


@pytest.mark.parametrize("case", ["folder", "under_a_file"])
def test_unwritable_output_is_one_line_and_writes_nothing(capsys, tmp_path: Path, case: str) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    out = tmp_path if case == "folder" else blocker / "out.txt"
    wav = str(CORPUS / "exact_2s0_48k_16.wav")
    code = main(["detect", "--quiet", "--model", str(FIXTURE), "--format", "audacity", "--output", str(out), wav])
    assert code == (ExitCode.USAGE if case == "folder" else ExitCode.OUTPUT)
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert ("is a folder; give a file name" if case == "folder" else "choose a writable path") in err
    assert blocker.read_text() == "x"
