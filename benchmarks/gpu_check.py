"""One-shot CUDA check: the mamba-ssm scan backend against the reference, and AesMamba-V throughput.

Prints one JSON document. Exits cleanly (status 0, ``"cuda": false``) on a machine without CUDA.

1. ``selective_scan_fn(backend="mamba_ssm")`` vs the sequential float64 reference (forward and the
   gradients of u, delta, A, B, C, D, delta_bias), grouped B/C as VMamba uses them;
2. the 2-D ``cross_selective_scan`` with the mamba_ssm backend vs the reference on a non-square map
   (forward and the gradients of all inputs);
3. AesMamba-V (``hub_configs/aesmamba-v-ava``, random weights) img/s at batch 64, 224², fp32 and bf16
   autocast, with the scan backend that "auto" resolves to on CUDA.

    python benchmarks/gpu_check.py [--batch 64] [--iters 10]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
TOL = 1e-4  # max |err| / max |ref|, float32 CUDA kernel vs float64 reference


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()


def check_scan(device: torch.device) -> dict:
    from aesmamba_hf.selective_scan import selective_scan_fn

    g = torch.Generator().manual_seed(0)
    batch, groups, d, n, length = 2, 4, 64, 16, 300
    chans = groups * d
    cpu = {
        "u": torch.randn(batch, chans, length, generator=g),
        "delta": torch.randn(batch, chans, length, generator=g) * 0.5,
        "A": -torch.exp(torch.randn(chans, n, generator=g) * 0.5),
        "B": torch.randn(batch, groups, n, length, generator=g),
        "C": torch.randn(batch, groups, n, length, generator=g),
        "D": torch.randn(chans, generator=g),
        "delta_bias": torch.randn(chans, generator=g) * 0.5 - 2,
    }
    weight = torch.randn(batch, chans, length, generator=g)

    def run(backend: str, dtype: torch.dtype, dev: torch.device):
        leaves = {k: v.to(dev, dtype).requires_grad_() for k, v in cpu.items()}
        y = selective_scan_fn(leaves["u"], leaves["delta"], leaves["A"], leaves["B"], leaves["C"], D=leaves["D"],
                              delta_bias=leaves["delta_bias"], delta_softplus=True, backend=backend)
        grads = torch.autograd.grad((y * weight.to(dev, dtype)).sum(), list(leaves.values()))
        return y, dict(zip(leaves, grads))

    y_ref, g_ref = run("reference", torch.float64, device)
    y, grads = run("mamba_ssm", torch.float32, device)
    errors = {"y": rel_err(y, y_ref), **{f"d{k}": rel_err(grads[k], g_ref[k]) for k in g_ref}}
    return {"shape": [batch, chans, length], "groups": groups, "d_state": n, "rel_err": errors,
            "ok": all(e < TOL for e in errors.values())}


def check_cross_scan(device: torch.device) -> dict:
    from aesmamba_hf.selective_scan import cross_selective_scan

    g = torch.Generator().manual_seed(1)
    batch, height, width, d, n, rank = 2, 9, 13, 96, 16, 6
    cpu = [torch.randn(batch, height, width, d, generator=g), torch.randn(4, rank + 2 * n, d, generator=g) * d**-0.5,
           torch.randn(4, d, rank, generator=g) * rank**-0.5, torch.randn(4, d, generator=g) * 0.5 - 3,
           torch.log(torch.arange(1, n + 1, dtype=torch.float32)).repeat(4 * d, 1), torch.ones(4 * d)]
    weight = torch.randn(batch, height, width, d, generator=g)
    names = ["x", "x_proj_weight", "dt_projs_weight", "dt_projs_bias", "A_logs", "Ds"]

    def run(backend: str, dtype: torch.dtype):
        leaves = [t.to(device, dtype).requires_grad_() for t in cpu]
        y = cross_selective_scan(*leaves, backend=backend)
        return y, torch.autograd.grad((y * weight.to(device, y.dtype)).sum(), leaves)

    y_ref, g_ref = run("reference", torch.float64)
    y, grads = run("mamba_ssm", torch.float32)
    errors = {"y": rel_err(y, y_ref), **{f"d_{k}": rel_err(a, b) for k, a, b in zip(names, grads, g_ref)}}
    return {"shape": [batch, height, width, d], "rel_err": errors, "ok": all(e < TOL for e in errors.values())}


def throughput(device: torch.device, batch: int, iters: int) -> dict:
    from aesmamba_hf import AesMambaConfig, AesMambaForAestheticAssessment
    from aesmamba_hf.selective_scan import resolve_backend

    config_dir = REPO / "hub_configs" / "aesmamba-v-ava"
    config = AesMambaConfig.from_pretrained(config_dir) if config_dir.exists() else AesMambaConfig()
    torch.manual_seed(0)
    model = AesMambaForAestheticAssessment(config).to(device).eval()
    pixels = torch.randn(batch, 3, 224, 224, device=device)
    result = {"batch": batch, "iters": iters, "scan_backend": resolve_backend("auto", device)}
    for name, autocast in (("fp32", False), ("bf16_autocast", True)):
        try:
            with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
                for _ in range(3):
                    model(pixels)
                torch.cuda.synchronize(device)
                torch.cuda.reset_peak_memory_stats(device)
                start = time.perf_counter()
                for _ in range(iters):
                    scores = model(pixels).scores
                torch.cuda.synchronize(device)
                elapsed = time.perf_counter() - start
            result[name] = {"img_s": batch * iters / elapsed, "ms_per_batch": 1e3 * elapsed / iters,
                            "peak_mem_gib": torch.cuda.max_memory_allocated(device) / 2**30,
                            "scores_finite": bool(torch.isfinite(scores).all())}
        except Exception as err:  # noqa: BLE001 - report and continue with the next precision
            result[name] = {"error": f"{type(err).__name__}: {err}"}
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--iters", type=int, default=10)
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print(json.dumps({"cuda": False, "message": "no CUDA device visible; nothing to check"}))
        return 0
    from aesmamba_hf.selective_scan import MAMBA_SSM_AVAILABLE

    device = torch.device("cuda")
    report = {"cuda": True, "device": torch.cuda.get_device_name(device), "torch": torch.__version__,
              "cuda_version": torch.version.cuda, "mamba_ssm_available": MAMBA_SSM_AVAILABLE}
    for key, check in (("selective_scan", check_scan), ("cross_selective_scan", check_cross_scan)):
        if not MAMBA_SSM_AVAILABLE:
            report[key] = {"skipped": "mamba-ssm (with its CUDA extension) is not importable"}
            continue
        try:
            report[key] = check(device)
        except Exception as err:  # noqa: BLE001
            report[key] = {"error": f"{type(err).__name__}: {err}", "ok": False}
    report["throughput"] = throughput(device, args.batch, args.iters)
    print(json.dumps(report, indent=1))
    failed = any(isinstance(v, dict) and v.get("ok") is False for v in report.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
