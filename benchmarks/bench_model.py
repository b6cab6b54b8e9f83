"""Whole-model CPU benchmark: AesMamba-V vs ConvNeXt-T and the peers' vision towers, in one JSON document.

* the CPU (model name, vector flags, torch's CPU capability, numba's target CPU and SVML state) and the load;
* forward img/s at batch 1 and 8 under ``torch.inference_mode`` for AesMamba-V and ConvNeXt-T (same FLOPs
  class), and at batch 1 for CLIP ViT-L/14 @224 and SigLIP so400m @384 vision towers (built from
  transformers configs with random weights: speed needs no weights), all alternated in this process so that
  load changes hit every model alike; ratios are AesMamba-V / the other model;
* one training step at batch 8 (AdamW, each model's own loss): AesMamba-V and ConvNeXt-T steps alternated in
  this process (time ratio), and the peak RSS of each in a fresh ``spawn`` child (its own high-water mark);
* with ``--full``: variant scaling (V, F, M, P; M/P with a real-size BERT-base, random weights) and image
  sizes (224, 320, 448).

    python benchmarks/bench_model.py            # the issue-17 figures, a few minutes on 2 cores
    python benchmarks/bench_model.py --avx2     # the same with numba, torch, oneDNN and MKL forced to AVX2
    python benchmarks/bench_model.py --full [--quick] [--threads N] [--skip-train] [--no-peers]

The scan backend is the model default ("auto" → the fused numba op on CPU when numba is installed).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F
from _cpu import cpu_description
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


def build_peer(name: str) -> nn.Module:
    """A peer's vision tower from its transformers config (random weights; the real models' shapes)."""
    from transformers import CLIPVisionConfig, CLIPVisionModel, SiglipVisionConfig, SiglipVisionModel

    torch.manual_seed(0)
    if name == "clip_vit_l14_224":  # openai/clip-vit-large-patch14 (LAION aesthetic predictor's backbone)
        config = CLIPVisionConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                                  num_attention_heads=16, patch_size=14, image_size=224, projection_dim=768)
        return CLIPVisionModel(config).eval()
    if name == "siglip_so400m_384":  # google/siglip-so400m-patch14-384 (aesthetic-predictor v2.5's backbone)
        config = SiglipVisionConfig(hidden_size=1152, intermediate_size=4304, num_hidden_layers=27,
                                    num_attention_heads=16, patch_size=14, image_size=384)
        return SiglipVisionModel(config).eval()
    raise ValueError(name)


PEERS = {"clip_vit_l14_224": 224, "siglip_so400m_384": 384}


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


def train_setup(case: str, batch: int):
    """(model, one-step closure) for a training step of ``case`` at ``batch`` (AdamW, the model's own loss)."""
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

    def step() -> float:
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn()
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    return model, step


def alternated_train_steps(cases: list[str], batch: int, steps: int) -> dict[str, float]:
    """Median step time of each case, the cases' steps alternated in this process (one warm-up step each)."""
    runners = {case: train_setup(case, batch)[1] for case in cases}
    for step in runners.values():
        step()
    times = {case: [] for case in cases}
    for _ in range(steps):
        for case, step in runners.items():
            start = time.perf_counter()
            step()
            times[case].append(time.perf_counter() - start)
    return {case: statistics.median(ts) for case, ts in times.items()}


def _rss_child(case: str, batch: int, steps: int, threads: int, queue) -> None:
    """Runs in a spawned process: ``steps`` training steps; reports the peak RSS (its own high-water mark)."""
    try:
        torch.set_num_threads(threads)
        model, step = train_setup(case, batch)
        losses = [step() for _ in range(steps)]
        queue.put({"case": case, "peak_rss_mb": _peak_rss_mb(),
                   "loss": losses[-1], "params": param_count(model)})
    except Exception as err:  # noqa: BLE001 - report, do not hang the parent
        queue.put({"case": case, "error": f"{type(err).__name__}: {err}"})


def _peak_rss_mb() -> float:
    """This process's peak RSS. VmHWM belongs to the address space made by exec; ru_maxrss would also count
    the parent's pages at fork time (Linux keeps it across execve), i.e. the parent's size."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_rss(case: str, batch: int, steps: int, threads: int) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_rss_child, args=(case, batch, steps, threads, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


# ------------------------------------------------------------------------------------ the machine

AVX2_ENV = {  # every library that picks its vector ISA at run time, pinned to AVX2 (Haswell)
    "NUMBA_CPU_NAME": "haswell",
    # numba takes the host's features unless told: without this, haswell + the host's avx512 flags
    "NUMBA_CPU_FEATURES": "+64bit,+avx,+avx2,+bmi,+bmi2,+cmov,+cx16,+f16c,+fma,+fsgsbase,+lzcnt,+mmx,+movbe,"
                          "+popcnt,+sse,+sse2,+sse3,+sse4.1,+sse4.2,+ssse3,+xsave,-avx512f,-avx512bw,"
                          "-avx512vl,-avx512dq,-avx512cd,-avx512bf16,-avx512vnni,-amx-tile,-amx-bf16",
    "ATEN_CPU_CAPABILITY": "avx2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "DNNL_MAX_CPU_ISA": "AVX2",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
}


def cpu_report() -> dict:
    """The CPU model, its vector flags, and the ISA torch and numba actually target in this process."""
    info = cpu_description()
    info["forced_env"] = {k: os.environ[k] for k in AVX2_ENV if k in os.environ}
    try:
        import llvmlite.binding as llvm
        import numba

        info["numba"] = numba.__version__
        info["numba_svml"] = bool(numba.config.USING_SVML)
        info["llvmlite_built_with_svml"] = bool(llvm.config.has_svml)
        info["numba_target_cpu"] = numba.config.CPU_NAME or llvm.get_host_cpu_name()
        from aesmamba_hf.selective_scan_cpu import vector_setup

        info["scan_vector_setup"] = vector_setup()  # 512-bit kernel loops on AVX-512 CPUs, else 256
    except Exception as err:  # noqa: BLE001 - the report still prints without numba
        info["numba"] = f"unavailable ({type(err).__name__})"
    return info


# ------------------------------------------------------------------------------------ main


def _ratios(ips: dict[str, float], batch: int) -> dict:
    out = {f"{name}_img_s": value for name, value in ips.items()}
    for name, value in ips.items():
        if name != "aesmamba_v":
            out[f"ratio_aesmamba_over_{name}"] = ips["aesmamba_v"] / value
    return out


def _reexec_avx2(argv: list[str]) -> int:
    """Run this script again with every library pinned to AVX2 (the env must be set before they load)."""
    env = {**os.environ, **AVX2_ENV}
    args = [a for a in argv if a != "--avx2"]
    return subprocess.call([sys.executable, str(Path(__file__).resolve()), *args], env=env)


def main(argv: Optional[list[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--avx2", action="store_true", help="re-run with numba/torch/oneDNN/MKL forced to AVX2")
    parser.add_argument("--quick", action="store_true", help="fewer repeats and training steps")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--text-length", type=int, default=128, help="tokens per text input for M/P")
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--no-peers", action="store_true", help="skip the CLIP / SigLIP towers")
    parser.add_argument("--full", action="store_true", help="also variant (V/F/M/P) and image-size scaling")
    parser.add_argument("--skip-variants", action="store_true", help="with --full: no variant scaling")
    parser.add_argument("--skip-sizes", action="store_true", help="with --full: no image-size scaling")
    args = parser.parse_args(argv)
    if args.avx2:
        return _reexec_avx2(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    repeats, train_steps = (2, 2) if args.quick else (5, 3)

    from aesmamba_hf.selective_scan import resolve_backend

    report: dict = {
        "benchmark": "AesMamba-V vs ConvNeXt-T and peer vision towers on CPU (224², fp32)",
        "cpu": cpu_report(),
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
        forward[f"batch_{batch}"] = {**_ratios(ips, batch),
                                     "ratio_aesmamba_over_convnext": ips["aesmamba_v"] / ips["convnext_t"]}
    report["forward_224"] = forward

    if not args.no_peers:  # batch 1 only: a batch of 8 SigLIP images takes a minute on 2 cores
        peers = {name: build_peer(name) for name in PEERS}
        report["params"].update({name: param_count(m) for name, m in peers.items()})
        aes_in = aesmamba_inputs(aes_v, 1, 224, args.text_length)
        cases = {"aesmamba_v": lambda i=aes_in: aes_v(**i)}
        for name, model in peers.items():
            px = torch.randn(1, 3, PEERS[name], PEERS[name], generator=torch.Generator().manual_seed(1))
            cases[name] = lambda m=model, p=px: m(pixel_values=p)
        report["peers_forward_batch_1"] = _ratios(interleaved_img_per_s(cases, 1, max(2, repeats - 2)), 1)
        del peers, cases

    if not args.skip_train:
        cases = ["aesmamba_V", "convnext_t"]
        step_s = alternated_train_steps(cases, 8, train_steps)
        train = {case: {"step_s": step_s[case], **peak_rss(case, 8, 2, threads)} for case in cases}
        train["steps_alternated"] = train_steps
        train["step_time_ratio_aesmamba_over_convnext"] = step_s["aesmamba_V"] / step_s["convnext_t"]
        report["train_step_batch_8"] = train

    if args.full and not args.skip_variants:
        report["variants_forward"] = variant_scaling(aes_v, repeats, args.text_length)
    if args.full and not args.skip_sizes:
        sizes = {}
        for size in (224, 320, 448):
            aes_in = aesmamba_inputs(aes_v, 8, size, args.text_length)
            pixels = aes_in["pixel_values"]
            ips = interleaved_img_per_s(
                {"aesmamba_v": lambda i=aes_in: aes_v(**i), "convnext_t": lambda p=pixels: convnext(p)}, 8,
                max(1, repeats - 2)
            )
            sizes[str(size)] = _ratios(ips, 8)
        report["image_size_forward_batch_8"] = sizes

    report["loadavg_after"] = os.getloadavg()
    report["wall_s"] = time.time() - started
    print(json.dumps(report, indent=1))
    return 0


def variant_scaling(aes_v, repeats: int, text_length: int) -> dict:
    variants, cases = {}, {}
    models = {"V": aes_v}
    for task in ("F", "M", "P"):
        models[task] = build_aesmamba(task)
    for task, model in models.items():
        inputs = aesmamba_inputs(model, 8, 224, text_length)
        cases[task] = (lambda m=model, i=inputs: m(**i))
        variants[task] = {"params": param_count(model), "text_length": text_length if model.config.uses_text else 0}
    ips = interleaved_img_per_s(cases, 8, max(1, repeats - 2))
    for task in models:
        variants[task]["img_s_batch_8"] = ips[task]
        variants[task]["relative_to_V"] = ips[task] / ips["V"]
    return variants


if __name__ == "__main__":
    sys.exit(main())
