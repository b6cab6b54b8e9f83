"""Per-user adapters (PEFT) and `aesmamba personalize` on a tiny P model: save/load/swap, merged == base +
adapter, the CLI on a small folder, and every bad-input case."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from _io_helpers import random_image
from test_piaa import small_processor, tiny_p_model

os.environ.setdefault("OMP_NUM_THREADS", "1")

PROFILE = {"openness": 7, "conscientiousness": 5, "extroversion": 4, "agreeableness": 6, "neuroticism": 3,
           "art_experience": "beginner", "photo_experience": "competent"}
N_IMAGES = 8


def write_ratings(folder: Path, scores, name: str = "ratings.csv", rows=None) -> Path:
    """Images under folder/imgs and a ratings CSV with paths relative to it."""
    (folder / "imgs").mkdir(parents=True, exist_ok=True)
    for i in range(N_IMAGES):
        if not (folder / "imgs" / f"{i}.png").exists():
            random_image(i, size=(40, 32)).save(folder / "imgs" / f"{i}.png")
    rows = rows if rows is not None else [[f"imgs/{i}.png", s] for i, s in enumerate(scores)]
    with open(folder / name, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "score"])
        writer.writerows(rows)
    return folder / name


def fast_config(**overrides):
    from aesmamba_hf.piaa import PersonalizeConfig

    values = dict(epoch_candidates=(3,), learning_rate=5e-2, batch_size=8, augment=False, device="cpu")
    values.update(overrides)
    return PersonalizeConfig(**values)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from aesmamba_hf.piaa import personalize

    base = tmp_path_factory.mktemp("personalize")
    model_dir = base / "model"
    tiny_p_model().save_pretrained(model_dir)
    small_processor().save_pretrained(model_dir)
    (base / "profile.json").write_text(json.dumps(PROFILE))
    ratings_a = write_ratings(base / "data", [1, 2, 3, 4, 5, 1.5, 2.5, 4.5], "a.csv")
    ratings_b = write_ratings(base / "data", [5, 4, 3, 2, 1, 4.5, 3.5, 1.5], "b.csv")
    result_a = personalize(str(model_dir), ratings_a, base / "profile.json", base / "adapter_a", config=fast_config())
    result_b = personalize(str(model_dir), ratings_b, PROFILE, base / "adapter_b", config=fast_config(seed=1))
    return base, model_dir, result_a, result_b


def _images(base: Path) -> list[str]:
    return [str(base / "data" / "imgs" / f"{i}.png") for i in range(N_IMAGES)]


def _scores(model, processor, images, profile=PROFILE) -> np.ndarray:
    from aesmamba_hf.inference.predictor import Predictor

    result = Predictor(model, processor).predict_examples([{"image": p, "user": profile} for p in images])
    assert not result.errors
    return result.scores


def test_adapter_folder_is_peft_and_small(setup):
    from aesmamba_hf.piaa.adapters import adapter_size_bytes, model_size_bytes

    base, model_dir, result, _ = setup
    folder = result.adapter_dir
    assert {"adapter_config.json", "adapter_model.safetensors", "personalization.json", "profile.json"} <= {
        p.name for p in folder.iterdir()}
    assert not list(folder.parent.glob(".adapter_a.partial-*"))
    peft_config = json.loads((folder / "adapter_config.json").read_text())
    assert peft_config["peft_type"] == "LORA" and peft_config["r"] == 4
    meta = json.loads((folder / "personalization.json").read_text())
    assert meta["epochs"] == 3 and meta["num_ratings"] == N_IMAGES
    assert "7" in meta["prompt"] and meta["base_task"] == "P" and meta["profile"] == PROFILE
    assert result.adapter_bytes == adapter_size_bytes(folder)
    assert 0 < adapter_size_bytes(folder) <= 0.02 * model_size_bytes(model_dir)


def test_merged_equals_base_plus_adapter_and_differs_from_base(setup):
    from aesmamba_hf.inference.loading import load_model
    from aesmamba_hf.piaa import load_adapter

    base, model_dir, result, _ = setup
    images = _images(base)
    plain = load_model(str(model_dir), device="cpu", allow_random=True)
    base_scores = _scores(plain.model, plain.processor, images)
    with_adapter = load_adapter(plain.model, result.adapter_dir)
    adapter_scores = _scores(with_adapter, plain.processor, images)
    merged = load_model(str(model_dir), device="cpu", allow_random=True, adapter=result.adapter_dir)
    merged_scores = _scores(merged.model, merged.processor, images)
    np.testing.assert_allclose(merged_scores, adapter_scores, atol=1e-5)
    assert np.abs(adapter_scores - base_scores).max() > 1e-3  # the adapter changed the scores
    # and the trained adapter ranks the user's own ratings closer than the base did
    ratings = [1, 2, 3, 4, 5, 1.5, 2.5, 4.5]
    assert np.corrcoef(adapter_scores[:, 0], ratings)[0, 1] > np.corrcoef(base_scores[:, 0], ratings)[0, 1]


def test_bank_swaps_users_on_one_base(setup):
    from aesmamba_hf.inference.loading import load_model
    from aesmamba_hf.piaa import AdapterBank

    base, model_dir, result_a, result_b = setup
    images = _images(base)
    expected = {}
    for name, result in (("a", result_a), ("b", result_b)):
        merged = load_model(str(model_dir), device="cpu", allow_random=True, adapter=result.adapter_dir)
        expected[name] = _scores(merged.model, merged.processor, images)
    plain = load_model(str(model_dir), device="cpu", allow_random=True)
    base_scores = _scores(plain.model, plain.processor, images)
    embeddings = plain.model.aesmamba.vision_model.embeddings if hasattr(
        plain.model.aesmamba.vision_model, "embeddings") else None
    bank = AdapterBank(plain.model)
    bank.add("a", result_a.adapter_dir)
    bank.add("b", result_b.adapter_dir)
    assert bank.users == ["a", "b"] and bank.prompts["a"]
    for name in ("b", "a", "b"):
        np.testing.assert_allclose(_scores(bank.use(name), plain.processor, images), expected[name], atol=1e-5)
    np.testing.assert_allclose(_scores(bank.use(None), plain.processor, images), base_scores, atol=1e-6)
    assert not np.allclose(expected["a"], expected["b"], atol=1e-3)
    if embeddings is not None:  # the base's modules are shared, not reloaded
        assert bank.model.get_base_model().aesmamba.vision_model.embeddings is embeddings
    with pytest.raises(KeyError, match="no adapter named 'c'"):
        bank.use("c")


def test_pipeline_with_adapter(setup):
    from transformers import pipeline

    import aesmamba_hf  # noqa: F401  (registers the task)
    from aesmamba_hf.inference.loading import load_model

    base, model_dir, result, _ = setup
    images = _images(base)[:3]
    pipe = pipeline("image-aesthetics", model=str(model_dir), adapter=str(result.adapter_dir))
    records = pipe(images, user=PROFILE)
    merged = load_model(str(model_dir), device="cpu", allow_random=True, adapter=result.adapter_dir)
    expected = _scores(merged.model, merged.processor, images)[:, 0]
    np.testing.assert_allclose([r["score"] for r in records], expected, atol=1e-4)


def test_cli_personalize_then_score(setup, tmp_path, capsys):
    from aesmamba_hf.cli import main

    base, model_dir, _, _ = setup
    ratings = write_ratings(tmp_path, [2, 3, 4, 5, 1, 2, 3, 4])
    (tmp_path / "me.json").write_text(json.dumps(PROFILE))
    code = main(["personalize", "--model", str(model_dir), "--ratings", str(ratings), "--profile",
                 str(tmp_path / "me.json"), "--output", str(tmp_path / "mine"), "--max-epochs", "2", "--quiet"])
    assert code == 0, capsys.readouterr().err
    assert "adapter:" in capsys.readouterr().out
    meta = json.loads((tmp_path / "mine" / "personalization.json").read_text())
    assert meta["epochs"] in (0, 2) and set(meta["validation_srcc"]) == {"0", "2"}  # candidates up to 2
    cli_scores_equal_the_merged_model(model_dir, tmp_path / "mine", tmp_path, capsys)
    # an existing adapter is not replaced without --overwrite
    code = main(["personalize", "--model", str(model_dir), "--ratings", str(ratings), "--profile",
                 str(tmp_path / "me.json"), "--output", str(tmp_path / "mine"), "--quiet"])
    assert code == 1 and "not empty" in capsys.readouterr().err


def cli_scores_equal_the_merged_model(model_dir: Path, adapter: Path, tmp_path: Path, capsys) -> None:
    """`aesmamba score tmp_path/imgs --adapter ADAPTER` gives the merged model's scores (the adapter's profile.json
    builds the prompt: no --user needed)."""
    from aesmamba_hf.cli import main
    from aesmamba_hf.inference.loading import load_model

    out = tmp_path / "scores.csv"
    code = main(["score", str(tmp_path / "imgs"), "--model", str(model_dir), "--adapter", str(adapter),
                 "-o", str(out), "--random-weights", "--no-progress", "--workers", "0"])
    assert code == 0, capsys.readouterr().err
    rows = sorted(csv.DictReader(open(out, newline="")), key=lambda r: r["path"])
    merged = load_model(str(model_dir), device="cpu", allow_random=True, adapter=adapter)
    expected = _scores(merged.model, merged.processor, [r["path"] for r in rows])[:, 0]
    np.testing.assert_allclose([float(r["score"]) for r in rows], expected, atol=1e-3)


def _bad_unreadable(folder: Path) -> Path:
    (folder / "imgs" / "broken.png").write_bytes(b"not a png")
    return write_ratings(folder, None, rows=[[f"imgs/{i}.png", 3] for i in range(5)] + [["imgs/broken.png", 3]])


BAD_RATINGS = {
    "missing image": (lambda d: write_ratings(d, None, rows=[[f"imgs/{i}.png", 3] for i in range(5)]
                                              + [["imgs/nope.png", 3]]), r"row 7: image .*nope.png does not exist"),
    "unreadable image": (_bad_unreadable, r"row 7: .*broken.png"),
    "NaN score": (lambda d: write_ratings(d, [3, 3, "nan", 3, 3, 3]), r"row 4, column score: .*NaN"),
    "empty score": (lambda d: write_ratings(d, [3, 3, 3, "", 3, 3]), r"row 5, column score: the score is empty"),
    "not a number": (lambda d: write_ratings(d, [3, "good", 3, 3, 3, 3]), r"row 3, column score: 'good' is not"),
    "out of range": (lambda d: write_ratings(d, [3, 3, 3, 3, 7, 3]), r"row 6, column score: the score 7 is outside"),
    "duplicate image": (lambda d: write_ratings(d, None, rows=[[f"imgs/{i}.png", 3] for i in range(5)]
                                                + [["imgs/../imgs/2.png", 4]]), r"row 7: .*rated twice \(also row 4\)"),
    "too few rows": (lambda d: write_ratings(d, [3, 4, 5]), r"3 rating\(s\); personalising needs at least 4"),
    "missing column": (lambda d: (d / "r.csv").write_text("image,rating\nimgs/0.png,3\n") and d / "r.csv",
                       r"missing column\(s\) \['score'\]"),
    "unknown column": (lambda d: (d / "r.csv").write_text("image,score,mood\nimgs/0.png,3,ok\n") and d / "r.csv",
                       r"unknown column\(s\) \['mood'\]"),
}


@pytest.mark.parametrize("case", sorted(BAD_RATINGS))
def test_bad_ratings_name_the_row_and_write_nothing(setup, tmp_path, case):
    from aesmamba_hf.piaa import RatingsError, personalize

    _, model_dir, _, _ = setup
    write_ratings(tmp_path, [3] * N_IMAGES, name="ok.csv")  # the images
    make, message = BAD_RATINGS[case]
    ratings = make(tmp_path)
    with pytest.raises(RatingsError, match=message):
        personalize(str(model_dir), ratings, PROFILE, tmp_path / "out", config=fast_config())
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.*"))


def test_bad_profile_and_model_mismatch(setup, tmp_path):
    from aesmamba_hf.piaa import AdapterError, load_adapter, personalize

    base, model_dir, result, _ = setup
    ratings = write_ratings(tmp_path, [3, 4, 2, 5, 1, 3, 4, 2])
    (tmp_path / "p.json").write_text(json.dumps({**PROFILE, "favourite_colour": "blue"}))
    with pytest.raises(ValueError, match=r"unknown user-profile keys \['favourite_colour'\]"):
        personalize(str(model_dir), ratings, tmp_path / "p.json", tmp_path / "out", config=fast_config())
    with pytest.raises(ValueError, match="art_experience"):
        personalize(str(model_dir), ratings, {**PROFILE, "art_experience": "guru"}, tmp_path / "out",
                    config=fast_config())
    with pytest.raises(ValueError, match="needs|profile"):
        personalize(str(model_dir), ratings, None, tmp_path / "out", config=fast_config())
    assert not (tmp_path / "out").exists()
    from aesmamba_hf import AesMambaConfig, AesMambaForAestheticAssessment

    other = AesMambaForAestheticAssessment(AesMambaConfig.tiny("F")).eval()
    with pytest.raises(AdapterError, match="trained on a P model|heads"):
        load_adapter(other, result.adapter_dir)
    with pytest.raises(AdapterError, match="not a PEFT adapter folder"):
        load_adapter(other, tmp_path)


def test_in_memory_ratings_and_base_untouched(setup):
    """The Python API as an app calls it: PIL images + scores in memory, no output folder."""
    from PIL import Image

    from aesmamba_hf.piaa import personalize

    base, _, _, _ = setup
    model = tiny_p_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ratings = [{"image": Image.open(p).convert("RGB"), "score": s}
               for p, s in zip(_images(base), [1, 2, 3, 4, 5, 1, 2, 3])]
    result = personalize(model, ratings, PROFILE, config=fast_config(), processor=small_processor())
    assert result.adapter_dir is None and result.epochs == 3 and result.num_ratings == N_IMAGES
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # trained on a copy
    assert all(p.requires_grad is False for n, p in result.model.named_parameters() if "lora_" not in n)


def test_adapter_merges_in_float32_before_a_bf16_cast_and_is_noted(setup):
    """load_model(dtype=bf16, adapter=) == the float32 merge cast to bf16 (a bf16 merge rounds the LoRA delta
    twice), and the adapter is named in the loader's notes."""
    from aesmamba_hf.inference.loading import load_model

    base, model_dir, result, _ = setup
    exact = load_model(str(model_dir), device="cpu", allow_random=True, adapter=result.adapter_dir)
    half = load_model(str(model_dir), device="cpu", allow_random=True, adapter=result.adapter_dir,
                      dtype="bfloat16")
    expected = {k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in exact.model.state_dict().items()}
    got = half.model.state_dict()
    assert expected.keys() == got.keys()
    for name, tensor in expected.items():
        assert torch.equal(got[name], tensor), name
    assert [n for n in half.notes if str(result.adapter_dir) in n and "kind lora_heads" in n]


