"""Train AesMamba with ``transformers.Trainer`` from a :class:`~aesmamba_hf.training.recipes.TrainConfig`.

``train(config)`` does the whole run:

1. builds the splits with :mod:`aesmamba_hf.data` — ``validation`` is carved from ``train`` (hash of the image
   id with the seed; AADB has its own list) and ``test`` is never used for any decision;
2. validates them first (missing/corrupt images, non-finite labels) and reports bad rows (``bad_rows.json``),
   dropping them or raising (``TrainConfig.bad_rows``);
3. builds the model (variant architecture, a checkpoint folder, optional VMamba/BERT initialisation), the
   processor and the collators (training augmentation for ``train``, the plain resize for evaluation);
4. trains with :class:`AesMambaTrainer` — AdamW β=(0.9, 0.99), the authors' cosine annealing, evaluation and
   a checkpoint every epoch, ``load_best_model_at_end`` on the validation metric;
5. resumes automatically: when ``output_dir`` holds a complete ``checkpoint-*``, training continues from the
   newest one (model, optimizer, scheduler, RNG and step counter), exactly as
   ``trainer.train(resume_from_checkpoint=True)``; ``resume=False`` starts over, ``resume=True`` insists;
6. saves the selected model and its processor to ``output_dir`` (``AutoModel.from_pretrained(output_dir)`` and
   ``AutoProcessor.from_pretrained(output_dir)`` load them) with ``train_config.json`` and
   ``train_result.json``.

Multi-process runs need nothing special: launch the same script with ``torchrun --nproc_per_node N`` or
``accelerate launch --multi_gpu --num_processes N`` (add ``--num_machines 1 --mixed_precision no
--dynamo_backend no`` on CPU, where ``use_cpu`` and the gloo backend are chosen automatically).
``batch_size`` is the global batch; each process gets ``batch_size / (processes × accumulation)``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import sys
import warnings
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch
from datasets import Dataset
from datasets import Image as ImageFeature
from torch.optim.lr_scheduler import LambdaLR
from transformers import Trainer, TrainerCallback, TrainingArguments, set_seed
from transformers.trainer_callback import PrinterCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from ..configuration_aesmamba import AesMambaConfig
from ..io_utils import atomic_write_json, check_output_dir
from ..modeling_aesmamba import AesMambaForAestheticAssessment
from ..registry import DEFAULT_TOKENIZER  # noqa: F401  (old import path)
from .collator import AesMambaDataCollator
from .finetune import fit, scan_backend_for_run
from .recipes import TrainConfig

logger = logging.getLogger(__name__)

LABEL_NAMES = ["labels", "class_labels"]


# ----------------------------------------------------------------------------------------------------------
# learning-rate schedule


class CosineAnnealing:
    """LR factor of ``torch.optim.lr_scheduler.CosineAnnealingLR`` as a function of the optimizer step.

    factor(t) = m + (1 − m)·(1 + cos(π·e/T))/2 with e the (fractional, or whole with ``per_epoch``) epoch of
    step t, T the period in epochs and m = min_lr / lr. For e > T it keeps following the cosine (the LR climbs
    back), which is what the authors' F (T=50 for 100 epochs) and P (T=5 for 50 epochs) runs do. An object,
    not a closure, so the scheduler state (and thus a resumed run) carries its parameters.
    """

    def __init__(self, steps_per_epoch: int, period_epochs: float, min_ratio: float, per_epoch: bool = False,
                 warmup_steps: int = 0):
        if steps_per_epoch < 1 or period_epochs <= 0:
            raise ValueError(f"need steps_per_epoch >= 1 and period_epochs > 0, got {steps_per_epoch}, {period_epochs}")
        self.steps_per_epoch = int(steps_per_epoch)
        self.period_epochs = float(period_epochs)
        self.min_ratio = float(min_ratio)
        self.per_epoch = bool(per_epoch)
        self.warmup_steps = int(warmup_steps)

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / (self.warmup_steps + 1)
        epoch = step / self.steps_per_epoch
        if self.per_epoch:
            epoch = math.floor(epoch)
        return self.min_ratio + (1.0 - self.min_ratio) * 0.5 * (1.0 + math.cos(math.pi * epoch / self.period_epochs))


# ----------------------------------------------------------------------------------------------------------
# Trainer subclass


class AesMambaTrainer(Trainer):
    """``Trainer`` with a separate evaluation collator, the authors' cosine schedule and decay on all weights.

    Args (besides the ``Trainer`` ones):
        eval_data_collator: collator of the evaluation/test dataloaders (the ``data_collator`` — with the
            training augmentation — is used for training only).
        cosine_period_epochs, min_learning_rate, scheduler_per_epoch: the :class:`CosineAnnealing` schedule,
            used when ``args.lr_scheduler_type`` is ``"cosine"`` (``period=None``: the run length).
        decay_all_parameters: weight decay on every parameter (the authors' ``AdamW(model.parameters())``).
    """

    def __init__(
        self,
        *args: Any,
        eval_data_collator: Optional[Callable] = None,
        cosine_period_epochs: Optional[float] = None,
        min_learning_rate: float = 0.0,
        scheduler_per_epoch: bool = False,
        decay_all_parameters: bool = False,
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        self.eval_data_collator = eval_data_collator
        self.cosine_period_epochs = cosine_period_epochs
        self.min_learning_rate = float(min_learning_rate)
        self.scheduler_per_epoch = scheduler_per_epoch
        self.decay_all_parameters = decay_all_parameters
        self._update_steps_per_epoch: Optional[int] = None

    @contextmanager
    def _evaluation_collator(self):
        if self.eval_data_collator is None:
            yield
            return
        train_collator = self.data_collator
        self.data_collator = self.eval_data_collator
        try:
            yield
        finally:
            self.data_collator = train_collator

    def get_eval_dataloader(self, eval_dataset=None):
        with self._evaluation_collator():
            return super().get_eval_dataloader(eval_dataset)

    def get_test_dataloader(self, test_dataset):
        with self._evaluation_collator():
            return super().get_test_dataloader(test_dataset)

    def set_initial_training_values(self, args, dataloader):
        values = super().set_initial_training_values(args, dataloader)
        self._update_steps_per_epoch = int(values[1])  # num_update_steps_per_epoch
        return values

    def get_decay_parameter_names(self, model: torch.nn.Module) -> list[str]:
        if self.decay_all_parameters:
            return [name for name, _ in model.named_parameters()]
        return super().get_decay_parameter_names(model)

    def create_scheduler(self, num_training_steps: int, optimizer: Optional[torch.optim.Optimizer] = None):
        if self.lr_scheduler is not None or str(self.args.lr_scheduler_type) not in ("cosine", "SchedulerType.COSINE"):
            return super().create_scheduler(num_training_steps, optimizer)
        optimizer = optimizer if optimizer is not None else self.optimizer
        steps_per_epoch = self._update_steps_per_epoch or max(num_training_steps, 1)
        run_epochs = num_training_steps / steps_per_epoch
        period = self.cosine_period_epochs or run_epochs
        base_lr = self.args.learning_rate
        self.lr_scheduler = LambdaLR(
            optimizer,
            CosineAnnealing(
                steps_per_epoch, period, self.min_learning_rate / base_lr if base_lr > 0 else 0.0,
                per_epoch=self.scheduler_per_epoch, warmup_steps=self.args.get_warmup_steps(num_training_steps),
            ),
        )
        self._created_lr_scheduler = True
        return self.lr_scheduler


# ----------------------------------------------------------------------------------------------------------
# results


@dataclass
class TrainResult:
    """What :func:`train` returns (also written to ``output_dir/train_result.json``).

    Attributes:
        output_dir: folder with the final model + processor (loadable with ``AutoModel``/``AutoProcessor``).
        global_step: optimizer steps done in total (including those before a resume).
        metric_for_best_model, best_metric, best_checkpoint: the model selection on the validation split.
        train_metrics: ``trainer.train()`` metrics (loss, runtime, ...).
        validation_metrics: metrics of the final (selected) model on the validation split.
        test_metrics: metrics on the test split when ``evaluate_test`` (reported only, never used to select).
        resumed_from: the checkpoint the run continued from, if any.
        data_report: rows per split and the rows dropped by validation.
        skipped_images: images that failed to decode in a batch and were skipped (file, label row, reason;
            those seen by this process: with DataLoader workers, their warnings are the record).
    """

    output_dir: str
    global_step: int
    metric_for_best_model: str
    best_metric: Optional[float] = None
    best_checkpoint: Optional[str] = None
    train_metrics: dict[str, float] = field(default_factory=dict)
    validation_metrics: dict[str, float] = field(default_factory=dict)
    test_metrics: Optional[dict[str, float]] = None
    resumed_from: Optional[str] = None
    data_report: dict[str, Any] = field(default_factory=dict)
    skipped_images: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ----------------------------------------------------------------------------------------------------------
# data


def _builder_kwargs(cfg: TrainConfig, split: str) -> dict[str, Any]:
    kwargs = dict(cfg.dataset_kwargs)
    if split == "test":
        kwargs.update(cfg.test_dataset_kwargs)
    return kwargs


def build_splits(cfg: TrainConfig) -> dict[str, Dataset]:
    """``train`` / ``validation`` (carved from train, or AADB's own) / ``test`` (only if ``evaluate_test``)."""
    from ..data.builders import build_dataset
    from ..dataset_specs import get_dataset_spec

    if not cfg.data_root:
        raise ValueError("TrainConfig.data_root is required to build the dataset (or pass datasets to train())")
    spec_name = get_dataset_spec(cfg.dataset).name
    common = {"task": cfg.task}
    splits: dict[str, Dataset] = {}
    if spec_name == "AADB":  # AADB ships its own validation list
        for split in ("train", "validation"):
            splits[split] = build_dataset(cfg.dataset, cfg.data_root, split, **common, **_builder_kwargs(cfg, split))
    else:
        if cfg.validation_fraction <= 0:
            raise ValueError(
                f"{spec_name} has no validation split on disk: set validation_fraction > 0 (model selection "
                "must not use the test split)"
            )
        carve = {"validation_fraction": cfg.validation_fraction, "seed": cfg.seed}
        for split in ("train", "validation"):
            splits[split] = build_dataset(cfg.dataset, cfg.data_root, split, **common, **carve,
                                          **_builder_kwargs(cfg, split))
    if cfg.evaluate_test:
        splits["test"] = build_dataset(cfg.dataset, cfg.data_root, "test", **common, **_builder_kwargs(cfg, "test"))
    return splits


def validate_splits(
    splits: dict[str, Dataset], check_images: bool, bad_rows: str, report_path: Optional[Path] = None
) -> tuple[dict[str, Dataset], dict[str, Any]]:
    """Validate every split with :func:`aesmamba_hf.data.validation.validate_dataset` (labels, scores, classes,
    users, and image files when ``check_images``); drop the bad rows or raise (``bad_rows="error"``).

    Returns the cleaned splits and a JSON-able report (also written to ``report_path``) whose examples name
    each bad row's label file and line.
    """
    from ..data.validation import validate_dataset

    report: dict[str, Any] = {}
    cleaned, failures = {}, []
    for name, dataset in splits.items():
        kept, result = validate_dataset(dataset, on_error="skip", check_images=check_images)
        report[name] = {
            "rows": len(dataset),
            "bad_rows": result.num_bad,
            "examples": [asdict(issue) for issue in result.issues[:100]],
        }
        if not result.ok:
            failures.append(f"{name} split: {result.summary(max_issues=5)}")
        cleaned[name] = kept
    if report_path is not None:
        atomic_write_json(report_path, report)
    if failures and bad_rows == "error":
        raise ValueError("rows failed validation (set bad_rows='drop' to train without them):\n" + "\n".join(failures))
    return cleaned, report


def class_counts_per_head(dataset: Dataset) -> list[list[int]]:
    """Histogram of ``class_labels`` per head over a split (``-1`` ignored)."""
    classes = np.asarray(dataset.select_columns(["class_labels"])["class_labels"], dtype=np.int64)
    if classes.ndim == 1:
        classes = classes[:, None]
    return [np.bincount(col[col >= 0]).astype(int).tolist() if (col >= 0).any() else [] for col in classes.T]


# ----------------------------------------------------------------------------------------------------------
# model and processor


def _model_source(cfg: TrainConfig) -> tuple[str, Optional[str]]:
    """("none" | "variant" | "pretrained", value)."""
    from ..dataset_specs import get_dataset_spec
    from ..registry import get_variant, is_variant_name, resolve_model

    if cfg.model is None:
        return "none", None
    if os.path.isdir(cfg.model):
        return "pretrained", cfg.model
    if is_variant_name(cfg.model):
        variant = get_variant(cfg.model)
        if variant.task != cfg.task:
            raise ValueError(f"model {cfg.model!r} is a task-{variant.task} variant but the recipe trains task {cfg.task}")
        if variant.dataset != get_dataset_spec(cfg.dataset).name:
            raise ValueError(f"model {cfg.model!r} has {variant.dataset} heads but the recipe trains on {cfg.dataset}")
        return "variant", variant.name
    try:  # the registry's rule for everything else: a Hub repo id, or a clear error
        return "pretrained", resolve_model(cfg.model)
    except ValueError as err:
        raise ValueError(f"TrainConfig.model={cfg.model!r}: {err}") from err


def _has_weights(path: str) -> bool:
    from ..inference.loading import has_weights

    return has_weights(path) if os.path.isdir(path) else True  # a Hub id: the loader decides


def build_model(cfg: TrainConfig, class_counts: Optional[list[list[int]]] = None) -> AesMambaForAestheticAssessment:
    """The model to train.

    * ``cfg.model`` is a folder / Hub id with weights: those weights (fine-tuning, e.g. P per user);
    * otherwise a fresh model of the variant (``tiny``, a config folder, or the task/dataset defaults), with
      ``model_config_overrides``, the balanced-loss class counts of the training split, and the encoders
      initialised from ``vision_checkpoint`` / ``text_model`` (:func:`aesmamba_hf.building.build_model`).
    """
    from .. import building

    kind, value = _model_source(cfg)
    if kind == "pretrained" and _has_weights(value):
        from ..inference.loading import load_model

        # random weights are a fine starting point for training (the result is the user's, unmarked)
        model = load_model(value, device="cpu", allow_random=True).model
        ignored = [k for k in ("model_config_overrides", "vision_checkpoint", "text_model") if getattr(cfg, k)]
        if ignored:
            logger.warning("%s ignored: fine-tuning the weights of %s", ", ".join(ignored), value)
    else:
        if kind == "pretrained":
            config = AesMambaConfig.from_pretrained(value, **cfg.model_config_overrides)
        elif cfg.tiny:
            config = AesMambaConfig.tiny(task=cfg.task, dataset=cfg.dataset, **cfg.model_config_overrides)
        elif kind == "variant":
            config = _with_overrides(building.variant_config(value), cfg.model_config_overrides)
        else:
            config = AesMambaConfig(task=cfg.task, dataset=cfg.dataset, **cfg.model_config_overrides)
        if config.task != cfg.task:
            raise ValueError(f"the model config is task {config.task} but the recipe trains task {cfg.task}")
        if class_counts is not None and cfg.class_counts_from_data:
            set_class_counts(config, class_counts)
        config.architectures = ["AesMambaForAestheticAssessment"]
        text_model = cfg.text_model if config.uses_text else None
        model = building.build_model(config, vision_checkpoint=cfg.vision_checkpoint, text_encoder=text_model)
    return model


def _with_overrides(config: AesMambaConfig, overrides: Mapping[str, Any]) -> AesMambaConfig:
    """Rebuild the config with some fields changed, so the constructor validates them (e.g. ``heads``)."""
    if not overrides:
        return config
    data = config.to_dict()
    data.update(overrides)
    return AesMambaConfig.from_dict(data)


def set_class_counts(config: AesMambaConfig, counts: list[list[int]]) -> None:
    """Give each scale-class head the class counts n_c of its balanced loss (e.g. :func:`class_counts_per_head`
    of the training split); heads without classes, and a ``counts`` list of the wrong length, are left alone."""
    if len(counts) != config.num_heads:
        return
    heads = [dict(h) for h in config.heads]
    for head, head_counts in zip(heads, counts):
        n = head.get("num_scale_classes", 0)
        if n and head_counts:
            padded = (list(head_counts) + [0] * n)[:n]
            head["class_counts"] = padded
    config.heads = heads


def build_processor(cfg: TrainConfig, config: AesMambaConfig) -> Any:
    """The processor saved with the model: the loader's processor and tokenizer rules
    (:func:`aesmamba_hf.inference.loading.load_processor`), with the recipe's transform sizes.

    Starting from a folder: its processor. A new model: the dataset's preprocessing, and for M/P the tokenizer
    of ``cfg.tokenizer`` / ``cfg.text_model`` when given, else the loader's default (the bundled BERT-uncased
    vocabulary when the text encoder's vocabulary has its size).
    """
    from ..inference.loading import default_processor_for_config, load_processor, load_processor_for_config

    kind, value = _model_source(cfg)
    name = cfg.tokenizer or cfg.text_model
    if kind == "pretrained":
        processor = load_processor(value, config)
    elif config.uses_text and name:
        processor = default_processor_for_config(config, tokenizer=_load_tokenizer(name, cfg))
    else:
        processor = load_processor_for_config(config)
    processor.image_processor.size = {"height": cfg.image_size, "width": cfg.image_size}
    processor.image_processor.crop_size = {"height": cfg.image_size, "width": cfg.image_size}
    processor.image_processor.train_size = {"height": cfg.train_resize, "width": cfg.train_resize}
    return processor


def _load_tokenizer(name: str, cfg: TrainConfig) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(name)
    except (OSError, ValueError) as err:
        raise OSError(
            f"cannot load the tokenizer {name!r} for the task-{cfg.task} text encoder ({err}); set "
            "TrainConfig.tokenizer (or text_model) to a local BERT-uncased folder"
        ) from err


# ----------------------------------------------------------------------------------------------------------
# metrics


def make_metrics(config: AesMambaConfig, metric_key: Optional[str] = None, greater_is_better: bool = True) -> Callable:
    """``compute_metrics`` for the Trainer: :func:`aesmamba_hf.metrics.make_compute_metrics` (keys ``srcc``,
    ``plcc``, ... = means over heads, ``srcc_<head>``, ...), with the selection metric made orderable.

    A constant prediction has an undefined (NaN) correlation; the Trainer's ``best_metric`` comparison never
    replaces a NaN, so one early NaN would pin the best checkpoint. The selection metric is therefore reported
    as the worst possible value instead (and a warning is logged).
    """
    from ..metrics import make_compute_metrics

    compute = make_compute_metrics(config)
    bare = metric_key.removeprefix("eval_") if metric_key else None

    def compute_metrics(eval_pred: Any) -> dict[str, float]:
        metrics = compute(eval_pred)
        if bare and bare in metrics and math.isnan(metrics[bare]):
            logger.warning("validation %s is NaN (constant predictions?); counted as the worst value", bare)
            metrics[bare] = -math.inf if greater_is_better else math.inf
        return metrics

    return compute_metrics


# ----------------------------------------------------------------------------------------------------------
# resume


def find_resumable_checkpoint(output_dir: Union[str, os.PathLike]) -> Optional[str]:
    """The newest complete ``checkpoint-<step>`` folder in ``output_dir`` (one with ``trainer_state.json``)."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return None
    candidates = sorted(
        (p for p in output_dir.glob(f"{PREFIX_CHECKPOINT_DIR}-*") if p.is_dir() and p.name.split("-")[-1].isdigit()),
        key=lambda p: int(p.name.split("-")[-1]), reverse=True,
    )
    skipped: list[str] = []
    for path in candidates:
        problem = checkpoint_problem(path)
        if problem is None:
            if skipped:
                warnings.warn(f"resuming from {path}, not from the newer {', '.join(skipped)}", CheckpointWarning,
                              stacklevel=2)
            return str(path)
        warnings.warn(f"ignoring checkpoint {path}: {problem}", CheckpointWarning, stacklevel=2)
        skipped.append(path.name)
    return None


class CheckpointWarning(UserWarning):
    """A ``checkpoint-*`` folder was passed over on resume (incomplete or corrupt); the message names it."""


def checkpoint_problem(path: Union[str, os.PathLike]) -> Optional[str]:
    """Why a ``checkpoint-*`` folder cannot be resumed from (a kill while it was written, a disk error), or None.

    Cheap checks of what resuming reads: ``trainer_state.json`` parses, every safetensors file is complete, and
    the torch-saved optimizer/scheduler/RNG files are intact zip archives (torch's format; a cut file loses its
    central directory).
    """
    import zipfile

    from safetensors import SafetensorError, safe_open

    path = Path(path)
    state = path / "trainer_state.json"
    if not state.is_file():
        return "no trainer_state.json (incomplete)"
    try:
        json.loads(state.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        return f"trainer_state.json is unreadable ({err})"
    weights = sorted(path.glob("*.safetensors"))
    if not weights and not any(path.glob("pytorch_model*.bin")):
        return "no model weights"
    for file in weights:
        try:
            with safe_open(str(file), framework="pt") as handle:
                list(handle.keys())
        except (SafetensorError, OSError) as err:
            return f"{file.name} is corrupt or truncated ({err})"
    for file in [*path.glob("*.pt"), *path.glob("*.pth"), *path.glob("pytorch_model*.bin")]:
        try:
            with zipfile.ZipFile(file) as archive:
                archive.namelist()
        except (zipfile.BadZipFile, OSError) as err:
            return f"{file.name} is corrupt or truncated ({err})"
    return None


def _resolve_resume(cfg: TrainConfig) -> Optional[str]:
    if cfg.resume is False:
        return None
    if isinstance(cfg.resume, str):
        if not os.path.isdir(cfg.resume):
            raise FileNotFoundError(f"resume checkpoint not found: {cfg.resume}")
        problem = checkpoint_problem(cfg.resume)
        if problem is not None:  # named explicitly: no silent fallback to another one
            raise ValueError(f"cannot resume from {cfg.resume}: {problem}")
        return cfg.resume
    found = find_resumable_checkpoint(cfg.output_dir)
    if cfg.resume is True and found is None:
        raise FileNotFoundError(f"resume=True but {cfg.output_dir} has no checkpoint-* folder to resume from")
    return found


# ----------------------------------------------------------------------------------------------------------
# training arguments


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def training_arguments_kwargs(cfg: TrainConfig, world: Optional[int] = None) -> dict[str, Any]:
    """The ``TrainingArguments`` keyword arguments of a recipe for ``world`` processes (default: this launch):
    the global batch is split over processes and accumulation steps."""
    world = world_size() if world is None else int(world)
    use_cpu = (not torch.cuda.is_available()) if cfg.use_cpu is None else bool(cfg.use_cpu)
    per_step = world * cfg.gradient_accumulation_steps
    per_device = max(1, round(cfg.batch_size / per_step))
    if per_device * per_step != cfg.batch_size:
        logger.warning("batch_size %d is not divisible by %d processes × %d accumulation steps; using %d per "
                       "device (global %d)", cfg.batch_size, world, cfg.gradient_accumulation_steps, per_device,
                       per_device * per_step)
    eval_per_device = max(1, math.ceil((cfg.eval_batch_size or cfg.batch_size) / world))
    kwargs: dict[str, Any] = dict(
        output_dir=cfg.output_dir,
        per_device_train_batch_size=per_device,
        per_device_eval_batch_size=eval_per_device,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        learning_rate=cfg.learning_rate,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        weight_decay=cfg.weight_decay,
        adam_beta1=cfg.adam_beta1,
        adam_beta2=cfg.adam_beta2,
        adam_epsilon=cfg.adam_epsilon,
        optim="adamw_torch",
        max_grad_norm=cfg.max_grad_norm,
        lr_scheduler_type="cosine" if cfg.lr_scheduler == "cosine" else cfg.lr_scheduler,
        warmup_steps=cfg.warmup_steps,
        eval_strategy=cfg.eval_strategy,
        save_strategy=cfg.eval_strategy,
        logging_strategy="steps",
        logging_steps=cfg.logging_steps,
        logging_first_step=True,
        load_best_model_at_end=cfg.eval_strategy != "no",
        metric_for_best_model=cfg.metric_key if cfg.eval_strategy != "no" else None,
        greater_is_better=cfg.greater_is_better,
        save_total_limit=cfg.save_total_limit,
        seed=cfg.seed,
        bf16=cfg.bf16,
        **_checkpointing_argument(cfg.activation_checkpointing),
        use_cpu=use_cpu,
        report_to="none",
        remove_unused_columns=False,  # the collator needs image/comment/user; the default drops them
        label_names=list(LABEL_NAMES),
        dataloader_num_workers=cfg.dataloader_num_workers,
        disable_tqdm=True,
    )
    if cfg.eval_strategy == "steps":
        kwargs["eval_steps"] = cfg.eval_steps
        kwargs["save_steps"] = cfg.eval_steps
    if use_cpu and world > 1:
        kwargs["ddp_backend"] = "gloo"
    kwargs.update(cfg.training_args)
    return kwargs


def _checkpointing_argument(enabled: bool) -> dict[str, bool]:
    """``activation_checkpointing`` where this transformers has it (5.x renamed ``gradient_checkpointing``,
    which stays as a deprecated alias until v6), else the older name: the core dependency allows any 5.x."""
    names = {f.name for f in fields(TrainingArguments)}
    return {"activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing": enabled}


def make_training_arguments(cfg: TrainConfig) -> TrainingArguments:
    """``TrainingArguments`` for a recipe in this launch (see :func:`training_arguments_kwargs`)."""
    return TrainingArguments(**training_arguments_kwargs(cfg))


# ----------------------------------------------------------------------------------------------------------
# main entry point


def _limit(dataset: Dataset, n: Optional[int]) -> Dataset:
    return dataset.select(range(min(n, len(dataset)))) if n else dataset


def _lazy_images(dataset: Any) -> Any:
    # keep paths: the collator opens files itself (errors name the file and the label row); in-memory rows
    # (a list, e.g. PIAA shots) pass as they are
    if isinstance(dataset, Dataset) and "image" in dataset.column_names and isinstance(dataset.features.get("image"), ImageFeature):
        return dataset.cast_column("image", ImageFeature(decode=False))
    return dataset


class LogToStderr(TrainerCallback):
    """Training logs as one short line each on stderr (the default printer writes dicts to stdout, which would
    mix with the CLI's JSON result). Per-head metrics are left to ``trainer_state.json``."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not (state.is_world_process_zero and logs):
            return
        keep = {}
        for key, value in logs.items():
            bare = key.split("_", 1)[1] if key.startswith(("eval_", "test_")) else key
            if "_" not in bare or key == args.metric_for_best_model or key in ("train_loss", "learning_rate", "grad_norm"):
                keep[key] = value
        items = " ".join(f"{k}={v:.5g}" if isinstance(v, float) else f"{k}={v}" for k, v in keep.items())
        print(f"[step {state.global_step}] {items}", file=sys.stderr, flush=True)


def _is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def build_trainer(
    cfg: TrainConfig,
    model: AesMambaForAestheticAssessment,
    processor: Any,
    train_dataset: Dataset,
    eval_dataset: Dataset,
    compute_metrics: Optional[Callable] = None,
    callbacks: Optional[list] = None,
) -> AesMambaTrainer:
    """An :class:`AesMambaTrainer` wired for ``cfg`` (collators, metrics, schedule); ``train()`` uses it."""
    args = make_training_arguments(cfg)
    # an image that passed validation's cheap check but fails to decode is skipped (and listed), not fatal
    train_collator = AesMambaDataCollator.for_config(model.config, processor, train=cfg.augment, skip_unreadable=True)
    trainer = AesMambaTrainer(
        model=model,
        args=args,
        train_dataset=_lazy_images(train_dataset),
        eval_dataset=_lazy_images(eval_dataset) if eval_dataset is not None else None,
        data_collator=train_collator,
        eval_data_collator=train_collator.with_train(False),
        compute_metrics=compute_metrics or make_metrics(model.config, cfg.metric_key, cfg.greater_is_better),
        callbacks=callbacks,
        cosine_period_epochs=cfg.cosine_period_epochs,
        min_learning_rate=cfg.min_learning_rate,
        scheduler_per_epoch=cfg.scheduler_per_epoch,
        decay_all_parameters=cfg.decay_all_parameters,
    )
    if args.disable_tqdm:
        trainer.remove_callback(PrinterCallback)
        trainer.add_callback(LogToStderr())
    return trainer


def _skipped_images(trainer: Trainer) -> list[dict[str, str]]:
    seen: dict[tuple[str, str], dict[str, str]] = {}
    for collator in (trainer.data_collator, getattr(trainer, "eval_data_collator", None)):
        for item in getattr(collator, "skipped", []):
            seen.setdefault((item["image"], item["source"]), item)
    if seen:
        logger.warning("%d unreadable image(s) were skipped during training: %s", len(seen),
                       "; ".join(f"{i['source']} ({i['image']}): {i['reason']}" for i in list(seen.values())[:5]))
    return list(seen.values())


def train(
    config: Union[TrainConfig, str, os.PathLike],
    *,
    model: Optional[AesMambaForAestheticAssessment] = None,
    processor: Any = None,
    train_dataset: Optional[Dataset] = None,
    eval_dataset: Optional[Dataset] = None,
    test_dataset: Optional[Dataset] = None,
    compute_metrics: Optional[Callable] = None,
    callbacks: Optional[list] = None,
) -> TrainResult:
    """Train (or resume) an AesMamba model as described by ``config``; see the module docstring.

    Args:
        config: a :class:`TrainConfig`, a recipe name (``"v-ava"``) or a JSON file.
        model, processor: use these instead of building them from the config.
        train_dataset, eval_dataset, test_dataset: use these instead of building them from ``data_root``
            (rows in the :mod:`aesmamba_hf.data` schema). ``eval_dataset`` selects the model; ``test_dataset``
            is only reported.
        compute_metrics, callbacks: passed to the Trainer.

    Returns:
        :class:`TrainResult`.
    """
    from .recipes import load_recipe

    cfg = config if isinstance(config, TrainConfig) else load_recipe(config)
    output_dir = Path(cfg.output_dir)
    check_output_dir(output_dir, "training output_dir")  # before data and model are built
    output_dir.mkdir(parents=True, exist_ok=True)
    main = _is_main_process()

    # 1-2. data, validated first
    if train_dataset is None:
        splits = build_splits(cfg)
    else:
        if eval_dataset is None:
            raise ValueError("pass eval_dataset with train_dataset: the best model is selected on it")
        splits = {"train": train_dataset, "validation": eval_dataset}
        if test_dataset is not None:
            splits["test"] = test_dataset
    splits["train"] = _limit(splits["train"], cfg.max_train_samples)
    splits["validation"] = _limit(splits["validation"], cfg.max_eval_samples)
    splits, data_report = validate_splits(
        splits, cfg.check_images, cfg.bad_rows, output_dir / "bad_rows.json" if main else None
    )
    if len(splits["train"]) == 0 or len(splits["validation"]) == 0:
        raise ValueError(f"empty split after validation: { {k: len(v) for k, v in splits.items()} }")

    # 3. model, processor
    set_seed(cfg.seed)  # identical initial weights on every process
    if model is None:
        counts = class_counts_per_head(splits["train"]) if cfg.class_counts_from_data else None
        model = build_model(cfg, counts)
    if processor is None:
        processor = build_processor(cfg, model.config)
    if main:
        cfg.to_json(output_dir / "train_config.json")

    # 4-5. train, resuming when there is a checkpoint
    resume_from = _resolve_resume(cfg)
    if resume_from:
        logger.info("resuming from %s", resume_from)
    with scan_backend_for_run(model, cfg.scan_backend):  # the final evaluations use the run's backend too
        fitted = fit(cfg, model, processor, splits["train"], splits["validation"],
                     compute_metrics=compute_metrics, callbacks=callbacks, resume_from=resume_from)
        trainer, train_output = fitted.trainer, fitted.train_output
        validation_metrics = trainer.evaluate()
        test_metrics = None
        if "test" in splits:
            test_metrics = trainer.evaluate(_lazy_images(splits["test"]), metric_key_prefix="test")

    # 6. final save: the selected model and its processor
    trainer.save_model(str(output_dir))
    result = TrainResult(
        output_dir=str(output_dir),
        global_step=int(trainer.state.global_step),
        metric_for_best_model=cfg.metric_key,
        best_metric=trainer.state.best_metric,
        best_checkpoint=trainer.state.best_model_checkpoint,
        train_metrics=dict(train_output.metrics),
        validation_metrics=dict(validation_metrics),
        test_metrics=dict(test_metrics) if test_metrics is not None else None,
        resumed_from=resume_from,
        data_report=data_report,
        skipped_images=_skipped_images(trainer),
    )
    if trainer.is_world_process_zero():
        processor.save_pretrained(str(output_dir))
        trainer.save_state()
        atomic_write_json(output_dir / "train_result.json", result.to_dict())
        if not cfg.keep_checkpoints:
            for checkpoint in output_dir.glob(f"{PREFIX_CHECKPOINT_DIR}-*"):
                shutil.rmtree(checkpoint, ignore_errors=True)
    return result


__all__ = [
    "AesMambaTrainer",
    "CosineAnnealing",
    "TrainResult",
    "build_model",
    "build_processor",
    "build_splits",
    "build_trainer",
    "class_counts_per_head",
    "CheckpointWarning",
    "checkpoint_problem",
    "find_resumable_checkpoint",
    "make_metrics",
    "make_training_arguments",
    "set_class_counts",
    "train",
    "training_arguments_kwargs",
    "validate_splits",
]
