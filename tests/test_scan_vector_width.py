"""The fused kernels' vector width: 512-bit loops on AVX-512 CPUs, numba's default elsewhere.

LLVM tunes Intel's AVX-512 CPU models to prefer 256-bit vectors, so without the package's setting numba
compiled the kernels at AVX2 width there (AMD's Zen 4/5 already got 512-bit loops). These tests compile (never run) the kernels for a pretend AVX-512
host in a child process (the setting is read once per process) and read the registers in the machine code.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("numba")

# Child process: optionally pretend the host has AVX-512, optionally compile something with numba first,
# then import the kernels, compile them for a tiny cross scan without running them, and report.
PROBE = r"""
import json, re, sys
import llvmlite.binding as ll

pretend, numba_first, compile_kernels = sys.argv[1:4]
if pretend == "avx512":
    real = ll.get_host_cpu_features
    def pretend_avx512():
        features = real()
        for name in ("avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd"):
            features[name] = True
        return features
    ll.get_host_cpu_features = pretend_avx512

import numba
if numba_first == "yes":  # another library's numba function, defined before the package's kernels
    numba.njit(lambda a: a + 1)
elif numba_first == "features":  # the host's features given explicitly: numba's own tuning for the CPU model
    from numba.core.codegen import get_host_cpu_features
    numba.config.CPU_FEATURES = get_host_cpu_features()
features_before = numba.config.CPU_FEATURES

import warnings
import torch
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    from aesmamba_hf import selective_scan_cpu as kernels

report = {"setup": kernels.vector_setup(), "features_before": features_before,
          "features_after": numba.config.CPU_FEATURES, "kernels": {},
          "warnings": [str(w.message) for w in caught if "AESMAMBA_SCAN_VECTOR_BITS" in str(w.message)]}
if compile_kernels != "none":
    launches = []
    kernels._launch = lambda kernel, *args: launches.append((kernel, args))  # compile only: this CPU may lack AVX-512
    g = torch.Generator().manual_seed(0)
    problem = kernels._problem_2d(torch.randn(1, 4, 4, 16, generator=g), torch.randn(1, 4, 4, 4 * 33, generator=g),
                                  torch.randn(4, 16, 1, generator=g), torch.randn(4, 16, generator=g),
                                  -torch.rand(64, 16, generator=g), torch.ones(64))
    problem.forward(save_ckpt=True)
    if compile_kernels == "both":
        problem.backward(torch.zeros(1, 4, 1, 16, 16), torch.zeros(1, 1, 16, 16), torch.zeros(1, 4, 16, 16))
    for kernel, args in launches:
        signature = tuple(numba.typeof(a) for a in args)
        kernel.compile(signature)
        asm = kernel.inspect_asm(signature)
        asm = "".join(asm.values()) if isinstance(asm, dict) else asm
        report["kernels"][kernel.py_func.__name__] = {"zmm": len(re.findall(r"%zmm", asm)),
                                                     "ymm": len(re.findall(r"%ymm", asm))}
print(json.dumps(report))
"""


def _probe(tmp_path, pretend: str, numba_first: str = "no", compile_kernels: str = "none",
           cpu_model: str = "sapphirerapids", **env) -> dict:
    child_env = {k: v for k, v in os.environ.items() if not k.startswith(("NUMBA_", "AESMAMBA_SCAN_VECTOR"))}
    child_env.update(NUMBA_CACHE_DIR=str(tmp_path / "numba-cache"), **env)
    if pretend == "avx512":  # the machine code is for an AVX-512 model (its tuning), whatever this CPU is
        child_env["NUMBA_CPU_NAME"] = cpu_model
    done = subprocess.run([sys.executable, "-c", PROBE, pretend, numba_first, compile_kernels], env=child_env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)  # no .numba_config.yaml
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_avx512_host_gets_512_bit_kernels_and_the_switch_gives_256(tmp_path):
    # where it starts: numba's own build for an Intel AVX-512 model has no 512-bit instruction at all
    numbas = _probe(tmp_path, "avx512", numba_first="features", compile_kernels="forward")
    assert numbas["kernels"]["_scan_fwd_kernel"]["zmm"] == 0

    wide = _probe(tmp_path, "avx512", compile_kernels="both")
    assert wide["setup"] == {"bits": 512, "why": "AVX-512 CPU: 512-bit loops"}
    assert wide["features_before"] is None
    assert wide["features_after"].endswith(",-prefer-256-bit") and "+avx512f" in wide["features_after"]
    for name in ("_scan_fwd_kernel", "_scan_bwd_kernel"):
        assert wide["kernels"][name]["zmm"] > 100, wide["kernels"]  # the channel loops run 16 floats wide

    # AMD's are not: "256" must still give AVX2-width loops there (to compare, or to fall back)
    narrow = _probe(tmp_path, "avx512", compile_kernels="forward", cpu_model="znver4",
                    AESMAMBA_SCAN_VECTOR_BITS="256")
    assert narrow["setup"] == {"bits": 256, "why": "AESMAMBA_SCAN_VECTOR_BITS=256"}
    assert narrow["features_after"].endswith(",+prefer-256-bit")
    assert narrow["kernels"]["_scan_fwd_kernel"]["zmm"] == 0
    assert narrow["kernels"]["_scan_fwd_kernel"]["ymm"] > 100


def test_users_numba_cpu_features_win(tmp_path):
    pinned = "+64bit,+avx,+avx2,+fma,+sse4.2"
    report = _probe(tmp_path, "avx512", NUMBA_CPU_FEATURES=pinned)
    assert report["setup"]["bits"] is None and "NUMBA_CPU_FEATURES" in report["setup"]["why"]
    assert report["features_after"] == pinned


def test_numbas_avx_switch_is_respected(tmp_path):
    # NUMBA_ENABLE_AVX=0 (also numba's default on CPU models whose AVX it distrusts) turns every avx* feature off
    report = _probe(tmp_path, "avx512", NUMBA_ENABLE_AVX="0")
    assert report["features_after"] is None
    assert report["setup"]["bits"] == 128


def test_numba_code_defined_before_the_kernels_keeps_numbas_width(tmp_path):
    report = _probe(tmp_path, "avx512", numba_first="yes")
    assert report["setup"]["bits"] is None  # numba's default for the CPU model: not known here
    assert "before aesmamba_hf's kernels" in report["setup"]["why"]
    assert report["features_after"] is None  # nothing changed behind the other library's back


def test_cpu_without_avx512_is_left_alone(tmp_path):
    report = _probe(tmp_path, "host")
    if report["setup"]["bits"] == 512:
        pytest.skip("this CPU has AVX-512")
    assert report["setup"]["why"] in ("no AVX-512 on this CPU", "host CPU features unknown")
    assert report["features_after"] is None


def test_unknown_width_value_warns_and_uses_auto(tmp_path):
    report = _probe(tmp_path, "avx512", AESMAMBA_SCAN_VECTOR_BITS="512bit")
    assert report["warnings"] == ["AESMAMBA_SCAN_VECTOR_BITS='512bit' is not 'auto' or '256'; using 'auto'"]
    assert report["setup"]["bits"] == 512
