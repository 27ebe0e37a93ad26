"""`orcaport detect DIR|MANIFEST|GLOB` through the many-file feeder (--many on the CPU; always with
--device cuda): the same bytes as one file at a time, a bad file failing alone in its place, and
manifests and quoted globs naming the inputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from orcaport.model.cli import main
from orcaport.model.errors import ExitCode
from tests.conftest import CORPUS, FIXTURE

NAMES = ("clipping_48k_16_3s2.wav", "stereo_44k1_16_10s5.wav", "short_1s5_48k_16.wav",
         "narrow_8k_16_10s5.wav")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["detect", "--quiet", "--model", str(FIXTURE), *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("archive")
    for i, name in enumerate(NAMES):
        (root / f"day{i % 2}").mkdir(exist_ok=True)
        shutil.copy(CORPUS / name, root / f"day{i % 2}" / name)
    return root


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_many_file_feeder_writes_the_one_file_paths_bytes(capsys, archive: Path, fmt: str) -> None:
    one = run(capsys, str(archive), "--format", fmt, "--threshold", "0.6", "--min-positive", "2")
    many = run(capsys, str(archive), "--format", fmt, "--threshold", "0.6", "--min-positive", "2", "--many")
    assert one[0] == many[0] == ExitCode.FAILED          # the 1.5 s file fails, the others finish
    assert many[1] == one[1] and "shorter than one 2 s clip" in many[2]
    assert many[1].count("clipping_48k_16_3s2.wav") >= 1
    if fmt == "json":                    # the feeder applies the command line's decision settings
        assert {f["threshold"] for f in json.loads(many[1])["files"]} == {0.6}


def test_manifest_and_glob_name_the_same_inputs_as_the_folder(capsys, archive: Path) -> None:
    manifest = archive / "todo.txt"
    manifest.write_text("# one input per line, relative to this file\n\n" +
                        "\n".join(f"day{i % 2}/{n}" for i, n in enumerate(NAMES) if "short" not in n) + "\n")
    by_manifest = run(capsys, str(manifest), "--format", "csv", "--many")
    by_glob = run(capsys, str(archive / "**" / "*_1?s5.wav"), str(archive / "day0/clipping_48k_16_3s2.wav"),
                  "--format", "csv", "--many")
    assert by_manifest[0] == ExitCode.OK, by_manifest[2]
    rows = sorted(by_manifest[1].splitlines())
    assert rows == sorted(by_glob[1].splitlines()) and len(rows) == 1 + 3 + 10 + 10   # header + rows


@pytest.mark.parametrize("name, content, message", [
    ("nothing/*.wav", None, "no file matches this pattern"),
    ("empty.txt", "# nothing\n", "manifest lists no inputs"),
    ("missing.txt", "gone.wav\n", "gone.wav: no such file or folder"),
])
def test_bad_manifest_or_glob_exits_3_with_one_line(capsys, tmp_path: Path, name, content, message) -> None:
    if content is not None:
        (tmp_path / name).write_text(content)
    code, out, err = run(capsys, str(tmp_path / name), "--many")
    assert code == ExitCode.BAD_INPUT and message in err and len(err.strip().splitlines()) == 1
