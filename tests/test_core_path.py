"""One folder through every entry point: the same tokenizer, the same random-weights decision, the same scores.

The pipeline, the scorer, the predictor, ``aesmamba score``, the evaluation report, the PIAA predictor and the
Trainer's evaluation all load a model folder through :func:`aesmamba_hf.load_model`'s rules and score through
:class:`aesmamba_hf.Predictor` (or its collator); a regression in any one of them shows up here as a score that
differs from the others.
"""

from __future__ import annotations

import csv
import json
import warnings

import numpy as np
import pytest
import torch
from datasets import Dataset
from transformers import pipeline

from _io_helpers import random_image, save_tiny_model
from aesmamba_hf import Predictor, RandomWeightsError, load_model, load_scorer
from aesmamba_hf.cli import main
from aesmamba_hf.inference.loading import LoaderWarning, ModelLoadError

USER = {"personality-O": 7, "personality-C": 6, "personality-E": 4, "personality-A": 6, "personality-N": 3,
        "artExperience": "proficient", "photographyExperience": "beginner"}


def _spread_heads(folder, seed: int = 0) -> None:
    """Give the saved tiny model's heads weights large enough that images score differently."""
    from safetensors.torch import load_file, save_file

    state = load_file(folder / "model.safetensors")
    generator = torch.Generator().manual_seed(seed)
    for key, value in state.items():
        if key.startswith("heads.") and key.endswith("weight"):
            state[key] = torch.randn(value.shape, generator=generator) * 0.5
    save_file(state, folder / "model.safetensors", metadata={"format": "pt"})


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    paths = []
    for i in range(5):
        path = root / f"photo {i}.png"  # a space in the name: paths must come back byte-exact
        random_image(i, size=(40 + 8 * i, 48)).save(path)
        paths.append(str(path))
    return paths


def _reference(folder, photos, **text) -> np.ndarray:
    loaded = load_model(folder)
    return np.asarray([r["heads"] for r in loaded.predictor(batch_size=2).predict(photos, **text)])


def _head_scores(results) -> np.ndarray:
    return np.asarray([[h["score"] for h in r["heads"].values()] for r in results])


@pytest.mark.parametrize("task", ["V", "F"])
def test_image_models_score_the_same_through_every_entry_point(task, photos, tmp_path, monkeypatch):
    folder = save_tiny_model(tmp_path / task, task)
    _spread_heads(folder)
    reference = _head_scores(load_model(folder).predictor(batch_size=2).predict(photos))
    assert reference.shape == (5, 1 if task == "V" else 9)
    assert np.ptp(reference[:, 0]) > 1e-3  # the images are told apart: a real comparison, not constants

    # pipeline, one by one and batched
    scorer_pipe = pipeline("image-aesthetics", model=str(folder))
    np.testing.assert_allclose(_head_scores(scorer_pipe(photos, batch_size=3)), reference, rtol=1e-5, atol=1e-6)
    # pyiqa-style scorer, every head
    scorer = load_scorer(folder, head="all", device="cpu")
    np.testing.assert_allclose(scorer(photos).numpy(), reference, rtol=1e-5, atol=1e-6)
    # aesmamba score (CSV), batch size 2
    output = tmp_path / f"{task}.csv"
    assert main(["score", *photos, "--model", str(folder), "--output", str(output), "--batch-size", "2",
                 "--no-progress"]) == 0
    rows = {r["path"]: r for r in csv.DictReader(open(output, newline="", encoding="utf-8"))}
    assert sorted(rows) == sorted(photos)
    column = "score" if task == "V" else "score_aesthetic"
    np.testing.assert_allclose([float(rows[p][column]) for p in photos], reference[:, 0], rtol=1e-5, atol=1e-6)
    # the evaluation report's predictor on a labelled dataset of the same images
    from aesmamba_hf.evaluation.report import predict_dataset

    loaded = load_model(folder)
    if task == "F":
        labels = [[1.0 + (i + k) % 5 for k in range(9)] for i in range(5)]
    else:  # AVA vote counts over the 10 bins
        labels = [[float(1 + (i + k) % 3) for k in range(10)] for i in range(5)]
    dataset = Dataset.from_dict({"image": photos, "labels": labels, "image_id": [str(i) for i in range(5)]})
    predicted = predict_dataset(loaded.model, loaded.processor, dataset, batch_size=4)
    np.testing.assert_allclose(predicted.scores, reference, rtol=1e-5, atol=1e-6)
    # the Trainer's evaluation (the collator the fine-tuning path uses)
    from aesmamba_hf.training import TrainConfig, build_trainer

    cfg = TrainConfig(task=task, dataset="PARA" if task == "F" else "AVA", output_dir=str(tmp_path / "run"),
                      eval_batch_size=3, check_images=False)
    trainer = build_trainer(cfg, loaded.model, loaded.processor, dataset, dataset)
    outputs = trainer.predict(dataset).predictions  # (loss per batch, scores, [distribution], class logits)
    trainer_scores = next(np.asarray(a) for a in outputs if np.asarray(a).shape == reference.shape)
    np.testing.assert_allclose(trainer_scores, reference, rtol=1e-5, atol=1e-6)


