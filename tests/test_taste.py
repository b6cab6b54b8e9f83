"""Taste adapters (piaa.taste): the model's zero taste layer, the prior learned from many raters, the closed-form
fit of one user's taste from a few ratings, its exact PEFT form, and `personalize`/PIAA with kind 'taste'."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from scipy.stats import spearmanr

from _io_helpers import save_tiny_model
from test_personalize import PROFILE, _images, _scores, fast_config, write_ratings
from test_piaa import small_processor, tiny_p_model, write_para_piaa

os.environ.setdefault("OMP_NUM_THREADS", "1")


def _planted_raters(n_raters=40, n=200, dim=20, seed=0):
    """Raters whose errors against a base follow 2 of 20 feature directions, with rating noise."""
    rng = np.random.default_rng(seed)
    axes = rng.normal(size=(2, dim))
    raters = {}
    for r in range(n_raters + 1):
        features = rng.normal(size=(n, dim)) * rng.uniform(0.5, 2.0, dim) + 3.0
        taste = rng.normal(size=2) @ axes * 0.3
        raters[f"r{r}"] = (features, features @ taste + rng.normal(0, 0.5, n) + rng.normal(0, 0.3))
    return raters, axes


def test_prior_learns_how_raters_differ_and_ten_ratings_then_help():
    from aesmamba_hf.piaa.taste import fit_taste, taste_prior_from_residuals

    raters, axes = _planted_raters()
    new_features, new_residuals = raters.pop("r40")
    prior = taste_prior_from_residuals(raters, "aesthetic", rank=4, ridge_per_rating=0.05)
    # the prior's two largest directions span the planted axes (in standardised feature space)
    span = prior.factor[:2, :-1]  # rows over standardised features z = (f - mean) / scale
    planted = axes * prior.feature_scale[None, :]  # f·a = z·(a∘scale) + const
    q, _ = np.linalg.qr(span.T)
    explained = np.linalg.norm(q.T @ planted.T) ** 2 / np.linalg.norm(planted) ** 2
    assert explained > 0.9, explained
    assert 0.2 < prior.noise_var < 0.3  # the planted rating noise is 0.5² = 0.25
    # ten ratings of the new rater: their taste direction ranks their held-out images far better than the base
    row = fit_taste(prior, new_features[:10], new_residuals[:10])
    held = slice(10, None)
    predicted = new_features[held] @ row[:-1] + row[-1]
    assert spearmanr(predicted, new_residuals[held])[0] > 0.5
    # no ratings to speak of (constant residuals): the fit stays near zero, it does not invent a taste
    flat = fit_taste(prior, new_features[:10], np.zeros(10))
    assert np.abs(flat).max() < 1e-9


def test_base_taste_is_zero_and_loads_without_the_key(tmp_path):
    from safetensors.torch import load_file, save_file

    from aesmamba_hf import load_model
    from aesmamba_hf.training.finetune import trainable_parts

    folder = save_tiny_model(tmp_path / "P", "P")
    loaded = load_model(folder)
    assert loaded.model.taste is not None and not loaded.model.taste.weight.any()
    weights = load_file(folder / "model.safetensors")
    del weights["taste.weight"]  # a checkpoint saved before the layer existed
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    old = load_model(folder)
    assert not old.model.taste.weight.any()
    with trainable_parts(old.model, "all") as params:  # the base never trains it
        assert all(p is not old.model.taste.weight for p in params)
    assert old.model.taste.weight.requires_grad  # restored after the block
    v = save_tiny_model(tmp_path / "V", "V")  # a distribution head only: nothing for a taste row to add to
    assert load_model(v).model.taste is None


@pytest.fixture(scope="module")
def taste_base(tmp_path_factory):
    """A tiny P model folder with a prior fitted on synthetic residuals of its own features."""
    from aesmamba_hf.piaa.taste import taste_prior_from_residuals

    base = tmp_path_factory.mktemp("taste")
    model_dir = base / "model"
    model = tiny_p_model()
    model.save_pretrained(model_dir)
    small_processor().save_pretrained(model_dir)
    dim = model.taste.in_features - 1
    rng = np.random.default_rng(1)
    per_rater = {f"u{i}": (rng.normal(size=(30, dim)), rng.normal(size=30)) for i in range(6)}
    prior = taste_prior_from_residuals(per_rater, "aesthetic", rank=3, ridge_per_rating=0.03)
    prior.save(model_dir)
    return base, model_dir, prior


def test_taste_adapter_is_exact_merges_and_saves(taste_base, tmp_path):
    from aesmamba_hf.inference.predictor import Predictor
    from aesmamba_hf.piaa import load_adapter, merge_adapter
    from aesmamba_hf.piaa.taste import taste_adapter

    base, model_dir, prior = taste_base
    model, processor = tiny_p_model(), small_processor()
    write_ratings(base / "data", [1] * 8)
    images = _images(base)
    row = np.random.default_rng(2).normal(size=model.taste.in_features)
    adapted = taste_adapter(model, "aesthetic", row)
    assert not model.taste.weight.any()  # the base is left as it was
    base_out = Predictor(model, processor).predict_examples([{"image": p, "user": PROFILE} for p in images],
                                                              with_features=True)
    expected = base_out.scores.copy()
    expected[:, 0] += base_out.features.astype(np.float64) @ row[:-1] + row[-1]
    np.testing.assert_allclose(_scores(adapted, processor, images), expected, rtol=1e-5, atol=1e-5)
    adapted.save_pretrained(tmp_path / "adapter")
    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert config["r"] == 1 and config["lora_alpha"] == 1
    reloaded = load_adapter(tiny_p_model(), tmp_path / "adapter")
    np.testing.assert_allclose(_scores(reloaded, processor, images), expected, rtol=1e-5, atol=1e-5)
    merged = merge_adapter(tiny_p_model(), tmp_path / "adapter")
    np.testing.assert_allclose(_scores(merged, processor, images), expected, rtol=1e-5, atol=1e-5)


def test_personalize_taste_kind(taste_base, tmp_path):
    from aesmamba_hf.piaa import personalize
    from aesmamba_hf.piaa.taste import TastePriorError

    base, model_dir, _ = taste_base
    ratings = write_ratings(base / "data", [1, 2, 3, 4, 5, 1.5, 2.5, 4.5], "t.csv")
    result = personalize(str(model_dir), ratings, PROFILE, tmp_path / "adapter", config=fast_config(kind="taste"))
    meta = json.loads((tmp_path / "adapter" / "personalization.json").read_text())
    assert meta["epochs"] == 0 and meta["taste_prior"]["rank"] == 3 and meta["config"]["kind"] == "taste"
    assert result.adapter_bytes < 5_000  # one row of the feature size, plus its one-entry partner
    processor = small_processor()
    before = _scores(tiny_p_model(), processor, _images(base))
    after = _scores(result.model, processor, _images(base))
    assert np.abs(after[:, 0] - before[:, 0]).max() > 1e-6 and np.allclose(after[:, 1:], before[:, 1:], atol=1e-6)
    # an in-memory base has no folder to find the prior in: the error says what to pass
    with pytest.raises(TastePriorError, match="taste_prior"):
        personalize(tiny_p_model(), ratings, PROFILE, config=fast_config(kind="taste"), processor=processor)
    bare = tmp_path / "bare"
    tiny_p_model().save_pretrained(bare)
    processor.save_pretrained(bare)
    with pytest.raises(TastePriorError, match="no taste prior"):
        personalize(str(bare), ratings, PROFILE, config=fast_config(kind="taste"))


def test_protocol_with_taste_adapters(taste_base, tmp_path):
    from aesmamba_hf.piaa import PIAAConfig, run_piaa

    _, model_dir, _ = taste_base
    para = write_para_piaa(tmp_path / "para")
    config = PIAAConfig(shots=[4], repeats=1, num_users=None, min_test_rows=2, seed=3, adapter="taste",
                        taste_prior=str(model_dir / "taste_prior.safetensors"))
    model = tiny_p_model()
    result = run_piaa(model, para, tmp_path / "out", config, processor=small_processor())
    tuned = [r for r in result.records if r["k"] == 4]
    assert {r["tune"] for r in tuned} == {"adapter:taste"} and len({r["user"] for r in tuned}) == 2
    zero = {(r["user"], r["attribute"]): r["srcc"] for r in result.records if r["k"] == 0}
    changed = {r["attribute"] for r in tuned if abs(r["srcc"] - zero[(r["user"], r["attribute"])]) > 1e-9}
    assert changed <= {"aesthetic"}  # a taste row moves its own head only
    assert not model.taste.weight.any()
    with pytest.raises(ValueError, match="closed form"):
        PIAAConfig(adapter="taste", selection="validation")


def test_bad_priors_and_misplaced_prior_are_refused(taste_base, tmp_path):
    """A corrupt, foreign-format, wrong-shape or missing prior file is refused naming the file; a prior given to a
    trained kind is refused; a distribution head cannot take a taste row."""
    from aesmamba_hf.piaa import PIAAConfig, TastePrior, TastePriorError, personalize
    from aesmamba_hf.piaa.taste import estimate_taste_prior

    _, model_dir, prior = taste_base
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a safetensors file")
    with pytest.raises(TastePriorError, match="garbage.safetensors"):
        TastePrior.load(garbage)
    wrong = TastePrior(prior.factor, prior.feature_mean[:-1], prior.feature_scale, prior.noise_var, "aesthetic", 2, 9)
    with pytest.raises(TastePriorError, match="not a valid taste prior"):
        TastePrior.load(wrong.save(tmp_path / "wrong.safetensors"))
    with pytest.raises(TastePriorError, match="no taste prior at"):
        TastePrior.load(tmp_path / "missing.safetensors")
    reloaded = TastePrior.load(model_dir)  # the folder form; the round trip keeps every field
    np.testing.assert_allclose(reloaded.factor, prior.factor, rtol=1e-6)
    assert (reloaded.head, reloaded.raters, reloaded.noise_var) == (prior.head, prior.raters,
                                                                   pytest.approx(prior.noise_var))
    assert not list(tmp_path.glob("*.tmp"))
    with pytest.raises(ValueError, match="is for kind 'taste'"):
        personalize(str(model_dir), [], PROFILE, config=fast_config(taste_prior=str(model_dir)))
    with pytest.raises(ValueError, match="adapter='taste'"):
        PIAAConfig(adapter="lora_heads", taste_prior="x.safetensors")
    v = save_tiny_model(tmp_path / "V", "V")
    from aesmamba_hf import load_model

    loaded = load_model(v)
    with pytest.raises(TastePriorError, match="distribution head"):
        estimate_taste_prior(loaded.model, loaded.processor, {"a": [], "b": []})


def test_bank_swaps_a_taste_adapter_and_a_lora_adapter_on_one_base(taste_base, tmp_path):
    from aesmamba_hf.piaa import AdapterBank, load_adapter, personalize

    base, model_dir, _ = taste_base
    ratings = write_ratings(base / "data", [5, 4, 3, 2, 1, 4.5, 3.5, 1.5], "bank.csv")
    personalize(str(model_dir), ratings, PROFILE, tmp_path / "taste", config=fast_config(kind="taste"))
    personalize(str(model_dir), ratings, PROFILE, tmp_path / "lora", config=fast_config())
    processor, images = small_processor(), _images(base)
    alone = {name: _scores(load_adapter(tiny_p_model(), tmp_path / name), processor, images)
             for name in ("taste", "lora")}
    bank = AdapterBank(tiny_p_model())
    bank.add("t", tmp_path / "taste")
    bank.add("l", tmp_path / "lora")
    for user, name in (("t", "taste"), ("l", "lora"), ("t", "taste")):
        np.testing.assert_allclose(_scores(bank.use(user), processor, images), alone[name], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(_scores(bank.use(None), processor, images),
                               _scores(tiny_p_model(), processor, images), rtol=1e-5, atol=1e-5)


def test_cli_personalize_taste_then_score(taste_base, tmp_path, capsys):
    """`aesmamba personalize --kind taste` on a small folder, then `aesmamba score --adapter`: the scores are the
    merged model's; a base folder without a prior is refused with the way to make one."""
    from aesmamba_hf.cli import main
    from test_personalize import cli_scores_equal_the_merged_model

    _, model_dir, _ = taste_base
    ratings = write_ratings(tmp_path, [2, 3, 4, 5, 1, 2, 3, 4])
    (tmp_path / "me.json").write_text(json.dumps(PROFILE))
    args = ["personalize", "--model", str(model_dir), "--kind", "taste", "--ratings", str(ratings), "--profile",
            str(tmp_path / "me.json"), "--quiet"]
    assert main([*args, "--output", str(tmp_path / "mine")]) == 0, capsys.readouterr().err
    assert "0 epochs" in capsys.readouterr().out
    cli_scores_equal_the_merged_model(model_dir, tmp_path / "mine", tmp_path, capsys)
    bare = tmp_path / "bare"
    tiny_p_model().save_pretrained(bare)
    small_processor().save_pretrained(bare)
    args[2] = str(bare)
    assert main([*args, "--output", str(tmp_path / "never")]) == 1
    assert "no taste prior" in capsys.readouterr().err and not (tmp_path / "never").exists()
