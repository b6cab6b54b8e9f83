"""Score references and percentiles: the empirical CDF of the reference set, stored in the config, computed by
``aesmamba calibrate``, returned by the pipeline and ``aesmamba score``; score-range checks and clamping."""

from __future__ import annotations

import copy
import csv
import json

import numpy as np
import pytest
import torch

from _io_helpers import random_image, save_tiny_model
from aesmamba_hf import AesMambaConfig
from aesmamba_hf.cli import main
from aesmamba_hf.evaluation.calibration import EXACT_LIMIT, build_score_reference
from aesmamba_hf.hub.model_card import build_model_card, with_score_reference
from aesmamba_hf.inference.predictor import format_predictions


def ecdf_percent(sample: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """100 × share of ``sample`` at or below each score, straight from the raw sample."""
    ordered = np.sort(np.asarray(sample, dtype=np.float32))
    return 100.0 * np.searchsorted(ordered, np.asarray(scores, dtype=np.float32), side="right") / len(ordered)


def config_with_reference(sample: np.ndarray, **kwargs) -> AesMambaConfig:
    config = AesMambaConfig.tiny()
    config.score_reference = build_score_reference(sample[:, None], config.head_names, source="test set",
                                                   score_ranges=config.score_ranges, **kwargs)
    return config


def percentiles_of(config: AesMambaConfig, scores: np.ndarray) -> np.ndarray:
    records = format_predictions(config, torch.from_numpy(scores.astype(np.float32)))
    return np.array([r["percentile"] for r in records])


def test_percentile_is_the_empirical_cdf_of_the_reference_and_monotone():
    rng = np.random.default_rng(0)
    sample = np.round(rng.normal(5.5, 1.2, 700), 2).astype(np.float32)  # rounded: many ties
    config = config_with_reference(sample)
    queries = np.concatenate([sample[:50], sample[:50] + 0.001, sample[:50] - 0.001,
                              [sample.min() - 1, sample.max(), sample.max() + 1, 0.5, 11.0]]).astype(np.float32)
    got = percentiles_of(config, queries)
    np.testing.assert_allclose(got, ecdf_percent(sample, queries), rtol=0, atol=1e-9)
    assert got[-5] == 0.0 and got[-4] == 100.0  # below every reference score / at the largest
    grid = np.linspace(0, 11, 2001, dtype=np.float32)
    assert np.all(np.diff(percentiles_of(config, grid)) >= 0)


def test_large_reference_keeps_quantiles_and_stays_within_a_point_of_the_cdf():
    rng = np.random.default_rng(1)
    sample = rng.gamma(4.0, 1.0, EXACT_LIMIT + 3000).astype(np.float32)
    config = config_with_reference(sample)
    table = config.score_reference["heads"]["aesthetic"]
    assert table["sorted_scores"] is None and len(table["quantiles"]) == 101
    assert config.score_reference["method"] == "quantiles"
    queries = np.sort(rng.gamma(4.0, 1.0, 3000).astype(np.float32))
    got = percentiles_of(config, queries)
    assert np.max(np.abs(got - ecdf_percent(sample, queries))) <= 1.0 + 100 / len(sample)
    assert np.all(np.diff(got) >= 0)
    assert percentiles_of(config, np.array([sample.min() - 0.1, sample.max()]))[:].tolist() == [0.0, 100.0]


def test_without_reference_nothing_changes_and_there_is_no_percentile():
    scores = torch.tensor([[4.2], [11.5]])
    plain = format_predictions(AesMambaConfig.tiny(), scores)
    calibrated = format_predictions(config_with_reference(np.array([3.0, 5.0, 7.0], np.float32)), scores)
    assert all("percentile" not in r and "percentile" not in r["heads"]["aesthetic"] for r in plain)
    assert [r["percentile"] for r in calibrated] == [pytest.approx(100 / 3), 100.0]
    for record in calibrated:  # the rest of the record is what it was without a reference
        record.pop("percentile")
        record["heads"]["aesthetic"].pop("percentile")
    assert calibrated == plain


def test_multi_head_percentiles_and_clamping_use_the_raw_score():
    config = AesMambaConfig.tiny(task="F")
    rng = np.random.default_rng(2)
    sample = rng.uniform(1, 5, (40, config.num_heads)).astype(np.float32)
    config.score_reference = build_score_reference(sample, config.head_names, source="s")
    scores = np.full((1, config.num_heads), 3.0, np.float32)
    scores[0, 0] = 6.5  # above PARA's 1-5 range
    record = format_predictions(config, torch.from_numpy(scores), clamp=True)[0]
    for j, name in enumerate(config.head_names):
        head = record["heads"][name]
        assert head["percentile"] == pytest.approx(ecdf_percent(sample[:, j], scores[0, j]))
    first = record["heads"][config.head_names[0]]
    assert first["score"] == 5.0 and first["out_of_range"] and first["percentile"] == 100.0
    unclamped = format_predictions(config, torch.from_numpy(scores))[0]["heads"][config.head_names[0]]
    assert unclamped["score"] == pytest.approx(6.5) and unclamped["out_of_range"]


def test_reference_round_trips_through_config_json(tmp_path):
    sample = np.random.default_rng(3).normal(5, 1, 50).astype(np.float32)
    config = config_with_reference(sample)
    config.save_pretrained(tmp_path)
    stored = json.loads((tmp_path / "config.json").read_text())["score_reference"]
    assert stored["size"] == 50 and stored["source"] == "test set"
    np.testing.assert_array_equal(np.float32(stored["heads"]["aesthetic"]["sorted_scores"]), np.sort(sample))
    reloaded = AesMambaConfig.from_pretrained(tmp_path)
    assert reloaded.score_reference == config.score_reference
    np.testing.assert_allclose(percentiles_of(reloaded, sample), ecdf_percent(sample, sample))


def test_bad_references_and_ranges_are_refused():
    good = build_score_reference(np.arange(5, dtype=np.float32)[:, None], ["aesthetic"], source="s")
    wrong_head = copy.deepcopy(good)
    wrong_head["heads"]["sharpness"] = wrong_head["heads"].pop("aesthetic")
    with pytest.raises(ValueError, match="sharpness"):
        AesMambaConfig.tiny(score_reference=wrong_head)
    unsorted = copy.deepcopy(good)
    unsorted["heads"]["aesthetic"]["quantiles"] = [3.0, 1.0, 2.0]
    with pytest.raises(ValueError, match="sorted"):
        AesMambaConfig.tiny(score_reference=unsorted)
    heads = AesMambaConfig.tiny().heads
    heads[0]["binary_threshold"] = 12.0
    with pytest.raises(ValueError, match="binary_threshold 12.0 is outside"):
        AesMambaConfig.tiny(heads=heads)


def test_model_card_states_the_reference():
    config = config_with_reference(np.linspace(2, 8, 200, dtype=np.float32))
    card = str(build_model_card(config))
    assert "## Score reference" in card and "**test set**, 200 images" in card and "exact empirical CDF" in card
    bare = str(build_model_card(AesMambaConfig.tiny()))
    assert "aesmamba calibrate" in bare.split("## Score reference")[1].split("\n## ")[0]
    replaced = with_score_reference(card, None)
    assert replaced.count("## Score reference") == 1 and "**test set**" not in replaced


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    """A tiny saved model calibrated by the CLI on a folder of 6 images (one unreadable)."""
    root = tmp_path_factory.mktemp("calibrate")
    model = save_tiny_model(root / "model")
    images = root / "val"
    images.mkdir()
    for i in range(5):
        random_image(i, (40 + 9 * i, 36)).save(images / f"{i}.png")
    (images / "broken.jpg").write_bytes(b"not a jpeg")
    assert main(["calibrate", str(model), str(images), "--source", "my validation photos"]) == 0
    return model, images


def test_cli_calibrate_writes_the_reference_and_pipeline_returns_percentiles(calibrated):
    from transformers import pipeline

    model, images = calibrated
    reference = json.loads((model / "config.json").read_text())["score_reference"]
    assert reference["size"] == 5 and reference["num_failed"] == 1
    assert reference["source"] == "my validation photos"
    scorer = pipeline("image-aesthetics", model=str(model))
    paths = sorted(str(p) for p in images.glob("*.png"))
    results = scorer(paths, batch_size=8)  # the batch the CLI scored them in
    scores = np.array([r["score"] for r in results], np.float32)
    assert [r["percentile"] for r in results] == pytest.approx(list(ecdf_percent(scores, scores)))
    single = scorer(paths[0], clamp=True)  # one input: transformers' own preprocess/forward/postprocess path
    assert 0.0 <= single["percentile"] <= 100.0 and single["heads"]["aesthetic"]["percentile"] == single["percentile"]


def test_cli_score_writes_percentile_columns(calibrated, tmp_path, capsys):
    model, images = calibrated
    assert main(["info", str(model)]) == 0
    assert "score reference: my validation photos, 5 images (exact)" in capsys.readouterr().out
    out = tmp_path / "scores.csv"
    assert main(["score", str(images), "--model", str(model), "--output", str(out), "--no-progress"]) == 0
    rows = [r for r in csv.DictReader(out.open()) if r["status"] == "ok"]
    scores = np.array([float(r["score"]) for r in rows], np.float32)
    assert [float(r["percentile"]) for r in rows] == pytest.approx(list(ecdf_percent(scores, scores)))


def test_cli_calibrate_from_an_image_list_into_a_copy(calibrated, tmp_path):
    model, images = calibrated
    listing = tmp_path / "val.csv"
    listing.write_text("path\n" + "".join(f"{images / f'{i}.png'}\n" for i in (0, 1, 2)))
    before = (model / "config.json").read_bytes()
    out = tmp_path / "calibrated-copy"
    assert main(["calibrate", str(model), str(listing), "--output", str(out), "--exact-limit", "2"]) == 0
    assert (model / "config.json").read_bytes() == before  # the source folder is left alone
    reference = json.loads((out / "config.json").read_text())["score_reference"]
    assert reference["size"] == 3 and reference["method"] == "quantiles"
    assert (out / "model.safetensors").is_file()
    assert main(["calibrate", str(model), str(tmp_path / "nothing-here")]) == 2


def test_dataset_score_reference_holds_the_scores_of_a_labelled_split(tmp_path):
    from datasets import Image

    from _training_toy import make_toy_images
    from aesmamba_hf import load_model
    from aesmamba_hf.evaluation.calibration import dataset_score_reference

    model_dir = save_tiny_model(tmp_path / "model", dataset="TAD66K")
    split = make_toy_images(tmp_path / "val", 6, seed=4, prefix="val")
    loaded = load_model(model_dir)
    reference = dataset_score_reference(loaded.model, loaded.processor, split, source="toy validation", batch_size=6)
    paths = [row["path"] for row in split.cast_column("image", Image(decode=False))["image"]]
    scored = loaded.predictor(batch_size=6).predict(paths)
    assert reference["size"] == 6 and reference["source"] == "toy validation"
    np.testing.assert_array_equal(np.float32(reference["heads"]["aesthetic"]["sorted_scores"]),
                                  np.sort(np.float32([r["score"] for r in scored])))
