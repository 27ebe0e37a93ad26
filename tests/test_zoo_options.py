"""The zoo's option learners (convert/zoo.py `opt_*`, and the body zoo's `squeezenet1_1_delta`):
each a real `audio_learner` trained with one fastai_audio option, converted, referenced by legacy in
windowed mode (`make references`, where that mode runs the option) and in fastai_audio's own
predict mode (`make predict-references`), replayed here in the clean env. Per entry: predict parity
PASSED with the option's stage checked isolated and chained (under the entry's own predict envelope
on the machine that measured it), `orcaport predict` gives legacy's items, and the option ablated in
the clean runtime fails first at its own stage in every mode it was recorded for (its negative
control; each prints a MARGIN line). `opt_windows`: other clips and hops, cut and aggregated as
legacy. (Windowed parity, the detector and a swapped weight run for every entry in tests/test_zoo.py.)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import load_file

import orcaport.parity.predict_parity as pp
from convert.zoo_weights import rebuild
from orcaport.model.config import ModelConfig
from orcaport.model.detector import Detector
from orcaport.model.spectrogram import FrontendError
from orcaport.parity.controls import margin
from orcaport.parity.fingerprint import fingerprint, same_machine
from orcaport.parity.metrics import DEFAULT_TOLERANCES, tolerance_stage
from orcaport.parity.predict_replay import item_offsets
from orcaport.parity.run import run_parity
import tests.ablations as ab
from tests.paths import ROOT
from tests.test_zoo import audio_of

ZOO = ROOT / "reference_outputs" / "zoo"
# entry: (the option it trains with, the stage where that option first acts)
OPTIONS = {
    "opt_mfcc": ("mfcc", "mfcc"),
    "opt_standardize": ("standardize", "standardize"),
    "opt_zeros": ("pad_mode", "input"),
    "opt_trim": ("remove_silence", "silence"),
    "opt_all": ("remove_silence", "silence"),
    "opt_split": ("remove_silence", "silence"),
    "opt_max_to_pad": ("max_to_pad", "pad_signal"),
    "opt_segment_size": ("segment_size", "segment"),
    "opt_delta": ("delta", "delta"),
    "squeezenet1_1_delta": ("delta", "delta"),
}
PREDICT = [e for e in OPTIONS if (ZOO / e / "predict").is_dir()]
WINDOWED = [e for e in OPTIONS if (ZOO / e / "stages").is_dir()]


ABLATIONS: dict[str, list[ab.Ablation]] = {   # entry: what is ablated (tests/ablations.py)
    "opt_mfcc": [ab.MFCC_AT_16K],
    "opt_standardize": [ab.STANDARDIZE_SKIPPED],
    "opt_zeros": [ab.ZEROS_DRAW_NOT_REPLAYED, ab.PREDICT_DRAWS_NOT_REPLAYED],
    "opt_trim": [ab.SILENCE_KEPT],
    "opt_all": [ab.SILENCE_KEPT],
    "opt_split": [ab.SILENCE_KEPT],
    "opt_max_to_pad": [ab.SIGNAL_END_KEPT],
    "opt_segment_size": [ab.SEGMENTS_NOT_CUT],
    "opt_delta": [ab.DELTAS_AS_COPIES],
    "squeezenet1_1_delta": [ab.DELTAS_AS_COPIES],
}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("zoo-options")
    return {e: root / e for e in [*OPTIONS, "opt_windows"] if rebuild(ZOO / e, root / e)}


def own_tolerances(entry: str) -> bool:
    """Whether to judge by the entry's own predict tolerances: on the machine its envelope was
    measured on. Elsewhere the fixture's (an Intel Xeon's envelope, AVX-512 paths included): one
    AVX2-only machine's variants cannot stand in for another machine's kernels."""
    manifest = json.loads((ZOO / entry / "predict" / "manifest.json").read_text())
    return same_machine(manifest.get("machine"), fingerprint())


def predict_replay(models: dict[str, Path], entry: str) -> dict[str, Any]:
    """make predict-parity, under the entry's own predict tolerances where own_tolerances says."""
    tolerances = ZOO / entry / "predict_tolerances.json" if own_tolerances(entry) else DEFAULT_TOLERANCES
    return pp.replay(models[entry], ZOO / entry / "predict", audio_of(entry), tolerances)


def test_every_option_has_its_own_trained_learner() -> None:
    every = {"mfcc", "standardize", "pad_mode", "remove_silence", "max_to_pad", "segment_size", "delta"}
    assert {option for option, _ in OPTIONS.values()} == every
    modes = {json.loads((ZOO / e / "config.json").read_text())["frontend"]["remove_silence"] for e in OPTIONS}
    assert {"trim", "split", "all"} <= modes
    for entry, (option, _) in OPTIONS.items():
        zoo = json.loads((ZOO / entry / "zoo.json").read_text())
        assert option in zoo["frontend_changes"], entry          # trained with it, not converted with it
        assert getattr(ModelConfig.load(ZOO / entry / "config.json").frontend, option) == \
            zoo["frontend_changes"][option]


@pytest.mark.parametrize("entry", PREDICT)
def test_predict_parity_passes_with_the_options_stage_both_ways(models: dict[str, Path], entry: str) -> None:
    result = predict_replay(models, entry)
    assert result["passed"], result["first_failure"]
    stage = OPTIONS[entry][1]
    checked = {(c["stage"], c["mode"]) for f in result["files"] for c in f["checks"] if c["passed"]}
    assert {(stage, "isolated"), (stage, "chained"), ("probs", "chained"), ("items", "chained")} <= checked
    # judged by predict mode's own envelope here (the option stage by an entry of its own), by the
    # stage its arithmetic comes from elsewhere
    want = stage if own_tolerances(entry) else tolerance_stage(stage, None)
    assert {c["criterion"] for f in result["files"] for c in f["checks"]
            if c["stage"] == stage and c["figure"] != "count"} == {want}


