"""Per-user adapters: time to personalise from 10 ratings, adapter size, load and swap times.

    python benchmarks/bench_personalize.py [--model DIR] [--ratings 10] [--threads 2] [--kind taste]

``--model``: a P model folder (e.g. the demo's ``aesmamba-demo-output/models/aesmamba-demo-p``); default: a P
model of the demo's architecture (MiniLM text encoder, 128-px VMamba) with random weights built here (the time
does not depend on the weights). Prints one JSON document: the wall and CPU seconds of ``personalize()`` from
``--ratings`` ratings, the same as a ratio to one forward+backward pass of the model on those images measured in
this process (a reference that does not depend on how busy the machine is), the adapter's size on disk as a
fraction of the base's, and the milliseconds to load an adapter onto the loaded base and to switch users
(against the milliseconds to load the base itself). The CPU model and flags are included. ``--kind``: the
adapter kind (default ``lora_heads``); ``taste`` uses the model folder's ``taste_prior.safetensors``, or for
the random default model a prior fitted here on random residuals (the time does not depend on it).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _cpu import cpu_description

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO / "demo" / "src")]

PROFILE = {"openness": 7, "conscientiousness": 5, "extroversion": 4, "agreeableness": 6, "neuroticism": 3,
           "art_experience": "beginner", "photo_experience": "competent"}


def demo_p_model(folder: Path) -> Path:
    from aesmamba_demo.run import DemoConfig, demo_model_config, demo_processor
    from aesmamba_hf.building import build_model, minilm_path

    config = DemoConfig()
    model = build_model(demo_model_config("P", config, "PARA", name="bench-p"), text_encoder=minilm_path())
    model.save_pretrained(folder)
    demo_processor(config, "PARA", True, "P").save_pretrained(folder)
    return folder


def write_ratings(folder: Path, n: int) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    (folder / "imgs").mkdir(parents=True)
    lines = ["image,score"]
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (192, 256, 3), dtype=np.uint8)).save(folder / "imgs" / f"{i}.jpg")
        lines.append(f"imgs/{i}.jpg,{rng.integers(2, 11) / 2}")
    (folder / "ratings.csv").write_text("\n".join(lines) + "\n")
    return folder / "ratings.csv"


def prior_file(model, model_dir: Path, scratch: Path) -> Path:
    """The model folder's taste prior, or one fitted on random residuals of the model's feature size."""
    from aesmamba_hf.piaa.taste import TASTE_PRIOR_FILE, taste_prior_from_residuals

    if (model_dir / TASTE_PRIOR_FILE).is_file():
        return model_dir / TASTE_PRIOR_FILE
    rng, dim = np.random.default_rng(0), model.taste.in_features - 1
    raters = {f"r{i}": (rng.normal(size=(50, dim)), rng.normal(size=50)) for i in range(8)}
    return taste_prior_from_residuals(raters, "aesthetic").save(scratch / TASTE_PRIOR_FILE)


def reference_step(model, processor, images) -> float:
    """Seconds of one forward + backward pass of the whole model on the rating images (the reference)."""
    from aesmamba_hf.training.collator import AesMambaDataCollator

    collator = AesMambaDataCollator.for_config(model.config, processor, train=True)
    rows = [{"image": str(p), "labels": [3.0] * model.config.num_heads, "user": PROFILE} for p in images]
    batch = collator(rows)
    model.train()
    start = time.perf_counter()
    model(**batch).loss.backward()
    model.zero_grad(set_to_none=True)
    model.eval()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="P model folder (default: the demo architecture, random)")
    parser.add_argument("--ratings", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--kind", default="lora_heads", help="adapter kind (default lora_heads; taste, ...)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import warnings

    warnings.filterwarnings("ignore")
    from aesmamba_hf.inference.loading import load_model
    from aesmamba_hf.piaa import AdapterBank, PersonalizeConfig, personalize
    from aesmamba_hf.piaa.adapters import adapter_size_bytes, model_size_bytes

    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = Path(scratch_dir)
        model_dir = Path(args.model) if args.model else demo_p_model(scratch / "base")
        ratings = write_ratings(scratch / "user", args.ratings)
        start = time.perf_counter()
        loaded = load_model(str(model_dir), device="cpu", allow_random=True)
        base_load_ms = 1000 * (time.perf_counter() - start)
        images = sorted((scratch / "user" / "imgs").iterdir())
        reference = min(reference_step(loaded.model, loaded.processor, images) for _ in range(3))

        settings = PersonalizeConfig(kind=args.kind, taste_prior=str(prior_file(loaded.model, model_dir, scratch))
                                     if args.kind == "taste" else None)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        result = personalize(loaded.model, ratings, PROFILE, scratch / "adapter", processor=loaded.processor,
                             config=settings)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        personalize(loaded.model, ratings, {**PROFILE, "openness": 3}, scratch / "adapter2",
                    processor=loaded.processor, config=settings)

        bank = AdapterBank(loaded.model)
        start = time.perf_counter()
        bank.add("u1", scratch / "adapter")
        first_load_ms = 1000 * (time.perf_counter() - start)
        start = time.perf_counter()
        bank.add("u2", scratch / "adapter2")
        second_load_ms = 1000 * (time.perf_counter() - start)
        swaps = []
        for user in ("u1", "u2") * 5:
            start = time.perf_counter()
            bank.use(user)
            swaps.append(1000 * (time.perf_counter() - start))
        report = {
            "cpu": cpu_description(),
            "model": str(args.model or "demo P architecture (random weights)"),
            "ratings": args.ratings,
            "kind": args.kind,
            "personalize_wall_s": round(wall, 2),
            "personalize_cpu_s": round(cpu, 2),
            "reference_forward_backward_s": round(reference, 4),
            "personalize_over_reference": round(wall / reference, 1),
            "epochs_chosen": result.epochs,
            "validation_srcc": result.validation_srcc,
            "adapter_bytes": adapter_size_bytes(scratch / "adapter"),
            "base_bytes": model_size_bytes(model_dir),
            "adapter_fraction_of_base": round(adapter_size_bytes(scratch / "adapter") / model_size_bytes(model_dir), 5),
            "base_load_ms": round(base_load_ms, 1),
            "adapter_load_ms": [round(first_load_ms, 1), round(second_load_ms, 1)],
            "swap_ms_median": round(float(np.median(swaps)), 3),
        }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
