"""int8 as a deployment arithmetic: `orcaport calibrate` stores the calibration in the model folder
once, `orcaport detect --profile fast --arithmetic int8` rebuilds the same network from it, `make
evaluate`'s int8 column is what detect runs, bad or stale calibrations are refused in one line, and
`make publish` ships it. Calibrated on 8 clips of the committed corpus (quick on 2 CPUs); no timing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from orcaport.model import quantized
from orcaport.model.arithmetic import ENV_VAR, ArithmeticChoiceError, choose
from orcaport.model.calibration import META_FILE, TENSORS_FILE
from orcaport.model.cli import main
from orcaport.model.detector import Detector
from orcaport.model.errors import ExitCode
from orcaport.model.fileio import sha256_file
from tests.conftest import CORPUS, copy_fixture
from tests.test_publish import report  # noqa: F401 (the session fixture: a passing parity.json)

pytestmark = pytest.mark.skipif(quantized.quantized_engine() is None, reason="this torch has no x86/fbgemm engine")
FILE = CORPUS / "hydrophone_48k_mono16_60s.wav"      # the agreement bound's file (60 seconds)
SHORT = CORPUS / "stereo_44k1_16_10s5.wav"            # the others' (10 seconds, stereo at 44.1 kHz)
CLIPS = 8
INT8 = ["--profile", "fast", "--arithmetic", "int8"]


def calibrate(model: Path, capsys: pytest.CaptureFixture[str] | None = None) -> int:
    return main(["calibrate", "--model", str(model), "--audio", str(CORPUS), "--clips", str(CLIPS)])


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model = copy_fixture(tmp_path_factory.mktemp("int8"))
    assert calibrate(model) == ExitCode.OK
    return model


def fresh_copy(calibrated: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "model"
    shutil.copytree(calibrated, dst)
    return dst


def detect_csv(model: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["detect", str(SHORT), "--model", str(model), "--format", "csv", "--quiet", *extra])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_calibration_records_what_it_was_made_from(calibrated: Path, tmp_path: Path) -> None:
    meta = json.loads((calibrated / META_FILE).read_text())
    assert meta["weights_sha256"] == sha256_file(calibrated / "model.safetensors")
    assert meta["tensors_sha256"] == sha256_file(calibrated / TENSORS_FILE)
    assert meta["clips"] == CLIPS and meta["quantized_engine"] in quantized.ENGINES and meta["torch"]
    used = {Path(r["path"]).name: r for r in meta["recordings"]}
    assert sum(r["clips"] for r in used.values()) == CLIPS and FILE.name in used     # spread over the corpus
    assert used[FILE.name]["sha256"] == sha256_file(FILE)
    # made once, deterministically: the same recordings give the same stored state, byte for byte
    again = fresh_copy(calibrated, tmp_path)
    assert calibrate(again) == ExitCode.OK
    assert sha256_file(again / TENSORS_FILE) == meta["tensors_sha256"]


def test_detect_int8_is_reproducible_and_says_what_it_runs(calibrated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, first, _ = detect_csv(calibrated, capsys, *INT8)
    assert code == ExitCode.OK
    code, second, _ = detect_csv(calibrated, capsys, *INT8)
    assert code == ExitCode.OK and first == second and len(first.splitlines()) == 11      # header + 10 rows
    code, fed, _ = detect_csv(calibrated, capsys, *INT8, "--many", "--batch-size", "3")   # other batches
    assert code == ExitCode.OK and fed == first
    code, text, _ = detect_csv(calibrated, capsys, *INT8[:2], "--format", "json")
    assert code == ExitCode.OK      # ORCAPORT_ARITHMETIC is not set: fast stays fp32/bf16 (int8 never by itself)
    assert json.loads(text)["arithmetic"]["name"] != "int8"
    code, text, _ = detect_csv(calibrated, capsys, *INT8, "--format", "json")
    arith = json.loads(text)["arithmetic"]
    assert arith["name"] == "int8" and f"calibrated on {CLIPS} clips" in arith["reason"]


def test_int8_agrees_with_fp32_on_most_seconds(calibrated: Path) -> None:
    """A loose, honest bound (the measured figure is in the README): the decisions, not the bits."""
    fp32 = Detector.from_folder(calibrated).detect(FILE)
    int8 = Detector.from_folder(calibrated, profile="fast", arithmetic="int8").detect(FILE)
    assert np.mean(np.equal(fp32.local_prediction, int8.local_prediction)) >= 0.9
    assert int8.global_prediction == fp32.global_prediction
    assert 0 < np.abs(np.asarray(fp32.confidence) - np.asarray(int8.confidence)).max() < 0.3


def test_evaluate_int8_column_is_what_detect_runs(calibrated: Path, tmp_path: Path) -> None:
    from orcaport.parity.evaluation.columns import plan_columns, run_columns

    base, cols = plan_columns(calibrated, cpu_flags=frozenset(), cuda=False)
    int8 = next(c for c in cols if c.name == "fast/int8")
    assert int8.calibration["stored"] and "stored calibration" in int8.note
    run_columns(base, [c for c in cols if c.name in ("legacy-exact", "fast/int8")], [SHORT])
    detected = Detector.from_folder(calibrated, profile="fast", arithmetic="int8").detect(SHORT)
    assert np.array_equal(int8.results[SHORT.name].confidence, detected.confidence)     # other batches, same bits
    # without a stored calibration the column is still shown, calibrated on synthetic clips and labelled so
    bare = copy_fixture(tmp_path)
    _, cols = plan_columns(bare, cpu_flags=frozenset(), cuda=False)
    int8 = next(c for c in cols if c.name == "fast/int8")
    assert int8.calibration == {"stored": False, "why": f"no {META_FILE} in the model folder"}
    assert "SYNTHETIC" in int8.note and "make calibrate" in int8.note


def _tamper_weights_pin(model: Path) -> None:
    meta = json.loads((model / META_FILE).read_text())
    meta["weights_sha256"] = "0" * 64
    (model / META_FILE).write_text(json.dumps(meta))


def _flip_a_tensor_byte(model: Path) -> None:
    data = bytearray((model / TENSORS_FILE).read_bytes())
    data[-3] ^= 0xFF
    (model / TENSORS_FILE).write_bytes(bytes(data))


def _truncate_and_repin(model: Path) -> None:
    """Corrupt tensors whose pin was updated too: the safetensors parser refuses them."""
    (model / TENSORS_FILE).write_bytes((model / TENSORS_FILE).read_bytes()[:100])
    meta = json.loads((model / META_FILE).read_text())
    meta["tensors_sha256"] = sha256_file(model / TENSORS_FILE)
    (model / META_FILE).write_text(json.dumps(meta))


def _drop_an_observer_and_repin(model: Path) -> None:
    """What a calibration from a torch that traces the body differently looks like: other observers."""
    from safetensors.torch import load_file

    from orcaport.model.weights import serialize_state

    state = load_file(model / TENSORS_FILE)
    (model / TENSORS_FILE).write_bytes(serialize_state({k: v for k, v in state.items() if not k.startswith("activation_post_process_3.")}))
    meta = json.loads((model / META_FILE).read_text())
    meta["tensors_sha256"], meta["torch"] = sha256_file(model / TENSORS_FILE), "2.0.0"
    (model / META_FILE).write_text(json.dumps(meta))


@pytest.mark.parametrize("damage, says", [
    (lambda m: [(m / n).unlink() for n in (META_FILE, TENSORS_FILE)], "has no int8 calibration"),
    (_tamper_weights_pin, "was made for other weights"),
    (_flip_a_tensor_byte, "corrupt or tampered"),
    (_truncate_and_repin, "is corrupt"),
    (lambda m: (m / META_FILE).write_text("{not json"), "unreadable or corrupt"),
    (lambda m: (m / TENSORS_FILE).unlink(), "is missing"),
    (_drop_an_observer_and_repin, "was made with torch 2.0.0, whose quantized graph differs"),
])
def test_bad_calibration_is_refused_in_one_line(calibrated: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                damage: Any, says: str) -> None:
    model = fresh_copy(calibrated, tmp_path)
    damage(model)
    code, out, err = detect_csv(model, capsys, *INT8)
    assert code == ExitCode.BAD_INPUT and out == ""
    assert len(err.strip().splitlines()) == 1 and says in err and "make calibrate" in err, err


def test_int8_where_there_is_no_quantized_engine_is_a_usage_error(calibrated: Path, capsys: pytest.CaptureFixture[str],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ArithmeticChoiceError, match="--device cpu"):
        choose("fast", "cuda", "int8", environ={})
    with pytest.raises(ArithmeticChoiceError, match="use --profile fast"):
        choose("legacy-exact", "cpu", "int8", environ={})
    assert choose("fast", "cpu", None, cpu_flags=frozenset(), environ={ENV_VAR: "int8"}).name == "int8"
    monkeypatch.setattr(quantized, "supported_engines", lambda: ["qnnpack"])     # an ARM wheel's torch
    code, out, err = detect_csv(calibrated, capsys, *INT8)
    assert code == ExitCode.USAGE and out == "" and len(err.strip().splitlines()) == 1
    assert "no x86/fbgemm quantized engine" in err and "--arithmetic fp32" in err
    assert main(["calibrate", "--model", str(calibrated), "--audio", str(FILE)]) == ExitCode.USAGE


def test_publish_ships_the_calibration_and_refuses_a_stale_one(calibrated: Path, report: Path, tmp_path: Path,  # noqa: F811
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    from orcaport.parity.publishing import publish
    from tests.test_publish import _publish_args

    staging = tmp_path / "repo"
    assert publish.main(_publish_args(report, staging, "--dry-run", model=calibrated)) == ExitCode.OK
    sums = (staging / "SHA256SUMS").read_text()
    for name in (META_FILE, TENSORS_FILE):
        assert (staging / name).read_bytes() == (calibrated / name).read_bytes() and f"  {name}\n" in sums
    shipped = Detector.from_pretrained(staging, profile="fast", arithmetic="int8")     # as a user loads it
    assert shipped.calibration.meta["tensors_sha256"] == sha256_file(calibrated / TENSORS_FILE)
    stale = fresh_copy(calibrated, tmp_path / "stale")
    _tamper_weights_pin(stale)
    capsys.readouterr()
    assert publish.main(_publish_args(report, tmp_path / "repo2", "--dry-run", model=stale)) == ExitCode.BAD_INPUT
    assert "was made for other weights" in capsys.readouterr().err and not (tmp_path / "repo2").exists()


def test_calibrate_refuses_what_it_cannot_use(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = copy_fixture(tmp_path)
    capsys.readouterr()
    assert main(["calibrate", "--model", str(model), "--audio", str(CORPUS / "short_1s5_48k_16.wav")]) == ExitCode.BAD_INPUT
    assert "no clip of the 1 recordings could be read" in capsys.readouterr().err
    assert main(["calibrate", "--model", str(model), "--audio", str(SHORT), "--clips", "0"]) == ExitCode.USAGE
    assert not (model / META_FILE).exists() and not (model / TENSORS_FILE).exists()


def test_card_states_int8_numbers_and_which_calibration_was_evaluated() -> None:
    from orcaport.parity.evaluation.card import int8_lines

    level = {"f1": 0.8}
    doc = {"scores": {"legacy-exact": {lv: {"f1": 0.85} for lv in ("second", "file", "event")},
                      "fast/int8": {lv: level for lv in ("second", "file", "event")}},
           "gate": {"fast/int8": {"offered": False}},
           "columns": {"fast/int8": {"calibration": {"stored": True, "tensors_sha256": "ab" * 32, "clips": 64,
                                                     "recordings": 9}}}}
    text = " ".join(int8_lines(doc, {TENSORS_FILE: "ab" * 32}))
    assert "F1 per second 0.800 (legacy-exact 0.850)" in text and "not offered for deployment" in text
    assert "evaluated with the calibration this repo ships" in text
    assert "another calibration" in " ".join(int8_lines(doc, {}))
    doc["columns"]["fast/int8"]["calibration"] = {"stored": False, "why": "none"}
    assert "synthetic" in " ".join(int8_lines(doc, {TENSORS_FILE: "ab" * 32}))
