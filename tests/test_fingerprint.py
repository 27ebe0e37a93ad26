"""Machine fingerprints decide which parity criteria apply: only a probed, kernel-identical machine
gets the tight same-machine ones."""

from __future__ import annotations

import copy

import pytest

from orcaport.parity.fingerprint import _cpuinfo, describe, fingerprint, same_machine
from orcaport.parity.run import criteria, load_tolerances


def test_this_machine_matches_itself_but_not_an_unprobed_or_other_machine(monkeypatch) -> None:
    me = fingerprint()
    assert same_machine(me, copy.deepcopy(me))
    other_threads = {**me, "threads": me["threads"] + 1, "torch": "2.11.0"}
    assert same_machine(me, other_threads)            # versions/threads: inside the same-machine envelope
    assert not same_machine(me, {**me, "probed": False})
    assert not same_machine(me, {**me, "isa_flags": me["isa_flags"] + ["amx_bf16"]})
    assert not same_machine(me, {**me, "cpu_model": "AMD EPYC 9R14"})
    assert not same_machine(me, {**me, "cpu_id": "GenuineIntel 6 106 6"})   # same masked name, other CPU
    other = "avx2" if me["kernel_env"].get("ATEN_CPU_CAPABILITY") == "default" else "default"
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", other)
    assert not same_machine(me, fingerprint())        # a forced kernel path is another machine
    assert not same_machine(me, None)


def test_cpuinfo_keeps_only_the_flags_that_select_kernels(tmp_path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: AMD EPYC 9R14\nflags\t\t: fpu sse4_2 avx2 avx512f "
                    "avx512_bf16 rdrand amx_tile\n")
    assert _cpuinfo(info) == ("AMD EPYC 9R14", ["sse4_2", "avx2", "avx512f", "avx512_bf16", "amx_tile"])
    assert _cpuinfo(tmp_path / "missing")[1] == []


def test_criteria_pick_same_machine_only_for_a_matching_fingerprint() -> None:
    me = fingerprint()
    same = criteria(me, me)
    assert same.regime == "same_machine" and same.same_fingerprint
    other = f"not {me['cpu_model']}"        # differs from whatever CPU runs this test
    cross = criteria({**me, "cpu_model": other}, me)
    assert cross.regime == "cross_machine" and cross.why == "fingerprints differ"
    assert other in cross.recorded_on and describe(me) == cross.replayed_on
    assert criteria(None, me).recorded_on == "an unrecorded machine"
    assert criteria(me, me, "cross_machine").regime == "cross_machine"


def test_same_machine_criteria_are_tighter_and_unknown_regimes_refused() -> None:
    _, same = load_tolerances(regime="same_machine")
    _, cross = load_tolerances(regime="cross_machine")
    assert same["probs"].atol < cross["probs"].atol and same["mel"].atol < cross["mel"].atol
    assert cross["mel"].domain == "log_power" and cross["activations"].scale == "max"
    with pytest.raises(ValueError, match="unknown criteria"):
        load_tolerances(regime="lenient")
