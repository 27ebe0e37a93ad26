"""Quiet legacy runs (convert/legacy_log.py): whatever legacy writes -- Python prints, raw writes
to fds 1 and 2, child processes and their warnings -- lands in the log; the terminal gets only the
project's own progress lines, the log's path, and on failure the log's tail."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from convert.legacy_log import Progress, legacy_output, log_path_for


def chatter() -> None:
    print("Preprocessing: Downmixing to Mono")
    print("fastprogress bar\r", end="", file=sys.stderr)
    os.write(1, b"C-level stdout\n")
    os.write(2, b"C-level stderr\n")
    subprocess.run([sys.executable, "-c", "import sys, warnings; print('child out'); print('child err', file=sys.stderr); "
                    "warnings.warn('pin_memory is set but no accelerator')"],
                   check=True)


def test_chatter_goes_to_the_log_and_the_terminal_shows_one_line_per_file(tmp_path: Path, capfd) -> None:
    log = log_path_for(tmp_path / "refs")
    assert log == tmp_path / "refs.log"            # beside the output folder, never inside it
    with legacy_output(log) as terminal:
        progress = Progress(terminal, files=2, clips=5)
        for name, clips in (("a.wav", 2), ("sub/a.wav", 3)):
            chatter()
            progress.file_done(name, clips, f"{clips} clips")
    out, err = capfd.readouterr()
    text = log.read_text()
    for line in ("Preprocessing: Downmixing to Mono", "fastprogress bar", "UserWarning: pin_memory", "C-level stdout", "C-level stderr",
                 "child out", "child err"):
        assert text.count(line) == 2, line
        assert line not in out + err, line
    lines = (out + err).splitlines()
    assert [ln.split(":")[0] for ln in lines[:2]] == ["[1/2] a.wav", "[2/2] sub/a.wav"]
    assert "clips 5/5" in lines[1] and "ETA" in lines[1] and "elapsed" in lines[1]
    assert lines[2:] == [f"legacy output: {log}"]
    print("after")                                  # the streams are restored
    assert capfd.readouterr().out == "after\n"


def test_failure_shows_the_tail_and_each_run_starts_a_new_log(tmp_path: Path, capfd) -> None:
    log = tmp_path / "run.log"
    log.write_text("an earlier run's output\n")
    with pytest.raises(RuntimeError), legacy_output(log):
        print("CouldntDecodeError: decoding failed")
        raise RuntimeError("legacy broke")
    err = capfd.readouterr().err
    assert "| CouldntDecodeError: decoding failed" in err and err.rstrip().endswith(f"legacy output: {log}")
    assert "earlier run" not in log.read_text()


def test_an_unwritable_log_is_an_output_error_before_anything_runs(tmp_path: Path) -> None:
    from orcaport.model.errors import ExitCode, OrcaportError
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OrcaportError, match="cannot write the legacy log") as e:
        with legacy_output(blocker / "x.log"):
            pytest.fail("ran without a log")
    assert e.value.exit_code == ExitCode.OUTPUT
