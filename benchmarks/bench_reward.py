"""The reward's cost on CPU: forward (no_grad, what DDPO needs) vs forward+backward to the pixels (what
AlignProp/ReFL need), per image, for the default V model (AesMamba-V, VMamba-T, AVA head).

    python benchmarks/bench_reward.py [--batch 2] [--size 512] [--repeats 3] [--threads N]

The weights are random (the cost does not depend on their values): nothing is downloaded. The two cases are
measured interleaved in this one process and reported as a ratio, because absolute times on a shared
machine move with its load; the CPU model, its vector flags and the load average are printed with them.
Input: generator-sized images (B, 3, size, size) in [-1, 1], resized to 224² inside the reward.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from _cpu import cpu_description

REPO = Path(__file__).resolve().parents[1]


def build_reward(differentiable: bool, model=None, processor=None):
    from aesmamba_hf import AesMambaForAestheticAssessment, variant_config
    from aesmamba_hf.inference.loading import variant_processor
    from aesmamba_hf.reward import AestheticReward

    if model is None:
        torch.manual_seed(0)
        model = AesMambaForAestheticAssessment(variant_config("aesmamba-v-ava"))  # random weights
        processor = variant_processor("aesmamba-v-ava")
    return AestheticReward(model, processor, value_range=(-1, 1), differentiable=differentiable)


def time_once(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--size", type=int, default=512, help="side of the generator's images")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds per case (median)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    sys.path.insert(0, str(REPO / "src"))

    scorer = build_reward(differentiable=False)
    trainer = build_reward(differentiable=True, model=scorer.model, processor=scorer.processor)
    images = torch.rand(args.batch, 3, args.size, args.size, generator=torch.Generator().manual_seed(0)) * 2 - 1

    def forward():
        scorer(images)

    def forward_backward():
        pixels = images.clone().requires_grad_()
        (-trainer(pixels).sum()).backward()
        assert pixels.grad is not None and torch.isfinite(pixels.grad).all()

    load_before = os.getloadavg()
    forward(), forward_backward()  # warm-up: numba JIT, allocator
    fwd, fwd_bwd = [], []
    for _ in range(args.repeats):  # interleaved, so load changes hit both cases alike
        fwd.append(time_once(forward))
        fwd_bwd.append(time_once(forward_backward))
    per_image_fwd = statistics.median(fwd) / args.batch
    per_image_fwd_bwd = statistics.median(fwd_bwd) / args.batch
    report = {
        "benchmark": "AestheticReward on CPU: forward (no_grad) vs forward+backward to the pixels",
        "model": "aesmamba-v-ava config (VMamba-T v0), RANDOM weights (timing only)",
        "scan_backend": scorer.model.config.vision_config.scan_backend,
        "input": f"{args.batch}x3x{args.size}x{args.size} in [-1, 1] -> 224x224 inside",
        "cpu": cpu_description(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "forward_s_per_image": round(per_image_fwd, 4),
        "forward_backward_s_per_image": round(per_image_fwd_bwd, 4),
        "ratio_forward_backward_over_forward": round(per_image_fwd_bwd / per_image_fwd, 2),
        "rounds": {"forward_s": [round(t, 3) for t in fwd], "forward_backward_s": [round(t, 3) for t in fwd_bwd]},
    }
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
