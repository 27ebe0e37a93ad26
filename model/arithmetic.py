"""Which arithmetic the network runs in: chosen once, from the hardware, and reported.

`legacy-exact` is always fp32 (on CUDA with TF32 off: `strict_fp32_cuda`). `fast` picks:
- CUDA: fp16 autocast (tensor cores on every CUDA GPU since Volta; fp16 keeps 3 more mantissa bits
  than bf16, so it stays closer to fp32 on a network whose inputs are normalized);
- a CPU with AVX512-BF16 or AMX-BF16 (/proc/cpuinfo flags `avx512_bf16`, `amx_bf16`): bf16 through
  oneDNN. Only the CPU flags count: `torch.ops.mkldnn._is_mkldnn_bf16_supported()` is also True on
  plain AVX-512, where oneDNN *emulates* bf16 -- measured 47 GFLOP/s against fp32's 179 on an Intel
  Xeon without AVX512-BF16 (issue 15), i.e. `fast` 2.7x slower than `legacy-exact`;
- any other CPU: fp32, the same engine as `legacy-exact` (int8 was measured and missed the
  decision-agreement or speed bar: bench/results.md, README), so `fast` is never slower than it.

int8 is never chosen automatically (it missed the 99.5 % agreement bar); a user picks it
(`--arithmetic int8`) after `make evaluate` showed its F1 on their labels, on a CPU whose torch has
the x86/fbgemm quantized engine, with a calibration stored in the model folder (model/calibration.py).

A user can force the choice (`--arithmetic`, or ORCAPORT_ARITHMETIC=auto|fp32|bf16|fp16|int8), and
tests inject the CPU flags instead of reading them, so every branch is testable on any machine.
"""

from __future__ import annotations

import contextlib
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch

from orcaport.model.errors import ExitCode
from orcaport.model.source import DetectorError

ENV_VAR = "ORCAPORT_ARITHMETIC"
CHOICES = ("auto", "fp32", "bf16", "fp16", "int8")
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")      # x86 flags with native bf16 dot products
# The floating type the network's inputs and unquantized layers use (int8: the head stays fp32).
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16, "int8": torch.float32}
ALLOWED = {"cpu": ("fp32", "bf16", "int8"), "cuda": ("fp32", "bf16", "fp16")}


class ArithmeticChoiceError(DetectorError):
    """A forced arithmetic this device cannot run (one line, names the fix). What the caller asked
    for (--arithmetic, --profile, $ORCAPORT_ARITHMETIC), not a bad file: a usage error (exit 2)."""

    exit_code = ExitCode.USAGE


def read_cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The first processor's `flags` (x86) or `Features` (ARM) from /proc/cpuinfo; empty where
    there is none (macOS, Windows): no flag means no bf16 claim, i.e. the safe fp32 choice."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


@dataclass(frozen=True)
class Arithmetic:
    """The network's arithmetic and why. name: fp32 | bf16 | fp16; source: how it was chosen
    ("legacy-exact", "detected", "--arithmetic", "ORCAPORT_ARITHMETIC")."""

    name: str
    reason: str
    source: str
    cpu_flags: tuple[str, ...]        # the bf16-relevant flags seen (for the report)
    machine: str

    @property
    def dtype(self) -> torch.dtype:
        return DTYPES[self.name]

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "reason": self.reason, "source": self.source,
                "bf16_cpu_flags": list(self.cpu_flags), "machine": self.machine}

    def describe(self) -> str:
        return f"{self.name} ({self.source}: {self.reason})"


