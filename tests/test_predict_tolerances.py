"""Predict mode's own tolerances (`make predict-envelope` -> `derive`): the derived file holds the
stages predict measured, option stages with entries of their own; predict parity applies them, a
windowed file's option entries never leak into predict parity, and windowed parity refuses a
predict file naming the fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import orcaport.parity.predict_parity as pp
from convert.zoo_weights import rebuild
from orcaport.model.errors import InputError
from orcaport.parity.envelope import POLICY, derive
from orcaport.parity.metrics import DEFAULT_TOLERANCES
from orcaport.parity.run import ToleranceError, load_tolerances
from tests.paths import ROOT

ZOO = ROOT / "reference_outputs" / "zoo"
PREDICT_STAGES = ("load", "downmix", "resample", "mel", "db", "standardize", "input", "logits", "probs")


def envelope(figures: dict[str, float]) -> dict:
    """A predict envelope whose one comparison measured `figures` (every metric) per stage."""
    rows = {s: {"tensors": 1, "snr_db": None, **{m: v for m in ("max_abs", "p99_abs", "p999_abs", "max_rel",
                                                                "rel_to_max", "max_log_power_db")}}
            for s, v in figures.items()}
    return {"mode": "predict", "comparisons": [
        {"name": "aten-default vs baseline", "regimes": ["cross_machine"], "stages": rows, "digests": {}},
        {"name": "clean vs baseline", "regimes": ["same_machine"], "stages": rows, "digests": {}}]}


def write(path: Path, data: dict) -> Path:
    path.write_text(json.dumps(data))
    return path


def test_derive_keeps_predicts_stages_and_gives_option_stages_their_own_entry() -> None:
    figures = {s: 0.0 for s in PREDICT_STAGES} | {"standardize": 2e-3}
    out = derive(envelope(figures), json.loads(POLICY.read_text()), "0" * 64)
    assert out["mode"] == "predict"
    assert set(out["stages"]) == set(PREDICT_STAGES)          # no clip, activations, aggregate, pooled
    std = out["stages"]["standardize"]["cross_machine"]
    assert std["derived"]["envelope"] == 2e-3 and std["atol"] >= 2e-3
    assert "option stage standardize" in std["why"]


def test_windowed_parity_refuses_a_predict_file_and_predict_drops_windowed_option_entries(tmp_path: Path) -> None:
    out = derive(envelope({s: 0.0 for s in PREDICT_STAGES}), json.loads(POLICY.read_text()), "0" * 64)
    predict_file = write(tmp_path / "predict.json", out)
    with pytest.raises(ToleranceError, match="make predict-envelope"):
        load_tolerances(predict_file)
    assert "standardize" in load_tolerances(predict_file, mode="predict")[1]
    windowed = json.loads(DEFAULT_TOLERANCES.read_text())
    windowed["stages"]["standardize"] = windowed["stages"]["db"]       # a windowed envelope's own entry
    windowed_file = write(tmp_path / "windowed.json", windowed)
    assert "standardize" in load_tolerances(windowed_file)[1]
    assert "standardize" not in load_tolerances(windowed_file, mode="predict")[1]


def test_predict_parity_judges_an_option_stage_by_its_own_entry(tmp_path: Path) -> None:
    entry = ZOO / "opt_standardize"
    model = tmp_path / "model"
    assert rebuild(entry, model)
    audio = ZOO / json.loads((entry / "zoo.json").read_text())["audio"]
    default = pp.replay(model, entry / "predict", audio)
    check = next(c for f in default["files"] for c in f["checks"]
                 if (c["stage"], c["mode"]) == ("standardize", "isolated"))
    assert default["passed"] and check["criterion"] == "db" and check["value"] > 0
    # its own entry, set below the figure the replay measures: predict parity must now apply it
    tight = derive(envelope({s: 0.0 for s in PREDICT_STAGES}), json.loads(POLICY.read_text()), "0" * 64)
    for regime in ("same_machine", "cross_machine"):
        tight["stages"]["standardize"][regime]["atol"] = check["value"] / 2
    result = pp.replay(model, entry / "predict", audio, write(tmp_path / "tight.json", tight))
    assert not result["passed"]
    assert (result["first_failure"]["stage"], result["first_failure"]["mode"]) == ("standardize", "isolated")
    got = next(c for f in result["files"] for c in f["checks"] if c["stage"] == "standardize")
    assert got["criterion"] == "standardize"


def test_a_predict_file_lacking_a_stage_the_learner_runs_is_refused_naming_it(tmp_path: Path) -> None:
    """Another learner's predict tolerances (mfcc: no mel, db, delta) on the delta learner."""
    model = tmp_path / "model"
    assert rebuild(ZOO / "opt_delta", model)
    lacking = r"no criterion for stage\(s\) \['db', 'delta', 'mel'\].*make predict-envelope"
    with pytest.raises(InputError, match=lacking):
        pp.replay(model, ZOO / "opt_delta" / "predict", ZOO / "audio_options",
                  ZOO / "opt_mfcc" / "predict_tolerances.json")
