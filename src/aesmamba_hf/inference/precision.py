"""Inference precision: float32 (the default) or bfloat16 weights.

``load_model(..., dtype="bfloat16")``, ``Predictor(..., dtype=torch.bfloat16)`` (casts a copy of the model),
``pipeline(..., dtype=torch.bfloat16)`` and ``aesmamba score --dtype bfloat16`` load the weights in bfloat16: the matmuls,
convolutions and LayerNorms run in bfloat16, while the selective scan always computes in float32 (every scan
backend casts its operands up and its output back), so the recurrence over thousands of positions does not
accumulate bfloat16 rounding. Scores come out as float32 in every record.

bfloat16 weights were chosen over ``torch.autocast``: autocast keeps float32 weights and casts them at every
call, and it changes the dtype of matmuls *inside* the fused CPU scan's glue, which that kernel does not accept.

Speed depends on the CPU: with native bfloat16 instructions (AVX-512 BF16, AMX) the matmuls run faster than in
float32; without them (AVX2-only CPUs) oneDNN emulates bfloat16 and a forward pass is several times *slower*
(``benchmarks/bench_deploy.py`` measures both). :func:`bf16_cpu_note` says so when it applies.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Optional, Union

import torch

# float16 is kept for GPU callers of load_model; on CPU it is slow and the CLI does not offer it
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
CLI_DTYPES = ("float32", "bfloat16")  # what the command line offers (float16 is slow on CPU)
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16", "avx_ne_convert")


def resolve_dtype(value: Union[str, torch.dtype, None]) -> torch.dtype:
    """``"float32"`` / ``"bfloat16"`` / ``"float16"`` (also ``"fp32"``, ``"bf16"``, ``"fp16"``) or a torch dtype →
    the torch dtype."""
    if value is None:
        return torch.float32
    if isinstance(value, torch.dtype):
        name = str(value).removeprefix("torch.")
    else:
        name = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}.get(str(value).lower(), str(value).lower())
    if name not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)} for inference, got {value!r}")
    return DTYPES[name]


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags of ``/proc/cpuinfo`` (empty where there is none)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def native_bf16_cpu() -> Optional[bool]:
    """Whether this CPU has bfloat16 instructions (``None``: unknown, no ``/proc/cpuinfo``)."""
    flags = cpu_flags()
    return bool(flags & set(NATIVE_BF16_FLAGS)) if flags else None


def bf16_cpu_note(dtype: torch.dtype, device: Union[str, torch.device]) -> Optional[str]:
    """A warning for bfloat16 on a CPU without bfloat16 instructions, else ``None``."""
    if dtype != torch.bfloat16 or torch.device(device).type != "cpu" or native_bf16_cpu() is not False:
        return None
    return ("this CPU has no bfloat16 instructions (avx512_bf16 / amx_bf16): bfloat16 is emulated and slower "
            "than float32 here; use --dtype float32")


__all__ = ["DTYPES", "bf16_cpu_note", "cpu_flags", "native_bf16_cpu", "resolve_dtype"]