def test_adapted_model_gets_no_percentile_from_the_base_reference(setup, tmp_path):
    import shutil

    from aesmamba_hf.evaluation.calibration import build_score_reference, write_score_reference
    from aesmamba_hf.inference.loading import load_model
    from aesmamba_hf.inference.predictor import Predictor
    from aesmamba_hf.piaa import load_adapter

    base, model_dir, result, _ = setup
    folder = tmp_path / "model"
    shutil.copytree(model_dir, folder)
    plain = load_model(str(folder), device="cpu", allow_random=True)
    heads = list(plain.config.head_names)
    write_score_reference(folder, build_score_reference(np.random.default_rng(0).random((20, len(heads))) * 4 + 1,
                                                        heads, source="test"))
    example = [{"image": _images(base)[0], "user": PROFILE}]
    plain = load_model(str(folder), device="cpu", allow_random=True)
    assert "percentile" in plain.predictor().predict_examples(example).records(plain.config)[0]
    merged = load_model(str(folder), device="cpu", allow_random=True, adapter=result.adapter_dir)
    predictor = merged.predictor()
    assert "percentile" not in predictor.predict_examples(example).records(predictor.config)[0]
    assert [n for n in merged.notes if n.startswith("no percentiles")]
    peft = Predictor(load_adapter(plain.model, result.adapter_dir), plain.processor)
    assert "percentile" not in peft.predict_examples(example).records(peft.config)[0]


