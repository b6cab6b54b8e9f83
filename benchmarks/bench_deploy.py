"""Deployment benchmark: onnxruntime vs torch, and bfloat16 vs float32, for the default-size AesMamba-V.

Prints one JSON document with the CPU (model name and the vector / bf16 flags), the versions, the thread
count and the load average before and after, and:

* ``onnx``: the ONNX export of AesMamba-V (224², ``hub_configs/aesmamba-v-ava``, RANDOM weights: speed does
  not depend on them): export seconds, file size, the largest output difference from torch, and forward img/s
  of torch eager float32 (the default scan, the fused CPU kernel) and of onnxruntime (the graph's pure-tensor
  scan) at batch 1 and 8, measured alternately in this process; ``ratio`` = onnxruntime / torch;
* ``bf16``: forward img/s with float32 and bfloat16 weights at batch 1 and 8 (alternated; ``speedup`` =
  bf16 / fp32), and the score drift on a real photo set (the demo package's bundled photos): the largest and
  mean |score(bf16) − score(fp32)| over the photos, with a trained V model when ``--model`` is given, else
  the random-weight model (then ``trained: false`` and the trained-model figure is pending).

    python benchmarks/bench_deploy.py [--threads 2] [--repeats 3] [--model DIR] [--skip-onnx] [--skip-bf16]

Times on a shared machine are noisy; compare the ratios (each measured within one process).
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from _cpu import cpu_description, load_average

REPO = Path(__file__).resolve().parents[1]
PHOTOS = REPO / "demo" / "src" / "aesmamba_demo" / "photos"
VARIANT = "aesmamba-v-ava"


def cpu_info() -> dict[str, Any]:
    """The shared CPU description plus whether bf16 runs natively here (what bf16 speed depends on)."""
    from aesmamba_hf.inference.precision import native_bf16_cpu

    return {**cpu_description(), "native_bf16": native_bf16_cpu()}


def alternated_img_per_s(cases: dict[str, Callable[[], Any]], batch: int, repeats: int) -> dict[str, float]:
    """Median img/s of each case, the cases run in turn ``repeats`` times after one warm-up call each."""
    for run in cases.values():
        run()
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, run in cases.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: round(batch / statistics.median(values), 3) for name, values in times.items()}


def random_v_model() -> Any:
    from aesmamba_hf import AesMambaForAestheticAssessment
    from aesmamba_hf.registry import variant_config

    torch.manual_seed(0)
    config = variant_config(VARIANT)
    config.random_weights = True
    return AesMambaForAestheticAssessment(config).eval()


def _torch_call(model: Any, pixels: torch.Tensor) -> Callable[[], Any]:
    def call() -> Any:
        with torch.inference_mode():
            return model(pixel_values=pixels).scores
    return call


def _ort_call(session: Any, pixels: np.ndarray) -> Callable[[], Any]:
    return lambda: session.run(["scores"], {"pixel_values": pixels})


def bench_onnx(model: Any, repeats: int, threads: int, batches: list[int]) -> dict[str, Any]:
    import onnxruntime as ort

    from aesmamba_hf.hub import export_onnx

    result: dict[str, Any] = {"weights": "random (speed only)", "onnxruntime": ort.__version__}
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        exported = export_onnx(model, Path(tmp) / "onnx", allow_random=True)
        result["export_s"] = round(time.perf_counter() - start, 1)
        path = exported.path / "model.onnx"
        result.update(file_mb=round(path.stat().st_size / 1e6, 1), max_abs_diff_vs_torch=exported.max_abs_diff,
                      scan=json.loads((exported.path / "onnx_export.json").read_text())["scan"])
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        for batch in batches:
            pixels = torch.randn(batch, 3, 224, 224)
            speeds = alternated_img_per_s({"torch_fp32": _torch_call(model, pixels),
                                           "onnxruntime": _ort_call(session, pixels.numpy())}, batch, repeats)
            result[f"batch_{batch}"] = {**speeds, "ratio": round(speeds["onnxruntime"] / speeds["torch_fp32"], 3)}
    return result


def photo_drift(model_dir: Optional[str]) -> dict[str, Any]:
    """|score(bf16) − score(fp32)| over the bundled photos, through the one predictor."""
    from aesmamba_hf.inference.loading import load_model, load_processor_for_config
    from aesmamba_hf.inference.predictor import Predictor

    photos = sorted(p for p in PHOTOS.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if model_dir:
        loaded = load_model(model_dir, device="cpu")
        model, processor, trained = loaded.model, loaded.processor, not loaded.random_weights
    else:
        model = random_v_model()
        processor, trained = load_processor_for_config(model.config), False
    examples = [{"image": str(p)} for p in photos]
    fp32 = Predictor(model, processor, batch_size=8).predict_examples(examples)
    bf16_model = copy.deepcopy(model).to(torch.bfloat16)
    bf16 = Predictor(bf16_model, processor, batch_size=8).predict_examples(examples)
    diff = np.abs(bf16.scores - fp32.scores)
    low, high = model.config.heads[0]["score_range"]
    result = {"photos": len(photos), "photo_set": str(PHOTOS.relative_to(REPO)), "trained": trained,
              "model": model_dir or f"{VARIANT} random weights", "max_abs_score_change": round(float(diff.max()), 5),
              "mean_abs_score_change": round(float(diff.mean()), 5),
              "max_change_in_score_range": round(float(diff.max()) / (high - low), 5),
              "fp32_score_spread": round(float(np.ptp(fp32.scores[:, 0])), 5)}
    if not trained:
        result["note"] = "random weights: the trained-model figure is pending (rerun with --model a trained V)"
    return result


def bench_bf16(model: Any, repeats: int, batches: list[int]) -> dict[str, Any]:
    bf16_model = copy.deepcopy(model).to(torch.bfloat16)
    result: dict[str, Any] = {}
    for batch in batches:
        pixels = torch.randn(batch, 3, 224, 224)
        speeds = alternated_img_per_s({"fp32": _torch_call(model, pixels),
                                       "bf16": _torch_call(bf16_model, pixels.bfloat16())}, batch, repeats)
        result[f"batch_{batch}"] = {**speeds, "speedup": round(speeds["bf16"] / speeds["fp32"], 3)}
    return result


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="torch and onnxruntime intra-op threads")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per case and batch (median)")
    parser.add_argument("--batches", default="1,8", help="batch sizes (default 1,8)")
    parser.add_argument("--model", default=None, help="a trained V model folder for the bf16 score drift")
    parser.add_argument("--skip-onnx", action="store_true")
    parser.add_argument("--skip-bf16", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    import transformers

    batches = [int(b) for b in args.batches.split(",")]
    report: dict[str, Any] = {"cpu": cpu_info(), "torch": torch.__version__, "transformers": transformers.__version__,
                              "threads": args.threads, "repeats": args.repeats, "load_average_start": load_average()}
    model = random_v_model()
    report["scan_backend_torch"] = "auto (fused CPU kernel where numba imports)"
    if not args.skip_onnx:
        report["onnx"] = bench_onnx(model, args.repeats, args.threads, batches)
    if not args.skip_bf16:
        report["bf16"] = {**bench_bf16(model, args.repeats, batches), "drift": photo_drift(args.model)}
    report["load_average_end"] = load_average()
    json.dump(report, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
