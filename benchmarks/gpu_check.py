"""One-shot GPU check of the Triton selective scan and of AesMamba-V training/inference speed; one JSON document.

1. correctness: ``selective_scan_fn`` and ``cross_selective_scan`` with ``backend="triton"`` (and
   ``"mamba_ssm"`` where it is installed) against the float64 sequential reference: outputs and every
   gradient, as max |error| / max |reference|, grouped B/C and a non-square map;
2. scan timing at the shape of VMamba-T's first stage (triton, and mamba_ssm where installed: the evidence
   for the CUDA "auto" order in ``selective_scan.resolve_backend``);
3. throughput: AesMamba-V (``hub_configs/aesmamba-v-ava``, random weights, scan backend "triton") beside
   ConvNeXt-T (transformers' ``ConvNextConfig()`` defaults = convnext-tiny, random weights) in the same run,
   224², batch 64 and 128, fp32 and bf16 autocast (fp32 weights, as Trainer's ``bf16=True``): forward img/s
   under ``inference_mode`` and training img/s (forward + MSE loss + backward + AdamW step), with the peak
   GPU memory of each; a case that runs out of memory is reported as such and the run goes on.

Runs from a clean checkout without installing anything but the wheels it imports: torch (with its Triton)
and transformers (plus transformers' own dependencies); ``src/`` is put on ``sys.path`` here; no network.
About 2-4 minutes on a fresh H100 (Triton compiles each kernel variant once, in the warm-up).

``--smoke`` runs the same code on CPU through Triton's interpreter (``TRITON_INTERPRET=1``, set before
torch imports triton) at tiny shapes, so that CI can check the script itself; its numbers mean nothing.

    python benchmarks/gpu_check.py [--batches 64 128] [--iters 5] [--smoke]
"""

from __future__ import annotations

import os
import sys

SMOKE = "--smoke" in sys.argv
if SMOKE:  # before anything imports triton: triton.language's own helpers are wrapped at its import
    os.environ["TRITON_INTERPRET"] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
from _cpu import cpu_description  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
VALUE_TOL, GRAD_TOL = 1e-5, 1e-4  # fp32 kernels vs the float64 reference, relative to max |reference|


def rel_err(value: torch.Tensor, reference: torch.Tensor) -> float:
    value, reference = value.detach().double().cpu(), reference.detach().double().cpu()
    return ((value - reference).abs().max() / reference.abs().max().clamp_min(1e-30)).item()


def errors_ok(errors: dict) -> bool:
    return errors["y"] < VALUE_TOL and all(v < GRAD_TOL for k, v in errors.items() if k != "y")


def check_scan(device: torch.device, backend: str, smoke: bool) -> dict:
    from aesmamba_hf.selective_scan import selective_scan_fn

    g = torch.Generator().manual_seed(0)
    batch, groups, d, n, length = (1, 2, 3, 3, 7) if smoke else (2, 4, 64, 16, 301)
    chans = groups * d
    cpu = {"u": torch.randn(batch, chans, length, generator=g),
           "delta": torch.randn(batch, chans, length, generator=g) * 0.5,
           "A": -torch.exp(torch.randn(chans, n, generator=g) * 0.5),
           "B": torch.randn(batch, groups, n, length, generator=g),
           "C": torch.randn(batch, groups, n, length, generator=g),
           "D": torch.randn(chans, generator=g),
           "delta_bias": torch.randn(chans, generator=g) * 0.5 - 2}
    weight = torch.randn(batch, chans, length, generator=g)

    def run(name: str, dtype: torch.dtype, dev: torch.device):
        leaves = {k: v.to(dev, dtype).requires_grad_() for k, v in cpu.items()}
        y = selective_scan_fn(leaves["u"], leaves["delta"], leaves["A"], leaves["B"], leaves["C"], D=leaves["D"],
                              delta_bias=leaves["delta_bias"], delta_softplus=True, backend=name)
        grads = torch.autograd.grad((y * weight.to(dev, dtype)).sum(), list(leaves.values()))
        return y, dict(zip(leaves, grads))

    y_ref, g_ref = run("reference", torch.float64, torch.device("cpu"))
    y, grads = run(backend, torch.float32, device)
    errors = {"y": rel_err(y, y_ref), **{f"d{k}": rel_err(grads[k], g_ref[k]) for k in g_ref}}
    return {"backend": backend, "shape": [batch, chans, length], "d_state": n, "rel_err": errors,
            "ok": errors_ok(errors)}


