"""`make publish MODE=predict`: a learner only fastai_audio's own predict can run (the zoo's
opt_split: remove_silence="split", several items per file) is gated on `make predict-parity`'s
report -- identity first (weights, config, references, tolerances, runtime code), then the verdict --
and staged with a card that says predict mode and shows `mode="predict"`; a failing, stale or
foreign report is refused in one line naming `make predict-parity` with the caller's variables."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

import orcaport.parity.predict_parity as pp
from convert.zoo_weights import rebuild
from orcaport.model.detector import Detector
from orcaport.parity.publishing import publish
from orcaport.parity.publishing.gate import GateError, check_report
from tests.paths import ROOT

ZOO = ROOT / "reference_outputs" / "zoo"
ENTRY = "opt_split"
REPO = "someone/split-learner"


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("publish-predict")
    model, refs, reports = root / "model", root / "refs", root / "reports"
    assert rebuild(ZOO / ENTRY, model)
    shutil.copytree(ZOO / ENTRY / "predict", refs)
    audio = ZOO / json.loads((ZOO / ENTRY / "zoo.json").read_text())["audio"]
    assert pp.main(["--model", str(model), "--references", str(refs), "--audio", str(audio),
                    "--out", str(reports / "predict_parity.json")]) == 0
    return {"model": model, "refs": refs, "report": reports / "predict_parity.json", "root": root}


def args(made: dict[str, Path], report: Path, staging: Path) -> list[str]:
    return ["--model", str(made["model"]), "--report", str(report), "--references", str(made["refs"]),
            "--repo-id", REPO, "--staging", str(staging), "--dry-run", "--not-orcahello"]


def test_a_predict_only_learner_publishes_through_its_predict_report(made: dict[str, Path]) -> None:
    with pytest.raises(Exception, match="orcaport predict"):
        Detector.from_folder(made["model"])             # windowed detection refuses it: no parity.json
    gated = check_report(made["report"], made["model"], made["refs"])
    assert gated.result.mode == "predict" and gated.result.passed
    staging = made["root"] / "staged"
    assert publish.main(args(made, made["report"], staging)) == 0
    assert (staging / "parity.json").read_bytes() == made["report"].read_bytes()
    card = (staging / "README.md").read_text()
    assert "fastai_audio's own predict" in card and 'mode="predict"' in card
    assert ".detect(" not in card and "- windows:" not in card      # nothing windowed for a predict-only learner
    assert "-> resample -> silence -> mel" in card                 # the chain it runs, per item
    assert "| ✓ | silence | isolated |" in card and "| ✓ | items | chained |" in card
    items = Detector.from_pretrained(staging, mode="predict").predict(
        next((ZOO / "audio_options").glob("*.wav")))
    assert len(items) == 2                                 # the two pieces "split" cuts


def edited(made: dict[str, Path], tmp: Path, change: Any) -> Path:
    data = json.loads(made["report"].read_text())
    change(data)
    out = tmp / "predict_parity.json"
    out.write_text(json.dumps(data))
    return out


def _fail(d: dict) -> None:
    d["passed"] = False
    d["first_failure"] = {"stage": "silence", "mode": "isolated", "item": 1}


@pytest.mark.parametrize("change,words", [
    (_fail, "FAILED predict parity run: first failing stage silence (isolated, item 1)"),
    (lambda d: d.update(weights_sha256="0" * 64), "other weights"),
    (lambda d: d.update(references_manifest_sha256="0" * 64), "other references"),
    (lambda d: d["runtime_files"].update({"pipeline.py": "0" * 64}), "runtime code (pipeline.py)"),
    (lambda d: d.update(references_weights_sha256="1" * 64), "references recorded for other weights"),
    (lambda d: d.update(schema_version=None), "is unreadable"),
    (lambda d: [f.update(checks=[]) for f in d["files"]], "holds no checks"),
])
def test_the_gate_refuses_failing_stale_or_foreign_predict_reports(made: dict[str, Path], tmp_path: Path,
                                                                   change: Any, words: str, capsys) -> None:
    report = edited(made, tmp_path, change)
    with pytest.raises(GateError, match="make predict-parity") as e:
        check_report(report, made["model"], made["refs"])
    assert words in str(e.value) and "\n" not in str(e.value)
    assert publish.main(args(made, report, tmp_path / "staged")) == 4
    assert not (tmp_path / "staged").exists()
    err = capsys.readouterr().err
    assert "MODE=predict" in err or "PREDICT_REFERENCES=" in err
