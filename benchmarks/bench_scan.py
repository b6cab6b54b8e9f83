"""Benchmark the VMamba 2-D selective scan (SS2D core) backends on the VMamba-T stage shapes at 224².

Prints one JSON document: for every stage (C = 96..768, L = 3136..49, d_inner = 2C, K = 4, N = 16,
R = ceil(C/16)) the median time of ``cross_selective_scan`` forward and forward+backward for the
"fused" (numba), "chunked" (pure PyTorch) and "reference" (sequential) backends, the speed-ups of fused
measured in this same process, and the max abs error of fused against the reference.

    python benchmarks/bench_scan.py            # full run (the sequential reference takes minutes)
    python benchmarks/bench_scan.py --quick    # fewer repeats, no reference/chunked backward
    python benchmarks/bench_scan.py --breakdown --threads 1   # where the fused kernel's time goes

``--compare-vector-bits`` runs ``--breakdown`` in child processes with the kernels at 256-bit
(``AESMAMBA_SCAN_VECTOR_BITS=256``) and at the package's choice (512-bit loops on an AVX-512 CPU), alternated
``--rounds`` times, and prints each stage's median times and the ratio (the width is fixed per process: numba
reads its target features once).

    python benchmarks/bench_scan.py --compare-vector-bits --threads 2 --batches 8

``--breakdown`` adds, per stage, the fused forward's cost per state update (thread-nanoseconds: time × threads
/ (batch·K·L·d_inner·N)) and the cost of the kernel's vectorised ``exp2`` alone in a loop of the same shape,
so the share of the exponential (one per state update: exp(Δ·A) has no shared factor across states) is
measured on the CPU at hand.
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from _cpu import cpu_description

from aesmamba_hf.selective_scan import cross_selective_scan

STAGES = [(96, 56), (192, 28), (384, 14), (768, 7)]  # (C, H = W) of VMamba-T at 224²
N_STATE, K_DIRS = 16, 4
CHUNKED_BWD_MAX_BYTES = 2 * 2**30  # the chunked backward keeps (b, K·D, N, 32, 32) weights per chunk


def stage_inputs(batch: int, dim: int, res: int, seed: int = 0) -> list[torch.Tensor]:
    """Random SS2D inputs with VMamba's initialisation for one stage."""
    g = torch.Generator().manual_seed(seed)
    d_inner, rank = 2 * dim, math.ceil(dim / 16)
    x = torch.nn.functional.silu(torch.randn(batch, res, res, d_inner, generator=g))
    x_proj = (torch.rand(K_DIRS, rank + 2 * N_STATE, d_inner, generator=g) * 2 - 1) * d_inner**-0.5
    dt_w = (torch.rand(K_DIRS, d_inner, rank, generator=g) * 2 - 1) * rank**-0.5
    dt = torch.exp(torch.rand(K_DIRS, d_inner, generator=g) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3))
    dt = dt.clamp(min=1e-4)
    dt_bias = dt + torch.log(-torch.expm1(-dt))
    A_logs = torch.log(torch.arange(1, N_STATE + 1, dtype=torch.float32)).repeat(K_DIRS * d_inner, 1)
    Ds = torch.ones(K_DIRS * d_inner)
    return [x, x_proj, dt_w, dt_bias, A_logs, Ds]


