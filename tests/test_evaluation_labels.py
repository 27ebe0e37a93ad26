"""parity/evaluation/labels.py: Raven tables (as Raven writes them, and as `orcaport detect` writes
them), Audacity label tracks and plain CSV read back to the same events; bad label files refused
naming the file and the line (docs/BAD_INPUTS.md rows 130-138). No scikit-learn needed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from orcaport.model.cli import main as orcaport_main
from orcaport.model.detector import Detector
from orcaport.model.events import detection_events
from orcaport.parity.evaluation.labels import LabelError, load_labels, owner_by_name, read_label_file
from orcaport.parity.testaudio.labeled import audacity_labels, raven_table
from orcaport.parity.testaudio.synth import Event
from tests.conftest import CORPUS, FIXTURE

EVENTS = [Event(1.25, 2.5, "call", 6.0), Event(7.0, 8.75, "whistle", 3.0)]
RAVEN_BIRDNET = ("Selection\tView\tChannel\tBegin Path\tBegin Time (s)\tEnd Time (s)\tLow Freq (Hz)\tHigh Freq (Hz)"
                 "\tSpecies Code\tCommon Name\tConfidence\tFile Offset (s)\n"
                 "1\tSpectrogram 1\t1\tC:\\data\\b.wav\t0.0\t3.0\t0\t15000\tkilwha\tKiller Whale\t0.81\t0.0\n"
                 "2\tSpectrogram 1\t1\tC:\\data\\b.wav\t6.0\t9.0\t0\t15000\tkilwha\tKiller Whale\t0.55\t6.0\n")


def audio(tmp: Path, *names: str) -> list[Path]:
    (tmp / "audio").mkdir(exist_ok=True)
    out = []
    for n in names:
        (tmp / "audio" / n).write_bytes(b"")
        out.append(tmp / "audio" / n)
    return out


def spans(rec) -> list[tuple[float, float, str | None]]:
    return [(e.start_s, e.end_s, e.label) for e in rec.events]


def test_raven_table_as_raven_writes_it_reads_each_selection_once(tmp_path: Path) -> None:
    """One row per view (Waveform 1 + Spectrogram 1), measurement columns, an Annotation class."""
    files = audio(tmp_path, "a.wav", "b.wav")
    (tmp_path / "a.Table.1.selections.txt").write_text(raven_table(EVENTS))
    (tmp_path / "b.BirdNET.selection.table.txt").write_text(RAVEN_BIRDNET)
    recs = load_labels(tmp_path, files, {p: 10.0 for p in files})
    assert spans(recs[0]) == [(1.25, 2.5, "call"), (7.0, 8.75, "whistle")]
    assert spans(recs[1]) == [(0.0, 3.0, "Killer Whale"), (6.0, 9.0, "Killer Whale")]   # Begin Path: a Windows path
    only_calls = load_labels(tmp_path, files, {p: 10.0 for p in files}, classes=("call",))
    assert spans(only_calls[0]) == [(1.25, 2.5, "call")] and only_calls[1].events == [] and only_calls[1].labeled


def test_audacity_and_csv_give_the_same_events(tmp_path: Path) -> None:
    files = audio(tmp_path, "a.wav", "quiet.wav")
    (tmp_path / "aud").mkdir()
    (tmp_path / "aud" / "a.txt").write_text(audacity_labels(EVENTS) + "\\\t300.0\t9000.0\n")   # + a spectral line
    (tmp_path / "aud" / "quiet.txt").write_text("")
    (tmp_path / "labels.csv").write_text("file,start,end,label\na.wav,1.25,2.5,call\na.wav,7.0,8.75,whistle\n")
    aud = load_labels(tmp_path / "aud", files, {})
    csv_ = load_labels(tmp_path / "labels.csv", files, {})
    assert [spans(r) for r in aud] == [spans(r) for r in csv_][:1] + [[]]
    assert aud[1].labeled and not csv_[1].labeled            # an empty label file is a negative ...
    assert load_labels(tmp_path / "labels.csv", files, {}, unlabeled_negative=True)[1].labeled   # ... else only when asked


def test_label_file_owner_is_the_longest_matching_stem() -> None:
    stems = ["site", "site.2024", "other"]
    assert owner_by_name(Path("site.2024.Table.1.selections.txt"), stems) == "site.2024"
    assert owner_by_name(Path("site.txt"), stems) == "site"
    assert owner_by_name(Path("sitex.txt"), stems) is None


@pytest.fixture(scope="module")
def detected(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """`orcaport detect --format raven|audacity` on two corpus files, and the detections."""
    tmp = tmp_path_factory.mktemp("detect")
    files = [CORPUS / "hydrophone_48k_mono16_60s.wav", CORPUS / "stereo_44k1_16_10s5.wav"]
    det = Detector.from_folder(FIXTURE)
    out = {"files": files, "detections": {p.name: det.detect(p) for p in files}, "tmp": tmp}
    for fmt in ("raven", "audacity"):
        assert orcaport_main(["detect", *map(str, files), "--model", str(FIXTURE), "--format", fmt, "--quiet",
                              "--output", str(tmp / f"all.{fmt}.txt")]) == 0
        assert orcaport_main(["detect", str(files[0]), "--model", str(FIXTURE), "--format", fmt, "--quiet",
                              "--output", str(tmp / f"{files[0].stem}.{fmt}.txt")]) == 0
    return out


@pytest.mark.parametrize("fmt", ["raven", "audacity"])
def test_labels_written_by_detect_read_back_as_its_events(detected: dict, fmt: str) -> None:
    files, tmp = detected["files"], detected["tmp"]
    want = {p.name: [(e.start_s, e.end_s) for e in detection_events(detected["detections"][p.name])] for p in files}
    assert any(want.values()), "the fixture detects nothing in the corpus: the read-back proves nothing"
    together = load_labels(tmp / f"all.{fmt}.txt", files, {p: detected["detections"][p.name].duration_s for p in files})
    assert {r.audio.name: [(e.start_s, e.end_s) for e in r.events] for r in together} == want
    one = load_labels(tmp / f"{files[0].stem}.{fmt}.txt", files, {})    # named after its recording
    assert [(e.start_s, e.end_s) for e in one[0].events] == want[files[0].name] and not one[1].labeled


# ----------------------------------------------------------------------------- bad label files
BAD = {
    "past_end": ("a.txt", "1.0\t2.0\tcall\n8.0\t10.5\tcall\n", "a.txt:2: end 10.5 s is past the end of a.wav"),
    "negative_span": ("a.txt", "3.0\t2.0\tcall\n", "a.txt:1: negative span"),
    "negative_time": ("labels.csv", "file,start,end\na.wav,-1,2\n", "labels.csv:2: start -1 s is negative"),
    "point_label": ("a.txt", "4.0\t4.0\tcall\n", "a.txt:1: zero-length span"),
    "unknown_file": ("labels.csv", "file,start,end\na.wav,1,2\nb.wav,1,2\n", "labels.csv:3: unknown file 'b.wav'"),
    "raven_commas": ("a.Table.1.selections.txt", "Selection,View,Channel,Begin Time (s),End Time (s)\n1,S,1,1,2\n",
                     "a.Table.1.selections.txt:1: a Raven header without tabs (wrong delimiter)"),
    "csv_semicolons": ("labels.csv", "file;start;end\na.wav;1;2\n", "labels.csv:1: a label CSV header not separated by commas"),
    "audacity_spaces": ("a.txt", "1.0 2.0 call\n", "a.txt:1: '1.0 2.0 call' is not start<TAB>end<TAB>label"),
    "not_a_number": ("a.txt", "1.0\tsoon\tcall\n", "a.txt:1: end 'soon' is not a number of seconds"),
    "no_recording": ("notes.txt", "1.0\t2.0\tcall\n", "notes.txt:1: the row names no recording"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_label_file_is_refused_naming_file_and_line(tmp_path: Path, case: str) -> None:
    name, text, want = BAD[case]
    files = audio(tmp_path, "a.wav")
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / name).write_text(text)
    with pytest.raises(LabelError) as e:
        load_labels(tmp_path / "labels", files, {files[0]: 10.0})
    message = str(e.value)
    assert want in message and "\n" not in message and "; " in message, message    # file:line, what, the fix


def test_raven_multi_file_table_without_offsets_is_refused(tmp_path: Path) -> None:
    """Begin Time is then on Raven's sequence timeline: a time within each file cannot be known."""
    table = tmp_path / "t.txt"
    table.write_text("Selection\tView\tBegin File\tBegin Time (s)\tEnd Time (s)\n1\tS\ta.wav\t1\t2\n2\tS\tb.wav\t70\t71\n")
    with pytest.raises(LabelError, match="File Offset"):
        read_label_file(table)


