"""bfloat16 inference: loader, predictor, pipeline and ``aesmamba score --dtype``; float32 stays the default.

Tolerance: bfloat16 keeps 8 significant bits (relative rounding 2**-9 ≈ 0.2 % per op); through a tiny random
model the scores move by a few thousandths, so they must stay within 0.02 of float32's (and within 2 % of the
head's score range), while the scan itself keeps computing in float32.
"""

from __future__ import annotations

import csv
import os

import numpy as np
import pytest
import torch

from _io_helpers import random_image, save_tiny_model
from aesmamba_hf.inference.loading import ModelLoadError, load_model
from aesmamba_hf.inference.precision import bf16_cpu_note, resolve_dtype

os.environ.setdefault("OMP_NUM_THREADS", "1")
TOLERANCE = 0.02


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = save_tiny_model(tmp_path_factory.mktemp("dtype") / "f", task="F")
    config_path = folder / "config.json"  # score with the default scan (the fused kernel where numba imports)
    config_path.write_text(config_path.read_text().replace('"scan_backend": "reference"', '"scan_backend": "auto"'))
    return folder


@pytest.fixture(scope="module")
def images():
    return [random_image(i, size=(80, 60)) for i in range(4)]


def test_bf16_scores_close_to_fp32_and_float32_records(model_dir, images):
    fp32 = load_model(model_dir, device="cpu")
    bf16 = load_model(model_dir, device="cpu", dtype="bfloat16")
    assert fp32.model.dtype == torch.float32 and bf16.model.dtype == torch.bfloat16
    expected = fp32.predictor(batch_size=3).predict_examples([{"image": im} for im in images])
    got = bf16.predictor(batch_size=3).predict_examples([{"image": im} for im in images])
    assert got.scores.dtype == np.float32 and not got.errors
    assert np.abs(got.scores - expected.scores).max() <= TOLERANCE
    assert not np.array_equal(got.scores, expected.scores)  # really computed in bfloat16
    record = bf16.predictor().predict(images[0])[0]
    assert isinstance(record["score"], float) and record["status"] == "ok"


def test_predictor_dtype_casts_a_copy_of_the_model(model_dir, images):
    from aesmamba_hf.inference.predictor import Predictor

    loaded = load_model(model_dir, device="cpu")
    expected = loaded.predictor().predict_examples([{"image": images[1]}]).scores
    predictor = Predictor(loaded.model, loaded.processor, dtype=torch.bfloat16)
    assert predictor.model.dtype == torch.bfloat16
    assert loaded.model.dtype == torch.float32  # the caller's model is not cast in place
    got = predictor.predict_examples([{"image": images[1]}]).scores
    assert got.dtype == np.float32 and np.abs(got - expected).max() <= TOLERANCE


def test_pipeline_dtype(model_dir, images):
    from transformers import pipeline

    import aesmamba_hf  # noqa: F401  (registers the task)

    fp32 = pipeline("image-aesthetics", model=str(model_dir))
    bf16 = pipeline("image-aesthetics", model=str(model_dir), dtype=torch.bfloat16)
    assert fp32.model.dtype == torch.float32 and bf16.model.dtype == torch.bfloat16
    a, b = fp32(images[2]), bf16(images[2])
    assert abs(a["score"] - b["score"]) <= TOLERANCE
    for name in a["heads"]:
        assert abs(a["heads"][name]["score"] - b["heads"][name]["score"]) <= TOLERANCE


def test_cli_score_dtype(model_dir, images, tmp_path):
    from aesmamba_hf.cli import main

    for i, image in enumerate(images[:2]):
        image.save(tmp_path / f"{i}.png")
    rows = {}
    for dtype in ("float32", "bfloat16"):
        out = tmp_path / f"{dtype}.csv"
        assert main(["score", str(tmp_path), "--model", str(model_dir), "--output", str(out), "--dtype", dtype,
                     "--no-progress", "--device", "cpu", "--workers", "0"]) == 0
        with open(out, newline="") as handle:
            rows[dtype] = {r["path"]: float(r["score"]) for r in csv.DictReader(handle)}
    assert rows["float32"].keys() == rows["bfloat16"].keys() and len(rows["float32"]) == 2
    assert max(abs(rows["float32"][p] - rows["bfloat16"][p]) for p in rows["float32"]) <= TOLERANCE


def test_dtype_names_and_errors(model_dir):
    assert resolve_dtype(None) == torch.float32 and resolve_dtype("bf16") == torch.bfloat16
    assert resolve_dtype(torch.bfloat16) == torch.bfloat16
    with pytest.raises(ValueError, match="bfloat16.*float32"):
        resolve_dtype("float64")
    with pytest.raises(ModelLoadError, match="dtype must be one of"):
        load_model(model_dir, dtype="int8")
    assert bf16_cpu_note(torch.float32, "cpu") is None and bf16_cpu_note(torch.bfloat16, "cuda") is None
