"""``aesmamba evaluate``: metrics JSON, predictions CSV and valid PNG plots; unreadable images skipped."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.stats import pearsonr, spearmanr

from aesmamba_hf import AesMambaConfig, AesMambaForAestheticAssessment
from aesmamba_hf.dataset_specs import PARA_ATTRIBUTE_NAMES, PARA_ATTRIBUTES

os.environ.setdefault("OMP_NUM_THREADS", "1")


def small_processor(dataset: str):
    from aesmamba_hf.image_processing_aesmamba import AesMambaImageProcessor
    from aesmamba_hf.processing_aesmamba import AesMambaProcessor

    image_processor = AesMambaImageProcessor.for_dataset(
        dataset, size={"height": 32, "width": 32}, crop_size={"height": 32, "width": 32},
        train_size={"height": 36, "width": 36})
    return AesMambaProcessor(image_processor=image_processor)


def tiny_model(task: str, dataset: str, seed: int = 0) -> AesMambaForAestheticAssessment:
    torch.manual_seed(seed)
    config = AesMambaConfig.tiny(task, dataset=dataset)
    config.vision_config.scan_backend = "chunked"
    model = AesMambaForAestheticAssessment(config).eval()
    with torch.no_grad():  # spread the predictions so the correlations are not degenerate
        for param in model.parameters():
            param.add_(0.05 * torch.randn_like(param))
    return model


def write_images(folder: Path, names: list[str], seed: int, corrupt: set[str] = frozenset()) -> None:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        if name in corrupt:
            (folder / name).write_bytes(b"\x89PNG truncated")
        else:
            level = rng.uniform(0.1, 0.9)
            pixels = np.clip(level + rng.normal(0, 0.1, (24, 30, 3)), 0, 1)
            Image.fromarray((pixels * 255).astype(np.uint8)).save(folder / name)


def write_ava(root: Path, n: int = 9, corrupt_index: int = 4) -> np.ndarray:
    """AVA layout: images/<id>.jpg, AVA.txt, test.txt listing every image. Returns the vote matrix."""
    rng = np.random.default_rng(1)
    ids = [str(1000 + i) for i in range(n)]
    write_images(root / "images", [f"{i}.jpg" for i in ids], seed=2, corrupt={f"{ids[corrupt_index]}.jpg"})
    votes = rng.integers(0, 30, size=(n, 10))
    lines = [f"{i + 1} {image_id} " + " ".join(map(str, v)) + " 0 0 100" for i, (image_id, v) in
             enumerate(zip(ids, votes))]
    (root / "AVA.txt").write_text("\n".join(lines) + "\n")
    (root / "test.txt").write_text("\n".join(ids) + "\n")
    return votes


def valid_png(path: str | Path) -> tuple[int, int]:
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG"
        return image.size


def test_cli_evaluate_ava_distribution_model(tmp_path, capsys):
    from aesmamba_hf.cli import main

    votes = write_ava(tmp_path / "ava")
    model_dir = tmp_path / "model"
    tiny_model("V", "AVA").save_pretrained(model_dir)
    small_processor("AVA").save_pretrained(model_dir)
    out = tmp_path / "report"
    assert main(["evaluate", str(model_dir), "AVA", str(tmp_path / "ava"), "--out", str(out),
                 "--batch-size", "4", "--device", "cpu"]) == 0
    captured = capsys.readouterr()
    assert "8 images, 1 rows skipped (unreadable image or unusable label)" in captured.out
    assert "1004.jpg" in captured.err

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["dataset"] == "AVA" and metrics["split"] == "test" and metrics["task"] == "V"
    assert metrics["num_images"] == 8 and metrics["num_skipped"] == 1
    bad = metrics["bad_images"][0]
    assert bad["image"].endswith("1004.jpg") and bad["source"] == "AVA.txt:5" and bad["reason"]
    assert metrics["score_ranges"] == {"aesthetic": [1.0, 10.0]}
    head = metrics["heads"]["aesthetic"]
    assert set(head) == {"plcc", "srcc", "acc", "mae", "rmse", "emd"}

    # recompute from the predictions CSV: targets are the expected scores of the votes
    with open(out / "predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["image_id"] for r in rows] == [str(1000 + i) for i in range(9) if i != 4]
    keep = [i for i in range(9) if i != 4]
    expected = (votes[keep] / votes[keep].sum(1, keepdims=True)) @ np.arange(1, 11)
    true = np.array([float(r["true_aesthetic"]) for r in rows])
    pred = np.array([float(r["pred_aesthetic"]) for r in rows])
    np.testing.assert_allclose(true, expected, rtol=1e-5)
    assert np.ptp(pred) > 0
    assert head["srcc"] == pytest.approx(spearmanr(pred, true)[0], abs=1e-5)
    assert head["plcc"] == pytest.approx(pearsonr(pred, true)[0], abs=1e-5)
    assert head["acc"] == pytest.approx(np.mean((pred > 5) == (true > 5)), abs=1e-6)
    assert 0.0 <= head["emd"] <= 1.0

    assert valid_png(out / "scatter_aesthetic.png")[0] > 200
    assert valid_png(out / "metrics_bar.png")[0] > 200
    assert metrics["files"]["scatter"] == {"aesthetic": str(out / "scatter_aesthetic.png")}


def test_evaluate_para_attributes(tmp_path):
    """An F model: nine heads, one scatter per attribute, the bar chart, and the mean over heads."""
    from aesmamba_hf.evaluation.report import evaluate_model

    root = tmp_path / "para"
    names = [f"img{i}.jpg" for i in range(7)]
    write_images(root / "imgs" / "s1", names, seed=5)
    rng = np.random.default_rng(6)
    columns = [a[1] for a in PARA_ATTRIBUTES]
    lines = ["imageName,sessionId," + ",".join(columns)]
    for name in names:
        lines.append(f"{name},s1," + ",".join(f"{rng.uniform(1, 5):.3f}" for _ in columns))
    (root / "annotation").mkdir(parents=True)
    (root / "annotation" / "PARA-GiaaTest.csv").write_text("\n".join(lines) + "\n")

    result = evaluate_model(tiny_model("F", "PARA"), "PARA", root, tmp_path / "report",
                            processor=small_processor("PARA"), batch_size=3, device="cpu")
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert list(metrics["heads"]) == list(PARA_ATTRIBUTE_NAMES)
    assert metrics["num_images"] == 7 and metrics["num_skipped"] == 0
    assert set(metrics["mean"]) >= {"plcc", "srcc", "acc", "mae", "rmse"}
    assert metrics["mean"]["srcc"] == pytest.approx(np.mean([h["srcc"] for h in metrics["heads"].values()]))
    assert "emd" not in metrics["heads"]["aesthetic"]
    for name in PARA_ATTRIBUTE_NAMES:
        valid_png(tmp_path / "report" / f"scatter_{name}.png")
    width, _ = valid_png(tmp_path / "report" / "metrics_bar.png")
    assert width > 600  # nine attributes side by side
    assert result.predictions.scores.shape == (7, 9)
    np.testing.assert_allclose(result.predictions.targets[:, 0],
                               [float(line.split(",")[2]) for line in lines[1:]], rtol=1e-6)


def test_all_images_unreadable_is_an_error(tmp_path):
    from aesmamba_hf.evaluation.report import evaluate_model

    root = tmp_path / "ava"
    write_ava(root, n=2, corrupt_index=0)
    (root / "images" / "1001.jpg").write_bytes(b"")
    with pytest.raises(ValueError, match="no usable row among the 2 rows"):
        evaluate_model(tiny_model("V", "AVA"), "AVA", root, tmp_path / "out", processor=small_processor("AVA"),
                       device="cpu")
