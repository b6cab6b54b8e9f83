"""The image-aesthetics pipeline and load_scorer, on tiny random models of every task."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoModel, pipeline

import aesmamba_hf.pipeline  # noqa: F401  (registers the task; the package __init__ imports it too)
from _io_helpers import random_image, save_tiny_model
from aesmamba_hf.dataset_specs import AADB_MEAN
from aesmamba_hf.processing_aesmamba import AesMambaProcessor
from aesmamba_hf.prompts import UserProfile
from aesmamba_hf.scorer import load_scorer


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {task: save_tiny_model(root / task, task) for task in "VMFP"}


def _check_structure(result, config):
    heads = config.heads
    assert set(result) == {"status", "score", "score_range", "higher_is_better", "scale_class", "out_of_range",
                           "heads", "distribution"}
    assert result["status"] == "ok"
    assert list(result["heads"]) == [h["name"] for h in heads]
    assert result["score"] == result["heads"]["aesthetic"]["score"]
    for head in heads:
        entry = result["heads"][head["name"]]
        assert entry["score_range"] == head["score_range"]
        assert entry["higher_is_better"] is head["higher_is_better"]
        if head["num_scale_classes"]:
            assert 0 <= entry["scale_class"] < head["num_scale_classes"]
        else:
            assert entry["scale_class"] is None
    dist = next((h for h in heads if h["kind"] == "distribution"), None)
    if dist is None:
        assert result["distribution"] is None
    else:
        probabilities = np.array(result["distribution"]["probabilities"])
        assert result["distribution"]["bins"] == dist["bin_values"]
        assert probabilities.sum() == pytest.approx(1.0, abs=1e-5)
        assert result["score"] == pytest.approx(float(probabilities @ np.array(dist["bin_values"])), abs=1e-5)


@pytest.mark.parametrize("task", ["V", "M", "F", "P"])
def test_batched_results_equal_single_results(models, task, tmp_path):
    directory = models[task]
    config_json = json.loads((directory / "config.json").read_text())
    assert "custom_pipelines" not in config_json  # forces trust_remote_code even in-package
    pipe = pipeline("image-aesthetics", model=str(directory))
    assert isinstance(pipe.processor, AesMambaProcessor)
    images = [random_image(i, size=(60 + 7 * i, 40 + 5 * i)) for i in range(4)]
    images[1].save(tmp_path / "one.png")
    inputs: list = [images[0], str(tmp_path / "one.png"), images[2], images[3]]
    if task == "M":  # comments of different lengths -> padding inside the batch
        inputs = [{"image": img, "comment": c} for img, c in
                  zip(inputs, ["nice", "['great light', 'too dark :(']", "a b c d e f g h i j", "ok"])]
    if task == "P":
        users = [UserProfile(openness=3, art_experience="expert"), {"neuroticism": 9},
                 UserProfile(photo_experience="beginner", agreeableness=2, extroversion=10), {"openness": 1}]
        inputs = [{"image": img, "user": u} for img, u in zip(inputs, users)]
    single = [pipe(x) for x in inputs]
    batched = pipe(inputs, batch_size=3)
    assert len(batched) == 4
    config = pipe.model.config
    for one, many in zip(single, batched):
        _check_structure(one, config)
        assert one["heads"].keys() == many["heads"].keys()
        for name in one["heads"]:
            assert many["heads"][name]["score"] == pytest.approx(one["heads"][name]["score"], abs=1e-5)
            assert many["heads"][name]["scale_class"] == one["heads"][name]["scale_class"]
    if task in ("F", "P"):
        assert len(single[0]["heads"]) == 9
    if task in ("M", "P"):  # the text really reaches the model
        plain = pipe(images[0])
        assert plain["score"] != pytest.approx(single[0]["score"], abs=1e-7)


def test_pipeline_numbers_match_a_direct_forward(models, tmp_path):
    pipe = pipeline("image-aesthetics", model=str(models["V"]))
    image = random_image(7)
    model = AutoModel.from_pretrained(models["V"]).eval()
    processor = AesMambaProcessor.from_pretrained(models["V"])
    with torch.no_grad():
        out = model(**processor(images=image))
    result = pipe(image)
    assert result["score"] == pytest.approx(out.scores[0, 0].item(), abs=1e-6)
    assert result["distribution"]["probabilities"] == pytest.approx(out.distribution[0].tolist(), abs=1e-6)
    assert result["scale_class"] == out.class_logits[0, 0].argmax().item()
    assert pipe(image, decimals=2)["score"] == round(result["score"], 2)


def test_checkpoint_without_processor_files_uses_dataset_defaults(tmp_path):
    directory = save_tiny_model(tmp_path / "aadb", "V", dataset="AADB", with_processor=False)
    assert not (directory / "processor_config.json").exists()
    pipe = pipeline("image-aesthetics", model=str(directory))
    assert tuple(pipe.processor.image_processor.image_mean) == AADB_MEAN
    result = pipe(random_image(1))
    assert result["score_range"] == [0.0, 1.0] and result["distribution"] is None


def test_pipeline_errors(models, tmp_path):
    pipe = pipeline("image-aesthetics", model=str(models["V"]))
    with pytest.raises(ValueError, match="takes no text"):
        pipe(random_image(0), comment="nice")
    broken = tmp_path / "broken.jpg"
    broken.write_text("not a jpeg")
    with pytest.raises(ValueError, match="broken.jpg.*not an image"):
        pipe(str(broken))
    with pytest.raises(TypeError, match="without an 'image' key"):
        pipe({"picture": random_image(0)})


def test_scorer_paths_pil_and_tensors(models, tmp_path):
    scorer = load_scorer(models["V"], device="cpu")
    assert scorer.score_range == (1.0, 10.0) and scorer.lower_better is False
    images = [random_image(i) for i in range(3)]
    images[0].save(tmp_path / "a.png")
    scores = scorer([str(tmp_path / "a.png"), images[1], images[2]])
    assert scores.shape == (3,) and not scores.requires_grad
    pipe = pipeline("image-aesthetics", model=str(models["V"]))
    assert scores.tolist() == pytest.approx([pipe(img)["score"] for img in images], abs=1e-5)
    normalized = scorer.processor.image_processor(images, return_tensors="pt")["pixel_values"]
    torch.testing.assert_close(scorer(normalized), scores)
    f_scorer = load_scorer(models["F"], device="cpu", head="all")
    assert f_scorer(images).shape == (3, 9) and f_scorer.score_range == (1.0, 5.0)
    assert load_scorer(models["F"], device="cpu", head="light").head == "light"
    with pytest.raises(ValueError, match="unknown head 'sharpness'"):
        load_scorer(models["F"], device="cpu", head="sharpness")
    p_scorer = load_scorer(models["P"], device="cpu")
    with_user = p_scorer(images[:2], users=UserProfile(openness=9, art_experience="beginner"))
    assert with_user.shape == (2,) and not torch.allclose(with_user, p_scorer(images[:2]))


def test_scorer_as_loss_is_differentiable_and_matches_pil_preprocessing(models):
    scorer = load_scorer(models["V"], device="cpu", as_loss=True)
    # a smooth photo-like image: the torch and PIL resizes agree to about 1/255
    y, x = np.mgrid[0:90, 0:120]
    smooth = np.stack([np.sin(x / 17.0), np.cos(y / 11.0), np.sin((x + y) / 23.0)], axis=-1) * 0.4 + 0.5
    array = (smooth * 255).round().astype(np.uint8)
    tensor = torch.from_numpy(array).permute(2, 0, 1).float().div(255).unsqueeze(0).requires_grad_(True)
    pil_pixels = scorer.processor.image_processor(Image.fromarray(array), return_tensors="pt")["pixel_values"]
    torch_pixels = scorer.preprocess_tensor(tensor)
    assert (torch_pixels - pil_pixels).abs().mean() < 0.01
    assert (torch_pixels - pil_pixels).abs().max() < 0.1
    scores = scorer(tensor)
    assert scores.shape == (1,) and scores.requires_grad
    loss = scorer.loss(tensor)
    assert loss.item() == pytest.approx(-scores.item(), abs=1e-6)
    loss.backward()
    assert tensor.grad is not None and tensor.grad.abs().sum() > 0
    assert all(p.grad is None for p in scorer.model.parameters())  # the model stays frozen
