"""`make publish EVALUATION=...`: the staged card carries the evaluation's results as Hub model-index
metadata for the dataset the user named (parity/evaluation/card.py); an evaluation of other weights
or without a dataset name is refused before anything is staged. No scikit-learn needed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from huggingface_hub import ModelCard

from orcaport.model.fileio import sha256_file
from orcaport.parity.publishing import publish
from tests.conftest import FIXTURE
from tests.test_publish import REPO, _publish_args, report  # noqa: F401 (the session fixture: a passing parity.json)

DATASET = "Haro Strait labeled hydrophone set 2026"


def evaluation(weights: str | None = None, dataset: str | None = DATASET) -> dict[str, Any]:
    """An evaluation.json as `make evaluate` writes it (only the fields the card reads vary here)."""
    def level(p: float, r: float, f1: float, ap: float | None) -> dict[str, Any]:
        return {"precision": p, "recall": r, "f1": f1, "average_precision": ap}

    scores = {c: {"second": level(0.9, 0.8, 0.847, 0.91), "file": level(1.0, 1.0, 1.0, 1.0),
                  "event": level(0.93, 0.82, 0.875, None)} for c in ("legacy-exact", "fast/bf16")}
    scores["fast/bf16"]["second"]["f1"] = 0.85
    return {"schema_version": 1, "dataset": dataset, "weights_sha256": weights or sha256_file(FIXTURE / "model.safetensors"),
            "threshold": 0.5, "min_positive": 3, "created": "2026-12-03 09:00 UTC", "gate_margin": 0.01,
            "machine": {"description": "Intel(R) Xeon(R) Processor [avx512_bf16 amx_bf16] cpu"},
            "recordings": {"a.wav": {}, "b.wav": {}}, "scores": scores,
            "columns": {"legacy-exact": {"arithmetic": "fp32"}, "fast/bf16": {"arithmetic": "bfloat16 (onednn)"}},
            "gate": {"fast/bf16": {"offered": True}},
            "criteria": {"second": "a second ...", "file": "a file ...", "event": "an event ..."}}


def test_card_gets_model_index_results_for_the_named_dataset(report: Path, tmp_path: Path) -> None:  # noqa: F811
    ev = tmp_path / "evaluation.json"
    ev.write_text(json.dumps(evaluation()))
    staging = tmp_path / "repo"
    assert publish.main(_publish_args(report, staging, "--dry-run", "--evaluation", str(ev))) == 0
    assert (staging / "evaluation.json").read_bytes() == ev.read_bytes()
    assert "evaluation.json" in (staging / "SHA256SUMS").read_text()
    card = ModelCard((staging / "README.md").read_text())
    results = card.data.eval_results
    assert {r.dataset_name for r in results} == {DATASET} and {r.dataset_type for r in results} == {
        "haro-strait-labeled-hydrophone-set-2026"}
    got = {(r.metric_type, r.metric_name): r.metric_value for r in results}
    assert got[("f1", "F1 per second (threshold 0.5)")] == 0.847          # legacy-exact's, not fast's 0.85
    assert got[("f1", "F1 per event (threshold 0.5)")] == 0.875
    assert ("average_precision", "average precision per second (threshold 0.5)") in got
    assert card.data.model_name == REPO.split("/")[1] and {r.task_type for r in results} == {"audio-classification"}
    text = card.text
    assert f"## Evaluation on {DATASET}" in text and "| fast/bf16 | bfloat16 (onednn) |" in text
    assert "Offered for deployment on these labels (F1 within 0.01 of legacy-exact at every level): fast/bf16." in text


def test_evaluation_of_other_weights_or_without_a_dataset_is_refused(report: Path, tmp_path: Path,  # noqa: F811
                                                                     capsys) -> None:
    for doc, want in ((evaluation(weights="0" * 64), "evaluated other weights"),
                      (evaluation(dataset=None), "names no dataset")):
        ev = tmp_path / "evaluation.json"
        ev.write_text(json.dumps(doc))
        staging = tmp_path / "repo"
        assert publish.main(_publish_args(report, staging, "--dry-run", "--evaluation", str(ev))) == 3
        assert want in capsys.readouterr().err and not staging.exists()