def test_fit_trains_the_adapter_with_the_frozen_base_in_eval_and_refuses_a_tune(setup, tmp_path):
    """fit() on a PEFT model: the LoRA dropout trains, every dropout of the frozen base (vision, BERT, heads)
    stays in eval mode; an explicit tune= is refused."""
    from aesmamba_hf.inference.loading import load_model
    from aesmamba_hf.inference.predictor import overall_head_index
    from aesmamba_hf.piaa.adapters import attach_adapter
    from aesmamba_hf.piaa.personalize import _train_config, _training_rows, load_profile, read_ratings
    from aesmamba_hf.training.finetune import fit

    base, model_dir, _, _ = setup
    loaded = load_model(str(model_dir), device="cpu", allow_random=True)
    config = loaded.config
    rows, _ = _training_rows(read_ratings(base / "data" / "a.csv", config), loaded.model, loaded.processor,
                             load_profile(PROFILE), 8)
    model = attach_adapter(loaded.model, "lora_heads", 4, dropout=0.1)
    seen: dict[str, set] = {}
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Dropout):
            module.register_forward_pre_hook(
                lambda m, args, name=name: seen.setdefault(name, set()).add(m.training) if torch.is_grad_enabled()
                else None)
    cfg = _train_config(fast_config(), "P", config.head_names[overall_head_index(config)], 1, False,
                        torch.device("cpu"), str(tmp_path))
    fit(cfg, model, loaded.processor, rows, quiet=True)
    lora = {n for n in seen if "lora_dropout" in n}
    assert lora and all(seen[n] == {True} for n in lora)
    assert set(seen) - lora and all(seen[n] == {False} for n in set(seen) - lora), seen
    with pytest.raises(ValueError, match="tune='heads' with a PEFT model"):
        fit(cfg, model, loaded.processor, rows, tune="heads", quiet=True)
