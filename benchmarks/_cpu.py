"""The one description of the host CPU that every benchmark prints next to its numbers.

Scripts run as ``python benchmarks/x.py``, so this folder is ``sys.path[0]`` and they import it as ``_cpu``.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any, Optional

# The vector/matrix extensions that change what torch, oneDNN and numba can do on this CPU.
VECTOR_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx_vnni", "avx512f", "avx512bw", "avx512vl",
                "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8")


def load_average() -> Optional[list[float]]:
    """The 1/5/15-minute load average (``None`` where the OS has none): a loaded machine skews timings."""
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return None


def _cpuinfo_fields() -> dict[str, str]:
    """The first processor block of ``/proc/cpuinfo`` as ``{field: value}`` (empty off Linux)."""
    try:
        first_block = Path("/proc/cpuinfo").read_text(encoding="utf-8").split("\n\n")[0]
    except OSError:
        return {}
    pairs = (line.split(":", 1) for line in first_block.splitlines() if ":" in line)
    return {key.strip(): value.strip() for key, value in pairs}


def _family_model(fields: dict[str, str]) -> Optional[str]:
    if "cpu family" not in fields:
        return None
    return f"{fields.get('vendor_id', '?')} family {fields['cpu family']} model {fields.get('model', '?')}"


def cpu_description() -> dict[str, Any]:
    """CPU model, its vector flags, core count, torch's threads and CPU capability, and the load average."""
    import torch

    fields = _cpuinfo_fields()
    present = set(fields.get("flags", "").split())
    return {
        "model": fields.get("model name") or platform.processor() or platform.machine(),
        # a bare "AMD EPYC" names four generations: family/model tell them apart (family 23 model 1 is Zen 1,
        # whose 256-bit AVX2 instructions run as two 128-bit halves; family 25 model 17 is Zen 4 with AVX-512)
        "family_model": _family_model(fields),
        "mhz": fields.get("cpu MHz"),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "flags": [flag for flag in VECTOR_FLAGS if flag in present],
        "torch_threads": torch.get_num_threads(),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "loadavg": load_average(),
    }