def median_time(fn, repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def forward_fn(inputs, backend):
    def run():
        with torch.inference_mode():
            return cross_selective_scan(*inputs, backend=backend)

    return run


def fwd_bwd_fn(inputs, backend):
    leaves = [t.detach().clone().requires_grad_() for t in inputs]

    def run():
        for t in leaves:
            t.grad = None
        y = cross_selective_scan(*leaves, backend=backend)
        y.backward(torch.ones_like(y) / y.numel() ** 0.5)
        return [t.grad for t in leaves]

    return run


@functools.lru_cache(maxsize=1)
def _exp2_loop():
    """The timing loop, compiled once per process (every stage reuses it)."""
    from aesmamba_hf import selective_scan_cpu as kernels

    @kernels._jit()
    def exp2_loop(h, a2, dl):
        for t in range(dl.shape[0]):
            for n in range(h.shape[0]):
                for i in range(h.shape[1]):
                    h[n, i] += kernels._exp2(dl[t, i] * a2[n, i])

    return exp2_loop


def exp2_ns_per_element(width: int, repeats: int) -> float:
    """Thread-nanoseconds per element of the kernel's own vectorised exp2 (inlined from
    ``selective_scan_cpu``) in a loop shaped like the state update: ``h[n, i] += exp2(Δ[t, i]·A2[n, i])``."""
    import numpy as np

    rng = np.random.default_rng(0)
    length = 64
    h = np.zeros((N_STATE, width), np.float32)
    a2 = -rng.random((N_STATE, width), dtype=np.float32) * 20
    dl = rng.random((length, width), dtype=np.float32) * 0.1
    exp2_loop = _exp2_loop()
    seconds = median_time(lambda: exp2_loop(h, a2, dl), repeats)
    return 1e9 * seconds / (length * N_STATE * width)


def max_abs(a, b) -> float:
    if isinstance(a, list):
        return max(max_abs(x, y) for x, y in zip(a, b))
    return (a.double() - b.double()).abs().max().item()


def bench_stage(dim: int, res: int, batch: int, args) -> dict:
    inputs = stage_inputs(batch, dim, res)
    d_inner = 2 * dim
    rec = {"C": dim, "H": res, "W": res, "L": res * res, "d_inner": d_inner, "R": math.ceil(dim / 16),
           "K": K_DIRS, "N": N_STATE, "batch": batch}
    reps = args.repeats
    fused_out = forward_fn(inputs, "fused")()
    rec["fused_fwd_ms"] = 1e3 * median_time(forward_fn(inputs, "fused"), reps)
    if not args.breakdown:  # the pure-PyTorch scan takes a minute per stage at batch 8
        rec["chunked_fwd_ms"] = 1e3 * median_time(forward_fn(inputs, "chunked"), max(1, reps // 3))
        rec["fused_speedup_vs_chunked_fwd"] = rec["chunked_fwd_ms"] / rec["fused_fwd_ms"]
    fused_bwd = fwd_bwd_fn(inputs, "fused")
    fused_grads = fused_bwd()
    rec["fused_fwd_bwd_ms"] = 1e3 * median_time(fused_bwd, reps)
    chunked_bytes = 4 * batch * K_DIRS * d_inner * N_STATE * res * res * 32 * 2
    if not (args.quick or args.breakdown) and chunked_bytes <= CHUNKED_BWD_MAX_BYTES:
        rec["chunked_fwd_bwd_ms"] = 1e3 * median_time(fwd_bwd_fn(inputs, "chunked"), 1)
        rec["fused_speedup_vs_chunked_fwd_bwd"] = rec["chunked_fwd_bwd_ms"] / rec["fused_fwd_bwd_ms"]
    else:
        rec["chunked_fwd_bwd_ms"] = None
        rec["chunked_fwd_bwd_skipped"] = ("quick" if args.quick else "breakdown" if args.breakdown
                                          else f"needs ~{chunked_bytes / 2**30:.1f} GiB")
    if batch == 1 and not args.breakdown:  # the sequential reference is too slow for batch 8
        ref_fwd = forward_fn(inputs, "reference")
        ref_out = ref_fwd()
        rec["reference_fwd_ms"] = 1e3 * median_time(ref_fwd, args.reference_repeats, warmup=0)
        rec["fused_speedup_vs_reference_fwd"] = rec["reference_fwd_ms"] / rec["fused_fwd_ms"]
        rec["fused_max_abs_err_vs_reference_fwd"] = max_abs(fused_out, ref_out)
        rec["reference_max_abs_output"] = ref_out.abs().max().item()
        if not args.quick:
            ref_bwd = fwd_bwd_fn(inputs, "reference")
            ref_grads = ref_bwd()
            rec["reference_fwd_bwd_ms"] = 1e3 * median_time(ref_bwd, 1, warmup=0)
            rec["fused_speedup_vs_reference_fwd_bwd"] = rec["reference_fwd_bwd_ms"] / rec["fused_fwd_bwd_ms"]
            rec["fused_max_abs_err_vs_reference_grads"] = max_abs(fused_grads, ref_grads)
    if args.breakdown:
        updates = batch * K_DIRS * res * res * d_inner * N_STATE
        rec["fused_fwd_thread_ns_per_update"] = rec["fused_fwd_ms"] * 1e6 * torch.get_num_threads() / updates
        rec["exp2_alone_ns_per_element"] = exp2_ns_per_element(d_inner, reps)
        rec["exp2_share_of_fused_fwd"] = rec["exp2_alone_ns_per_element"] / rec["fused_fwd_thread_ns_per_update"]
    gc.collect()
    print(f"[bench_scan] stage C={dim} batch={batch}: fused fwd {rec['fused_fwd_ms']:.1f} ms", file=sys.stderr,
          flush=True)
    return rec


def _child_breakdown(bits: str, argv: list[str]) -> dict:
    """This script's --breakdown run in a child process with the kernels' vector width set by ``bits``."""
    env = {**os.environ, "AESMAMBA_SCAN_VECTOR_BITS": bits}
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--breakdown", *argv], env=env,
                          check=True, capture_output=True, text=True)
    return json.loads(done.stdout)


def compare_vector_bits(args, child_argv: list[str]) -> dict:
    """Fused forward and forward+backward per stage with the kernels at 256-bit and at the package's width
    (rounds alternated, medians), and the ratio 256-bit time / package time (> 1: the wider loops are faster)."""
    runs: dict[str, list[dict]] = {"256": [], "auto": []}
    for _ in range(args.rounds):
        for bits in runs:
            runs[bits].append(_child_breakdown(bits, child_argv))
    stages = []
    for i, first in enumerate(runs["auto"][0]["stages"]):
        rec = {key: first[key] for key in ("C", "L", "d_inner", "batch")}
        for what in ("fused_fwd_ms", "fused_fwd_bwd_ms", "exp2_alone_ns_per_element"):
            for bits, reports in runs.items():
                rec[f"{what}_{bits}"] = statistics.median(r["stages"][i][what] for r in reports)
            rec[f"{what}_ratio_256_over_auto"] = rec[f"{what}_256"] / rec[f"{what}_auto"]
        stages.append(rec)
    return {"benchmark": "fused kernels at 256-bit vs the package's vector width (children alternated)",
            "vector_setup": {bits: reports[0]["vector_setup"] for bits, reports in runs.items()},
            "rounds": args.rounds, "cpu": runs["auto"][0]["cpu"], "stages": stages}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats; skip reference/chunked backward")
    parser.add_argument("--repeats", type=int, default=None, help="repeats for fused timings (median)")
    parser.add_argument("--reference-repeats", type=int, default=None)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--stages", type=int, nargs="+", default=[0, 1, 2, 3], help="stage indices 0..3")
    parser.add_argument("--threads", type=int, default=None, help="torch (and numba) threads; default torch's")
    parser.add_argument("--breakdown", action="store_true",
                        help="per-update cost of the fused forward and of its exp2 alone (use --threads 1); "
                             "skips the chunked and reference backends")
    parser.add_argument("--compare-vector-bits", action="store_true",
                        help="--breakdown at 256-bit and at the package's width (512 on AVX-512), in children")
    parser.add_argument("--rounds", type=int, default=2, help="alternated child runs per width (--compare-...)")
    args = parser.parse_args(argv)
    if args.compare_vector_bits:
        raw = list(sys.argv[1:] if argv is None else argv)
        child_argv = [a for a in raw if a != "--compare-vector-bits" and not a.startswith("--rounds=")]
        if "--rounds" in child_argv:  # the children's own options only
            at = child_argv.index("--rounds")
            del child_argv[at:at + 2]
        print(json.dumps(compare_vector_bits(args, child_argv), indent=1))
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    args.repeats = args.repeats or (3 if args.quick else 7)
    args.reference_repeats = args.reference_repeats or (1 if args.quick else 3)

    from aesmamba_hf import selective_scan_cpu

    if not selective_scan_cpu.NUMBA_AVAILABLE:
        print(json.dumps({"error": "numba is not installed: no fused backend to benchmark"}))
        return 1
    load_before = os.getloadavg()
    started = time.time()
    results = [bench_stage(*STAGES[s], batch, args) for batch in args.batches for s in args.stages]
    report = {
        "benchmark": "cross_selective_scan (VMamba-T SS2D core, 224²)",
        "torch": torch.__version__,
        "numba": selective_scan_cpu.numba.__version__,
        "numba_threading_layer": selective_scan_cpu.numba.threading_layer(),
        "vector_setup": selective_scan_cpu.vector_setup(),
        "threads": torch.get_num_threads(),
        "cpu": cpu_description(),
        "platform": platform.platform(),
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "wall_s": time.time() - started,
        "quick": args.quick,
        "stages": results,
    }
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
