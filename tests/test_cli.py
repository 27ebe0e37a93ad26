"""`orcaport detect` (model/cli.py): table / json / csv output, bad inputs, `python -m orcaport.model`."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from orcaport.model import cli
from orcaport.model.cli import COMMANDS, build_parser, main
from orcaport.model.errors import ExitCode
from orcaport.model.version import version
from tests.conftest import CORPUS, FIXTURE, ROOT

FILES = {"stereo_44k1_16_10s5.wav": 10, "narrow_8k_16_10s5.wav": 10, "exact_2s0_48k_16.wav": 2}  # -> rows


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("audio")
    (root / "nested").mkdir()
    for i, name in enumerate(FILES):
        shutil.copy(CORPUS / name, (root / "nested" if i == 2 else root) / name)
    (root / "readme.txt").write_text("not audio, not scanned\n")
    return root


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["detect", "--quiet", "--model", str(FIXTURE), *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_table_names_every_file(capsys, folder: Path) -> None:
    code, out, err = run(capsys, str(folder))
    assert code == 0, err
    for name in FILES:
        assert name in out
    assert "Global decision" in out and "Positive s" in out


def test_json_parses_with_expected_fields(capsys, folder: Path) -> None:
    code, out, _ = run(capsys, str(folder), "--format", "json", "--threshold", "0.6")
    assert code == 0
    doc = json.loads(out)
    assert doc["profile"] == "legacy-exact" and doc["errors"] == []
    by_name = {f["wav_filename"]: f for f in doc["files"]}
    assert set(by_name) == set(FILES)
    for name, rows in FILES.items():
        f = by_name[name]
        assert {"clips", "global_prediction", "global_confidence", "positive_seconds", "rows"} <= set(f)
        assert f["threshold"] == 0.6 and len(f["rows"]) == rows == f["clips"] + 1
        assert set(f["rows"][0]) == {"start_time_s", "duration_s", "confidence", "local_prediction"}
        assert f["positive_seconds"] == sum(r["local_prediction"] for r in f["rows"])


def test_csv_has_a_header_and_one_row_per_second(capsys, folder: Path, tmp_path: Path) -> None:
    out_file = tmp_path / "out.csv"
    code, out, _ = run(capsys, str(folder), "--format", "csv", "--output", str(out_file))
    assert code == 0 and out == ""
    rows = list(csv.DictReader(io.StringIO(out_file.read_text())))
    assert rows and list(rows[0]) == ["wav_filename", "start_time_s", "duration_s", "confidence",
                                      "local_prediction", "global_prediction", "global_confidence", "profile"]
    for name, n in FILES.items():
        mine = [r for r in rows if r["wav_filename"] == name]
        assert [int(r["start_time_s"]) for r in mine] == list(range(n))
        assert all(float(r["duration_s"]) == 1.0 for r in mine)


def test_failed_file_is_reported_and_others_still_run(capsys, folder: Path) -> None:
    code, out, err = run(capsys, str(folder / "stereo_44k1_16_10s5.wav"), str(CORPUS / "short_1s5_48k_16.wav"),
                         "--format", "json")
    assert code == ExitCode.FAILED == 1
    doc = json.loads(out)
    assert [f["wav_filename"] for f in doc["files"]] == ["stereo_44k1_16_10s5.wav"]
    assert "shorter than one 2 s clip" in doc["errors"][0]["error"]
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ")


@pytest.mark.parametrize("argv, message", [
    (["/definitely/not/here.wav"], "no such file or folder"),
    (["{folder}", "--model", "/no/model"], "model folder /no/model not found"),
    (["{empty}"], "holds no .wav or .flac files"),
])
def test_bad_inputs_exit_3_with_one_line(capsys, folder: Path, tmp_path: Path, argv, message) -> None:
    argv = [a.format(folder=folder, empty=tmp_path) for a in argv]
    code, out, err = run(capsys, *argv)
    assert code == ExitCode.BAD_INPUT == 3 and out == ""
    assert len(err.strip().splitlines()) == 1 and message in err


def test_no_model_is_a_usage_error_naming_the_flag(capsys, folder: Path) -> None:
    """No default model: a default path into the checkout would not exist once installed."""
    assert main(["detect", "--quiet", str(folder)]) == ExitCode.USAGE == 2
    out, err = capsys.readouterr()
    assert out == "" and "no model; pass --model DIR" in err and len(err.strip().splitlines()) == 1


def test_version_is_the_distributions(capsys) -> None:
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"orcaport {version()}"


def test_python_dash_m_model_entry_point() -> None:
    bad = subprocess.run([sys.executable, "-m", "orcaport.model", "detect", "--model", str(FIXTURE),
                          "/definitely/not/here.wav"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert bad.returncode == ExitCode.BAD_INPUT
    assert bad.stderr.strip() == "orcaport detect: error: /definitely/not/here.wav: no such file or folder"


def test_subcommands_are_extensible(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """`register` adds a subcommand that main() parses and runs, and whose OrcaportError maps to
    its exit code, without main() changing."""
    from orcaport.model.errors import RefusedError

    assert "detect" in COMMANDS
    monkeypatch.setattr(cli, "COMMANDS", dict(COMMANDS))      # the registration ends with the test
    seen = []

    def configure(p):
        p.add_argument("--refuse", action="store_true")

    def run_echo(args):
        seen.append(args.refuse)
        if args.refuse:
            raise RefusedError("gate says no; run the fix")
        return ExitCode.OK

    cli.register("echo", "test-only subcommand", configure, run_echo)
    assert main(["echo"]) == 0 and seen == [False]
    assert main(["echo", "--refuse"]) == ExitCode.REFUSED and seen == [False, True]
    assert capsys.readouterr().err.strip() == "orcaport echo: error: gate says no; run the fix"
    assert "echo" in build_parser().format_help()
    with pytest.raises(SystemExit) as e:       # argparse: a subcommand is required
        build_parser().parse_args([])
    assert e.value.code == ExitCode.USAGE
