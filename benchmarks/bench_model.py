"""Whole-model CPU benchmark: AesMamba vs a plain-PyTorch ConvNeXt-T, in one JSON document.

* forward img/s at batch 1 and 8 under ``torch.inference_mode`` for AesMamba-V and ConvNeXt-T, measured
  interleaved in this process (ratio = AesMamba / ConvNeXt);
* one training step at batch 8 (AdamW, the model's own loss with labels): median step time and peak RSS,
  each case in a fresh ``spawn`` child so that cases do not contaminate each other's memory high-water mark;
* variant scaling (V, F, M, P; M/P with a real-size BERT-base from ``BertConfig()`` defaults, random
  weights) and image-size scaling (224, 320, 448).

    python benchmarks/bench_model.py [--quick] [--threads N] [--skip-train] [--skip-variants] [--skip-sizes]

The scan backend is the model default ("auto" → the fused numba kernel on CPU when numba is installed).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

REPO = Path(__file__).resolve().parents[1]
V_CONFIG = REPO / "hub_configs" / "aesmamba-v-ava"


# ------------------------------------------------------------------------------------ ConvNeXt-T


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW map."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class ConvNeXtBlock(nn.Module):
    """dwconv7 → LN → Linear 4× → GELU → Linear → layer scale, residual."""

    def __init__(self, dim: int, layer_scale: float = 1e-6):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dwconv(x).permute(0, 2, 3, 1)
        y = self.pwconv2(F.gelu(self.pwconv1(self.norm(y)))) * self.gamma
        return x + y.permute(0, 3, 1, 2)


class ConvNeXtT(nn.Module):
    """ConvNeXt-T: stem conv4/4 + LN, stages [3, 3, 9, 3] × [96, 192, 384, 768], LN + conv2/2 downsampling,
    global average pool → LN → linear head (10 outputs, like AesMamba-V's score distribution)."""

    def __init__(self, depths=(3, 3, 9, 3), dims=(96, 192, 384, 768), num_outputs: int = 10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, dims[0], kernel_size=4, stride=4), LayerNorm2d(dims[0], eps=1e-6))
        self.downsample = nn.ModuleList(
            nn.Sequential(LayerNorm2d(dims[i], eps=1e-6), nn.Conv2d(dims[i], dims[i + 1], kernel_size=2, stride=2))
            for i in range(len(dims) - 1)
        )
        self.stages = nn.ModuleList(nn.Sequential(*[ConvNeXtBlock(d) for _ in range(n)]) for d, n in zip(dims, depths))
        self.norm = nn.LayerNorm(dims[-1], eps=1e-6)
        self.head = nn.Linear(dims[-1], num_outputs)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        x = self.stem(pixel_values)
        for i, stage in enumerate(self.stages):
            if i > 0:
                x = self.downsample[i - 1](x)
            x = stage(x)
        return self.head(self.norm(x.mean(dim=(2, 3))))


# ------------------------------------------------------------------------------------ models/inputs


def build_aesmamba(task: str = "V"):
    from transformers import BertConfig

    from aesmamba_hf import AesMambaConfig, AesMambaForAestheticAssessment

    if task == "V":
        config = AesMambaConfig.from_pretrained(V_CONFIG) if V_CONFIG.exists() else AesMambaConfig()
    elif task == "M":
        config = AesMambaConfig(task="M", dataset="AVA", text_config=BertConfig())
    else:  # F and P are defined on PARA
        config = AesMambaConfig(task=task, dataset="PARA", text_config=BertConfig() if task == "P" else None)
    torch.manual_seed(0)
    return AesMambaForAestheticAssessment(config).eval()


def aesmamba_inputs(model, batch: int, size: int, text_length: int, with_labels: bool = False) -> dict:
    g = torch.Generator().manual_seed(1)
    inputs = {"pixel_values": torch.randn(batch, 3, size, size, generator=g)}
    config = model.config
    if config.uses_text:
        inputs["input_ids"] = torch.randint(1000, 29000, (batch, text_length), generator=g)
        inputs["attention_mask"] = torch.ones(batch, text_length, dtype=torch.long)
    if with_labels:
        head = config.heads[0]
        if len(config.heads) == 1 and head["kind"] == "distribution":
            inputs["labels"] = torch.randint(0, 20, (batch, head["num_bins"]), generator=g).float() + 1
        else:
            lo, hi = head["score_range"]
            inputs["labels"] = lo + (hi - lo) * torch.rand(batch, len(config.heads), generator=g)
    return inputs


def param_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ------------------------------------------------------------------------------------ timing


def interleaved_img_per_s(cases: dict, batch: int, repeats: int, warmup: int = 1) -> dict[str, float]:
    """cases: name → zero-arg callable running one forward of ``batch`` images. Runs the cases in turn
    (so load changes hit all of them alike) and returns name → median img/s."""
    with torch.inference_mode():
        for fn in cases.values():
            for _ in range(warmup):
                fn()
        times = {name: [] for name in cases}
        for _ in range(repeats):
            for name, fn in cases.items():
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    return {name: batch / statistics.median(ts) for name, ts in times.items()}