@pytest.mark.parametrize("entry", PREDICT)
def test_predict_tolerances_are_derived_from_the_entrys_own_envelope(entry: str) -> None:
    from orcaport.parity.envelope import derive_files, render

    envelope = json.loads((ZOO / entry / "predict_envelope.json").read_text())
    assert envelope["mode"] == "predict" and any(c["name"] == "clean vs baseline" for c in envelope["comparisons"])
    assert render(derive_files(ZOO / entry / "predict_envelope.json")) == \
        (ZOO / entry / "predict_tolerances.json").read_bytes()


@pytest.mark.parametrize("entry", WINDOWED)
def test_windowed_parity_checks_the_options_stage_both_ways(models: dict[str, Path], entry: str) -> None:
    result, _ = run_parity(models[entry], ZOO / entry / "stages", audio_of(entry))
    assert result.passed, result.first_failure
    stage = OPTIONS[entry][1]
    checked = {(c.stage, c.mode) for f in result.files for c in f.checks if c.passed}
    assert {(stage, "isolated"), (stage, "chained")} <= checked


@pytest.mark.parametrize("entry", PREDICT)
def test_orcaport_predict_gives_legacys_items(models: dict[str, Path], entry: str) -> None:
    detector = Detector.from_folder(models[entry], mode="predict")
    for path in sorted(audio_of(entry).glob("*.wav")):
        ref = load_file(str(ZOO / entry / "predict" / f"{path.name}.safetensors"))
        n = len(ref["all/index"])
        replayed = detector.predict(path, item_offsets(ref, n))     # legacy's draws
        assert len(replayed) == n
        np.testing.assert_allclose(np.stack([p.probabilities for p in replayed]), ref["all/probs"], atol=1e-4)
        assert [p.index for p in replayed] == ref["all/index"].tolist()
        runtime = detector.predict(path)         # the runtime's own offsets: same items
        assert len(runtime) == n and all(np.isclose(sum(p.probabilities), 1.0, atol=1e-5) for p in runtime)


def test_other_windows_cut_and_aggregate_as_legacy(models: dict[str, Path]) -> None:
    """opt_windows: 1 s clips every 2 s (config.json's windowing), referenced by legacy's production
    loop cutting those windows: the detector's clips and rows are legacy's, on the hop grid."""
    path = next(audio_of("opt_windows").glob("*.wav"))
    manifest = json.loads((ZOO / "opt_windows" / "stages" / "manifest.json").read_text())
    assert manifest["files"][0]["clip_windows"] == [[0, 1], [2, 3]]
    ref = load_file(str(ZOO / "opt_windows" / "stages" / f"{path.name}.safetensors"))
    d = Detector.from_folder(models["opt_windows"]).detect(path)
    assert d.clips == 2 and d.hop_s == 2.0
    assert d.start_time_s.tolist() == ref["aggregate/start_time_s"].tolist() == [0, 2, 4]
    np.testing.assert_allclose(d.confidence, ref["aggregate/confidence"], atol=1e-6)
    assert d.local_prediction.tolist() == ref["aggregate/local_prediction"].tolist()


def test_windowed_detection_refuses_options_that_make_several_items(models: dict[str, Path]) -> None:
    for entry in ("opt_split", "opt_segment_size"):
        with pytest.raises(FrontendError, match="orcaport predict"):
            Detector.from_folder(models[entry])          # windowed, the default mode


def predict_margin(result: dict[str, Any]) -> str:
    ff = result["first_failure"]
    c = next(c for f in result["files"] for c in f["checks"] if not c["passed"]
             and (c["stage"], c["mode"], c["key"]) == (ff["stage"], ff["mode"], ff["key"]))
    m = c["metrics"]
    if m.get("shape_mismatch"):
        return f"shape {m['shape_mismatch'][1]} instead of {m['shape_mismatch'][0]}"
    if c["figure"] == "count":
        return f"{c['value']} pieces, legacy {c['metrics'].get('legacy')}"
    return f"{m['excess']:.3g}x over tolerance" if m.get("excess") is not None else f"{c['figure']} {c['value']}"


@pytest.mark.parametrize("entry", sorted(ABLATIONS))
def test_each_option_ablated_fails_at_its_own_stage_in_every_mode(models: dict[str, Path], entry: str,
                                                                  monkeypatch, capsys) -> None:
    for owner, name, value in ABLATIONS[entry]:
        monkeypatch.setattr(owner, name, value)
    stage, seen = OPTIONS[entry][1], []
    if entry in WINDOWED:
        result, _ = run_parity(models[entry], ZOO / entry / "stages", audio_of(entry))
        assert not result.passed and result.first_failure.stage == stage, result.first_failure
        seen.append(f"windowed {margin(result)[1]}")
    if entry in PREDICT:
        result = predict_replay(models, entry)
        assert not result["passed"] and result["first_failure"]["stage"] == stage, result["first_failure"]
        seen.append(f"predict {predict_margin(result)}")
    assert seen
    with capsys.disabled():
        print(f"\nMARGIN {entry} at {stage}: " + "; ".join(seen))
