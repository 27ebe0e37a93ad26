"""The machine behind every bench figure: CPU model and the flags that decide `fast`'s arithmetic
(read without torch: bench's orchestrator keeps its own memory small)."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path
from typing import Any


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def lscpu() -> dict[str, Any]:
    """`lscpu`'s model name, model number and flags (every figure needs the machine it came
    from), plus the flags that decide `fast`'s arithmetic."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    fields = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in out.splitlines())}
    flags = fields.get("Flags", "").split()
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")
    return {"model_name": fields.get("Model name"), "model": fields.get("Model"),
            "vendor": fields.get("Vendor ID"), "hypervisor": fields.get("Hypervisor vendor"),
            "key_flags": {f: f in flags for f in wanted}, "flags": " ".join(flags)}