def cross_inputs(smoke: bool, seed: int = 1) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    batch, height, width, d, n, rank = (1, 2, 3, 3, 2, 2) if smoke else (2, 9, 13, 96, 16, 6)
    a_logs = torch.log(torch.arange(1, n + 1, dtype=torch.float32)).repeat(4 * d, 1)
    return [torch.randn(batch, height, width, d, generator=g), torch.randn(4, rank + 2 * n, d, generator=g) * d**-0.5,
            torch.randn(4, d, rank, generator=g) * rank**-0.5, torch.randn(4, d, generator=g) * 0.5 - 3,
            a_logs, torch.randn(4 * d, generator=g)]


def check_cross_scan(device: torch.device, backend: str, smoke: bool) -> dict:
    from aesmamba_hf.selective_scan import cross_selective_scan

    cpu = cross_inputs(smoke)
    weight = torch.randn(cpu[0].shape, generator=torch.Generator().manual_seed(2))
    names = ["x", "x_proj_weight", "dt_projs_weight", "dt_projs_bias", "A_logs", "Ds"]

    def run(name: str, dtype: torch.dtype, dev: torch.device):
        leaves = [t.to(dev, dtype).requires_grad_() for t in cpu]
        y = cross_selective_scan(*leaves, backend=name)
        return y, torch.autograd.grad((y * weight.to(dev, y.dtype)).sum(), leaves)

    y_ref, g_ref = run("reference", torch.float64, torch.device("cpu"))
    y, grads = run(backend, torch.float32, device)
    errors = {"y": rel_err(y, y_ref), **{f"d_{k}": rel_err(a, b) for k, a, b in zip(names, grads, g_ref)}}
    return {"backend": backend, "shape": list(cpu[0].shape), "rel_err": errors, "ok": errors_ok(errors)}


class Timer:
    def __init__(self, device: torch.device):
        self.device = device

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def run(self, step, iters: int, warmup: int) -> float:
        """Seconds per call of ``step`` after ``warmup`` calls."""
        for _ in range(warmup):
            step()
        self.sync()
        start = time.perf_counter()
        for _ in range(iters):
            step()
        self.sync()
        return (time.perf_counter() - start) / max(iters, 1)


def time_scans(device: torch.device, backends: list[str], iters: int) -> dict:
    """The cross scan at VMamba-T stage 1 (56×56, d_inner 192, N 16, R 6), batch 64: forward, forward+backward."""
    from aesmamba_hf.selective_scan import cross_selective_scan

    g = torch.Generator().manual_seed(3)
    batch, side, d, n, rank = 64, 56, 192, 16, 6
    inputs = [torch.randn(batch, side, side, d, generator=g), torch.randn(4, rank + 2 * n, d, generator=g) * d**-0.5,
              torch.randn(4, d, rank, generator=g) * rank**-0.5, torch.randn(4, d, generator=g) * 0.5 - 3,
              torch.log(torch.arange(1, n + 1.0)).repeat(4 * d, 1), torch.ones(4 * d)]
    leaves = [t.to(device).requires_grad_() for t in inputs]
    timer, result = Timer(device), {"shape": [batch, side, side, d], "d_state": n}
    for backend in backends:
        try:
            with torch.no_grad():
                fwd = timer.run(lambda name=backend: cross_selective_scan(*leaves, backend=name), iters, 2)

            def train_step(name=backend):
                cross_selective_scan(*leaves, backend=name).sum().backward()

            result[backend] = {"forward_ms": 1e3 * fwd, "forward_backward_ms": 1e3 * timer.run(train_step, iters, 2)}
        except Exception as err:  # noqa: BLE001 - report and go on
            result[backend] = {"error": f"{type(err).__name__}: {err}"[:500]}
    return result


def build_models(smoke: bool) -> dict:
    from transformers import ConvNextConfig, ConvNextForImageClassification

    from aesmamba_hf import AesMambaConfig, AesMambaForAestheticAssessment

    def aesmamba():
        if smoke:
            config = AesMambaConfig.tiny(task="V")
        else:
            config = AesMambaConfig.from_pretrained(REPO / "hub_configs" / "aesmamba-v-ava")
        model = AesMambaForAestheticAssessment(config)
        model.set_scan_backend("triton")
        return model

    def convnext():
        extra = dict(num_stages=2, hidden_sizes=[8, 16], depths=[1, 1]) if smoke else {}
        return ConvNextForImageClassification(ConvNextConfig(num_labels=1, **extra))

    return {"aesmamba_v": aesmamba, "convnext_t": convnext}


def first_output(output) -> torch.Tensor:
    return output.scores if hasattr(output, "scores") and output.scores is not None else output.logits