def test_text_models_agree_and_share_the_tokenizer_rule(photos, tmp_path):
    # an M folder saved WITHOUT tokenizer files: every entry point gets the bundled BERT-uncased vocabulary
    folder = save_tiny_model(tmp_path / "M", "M")
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        (folder / name).unlink(missing_ok=True)
    data = json.loads((folder / "processor_config.json").read_text())
    _spread_heads(folder)
    comments = ["a stunning composition, great light", "blurry and dull", "", "nice colours", "meh"]
    with pytest.warns(LoaderWarning, match="bundled BERT-base-uncased"):
        loaded = load_model(folder)
    assert len(loaded.processor.tokenizer) == 30522 and data["clean_comments"] is True
    results = loaded.predictor(batch_size=2).predict(photos, comments=comments)
    reference = _head_scores(results)
    # a blank comment is scored from the image alone, like no comment at all
    image_only = _head_scores(loaded.predictor().predict(photos[2]))
    np.testing.assert_allclose(reference[2], image_only[0], rtol=1e-6)
    assert abs(reference[0, 0] - _head_scores(loaded.predictor().predict(photos[0]))[0, 0]) > 1e-6

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LoaderWarning)
        scorer_pipe = pipeline("image-aesthetics", model=str(folder))
        piped = [scorer_pipe({"image": p, "comment": c}) for p, c in zip(photos, comments)]
        scored = load_scorer(folder, head="all", device="cpu")(photos, comments=comments)
    np.testing.assert_allclose(_head_scores(piped), reference, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(scored.numpy(), reference, rtol=1e-5, atol=1e-6)
    comments_file = tmp_path / "comments.csv"
    with open(comments_file, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "comment"])
        writer.writerows(zip(photos, comments))
    output = tmp_path / "m.jsonl"
    assert main(["score", *photos, "--model", str(folder), "--comments", str(comments_file), "--output",
                 str(output), "--no-progress", "--batch-size", "3"]) == 0
    rows = {r["path"]: r for r in map(json.loads, output.read_text().splitlines())}
    np.testing.assert_allclose([rows[p]["score"] for p in photos], reference[:, 0], rtol=1e-5, atol=1e-6)


def test_personalised_model_agrees_across_pipeline_predictor_and_piaa(photos, tmp_path):
    from aesmamba_hf.piaa import predict as piaa_predict

    folder = save_tiny_model(tmp_path / "P", "P")
    _spread_heads(folder)
    loaded = load_model(folder)
    reference = _head_scores(loaded.predictor(batch_size=4).predict(photos, users=USER))
    rows = [{"image": p, "user": USER, "labels": [3.0] * 9} for p in photos]
    np.testing.assert_allclose(piaa_predict(loaded.model, loaded.processor, rows, batch_size=2), reference,
                               rtol=1e-5, atol=1e-6)
    piped = pipeline("image-aesthetics", model=str(folder))(photos, user=USER)
    np.testing.assert_allclose(_head_scores(piped), reference, rtol=1e-5, atol=1e-6)
    profile = tmp_path / "me.json"
    profile.write_text(json.dumps(USER))
    output = tmp_path / "p.csv"
    assert main(["score", *photos, "--model", str(folder), "--user", str(profile), "--output", str(output),
                 "--no-progress"]) == 0
    csv_rows = {r["path"]: r for r in csv.DictReader(open(output, newline="", encoding="utf-8"))}
    np.testing.assert_allclose([float(csv_rows[p]["score_aesthetic"]) for p in photos], reference[:, 0],
                               rtol=1e-5, atol=1e-6)


def test_random_weights_are_refused_everywhere_unless_allowed(photos, tmp_path, capsys):
    folder = save_tiny_model(tmp_path / "R", "V")
    config = json.loads((folder / "config.json").read_text())
    config["random_weights"] = True
    (folder / "config.json").write_text(json.dumps(config))
    from aesmamba_hf.evaluation.report import load_model_and_processor
    from aesmamba_hf.hub import ExportError, export_model

    with pytest.raises(RandomWeightsError, match="RANDOM weights"):
        load_model(folder)
    with pytest.raises(RandomWeightsError):
        load_scorer(folder)
    with pytest.raises(RandomWeightsError):
        load_model_and_processor(folder)
    with pytest.raises(ExportError, match="RANDOM weights"):
        export_model(folder, tmp_path / "export")
    assert main(["score", photos[0], "--model", str(folder), "--output", str(tmp_path / "o.csv")]) == 2
    assert "RANDOM weights" in capsys.readouterr().err
    with pytest.warns(LoaderWarning, match="RANDOM weights"):
        pipeline("image-aesthetics", model=str(folder))  # transformers' loader: flagged loudly
    with pytest.warns(LoaderWarning, match="RANDOM weights"):
        assert load_model(folder, allow_random=True).random_weights


