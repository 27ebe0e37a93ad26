"""The committed envelope and the tolerances derived from it agree; every kernel-path knob was
measured; exact stages measured 0; decisions flip only where legacy itself is unstable."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from orcaport.parity.envelope import POLICY, VARIANTS, derive, derive_files, round_up, same_as_baseline
from orcaport.parity.metrics import DEFAULT_TOLERANCES, Tolerance
from orcaport.parity.references import FileReference
from orcaport.parity.replay import FileReplay
from tests.conftest import ENVELOPE, FIXTURE

KNOBS = ("ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS", "MKL_CBWR", "ONEDNN_MAX_CPU_ISA")


@pytest.fixture(scope="module")
def envelope() -> dict[str, Any]:
    return json.loads(ENVELOPE.read_text())


def test_tolerances_file_is_what_the_committed_envelope_derives() -> None:
    """Edit either file alone and this fails: run `make tolerances` (or `make envelope`)."""
    committed = json.loads(DEFAULT_TOLERANCES.read_text())
    assert committed == derive_files(ENVELOPE, POLICY)
    assert committed["envelope_sha256"] == hashlib.sha256(ENVELOPE.read_bytes()).hexdigest()


def test_a_changed_envelope_figure_changes_the_derived_tolerance(envelope: dict[str, Any]) -> None:
    policy = json.loads(POLICY.read_text())
    base = derive(envelope, policy, "x")
    moved = copy.deepcopy(envelope)
    for c in moved["comparisons"]:
        if "cross_machine" in c["regimes"] and "probs" in c["stages"]:
            c["stages"]["probs"]["max_abs"] *= 10
    assert derive(moved, policy, "x")["stages"]["probs"]["cross_machine"]["atol"] > \
        base["stages"]["probs"]["cross_machine"]["atol"]
    for c in moved["comparisons"]:
        c["digests"] = {"clip": {"compared": 1, "differ": 1}}
    with pytest.raises(ValueError, match="declared exact"):
        derive(moved, policy, "x")


def test_every_kernel_path_knob_and_both_regimes_were_measured(envelope: dict[str, Any]) -> None:
    variants = envelope["variants"]
    for knob in KNOBS:
        assert any(knob in v["env"] for v in variants.values()), knob
    assert any(v["threads"] == 2 for v in variants.values())
    assert all(v["machine"]["probed"] and v["machine"]["cpu_model"] for v in variants.values())
    kinds = {c["kind"] for c in envelope["comparisons"]}
    assert "across machines" in kinds          # the committed references came from another CPU
    assert "clean runtime, same machine" in kinds
    regimes = {r for c in envelope["comparisons"] for r in c["regimes"]}
    assert regimes == {"same_machine", "cross_machine"}


def test_tolerances_cover_the_envelope_with_the_stated_factor(envelope: dict[str, Any]) -> None:
    tols = json.loads(DEFAULT_TOLERANCES.read_text())
    factor = tols["safety_factor"]
    assert factor >= 2
    for stage, entry in tols["stages"].items():
        for regime, crit in entry.items():
            if crit.get("exact"):
                continue
            d = crit["derived"]
            assert crit["atol"] >= max(d["floor"], factor * d["envelope"]) - 1e-15, (stage, regime)
            assert crit["atol"] <= max(d["floor"], round_up(factor * d["envelope"])) + 1e-15
            assert f"x {factor:g}" in crit["why"] and d["from"] in crit["why"]
    # the cross-machine bound is never tighter than the same-machine one
    for stage, entry in tols["stages"].items():
        if not entry["cross_machine"].get("exact"):
            assert entry["cross_machine"]["atol"] >= entry["same_machine"]["atol"], stage


def _replay(conf_ref: np.ndarray, local_ref: np.ndarray, band: float) -> FileReplay:
    class Art:        # only what check_aggregate reads
        class config:
            frontend = normalization = None

            class aggregation:
                threshold, min_positive = 0.5, 3
    ref = FileReference("f.wav", {}, {
        "aggregate/confidence": conf_ref, "aggregate/local_prediction": local_ref,
        "aggregate/global_prediction": np.array([int(local_ref.sum() >= 3)]),
        "aggregate/global_confidence": np.array([100 * conf_ref[conf_ref > 0.5].mean()])})
    tol = Tolerance(band, 0.0, 0.0, False, "test")
    return FileReplay(ref, Path("f.wav"), Art(), {"aggregate": tol})   # type: ignore[arg-type]


@pytest.mark.parametrize("legacy_p,flip_allowed", [(0.5 + 4e-5, True), (0.5 + 4e-3, False)])
def test_a_flip_is_excused_only_within_the_envelope_of_the_threshold(legacy_p: float, flip_allowed: bool) -> None:
    band = 1e-4
    clips = np.array([0.9, 0.9, 0.9, 0.9, 0.1, 0.1])
    rows = np.concatenate([clips[:1], (clips[:-1] + clips[1:]) / 2, clips[-1:]])
    # row 5 of legacy sits at legacy_p; the clean clip confidences put it just below 0.5
    rows_ref = rows.copy()
    rows_ref[4] = legacy_p
    replay = _replay(rows_ref, (rows_ref > 0.5).astype(np.int64), band)
    clean_clips = clips.copy()
    # clean row 4 = mean(clip 3, clip 4): just under the threshold, or a real error 0.01 under it
    clean_clips[4] = 2 * ((0.5 - 1e-6) if flip_allowed else 0.49) - clips[3]
    replay.check_aggregate("chained", clean_clips)
    item = replay.checks[-1]
    d = item.decisions
    if flip_allowed:
        assert d.unstable_flips == [4] and not d.local_flips and d.unstable_seconds == 1
        assert item.passed
    else:
        assert d.local_flips == [4] and not item.passed


def test_committed_fixture_references_record_their_machine() -> None:
    manifest = json.loads((FIXTURE.parent / "stages" / "manifest.json").read_text())
    assert manifest["machine"]["probed"] is False and "AMD EPYC" in manifest["machine"]["cpu_model"]
    controls = json.loads((FIXTURE.parent / "controls" / "stages" / "manifest.json").read_text())
    assert controls["machine"]["probed"] is True and controls["machine"]["isa_flags"]


def test_a_variant_on_the_full_stage_clips_is_compared_with_every_clip_tensors() -> None:
    """compare_clips: a variant measured on a file's sampled clips only (convert/envelope_clips.py)
    is diffed per stage against the references' own clips, pooled against the every-clip rows;
    the aggregate row is bounded by the probabilities; a flip, a changed clip and a file whose
    error differs are all counted."""
    from orcaport.parity.envelope import compare_clips
    from orcaport.parity.references import References

    probs = np.array([[0.9, 0.1], [0.45, 0.55], [0.2, 0.8]], np.float32)
    base_t = {"all/probs": probs, "all/logits": np.log(probs), "all/pooled": np.ones((3, 4), np.float32),
              "clips/01/probs": probs[1], "clips/01/mel": np.full((2, 3), 10.0, np.float32),
              "clips/01/clip": np.arange(6, dtype=np.int16).reshape(6, 1)}
    decode = {"sha256": "d"}
    base = References(Path("."), {}, "", [
        FileReference("a.wav", {"decode": decode, "full_clips": [0, 1]}, base_t),
        FileReference("bad.wav", {"error": {"type": "KeyError"}}, {})])
    got = {"clips/01/probs": np.array([0.5005, 0.4995], np.float32),    # clip 1 flips
           "clips/01/mel": np.full((2, 3), 10.5, np.float32),
           "clips/01/clip": base_t["clips/01/clip"] + 1,                   # a windowing bug
           "clips/01/pooled": np.full(4, 1.25, np.float32),
           "clips/00/probs": probs[0] + np.float32(1e-6)}                  # not kept in full: all/probs row
    files = {"a.wav": {"decode": decode, "clips": [0, 1]}, "bad.wav": {"decode": decode}}   # ran, no error
    c = compare_clips(base, files, {"a.wav": got}, positive=1)
    assert c["measured_on"] == "full-stage clips"
    assert c["stages"]["mel"]["max_abs"] == 0.5 and c["stages"]["pooled"]["max_abs"] == 0.25
    assert c["stages"]["probs"]["tensors"] == 2
    assert c["stages"]["aggregate"]["max_abs"] == pytest.approx(0.55 - 0.4995, abs=1e-6)
    assert c["digests"]["clip"] == {"compared": 1, "differ": 1}
    assert c["digests"]["decode"] == {"compared": 1, "differ": 0}     # bad.wav kept no decode
    d = c["decisions"]
    assert d["clips"] == 2 and d["clip_flips"] == 1 and d["errors_differ"] == 1
    assert d["flip_distance"] == pytest.approx(0.05, abs=1e-6)


@pytest.mark.parametrize("name,level,flags,skipped", [
    ("aten-avx2", "AVX2", {"avx2"}, True),                  # ATen already at AVX2: the same kernels
    ("aten-avx2", "AVX512", {"avx2", "avx512f"}, False),    # a real cap below what ATen runs
    ("aten-default", "AVX2", {"avx2"}, False),
    ("onednn-avx2", "AVX2", {"avx2", "fma"}, True),         # nothing above AVX2 for oneDNN
    ("onednn-avx2", "AVX2", {"avx2", "avx512f"}, False),
    ("onednn-avx2", "AVX2", {"avx2", "avx_vnni"}, False),   # oneDNN's avx2_vnni would be capped
    ("onednn-sse41", "AVX2", {"avx2"}, False),
    ("mkl-avx2", "AVX2", {"avx2"}, False),                  # MKL's own default path is not readable
    ("threads-2", "AVX2", {"avx2"}, False),
    ("most-different", "DEFAULT", set(), False),
])
def test_only_variants_that_run_the_baselines_kernels_are_skipped(name: str, level: str, flags: set[str],
                                                                  skipped: bool) -> None:
    why = same_as_baseline(name, level, frozenset(flags))
    assert (why is not None) == skipped, why
    assert name in VARIANTS
