"""model/scale/ without Ray: the inputs a `--ray` run plans (fsspec, HLS archive windows,
manifests), its run folder (exactly once, resume, refusals) and the --ray flags' refusals."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

from orcaport.model.cli import main
from orcaport.model.detector import Detector
from orcaport.model.errors import ExitCode, InputError, UsageError
from orcaport.model.scale.run_folder import MANIFEST, RunFolder
from orcaport.model.scale.sources import plan_inputs
from tests.conftest import CORPUS, FIXTURE

SETTINGS = {"weights_sha256": "ab" * 32, "profile": "legacy-exact", "threshold": None}


def hls_archive(root: Path, stamps: int = 2, segments: int = 13) -> Path:
    """`<node>/hls/<timestamp>/live.m3u8 + live*.ts`, as Orcasound's archive lays them out."""
    for t in range(stamps):
        folder = root / "rpi_node" / "hls" / str(1700000000 + 3600 * t)
        folder.mkdir(parents=True)
        lines = ["#EXTM3U", "#EXT-X-TARGETDURATION:10"]
        for k in range(segments):
            (folder / f"live{k:03d}.ts").write_bytes(b"\x47" + bytes(187))
            lines += ["#EXTINF:10.010,", f"live{k:03d}.ts"]
        (folder / "live.m3u8").write_text("\n".join(lines) + "\n")
    return root


def test_an_hls_archive_is_planned_as_productions_60_s_windows(tmp_path: Path) -> None:
    root = hls_archive(tmp_path / "archive")
    shutil.copy(CORPUS / "exact_2s0_48k_16.wav", root / "loose.wav")
    items = plan_inputs([str(root)])
    windows = [i for i in items if i.window is not None]
    assert [i.name for i in items if i.window is None] == ["loose.wav"]
    # 13 segments of 10 s: two complete windows of six per timestamp folder, the 13th waits
    assert [w.name for w in windows[:2]] == [
        "rpi_node/hls/1700000000/live.m3u8:live000.ts..live005.ts@0.000s",
        "rpi_node/hls/1700000000/live.m3u8:live006.ts..live011.ts@60.060s"]
    assert len(windows) == 4 and len({w.id for w in windows}) == 4
    assert windows[3].segment_urls[0] == str(root / "rpi_node/hls/1700003600/live006.ts")
    assert plan_inputs([str(root), str(root / "loose.wav")]) == items          # each item once


def test_manifests_name_inputs_relative_to_themselves_and_nothing_is_refused(tmp_path: Path) -> None:
    shutil.copy(CORPUS / "exact_2s0_48k_16.wav", tmp_path / "a.wav")
    (tmp_path / "list.txt").write_text("# inputs\na.wav\n\n")
    assert [i.url for i in plan_inputs([str(tmp_path / "list.txt")])] == [str(tmp_path / "a.wav")]
    for bad, message in [("missing.wav", "no such file or folder"), ("*.flac", "no file matches"),
                         ("empty", "holds no audio files")]:
        (tmp_path / "empty").mkdir(exist_ok=True)
        with pytest.raises(InputError, match=message):
            plan_inputs([str(tmp_path / bad)])


def test_run_folder_records_once_and_resumes_from_whole_lines(tmp_path: Path) -> None:
    det = Detector.from_folder(FIXTURE)
    items = plan_inputs([str(CORPUS / "exact_2s0_48k_16.wav"), str(CORPUS / "silence_48k_16_3s2.wav")])
    folder = RunFolder(tmp_path / "run", SETTINGS)
    d = det.detect(items[0].url)
    folder.record_ok(items[0], d, {"network": 0.1})
    folder.record_error(items[1], "broken")
    # a driver killed mid-line: the cut line is dropped, the whole ones kept
    with open(tmp_path / "run" / MANIFEST, "a") as f:
        f.write('{"id": "cut')
    again = RunFolder(tmp_path / "run", SETTINGS)
    assert again.finished(items[0]) and not again.finished(items[1])       # failed items run again
    done, failed = again.results(items)
    assert [r.rows() for _, r in done] == [d.rows()] and failed == [(items[1].name, "broken")]
    assert (tmp_path / "run" / MANIFEST).read_text().endswith("}\n")
    # a result whose manifest line never came (killed between the two) is not finished
    (tmp_path / "run" / MANIFEST).write_text(json.dumps({"run": SETTINGS}) + "\n")
    assert not RunFolder(tmp_path / "run", SETTINGS).finished(items[0])
    with pytest.raises(UsageError, match=r"other settings \(threshold\)"):
        RunFolder(tmp_path / "run", {**SETTINGS, "threshold": 0.7})


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(["detect", "--quiet", "--model", str(FIXTURE), *argv])
    return code, capsys.readouterr().err


def test_ray_flags_refusals_name_the_fix(capsys, tmp_path: Path) -> None:
    wav = str(CORPUS / "exact_2s0_48k_16.wav")
    code, err = run(capsys, "--output", str(tmp_path / "o"), "--ray", str(CORPUS), wav)
    assert code == ExitCode.USAGE and "is not a Ray address" in err and "--ray=ADDRESS" in err
    code, err = run(capsys, "--ray", "auto", wav)
    assert code == ExitCode.USAGE and "pass --output DIR" in err


@pytest.mark.skipif(importlib.util.find_spec("ray") is not None, reason="Ray is installed in this env")
def test_without_ray_the_flag_names_the_extra(capsys, tmp_path: Path) -> None:
    code, err = run(capsys, "--output", str(tmp_path / "o"), str(CORPUS / "exact_2s0_48k_16.wav"), "--ray")
    assert code == ExitCode.USAGE and "pip install 'orcaport[ray]'" in err
    assert not (tmp_path / "o").exists()
