"""Machine fingerprints: which hardware and kernel paths a legacy or clean figure came from.

Runs in both environments (stdlib + torch). Float results of the legacy pipeline move with the CPU
(AMD EPYC vs Intel Xeon) and with the kernel paths chosen at run time (PyTorch's
ATEN_CPU_CAPABILITY, MKL's instruction set and CBWR mode, oneDNN's max ISA): the envelope
(`make envelope`) measures by how much. Two runs share a fingerprint -- and parity may hold them
to the tight same-machine criteria -- only when CPU model, the ISA flags that select kernels, the
capability torch dispatches to, the device and every kernel-path variable agree. Library versions
and thread counts are recorded but not matched: the clean env runs a newer torch than legacy by
design, and the same-machine envelope includes 1 vs 2 threads and that version change.
"""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path
from typing import Any

# ISA extensions that decide which GEMM/conv/FFT kernels MKL, oneDNN and ATen pick.
RESULT_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512dq", "avx512bw",
                "avx512vl", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16",
                "amx_int8", "asimd", "sve", "sve2")
# Run-time switches that move legacy's numbers on one machine (measured: parity/ENVELOPE in README).
KERNEL_ENV = ("ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS", "MKL_CBWR", "ONEDNN_MAX_CPU_ISA",
              "DNNL_MAX_CPU_ISA", "MKL_DEBUG_CPU_TYPE")
MATCH_KEYS = ("cpu_model", "cpu_id", "isa_flags", "cpu_capability", "device", "kernel_env")


def _cpuinfo(path: Path = Path("/proc/cpuinfo")) -> tuple[str, list[str]]:
    """-> (model name, result-relevant ISA flags) of the first CPU; ('unknown', []) off Linux."""
    try:
        text = path.read_text()
    except OSError:
        return platform.processor() or "unknown", []
    model = re.search(r"^(?:model name|Model|CPU part)\s*:\s*(.+)$", text, re.M)
    flags = re.search(r"^(?:flags|Features)\s*:\s*(.+)$", text, re.M)
    have = set(flags.group(1).split()) if flags else set()
    return (model.group(1).strip() if model else "unknown"), [f for f in RESULT_FLAGS if f in have]


def _cpu_id(path: Path = Path("/proc/cpuinfo")) -> str:
    """Vendor, family, model and stepping: hypervisors often hide the model name ('Intel(R) Xeon(R)
    Processor' covers several generations), these numbers they pass through."""
    try:
        text = path.read_text()
    except OSError:
        return "unknown"
    fields = [re.search(rf"^{k}\s*:\s*(.+)$", text, re.M) for k in
              ("vendor_id", "cpu family", "model", "stepping", "CPU implementer", "CPU part")]
    return " ".join(m.group(1).strip() for m in fields if m) or "unknown"


def _library_versions(config: str) -> dict[str, str]:
    mkl = re.search(r"Math Kernel Library Version ([\w.\-]+)", config)
    dnnl = re.search(r"MKL-DNN v([\w.]+)", config)
    return {"mkl": mkl.group(1) if mkl else "none", "onednn": dnnl.group(1) if dnnl else "none"}


def fingerprint(device: str = "cpu") -> dict[str, Any]:
    """This process's machine and kernel-path fingerprint (JSON-safe)."""
    import torch

    model, flags = _cpuinfo()
    fp: dict[str, Any] = {
        "cpu_model": model, "cpu_id": _cpu_id(), "isa_flags": flags, "machine": platform.machine(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "device": device if device == "cpu" else torch.cuda.get_device_name(torch.device(device)),
        "kernel_env": {k: os.environ[k] for k in KERNEL_ENV if os.environ.get(k)},
        "torch": torch.__version__, **_library_versions(torch.__config__.show()),
        "threads": torch.get_num_threads(), "probed": True,
    }
    if device != "cpu":
        fp["tf32"] = bool(torch.backends.cuda.matmul.allow_tf32 or torch.backends.cudnn.allow_tf32)
    return fp


def default_kernel_environ(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment with every kernel-path switch removed (then `extra` applied):
    a child started with it runs the machine's default kernels."""
    env = {k: v for k, v in os.environ.items() if k not in KERNEL_ENV}
    return {**env, **(extra or {})}


def same_machine(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    """True when both fingerprints were probed and agree on everything that selects kernels."""
    if not a or not b or not a.get("probed") or not b.get("probed"):
        return False
    return all(a.get(k) == b.get(k) for k in MATCH_KEYS)


def describe(fp: dict[str, Any] | None) -> str:
    """One line for reports, e.g. 'Intel(R) Xeon(R) Processor [avx2 avx512f avx512_vnni] cpu'."""
    if not fp:
        return "an unrecorded machine"
    isa = " ".join(f for f in fp.get("isa_flags", []) if f.startswith(("avx512", "amx", "avx2", "sve")))
    env = " ".join(f"{k}={v}" for k, v in sorted(fp.get("kernel_env", {}).items()))
    parts = [fp.get("cpu_model", "unknown CPU"), f"[{isa or 'no avx2/avx512/amx'}]", fp.get("device", "cpu")]
    if fp.get("cpu_capability"):
        parts.append(f"aten={fp['cpu_capability']}")
    if env:
        parts.append(env)
    if not fp.get("probed", False):
        parts.append("(stated, not probed)")
    return " ".join(parts)