def choose(profile: str, device: str, override: str | None = None,
           cpu_flags: frozenset[str] | None = None, environ: dict[str, str] | None = None) -> Arithmetic:
    """The arithmetic for `profile` on `device`. override: the --arithmetic value (None/"auto":
    look at ORCAPORT_ARITHMETIC, then the hardware). cpu_flags: injected /proc/cpuinfo flags
    (None: read them). Raises ArithmeticChoiceError for a forced choice the device cannot run."""
    environ = os.environ if environ is None else environ
    flags = read_cpu_flags() if cpu_flags is None else frozenset(cpu_flags)
    seen = tuple(f for f in BF16_CPU_FLAGS if f in flags)
    machine = platform.machine() or "unknown"

    def result(name: str, reason: str, source: str) -> Arithmetic:
        return Arithmetic(name, reason, source, seen, machine)

    if profile == "legacy-exact":
        # The env var only steers `fast` (a shell that exports it must not break exact runs).
        if override not in (None, "auto", "fp32"):
            raise ArithmeticChoiceError(f"profile legacy-exact is fp32 by definition (--arithmetic "
                                        f"{override}); use --profile fast to change the arithmetic")
        return result("fp32", "legacy's arithmetic" + (", TF32 off" if device == "cuda" else ""),
                      "legacy-exact")
    forced, source = override, "--arithmetic"
    if forced in (None, "auto"):
        forced, source = environ.get(ENV_VAR, "").strip().lower() or None, ENV_VAR
    if forced == "auto":
        forced = None
    if forced is not None and forced not in CHOICES:
        raise ArithmeticChoiceError(f"{source}={forced!r} is not an arithmetic; "
                                    f"use one of: {', '.join(CHOICES)}")
    if forced == "int8":
        return result("int8", _int8_reason(source, device), source)
    if forced is not None:
        if forced not in ALLOWED[device]:
            raise ArithmeticChoiceError(f"{source}={forced}: {forced} does not run on {device}; use one "
                                        f"of: {', '.join(ALLOWED[device])} (or auto)")
        emulated = device == "cpu" and forced == "bf16" and not seen
        return result(forced, "forced" + (" (this CPU has no AVX512-BF16/AMX: bf16 is emulated, slow)"
                                          if emulated else ""), source)
    if device == "cuda":
        return result("fp16", "CUDA tensor cores", "detected")
    if seen:
        return result("bf16", f"CPU has {', '.join(seen)}", "detected")
    return result("fp32", "CPU has no AVX512-BF16/AMX (bf16 would be emulated, slower than fp32); "
                  "int8 missed the bar (bench/results.md)", "detected")


def _int8_reason(source: str, device: str) -> str:
    """Why int8 can run here, or ArithmeticChoiceError naming the fix (CUDA; no quantized engine)."""
    from orcaport.model.quantized import ENGINES, quantized_engine

    if device != "cpu":
        raise ArithmeticChoiceError(f"{source}=int8: the int8 network runs on the CPU's quantized engine, not "
                                    f"on {device}; use --device cpu (or fp16 on {device})")
    engine = quantized_engine()
    if engine is None:
        raise ArithmeticChoiceError(f"{source}=int8: this torch offers no {'/'.join(ENGINES)} quantized engine "
                                    f"on this CPU ({platform.machine() or 'unknown'}); use --arithmetic fp32 or auto")
    return f"forced; {engine} quantized engine"


@contextlib.contextmanager
def strict_fp32_cuda() -> Iterator[None]:
    """TF32 off for cuDNN convolutions and CUDA matmuls while inside, restored after. PyTorch lets
    cuDNN convolutions use TF32 by default (10-bit mantissa): not fp32, so not legacy's numbers.
    torch >= 2.9 has per-backend `fp32_precision` knobs, and mixing them with the legacy
    `allow_tf32` flags makes torch raise, so the new knobs are used wherever they exist."""
    b = torch.backends
    knobs = [k for k in (getattr(b.cudnn, "conv", None), getattr(b.cudnn, "rnn", None),
                         getattr(b.cuda, "matmul", None)) if k is not None and hasattr(k, "fp32_precision")]
    if len(knobs) == 3:
        saved = [k.fp32_precision for k in knobs]
        for k in knobs:
            k.fp32_precision = "ieee"
        try:
            yield
        finally:
            for k, v in zip(knobs, saved):
                k.fp32_precision = v
        return
    saved_flags = (b.cudnn.allow_tf32, b.cuda.matmul.allow_tf32)
    b.cudnn.allow_tf32 = b.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        b.cudnn.allow_tf32, b.cuda.matmul.allow_tf32 = saved_flags