def test_missing_labels_path_and_empty_folder_are_refused(tmp_path: Path) -> None:
    files = audio(tmp_path, "a.wav")
    with pytest.raises(LabelError, match="no such label file or folder"):
        load_labels(tmp_path / "nope", files, {})
    (tmp_path / "empty").mkdir()
    with pytest.raises(LabelError, match="holds no label files"):
        load_labels(tmp_path / "empty", files, {})


def test_without_scikit_learn_the_command_names_the_extra(tmp_path: Path) -> None:
    """The evaluate extra missing is a one-line usage error naming the install, not a traceback."""
    code = ("import sys; sys.modules['sklearn'] = None\n"
            "from orcaport.parity.evaluation.__main__ import main\n"
            f"sys.exit(main(['--model', {str(FIXTURE)!r}, '--audio', {str(CORPUS)!r}, '--labels', {str(tmp_path)!r},"
            f" '--reports', {str(tmp_path / 'r')!r}]))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 2, out.stderr[-2000:]
    assert out.stderr.strip().splitlines() == [
        "python -m orcaport.parity.evaluation: error: scikit-learn is not installed (the `evaluate` extra); "
        "pip install 'orcaport[evaluate]' (in a checkout: `make evaluate` installs envs/evaluate.lock.txt into "
        "the clean env)"]
    assert not (tmp_path / "r").exists()
