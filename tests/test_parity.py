"""`make parity` on the committed fixture, and failures localised to the right stage / layer."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file, save_file

from orcaport.model.errors import ExitCode
from orcaport.model.weights import read_metadata, save_network_state
from orcaport.parity.result import ParityResult
from orcaport.parity.run import run_parity
from tests.conftest import CORPUS, FIXTURE, FLAGSHIP, REFS, ROOT, UPSTREAM, copy_fixture


def parity_cli(tmp: Path, *args: str) -> tuple[int, str, dict[str, Any] | None]:
    """python -m orcaport.parity on the fixture; `args` given later win (argparse: the last one)."""
    out = subprocess.run([sys.executable, "-m", "orcaport.parity", "--model", str(FIXTURE), "--references", str(REFS),
                          "--audio", str(CORPUS), "--reports", str(tmp / "reports"), *args],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    report = tmp / "reports" / "parity.json"
    return out.returncode, out.stdout + out.stderr, json.loads(report.read_text()) if report.exists() else None


@pytest.fixture(scope="module")
def full() -> ParityResult:
    result, _ = run_parity(FIXTURE, REFS, CORPUS, upstream=UPSTREAM)
    return result


def test_every_stage_passes_isolated_and_chained_for_every_file(full: ParityResult) -> None:
    assert full.passed, full.first_failure
    assert full.weights_check == "verified"
    modes = {(r.stage, r.mode) for r in full.summary}
    for stage in ("clip", "load", "downmix", "resample", "mel", "db", "input", "activations",
                  "logits", "probs", "aggregate"):
        assert {(stage, "isolated"), (stage, "chained")} <= modes, stage
    assert ("decode", "chained") in modes
    assert all(f.status in ("ok", "expected-error") for f in full.files)


def test_probabilities_and_decisions_match_production(full: ParityResult) -> None:
    """Within the envelope-derived bound of the criteria that applied, and every decision equal
    except those legacy itself cannot pin down (confidence within that bound of the threshold)."""
    regime = full.criteria.regime
    bound = json.loads((ROOT / "parity" / "tolerances.json").read_text())["stages"]["probs"][regime]["atol"]
    for f in full.files:
        for c in f.checks:
            if c.stage == "probs":
                assert c.metrics["max_abs"] <= bound, (f.name, c)
            if c.stage == "aggregate" and c.decisions:
                d = c.decisions
                assert not d.local_flips, (f.name, d)
                assert d.local_agreement == 1.0 or d.unstable_flips, (f.name, d)
                assert d.global_ref == d.global_clean or d.global_unstable
                assert d.rows_ref == d.rows_clean
    flagship = next(f for f in full.files if f.name == FLAGSHIP)
    agg = next(c for c in flagship.checks if c.stage == "aggregate" and c.mode == "chained")
    assert agg.decisions.rows_clean == 60 and len(flagship.series.clean) == 60


def test_file_legacy_rejects_is_rejected_too(full: ParityResult) -> None:
    short = next(f for f in full.files if f.name == "short_1s5_48k_16.wav")
    assert short.status == "expected-error"
    assert short.legacy_error.type == "KeyError" and short.clean_error is not None


def test_real_upstream_data_pad_crop_and_quantization_account(full: ParityResult) -> None:
    real = full.real_data
    if not real["available"]:
        pytest.skip(real["why"])
    assert real["pad_crop_exact"] and real["passed"]
    for seg in real["segments"]:
        assert seg["clean_shape"] == seg["standardized_shape"] == [1, 256, 312]
        assert seg["tail_frames"] == 155 and seg["tail_all_zero_db"] and seg["tail_exact"]
        assert 0.0 < seg["head_max_abs_db"] <= 0.35
    assert real["explained_by_16bit_caches"]


def test_a_tampered_weights_file_is_refused_before_use(tmp_path: Path) -> None:
    model = copy_fixture(tmp_path)
    blob = bytearray((model / "model.safetensors").read_bytes())
    blob[-100] ^= 0x01                     # a data byte: the safetensors header cannot notice
    (model / "model.safetensors").write_bytes(bytes(blob))
    code, out, report = parity_cli(tmp_path, "--model", str(model))
    assert code == ExitCode.BAD_INPUT and "not the file config.json was written with" in out and report is None


def test_one_perturbed_weight_is_localised_to_its_block(tmp_path: Path) -> None:
    model = copy_fixture(tmp_path)
    state = {k: torch.from_numpy(v) for k, v in load_file(str(model / "model.safetensors")).items()}
    state["body.layer3.1.conv2.weight"][0, 0, 1, 1] += 0.5
    save_network_state(state, model / "model.safetensors", read_metadata(FIXTURE / "model.safetensors"))
    cfg = json.loads((model / "config.json").read_text())   # as a real re-conversion would pin it
    cfg["provenance"]["weights_sha256"] = hashlib.sha256((model / "model.safetensors").read_bytes()).hexdigest()
    (model / "config.json").write_text(json.dumps(cfg))
    code, out, _ = parity_cli(tmp_path, "--model", str(model), "--only", FLAGSHIP)
    assert code == ExitCode.BAD_INPUT and "references were recorded for weights" in out   # never silently accepted
    code, out, report = parity_cli(tmp_path, "--model", str(model), "--only", FLAGSHIP,
                                   "--diagnose-other-weights")
    assert code == 1, out
    assert report["first_failure"]["stage"] == "activations"
    assert report["first_failure"]["layer"] == "layer3" and report["first_failure"]["mode"] == "isolated"
    assert report["weights_check"] == "diagnostic: other weights"
    iso = [c for c in report["files"][0]["checks"] if c["mode"] == "isolated" and c["stage"] == "activations"]
    # isolated replay feeds each block legacy's own input: only the perturbed block fails
    assert {c["layer"] for c in iso if not c["passed"]} == {"layer3"}
    chained = [c for c in report["files"][0]["checks"] if c["mode"] == "chained" and c["stage"] == "activations"
               and c["clip"] == 50]
    assert {c["layer"] for c in chained if not c["passed"]} == {"layer3", "layer4", "pooled"}
    assert "first failing stage activations" in out


def _copy_refs(tmp: Path) -> Path:
    dst = tmp / "stages"
    shutil.copytree(REFS, dst)
    return dst


def test_one_perturbed_reference_tensor_is_localised_to_its_stage(tmp_path: Path) -> None:
    refs = _copy_refs(tmp_path)
    path = refs / "hydrophone_48k_mono16_60s.wav.safetensors"
    tensors = load_file(str(path))
    tensors["clips/50/mel"][0, 40, 70] *= 1.10          # 0.41 dB: above any legacy envelope
    save_file(tensors, str(path))
    manifest = json.loads((refs / "manifest.json").read_text())
    entry = next(f for f in manifest["files"] if f["name"] == FLAGSHIP)
    entry["tensors"]["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    (refs / "manifest.json").write_text(json.dumps(manifest))
    code, out, report = parity_cli(tmp_path, "--references", str(refs), "--only", FLAGSHIP)
    assert code == 1, out
    ff = report["first_failure"]
    assert (ff["stage"], ff["mode"], ff["clip"]) == ("mel", "isolated", 50)
    worst = next(c for c in report["files"][0]["checks"]
                 if c["stage"] == "mel" and c["mode"] == "isolated" and c["clip"] == 50)["metrics"]["worst"]
    assert worst["index"] == [0, 40, 70] and worst["axes"] == ["channel", "mel_bin", "frame"]


def test_a_flipped_byte_in_a_reference_is_refused(tmp_path: Path) -> None:
    refs = _copy_refs(tmp_path)
    path = refs / "stereo_44k1_16_10s5.wav.safetensors"
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0x01
    path.write_bytes(bytes(blob))
    code, out, report = parity_cli(tmp_path, "--references", str(refs))
    assert code == ExitCode.BAD_INPUT and "does not match its sha256" in out and report is None


@pytest.mark.parametrize("field,value,stage", [("top_db", 80, "db"), ("f_max", 9000.0, "mel"),
                                                ("hop_length", 255, "mel")])
def test_one_changed_frontend_parameter_is_localised(tmp_path: Path, field: str, value: Any,
                                                     stage: str) -> None:
    model = copy_fixture(tmp_path)
    cfg = json.loads((model / "config.json").read_text())
    cfg["frontend"][field] = value
    (model / "config.json").write_text(json.dumps(cfg))
    result, _ = run_parity(model, REFS, CORPUS, only=[FLAGSHIP])
    assert not result.passed
    ff = result.first_failure
    assert (ff.stage, ff.mode) == (stage, "isolated"), ff