def measure(build, device: torch.device, batch: int, size: int, precision: str, iters: int, warmup: int) -> dict:
    """Forward img/s (inference_mode) and training img/s (MSE + backward + AdamW) for one case."""
    torch.manual_seed(0)
    model = build().to(device)
    pixels = torch.randn(batch, 3, size, size, device=device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
    timer, result = Timer(device), {}

    def peak_gib():
        return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None

    def reset_peak():
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)

    try:
        model.eval()
        reset_peak()
        with torch.inference_mode(), autocast:
            seconds = timer.run(lambda: model(pixel_values=pixels), iters, warmup)
        result.update(forward_img_s=batch / seconds, forward_peak_gib=peak_gib())
        model.train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
        target = torch.rand(batch, device=device)
        losses = []

        def train_step():
            with autocast:
                scores = first_output(model(pixel_values=pixels))
            loss = torch.nn.functional.mse_loss(scores.float()[:, 0], target)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.detach())

        reset_peak()
        seconds = timer.run(train_step, iters, warmup)
        result.update(train_img_s=batch / seconds, train_peak_gib=peak_gib(),
                      train_loss_finite=bool(torch.isfinite(torch.stack(losses)).all()))
    except torch.OutOfMemoryError as err:
        result["error"] = f"out of memory: {str(err)[:200]}"
    except Exception as err:  # noqa: BLE001 - report and go on with the next case
        result["error"] = f"{type(err).__name__}: {err}"[:500]
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return result


def environment(device: torch.device) -> dict:
    from aesmamba_hf.selective_scan import MAMBA_SSM_AVAILABLE, resolve_backend

    info = {"type": device.type, "torch": torch.__version__, "python": platform.python_version(),
            "auto_scan_backend": resolve_backend("auto", device), "mamba_ssm_available": MAMBA_SSM_AVAILABLE}
    try:
        import triton

        info["triton"] = triton.__version__
    except Exception as err:  # noqa: BLE001
        info["triton"] = f"not importable: {type(err).__name__}"
    if device.type == "cuda":
        info.update(name=torch.cuda.get_device_name(device), cuda=torch.version.cuda,
                    memory_gib=torch.cuda.get_device_properties(device).total_memory / 2**30)
    info["cpu"] = cpu_description()  # the host: on a GPU machine it feeds the GPU; on CPU it is the device
    if device.type != "cuda":
        info["name"] = info["cpu"]["model"]
    return info


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--iters", type=int, default=5, help="timed iterations per case (after 2 warm-up ones)")
    parser.add_argument("--smoke", action="store_true", help="CPU, Triton interpreter, tiny shapes (checks the script)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    if args.smoke:
        device, batches, size, iters, warmup = torch.device("cpu"), [2], 8, 1, 0
    elif torch.cuda.is_available():
        device, batches, size, iters, warmup = torch.device("cuda"), args.batches, 224, args.iters, 2
        torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32 here, for both models
        torch.backends.cudnn.allow_tf32 = False
    else:
        print(json.dumps({"mode": "gpu", "cuda": False, "message": "no CUDA device visible; use --smoke on CPU"}))
        return 0
    from aesmamba_hf.selective_scan import MAMBA_SSM_AVAILABLE

    backends = ["triton"] + (["mamba_ssm"] if MAMBA_SSM_AVAILABLE and device.type == "cuda" else [])
    report = {"mode": "smoke" if args.smoke else "gpu", "device": environment(device), "scan": {}}
    for backend in backends:
        suffix = "" if backend == "triton" else f"_{backend}"
        for key, check in (("selective_scan", check_scan), ("cross_selective_scan", check_cross_scan)):
            try:
                report["scan"][key + suffix] = check(device, backend, args.smoke)
            except Exception as err:  # noqa: BLE001
                report["scan"][key + suffix] = {"backend": backend, "error": f"{type(err).__name__}: {err}"[:500],
                                                "ok": False}
    if device.type == "cuda":
        report["scan_timing"] = time_scans(device, backends, args.iters)
    throughput = report["throughput"] = {"image_size": size, "batches": batches, "iters": iters, "tf32": False}
    models = build_models(args.smoke)
    for batch in batches:
        for precision in ("fp32", "bf16"):
            for name, build in models.items():
                entry = measure(build, device, batch, size, precision, iters, warmup)
                throughput.setdefault(name, {}).setdefault(precision, {})[str(batch)] = entry
    for precision in ("fp32", "bf16"):  # the acceptance ratio: AesMamba-V forward / ConvNeXt-T forward
        for batch in map(str, batches):
            a = throughput["aesmamba_v"][precision][batch].get("forward_img_s")
            c = throughput["convnext_t"][precision][batch].get("forward_img_s")
            if a and c:
                throughput.setdefault("forward_ratio_aesmamba_over_convnext", {})[f"{precision}_b{batch}"] = a / c
    report["elapsed_s"] = time.perf_counter() - started
    print(json.dumps(report, indent=1))
    return 0 if all(entry.get("ok") for entry in report["scan"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
