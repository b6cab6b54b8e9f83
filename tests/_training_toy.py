"""A learnable toy aesthetic task for the training tests (shared by test_training.py and the DDP worker).

32×32 RGB images whose score is a simple function of their brightness: ``score = 10 × mean grey level``
(TAD66K's 0–10 scale), with random texture and colour tint so the model has to look at the image. Rows
follow the ``aesmamba_hf.data`` schema (``image`` paths, ``labels``, ``class_labels``, ``score``, ...).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from datasets import Dataset, Features, Image, List, Value
from PIL import Image as PILImage

from aesmamba_hf.dataset_specs import get_dataset_spec

SIZE = 32


def make_toy_images(folder: os.PathLike, n: int, seed: int, prefix: str) -> Dataset:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    spec = get_dataset_spec("TAD66K")
    rows = {"image": [], "image_id": [], "labels": [], "class_labels": [], "score": [], "split": [], "source": []}
    for i in range(n):
        level = rng.uniform(0.15, 0.85)
        tint = rng.uniform(-0.08, 0.08, size=3)
        texture = rng.normal(0.0, 0.06, size=(SIZE, SIZE, 1))
        pixels = np.clip(level + tint[None, None, :] + texture, 0.0, 1.0)
        path = folder / f"{prefix}{i:04d}.png"
        PILImage.fromarray((pixels * 255).round().astype(np.uint8)).save(path)
        score = float(10.0 * (pixels.mean()))
        rows["image"].append(str(path))
        rows["image_id"].append(f"{prefix}{i:04d}")
        rows["labels"].append([score])
        rows["class_labels"].append([spec.scale_class(score)])
        rows["score"].append(score)
        rows["split"].append(prefix)
        rows["source"].append(f"toy/{prefix}.csv:{i + 2}")
    features = Features({
        "image": Image(), "image_id": Value("string"), "labels": List(Value("float64")),
        "class_labels": List(Value("int64")), "score": Value("float64"), "split": Value("string"),
        "source": Value("string"),
    })
    return Dataset.from_dict(rows, features=features)


def toy_config(output_dir: os.PathLike, **overrides):
    """A tiny V/TAD66K training config on 32-px images that learns in a few epochs on CPU.

    The scan backend is the pure-PyTorch "reference": at 8×8 tokens it is the fastest (≈3× "chunked", whose
    chunking only pays off on long sequences) and it does not depend on the numba kernels.
    """
    from aesmamba_hf.training import TrainConfig

    values = dict(
        task="V", dataset="TAD66K", tiny=True, scan_backend="reference", image_size=SIZE, train_resize=SIZE + 4,
        batch_size=16, learning_rate=3e-3, epochs=6, weight_decay=0.0, min_learning_rate=3e-4,
        check_images=True, logging_steps=5, save_total_limit=None, metric_for_best_model="srcc",
        output_dir=str(output_dir), seed=0, use_cpu=True,
    )
    values.update(overrides)
    return TrainConfig(**values)
