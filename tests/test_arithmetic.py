"""model/arithmetic.py + the Detector/CLI wiring: `fast` picks its arithmetic from the hardware,
once, reports it, and a user can force it. Every branch runs on any CPU: the flags are injected."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from orcaport.model.arithmetic import ENV_VAR, ArithmeticChoiceError, choose, read_cpu_flags, strict_fp32_cuda
from orcaport.model.cli import main
from orcaport.model.detector import Detector, DetectorError
from orcaport.model.errors import ExitCode
from tests.conftest import CORPUS, FIXTURE

AVX512_ONLY = frozenset({"avx512f", "avx512_vnni", "avx2"})     # the Intel Xeon of issue 15
CLIP = CORPUS / "stereo_44k1_16_10s5.wav"


@pytest.mark.parametrize("flags, want", [
    (AVX512_ONLY, "fp32"),                              # bf16 would be emulated: slower than fp32
    (AVX512_ONLY | {"avx512_bf16"}, "bf16"),            # AMD EPYC Zen 4, Cooper Lake
    (AVX512_ONLY | {"amx_bf16", "amx_tile"}, "bf16"),   # Sapphire Rapids and later
    (frozenset(), "fp32"),                              # no /proc/cpuinfo (macOS) or unknown CPU
    (frozenset({"fp", "asimd", "bf16"}), "fp32"),       # ARM: not measured, so not claimed
])
def test_fast_on_cpu_follows_the_flags(flags: frozenset[str], want: str) -> None:
    a = choose("fast", "cpu", cpu_flags=flags, environ={})
    assert a.name == want and a.source == "detected"
    assert a.dtype == {"fp32": torch.float32, "bf16": torch.bfloat16}[want]


def test_legacy_exact_is_fp32_everywhere_and_ignores_the_env() -> None:
    for device in ("cpu", "cuda"):
        a = choose("legacy-exact", device, cpu_flags=frozenset({"amx_bf16"}), environ={ENV_VAR: "bf16"})
        assert a.name == "fp32" and a.source == "legacy-exact"
    assert "TF32 off" in choose("legacy-exact", "cuda", cpu_flags=frozenset(), environ={}).reason
    with pytest.raises(ArithmeticChoiceError, match="legacy-exact is fp32 by definition"):
        choose("legacy-exact", "cpu", override="bf16", cpu_flags=frozenset(), environ={})


def test_cuda_fast_is_fp16_and_can_be_forced() -> None:
    assert choose("fast", "cuda", cpu_flags=AVX512_ONLY, environ={}).name == "fp16"
    assert choose("fast", "cuda", override="bf16", cpu_flags=AVX512_ONLY, environ={}).name == "bf16"


def test_overrides_flag_beats_env_beats_hardware() -> None:
    env = {ENV_VAR: "fp32"}
    a = choose("fast", "cpu", cpu_flags=frozenset({"avx512_bf16"}), environ=env)
    assert (a.name, a.source) == ("fp32", ENV_VAR)
    b = choose("fast", "cpu", override="bf16", cpu_flags=AVX512_ONLY, environ=env)
    assert (b.name, b.source) == ("bf16", "--arithmetic") and "emulated" in b.reason
    c = choose("fast", "cpu", override="auto", cpu_flags=AVX512_ONLY, environ={ENV_VAR: "auto"})
    assert (c.name, c.source) == ("fp32", "detected")


@pytest.mark.parametrize("override, env, match", [
    ("fp16", {}, r"--arithmetic=fp16: fp16 does not run on cpu; use one of: fp32, bf16"),
    (None, {ENV_VAR: "fp16"}, r"ORCAPORT_ARITHMETIC=fp16: fp16 does not run on cpu"),
    (None, {ENV_VAR: "int4"}, r"ORCAPORT_ARITHMETIC='int4' is not an arithmetic; use one of"),
])
def test_bad_forced_choices_are_one_line_errors(override: str | None, env: dict[str, str], match: str) -> None:
    with pytest.raises(ArithmeticChoiceError, match=match) as e:
        choose("fast", "cpu", override=override, cpu_flags=AVX512_ONLY, environ=env)
    assert "\n" not in str(e.value) and isinstance(e.value, DetectorError)


def test_cpu_flags_are_read_from_cpuinfo(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: X\nflags\t\t: fpu avx512f avx512_bf16 amx_bf16\n\n"
                    "processor\t: 1\nflags\t\t: fpu\n")
    assert read_cpu_flags(info) == {"fpu", "avx512f", "avx512_bf16", "amx_bf16"}   # the first CPU's
    assert read_cpu_flags(tmp_path / "missing") == frozenset()


def test_detector_records_the_choice_and_fast_fp32_equals_legacy_exact() -> None:
    """Without bf16 hardware `fast` is legacy-exact's engine and numbers: never slower, same output."""
    exact = Detector.from_folder(FIXTURE)
    fast = Detector.from_folder(FIXTURE, profile="fast", cpu_flags=AVX512_ONLY)
    assert fast.arithmetic.name == "fp32" and fast.precision == "fp32" and fast.engine == exact.engine
    a, b = exact.detect(CLIP), fast.detect(CLIP)
    np.testing.assert_array_equal(a.clip_confidence, b.clip_confidence)
    assert b.profile == "fast"


def test_detector_with_injected_bf16_flags_runs_bf16() -> None:
    fast = Detector.from_folder(FIXTURE, profile="fast", cpu_flags=frozenset({"avx512_bf16"}))
    assert fast.arithmetic.name == "bf16" and fast.dtype == torch.bfloat16
    assert fast.precision in ("bfloat16 (onednn)", "bfloat16 autocast")


def test_strict_fp32_cuda_turns_tf32_off_and_restores() -> None:
    """What can be checked without a GPU: the switches legacy-exact flips on CUDA, and their restore."""
    b = torch.backends
    new_api = all(hasattr(k, "fp32_precision") for k in (b.cudnn.conv, b.cudnn.rnn, b.cuda.matmul))
    read = ((lambda: (b.cudnn.conv.fp32_precision, b.cuda.matmul.fp32_precision)) if new_api
            else (lambda: (b.cudnn.allow_tf32, b.cuda.matmul.allow_tf32)))
    before = read()
    with strict_fp32_cuda():
        assert read() == (("ieee", "ieee") if new_api else (False, False))
    assert read() == before


def test_cli_reports_the_arithmetic(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, "fp32")
    assert main(["detect", "--quiet", "--model", str(FIXTURE), "--profile", "fast", "--format", "json", str(CLIP)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["arithmetic"]["name"] == "fp32" and doc["arithmetic"]["source"] == ENV_VAR
    assert main(["detect", "--quiet", "--model", str(FIXTURE), "--profile", "fast", str(CLIP)]) == 0
    assert "profile fast: fp32 (ORCAPORT_ARITHMETIC: forced)" in capsys.readouterr().out
    monkeypatch.setenv(ENV_VAR, "fp16")
    assert main(["detect", "--quiet", "--model", str(FIXTURE), "--profile", "fast", str(CLIP)]) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error: ORCAPORT_ARITHMETIC=fp16: fp16 does not run on cpu" in err