def test_loader_errors_name_the_folder(tmp_path):
    with pytest.raises(ModelLoadError, match="no config.json"):
        (tmp_path / "empty").mkdir()
        load_model(tmp_path / "empty")
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(tmp_path / "missing")
    folder = save_tiny_model(tmp_path / "noweights", "V")
    (folder / "model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="no weights"):
        load_model(folder)
    folder = save_tiny_model(tmp_path / "noproc", "V", with_processor=False)
    with pytest.warns(LoaderWarning, match="no processor files"):
        assert load_model(folder).processor.image_processor.size.height == 224


def test_predictor_keeps_going_past_bad_items(photos, tmp_path):
    folder = save_tiny_model(tmp_path / "V", "V")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    predictor = Predictor(*load_model(folder), batch_size=2)
    results = predictor.predict([photos[0], str(broken), str(tmp_path / "missing.png"), photos[1]])
    assert [r["status"] for r in results] == ["ok", "error", "error", "ok"]
    assert "not an image" in results[1]["error"] and "no such file" in results[2]["error"]
    alone = predictor.predict([photos[0], photos[1]])
    assert [r["score"] for r in alone] == pytest.approx([results[0]["score"], results[3]["score"]], rel=1e-6)


def test_features_are_what_the_heads_read(photos, tmp_path):
    """with_features returns the integrated feature of each example (NaN rows for failures), and the heads applied
    to it give the returned scores."""
    folder = save_tiny_model(tmp_path / "F", "F")
    loaded = load_model(folder)
    predictor = Predictor(loaded.model, loaded.processor, batch_size=2)
    rows = [{"image": photos[0]}, {"image": str(tmp_path / "missing.png")}, {"image": photos[2]}]
    result = predictor.predict_examples(rows, with_features=True)
    assert result.features.shape == (3, loaded.model.config.vision_config.hidden_size)
    assert np.isnan(result.features[1]).all() and np.isfinite(result.features[[0, 2]]).all()
    with torch.no_grad():
        heads = [loaded.model.heads[name](torch.from_numpy(result.features[[0, 2]]))[0]
                 for name in loaded.model.config.head_names]
    np.testing.assert_allclose(torch.stack(heads, dim=1).numpy(), result.scores[[0, 2]], rtol=1e-5, atol=1e-6)
    assert predictor.predict_examples(rows).features is None


def test_float_images_follow_one_range_rule(tmp_path):
    """A float image in [0, 1] is read as scaled (the same score as its 8-bit PIL image), not as 0-255."""
    from PIL import Image

    folder = save_tiny_model(tmp_path / "V", "V")
    _spread_heads(folder)
    scorer_pipe = pipeline("image-aesthetics", model=str(folder))
    pixels = np.random.default_rng(5).integers(0, 256, (40, 52, 3), dtype=np.uint8)
    pil_score = scorer_pipe(Image.fromarray(pixels))["score"]
    dark = scorer_pipe(Image.fromarray(pixels // 255))["score"]  # what reading [0, 1] as 0-255 would give
    assert abs(pil_score - dark) > 1e-4
    assert scorer_pipe(pixels.astype(np.float32) / 255.0)["score"] == pytest.approx(pil_score, rel=1e-6)
    assert scorer_pipe(torch.from_numpy(pixels).permute(2, 0, 1).float())["score"] == pytest.approx(pil_score,
                                                                                                     rel=1e-6)
    with pytest.raises(ValueError, match=r"\[0, 1\] \(scaled\) or \[0, 255\]"):
        scorer_pipe(pixels.astype(np.float32) * 2.0 - 300.0)


def test_scoring_leaves_the_callers_model_as_it_was(photos, tmp_path):
    """A predictor used mid-training, a scorer inside a trained module and an export touch nothing of the
    caller's model (mode, config)."""
    from aesmamba_hf import AesMambaConfig, AesMambaForAestheticAssessment
    from aesmamba_hf.hub import export_model
    from aesmamba_hf.inference.loading import load_processor_for_config
    from aesmamba_hf.inference.scorer import AestheticScorer

    config = AesMambaConfig.tiny("V")
    config.architectures = ["AesMambaForAestheticAssessment"]
    model = AesMambaForAestheticAssessment(config).train()
    processor = load_processor_for_config(config)
    Predictor(model, processor).predict(photos[:2])
    assert model.training and model.aesmamba.vision_model.training
    export_model(model, tmp_path / "export")
    assert model.config.random_weights is False and not hasattr(model.config, "untrained")
    assert json.loads((tmp_path / "export" / "config.json").read_text())["random_weights"] is False
    scorer = AestheticScorer(AesMambaForAestheticAssessment(config), processor)
    outer = torch.nn.ModuleDict({"judge": scorer}).train()  # e.g. a generator trained with the scorer as loss
    assert outer.training and not scorer.model.training
