"""Ray engine throughput: the same images scored by the local engine and by Ray Data with 1 and 2 actors.

Prints (stderr) a table and (stdout) one JSON document: img/s of each run, the Ray overhead per image (the
1-actor job against the local engine with the same single torch thread, the actor's own thread count), the
2-vs-1 actor scaling efficiency, and a projection to N nodes from the measured per-core rate. Each run shows a
progress bar. All rates are measured in this process on this machine; on a loaded machine only the ratios
mean something (the load average at the start and end is printed).

    python benchmarks/bench_ray.py [--images 96] [--tiny] [--batch-size 8] [--node-cores 32]

The model is AesMamba-V (AVA) at full size with random weights (throughput does not depend on the weights),
``--tiny`` the test-size model. The Ray cluster is a local one (``ray.init``), started once; its start time is
reported separately and is not part of the per-image overhead.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _cpu import cpu_description
from PIL import Image


def make_images(folder: Path, count: int, size: int = 320) -> None:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"{i:05d}.jpg", quality=90)


def make_model(folder: Path, tiny: bool) -> None:
    import torch

    from aesmamba_hf import AesMambaConfig, AesMambaForAestheticAssessment
    from aesmamba_hf.inference.loading import default_processor_for_config
    from aesmamba_hf.registry import variant_config

    torch.manual_seed(0)
    config = AesMambaConfig.tiny(task="V") if tiny else variant_config("aesmamba-v-ava")
    AesMambaForAestheticAssessment(config).eval().save_pretrained(folder)
    default_processor_for_config(config).save_pretrained(folder)


def run_local(model: Path, images: list[str], batch_size: int, threads: int) -> float:
    """Seconds for the local engine (the one Predictor, in this process) over ``images``."""
    import torch
    from tqdm.auto import tqdm

    from aesmamba_hf.inference.loading import load_model

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        predictor = load_model(str(model), device="cpu").predictor(batch_size=batch_size, decode_workers=2)
        predictor.predict(images[:batch_size])  # warm-up (first-call allocations), not timed
        started = time.perf_counter()
        with tqdm(total=len(images), unit="img", desc=f"local ({threads} thread)", file=sys.stderr) as bar:
            for start in range(0, len(images), batch_size):
                predictor.predict(images[start : start + batch_size])
                bar.update(len(images[start : start + batch_size]))
        predictor.close()
        return time.perf_counter() - started
    finally:
        torch.set_num_threads(previous)


def run_ray(model: Path, folder: Path, output: Path, batch_size: int, actors: int) -> tuple[float, dict]:
    from dataclasses import asdict

    from aesmamba_hf.inference.ray_engine import JobOptions, run_job

    options = JobOptions(inputs=[str(folder)], model=str(model), output=str(output), shard_size=16,
                         batch_size=batch_size, actors=actors, device="cpu")
    started = time.perf_counter()
    summary = run_job(options, progress=True)
    return time.perf_counter() - started, asdict(summary.pool)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--tiny", action="store_true", help="the test-size model (a quick check of the plumbing)")
    parser.add_argument("--node-cores", type=int, default=32, help="cores per node for the projection")
    args = parser.parse_args()

    import ray

    work = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    try:
        load_before = os.getloadavg()
        make_model(work / "model", args.tiny)
        make_images(work / "images", args.images)
        images = sorted(str(p) for p in (work / "images").iterdir())
        local_1 = run_local(work / "model", images, args.batch_size, threads=1)
        local_all = run_local(work / "model", images, args.batch_size, threads=os.cpu_count() or 1)
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        started = time.perf_counter()
        ray.init(address="local", include_dashboard=False, log_to_driver=False)
        ray_start = time.perf_counter() - started
        ray_runs = {}
        for actors in (1, 2):
            seconds, pool = run_ray(work / "model", work / "images", work / f"out-{actors}", args.batch_size, actors)
            ray_runs[actors] = {"seconds": seconds, "img_per_s": args.images / seconds, "pool": pool}
        ray.shutdown()
        load_after = os.getloadavg()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    n = args.images
    per_core = n / local_1  # one torch thread: what one actor of one CPU does without Ray
    efficiency = ray_runs[2]["img_per_s"] / (2 * ray_runs[1]["img_per_s"])
    result = {
        "cpu": cpu_description(), "load_average_before": load_before, "load_average_after": load_after,
        "model": "tiny V" if args.tiny else "AesMamba-V AVA (full size, random weights)", "images": n,
        "batch_size": args.batch_size,
        "local_1_thread_img_per_s": per_core, "local_all_threads_img_per_s": n / local_all,
        "ray_cluster_start_s": ray_start,
        "ray": {str(k): v for k, v in ray_runs.items()},
        "ray_overhead_ms_per_image": 1000 * (ray_runs[1]["seconds"] - local_1) / n,
        "two_actor_scaling_efficiency": efficiency,
        "projection": {str(nodes): {"img_per_s": nodes * args.node_cores * per_core * efficiency,
                                    "hours_per_100M": 1e8 / (nodes * args.node_cores * per_core * efficiency) / 3600}
                       for nodes in (1, 4, 16, 64)},
    }
    print(f"CPU: {result['cpu'].get('model')} x {os.cpu_count()}; load average {load_before[0]:.1f} -> "
          f"{load_after[0]:.1f}", file=sys.stderr)
    print(f"local engine, 1 thread: {per_core:.2f} img/s; all threads: {n / local_all:.2f} img/s", file=sys.stderr)
    for actors, run in ray_runs.items():
        print(f"ray, {actors} actor(s): {run['img_per_s']:.2f} img/s ({run['seconds']:.1f} s for {n}, including "
              "actor start and model load)", file=sys.stderr)
    print(f"ray cluster start {ray_start:.1f} s; ray overhead {result['ray_overhead_ms_per_image']:.0f} ms/image "
          f"(1 actor vs local 1 thread); 2-actor scaling efficiency {efficiency:.2f}", file=sys.stderr)
    for nodes, row in result["projection"].items():
        print(f"projection: {nodes} node(s) x {args.node_cores} cores: {row['img_per_s']:.0f} img/s, "
              f"{row['hours_per_100M']:.1f} h per 100M images", file=sys.stderr)
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