def _train_child(case: str, batch: int, steps: int, threads: int, queue) -> None:
    """Runs in a spawned process: a few AdamW steps; reports median step time and peak RSS."""
    try:
        torch.set_num_threads(threads)
        if case == "convnext_t":
            torch.manual_seed(0)
            model = ConvNeXtT().train()
            g = torch.Generator().manual_seed(1)
            pixels = torch.randn(batch, 3, 224, 224, generator=g)
            target = torch.softmax(torch.randn(batch, 10, generator=g), dim=-1)

            def loss_fn():
                return F.cross_entropy(model(pixels), target)
        else:
            model = build_aesmamba(case.split("_")[-1]).train()
            inputs = aesmamba_inputs(model, batch, 224, 128, with_labels=True)

            def loss_fn():
                return model(**inputs).loss

        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        times = []
        for step in range(steps + 1):  # step 0 warms up (allocations, optimizer state)
            start = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn()
            loss.backward()
            optimizer.step()
            if step > 0:
                times.append(time.perf_counter() - start)
        queue.put({"case": case, "step_s": statistics.median(times), "steps": steps, "loss": float(loss.detach()),
                   "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                   "params": param_count(model)})
    except Exception as err:  # noqa: BLE001 - report, do not hang the parent
        queue.put({"case": case, "error": f"{type(err).__name__}: {err}"})


def train_case(case: str, batch: int, steps: int, threads: int) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_train_child, args=(case, batch, steps, threads, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


# ------------------------------------------------------------------------------------ main


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and training steps")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--text-length", type=int, default=128, help="tokens per text input for M/P")
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--skip-variants", action="store_true")
    parser.add_argument("--skip-sizes", action="store_true")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    repeats, train_steps = (2, 2) if args.quick else (5, 4)

    from aesmamba_hf.selective_scan import resolve_backend

    report: dict = {
        "benchmark": "AesMamba vs ConvNeXt-T on CPU",
        "torch": torch.__version__,
        "threads": threads,
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "scan_backend": resolve_backend("auto", torch.device("cpu")),
        "loadavg_before": os.getloadavg(),
        "quick": args.quick,
    }
    started = time.time()
    convnext = ConvNeXtT().eval()
    aes_v = build_aesmamba("V")
    report["params"] = {"aesmamba_v": param_count(aes_v), "convnext_t": param_count(convnext)}

    forward = {}
    for batch in (1, 8):
        aes_in = aesmamba_inputs(aes_v, batch, 224, args.text_length)
        pixels = aes_in["pixel_values"]
        ips = interleaved_img_per_s(
            {"aesmamba_v": lambda i=aes_in: aes_v(**i), "convnext_t": lambda p=pixels: convnext(p)}, batch, repeats
        )
        forward[f"batch_{batch}"] = {**{f"{k}_img_s": v for k, v in ips.items()},
                                     "ratio_aesmamba_over_convnext": ips["aesmamba_v"] / ips["convnext_t"]}
    report["forward_224"] = forward

    if not args.skip_train:
        train = {case: train_case(case, 8, train_steps, threads) for case in ("aesmamba_V", "convnext_t")}
        if "step_s" in train["aesmamba_V"] and "step_s" in train["convnext_t"]:
            train["step_time_ratio_aesmamba_over_convnext"] = train["aesmamba_V"]["step_s"] / train["convnext_t"]["step_s"]
        report["train_step_batch_8"] = train

    if not args.skip_variants:
        variants = {}
        cases = {}
        models = {"V": aes_v}
        for task in ("F", "M", "P"):
            models[task] = build_aesmamba(task)
        for task, model in models.items():
            inputs = aesmamba_inputs(model, 8, 224, args.text_length)
            cases[task] = (lambda m=model, i=inputs: m(**i))
            variants[task] = {"params": param_count(model), "text_length": args.text_length if model.config.uses_text else 0}
        ips = interleaved_img_per_s(cases, 8, max(1, repeats - 2))
        for task in models:
            variants[task]["img_s_batch_8"] = ips[task]
            variants[task]["relative_to_V"] = ips[task] / ips["V"]
        report["variants_forward"] = variants
        del models, cases

    if not args.skip_sizes:
        sizes = {}
        for size in (224, 320, 448):
            aes_in = aesmamba_inputs(aes_v, 8, size, args.text_length)
            pixels = aes_in["pixel_values"]
            ips = interleaved_img_per_s(
                {"aesmamba_v": lambda i=aes_in: aes_v(**i), "convnext_t": lambda p=pixels: convnext(p)}, 8, max(1, repeats - 2)
            )
            sizes[str(size)] = {**{f"{k}_img_s": v for k, v in ips.items()},
                                "ratio_aesmamba_over_convnext": ips["aesmamba_v"] / ips["convnext_t"]}
        report["image_size_forward_batch_8"] = sizes

    report["loadavg_after"] = os.getloadavg()
    report["wall_s"] = time.time() - started
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
