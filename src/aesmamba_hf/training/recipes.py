"""Training recipes: one JSON-serialisable :class:`TrainConfig` per run, and the authors' set-ups.

A recipe says *what* to train (task, dataset, starting point), *on which data* (root, validation carve,
seed) and *how* (batch, AdamW, cosine schedule, epochs). The shipped recipes live next to this module in
``recipes/*.json`` and reproduce the authors' optimisation settings; they differ from the released scripts
in one deliberate way: the best checkpoint is chosen on a validation split carved from train, never on test
(the released scripts keep the epoch with the best test PLCC or SRCC).

>>> cfg = load_recipe("v-ava", data_root="/data/AVA", output_dir="runs/v-ava")
>>> cfg.learning_rate, cfg.batch_size, cfg.epochs
(1e-05, 16, 50.0)
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

RECIPE_DIR = Path(__file__).with_name("recipes")
PathLike = Union[str, os.PathLike]

# metrics where lower is better (everything else, e.g. srcc/plcc/accuracy, is higher-is-better)
LOWER_IS_BETTER = ("loss", "mse", "mae", "rmse", "emd")


@dataclass
class TrainConfig:
    r"""Everything one training run needs; every field has a JSON-friendly type.

    What to train:
        task: ``"V"``, ``"M"``, ``"F"`` or ``"P"``.
        dataset: ``"AVA"``, ``"PhotoNet"``, ``"PARA"``, ``"AADB"`` or ``"TAD66K"`` (aliases of
            :func:`aesmamba_hf.dataset_specs.get_dataset_spec`).
        model: starting point. ``None`` or a variant name (``"aesmamba-v-ava"``): the architecture of that
            variant, freshly initialised. A folder with ``config.json``: its config, and its weights when it has
            them (fine-tuning, e.g. P per user from a generic P checkpoint).
        model_config_overrides: keyword arguments applied to the ``AesMambaConfig`` (e.g.
            ``{"classification_loss": "bce_as_released"}``).
        tiny: use ``AesMambaConfig.tiny`` (smoke tests and examples without real compute).
        vision_checkpoint: VMamba ImageNet checkpoint (``.pth``) to initialise the image encoder, as the
            authors do (Vanilla-VMamba-T on ImageNet-1K, ``vssmtiny_dp01_ckpt_epoch_292.pth``). Ignored
            when ``model`` already has weights.
        text_model: BERT weights (folder or Hub id) to initialise the text encoder of M/P.
        tokenizer: tokenizer of M/P (default: ``text_model``, else ``google-bert/bert-base-uncased``).
        scan_backend: selective-scan backend to train with (``None``: the config's, ``"auto"``).

    Data:
        data_root: dataset root in the layout of the team contract / ``aesmamba_hf.data``.
        dataset_kwargs: extra keyword arguments for the builder (e.g. ``{"users": ["A0c1"]}`` for PARA-P).
        test_dataset_kwargs: overrides of ``dataset_kwargs`` for the test split.
        validation_fraction: share of the training images carved into the validation split (hash of the
            image id with ``seed``; AADB uses its own validation list). Model selection uses it only.
        max_train_samples, max_eval_samples: keep only the first N rows (smoke runs).
        check_images: open every image during data validation (slow on AVA; catches corrupt files).
        bad_rows: ``"drop"`` (report and drop rows that fail validation) or ``"error"``.
        class_counts_from_data: set the balanced loss's class counts n_c from the training split actually
            used (models built by ``train``; a checkpoint, or a model passed to ``train``, keeps its counts:
            see ``set_class_counts``).
        image_size, train_resize: evaluation resize and training resize → random crop sizes (224, 256).
        augment: apply the training augmentation (resize ``train_resize`` → random flip → random crop) to the
            training split; ``False`` trains on the evaluation transform.
        evaluate_test: after training, also evaluate the final model on the test split (reported only).

    Optimisation (authors: AdamW β=(0.9, 0.99), cosine annealing to ``min_learning_rate``, no clipping):
        batch_size: global batch size (split over processes and gradient accumulation).
        eval_batch_size: global evaluation batch size (default: ``batch_size``).
        gradient_accumulation_steps, learning_rate, epochs, max_steps (> 0 overrides epochs),
        weight_decay, adam_beta1, adam_beta2, adam_epsilon, max_grad_norm (0: no clipping).
        decay_all_parameters: weight decay on every parameter like the authors' ``AdamW(model.parameters())``;
            ``False`` keeps the transformers default (no decay on biases and norms).
        lr_scheduler: ``"cosine"`` (``CosineAnnealingLR`` semantics: period ``cosine_period_epochs``, floor
            ``min_learning_rate``; the LR rises again after a half period, as in F and P), ``"constant"``, or
            any ``transformers`` scheduler name.
        cosine_period_epochs: ``T_max`` in epochs (``None``: the run length, i.e. one half cosine).
        scheduler_per_epoch: change the LR once per epoch as the authors do (``False``: every step).
        warmup_steps: linear warm-up (steps, or a fraction of the run if < 1).

    Selection, checkpoints, logging:
        metric_for_best_model: validation metric that picks the best checkpoint (``"srcc"``, ``"plcc"``,
            ``"srcc_aesthetic"``, ``"loss"``…: the means over heads or ``<metric>_<head>`` of
            :func:`aesmamba_hf.metrics.make_compute_metrics`; the ``eval_`` prefix is optional).
        eval_strategy, eval_steps: evaluate/save every epoch or every ``eval_steps`` steps; ``"no"``: no
            evaluation and no checkpoints, the last weights are kept (short runs such as PIAA shots).
        save_total_limit: checkpoints kept during the run (the best one is always kept).
        keep_checkpoints: keep the ``checkpoint-*`` folders once the final model is saved (``False`` saves disk,
            e.g. for 40 per-user P runs; a finished run then cannot be resumed, only re-run).
        logging_steps, seed, output_dir, dataloader_num_workers.
        bf16: bfloat16 autocast with float32 master weights (Trainer's ``bf16``): the GPU setting
            (docs/gpu.md); the scan keeps its state in float32 whatever the input dtype.
        activation_checkpointing: recompute each VSS block (and BERT layer) in the backward instead of keeping
            its activations (transformers' mechanism): less GPU memory for about one more forward per step.
        resume: ``None`` (auto: continue from the last ``checkpoint-*`` in ``output_dir`` if there is one),
            ``True`` (require one), ``False`` (start fresh) or a checkpoint path.
        use_cpu: ``None`` → on CPU iff no CUDA device is visible.
        training_args: extra ``transformers.TrainingArguments`` keyword arguments (override the above).
        name, notes: free text saved with the run.
    """

    # what to train
    task: str = "V"
    dataset: str = "AVA"
    model: Optional[str] = None
    model_config_overrides: dict[str, Any] = field(default_factory=dict)
    tiny: bool = False
    vision_checkpoint: Optional[str] = None
    text_model: Optional[str] = None
    tokenizer: Optional[str] = None
    scan_backend: Optional[str] = None
    # data
    data_root: Optional[str] = None
    dataset_kwargs: dict[str, Any] = field(default_factory=dict)
    test_dataset_kwargs: dict[str, Any] = field(default_factory=dict)
    validation_fraction: float = 0.05
    max_train_samples: Optional[int] = None
    max_eval_samples: Optional[int] = None
    check_images: bool = True
    bad_rows: str = "drop"
    class_counts_from_data: bool = True
    image_size: int = 224
    train_resize: int = 256
    augment: bool = True
    evaluate_test: bool = False
    # optimisation
    batch_size: int = 16
    eval_batch_size: Optional[int] = None
    gradient_accumulation_steps: int = 1
    learning_rate: float = 1e-5
    epochs: float = 50.0
    max_steps: int = -1
    weight_decay: float = 0.01
    adam_beta1: float = 0.9
    adam_beta2: float = 0.99
    adam_epsilon: float = 1e-8
    max_grad_norm: float = 0.0
    decay_all_parameters: bool = True
    lr_scheduler: str = "cosine"
    min_learning_rate: float = 1e-6
    cosine_period_epochs: Optional[float] = None
    scheduler_per_epoch: bool = False
    warmup_steps: float = 0.0
    # selection, checkpoints, logging
    metric_for_best_model: str = "srcc"
    eval_strategy: str = "epoch"
    eval_steps: Optional[int] = None
    save_total_limit: Optional[int] = 2
    keep_checkpoints: bool = True
    logging_steps: int = 50
    seed: int = 42
    output_dir: str = "runs/aesmamba"
    dataloader_num_workers: int = 0
    bf16: bool = False
    activation_checkpointing: bool = False
    resume: Union[bool, str, None] = None
    use_cpu: Optional[bool] = None
    training_args: dict[str, Any] = field(default_factory=dict)
    name: str = ""
    notes: str = ""

    def __post_init__(self) -> None:
        self.task = str(self.task).upper()
        if self.task not in ("V", "M", "F", "P"):
            raise ValueError(f"TrainConfig.task must be V, M, F or P, got {self.task!r}")
        if self.bad_rows not in ("drop", "error"):
            raise ValueError(f"TrainConfig.bad_rows must be 'drop' or 'error', got {self.bad_rows!r}")
        if not 0.0 <= self.validation_fraction < 1.0:
            raise ValueError(f"TrainConfig.validation_fraction must be in [0, 1), got {self.validation_fraction}")
        if self.eval_strategy not in ("epoch", "steps", "no"):
            raise ValueError(f"TrainConfig.eval_strategy must be 'epoch', 'steps' or 'no', got {self.eval_strategy!r}")
        if self.eval_strategy == "steps" and not self.eval_steps:
            raise ValueError("TrainConfig.eval_strategy='steps' needs eval_steps")
        for name in ("batch_size", "gradient_accumulation_steps", "image_size", "train_resize"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"TrainConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.train_resize < self.image_size:
            raise ValueError(f"TrainConfig.train_resize ({self.train_resize}) must be >= image_size ({self.image_size})")
        self.epochs = float(self.epochs)

    # -- derived --------------------------------------------------------------------------------------

    @property
    def metric_key(self) -> str:
        """``metric_for_best_model`` with the ``eval_`` prefix the Trainer logs."""
        m = self.metric_for_best_model
        return m if m.startswith("eval_") else f"eval_{m}"

    @property
    def greater_is_better(self) -> bool:
        # metrics are named <metric> or <metric>_<head> (aesmamba_hf.metrics)
        return self.metric_for_best_model.removeprefix("eval_").split("_")[0] not in LOWER_IS_BETTER

    # -- (de)serialisation ----------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self, path: Optional[PathLike] = None) -> str:
        text = json.dumps(self.to_dict(), indent=2)
        if path is not None:
            Path(path).write_text(text + "\n", encoding="utf-8")
        return text

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known - {"$schema", "_comment"})
        if unknown:
            raise ValueError(f"{source}: unknown training option(s) {unknown}; known: {sorted(known)}")
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def from_json(cls, path: PathLike) -> TrainConfig:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as err:
            raise FileNotFoundError(f"cannot read training config {path}: {err}") from err
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON ({err})") from err
        if not isinstance(data, dict):
            raise ValueError(f"{path}: a training config must be a JSON object")
        return cls.from_dict(data, source=str(path))

    def replace(self, **overrides: Any) -> TrainConfig:
        """A copy with some fields changed (validated again)."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"unknown training option(s) {unknown}")
        return dataclasses.replace(self, **overrides)


# a shorter name, for people who think of it as a recipe
TrainRecipe = TrainConfig


def list_recipes() -> list[str]:
    """Names of the recipes shipped with the package (``recipes/<name>.json``)."""
    return sorted(p.stem for p in RECIPE_DIR.glob("*.json"))


def load_recipe(name_or_path: PathLike, **overrides: Any) -> TrainConfig:
    """A shipped recipe by name (``"v-ava"``, ``"f-para"``…) or a JSON file path, with field overrides.

    Overrides whose value is ``None`` are ignored, so optional arguments can be passed through unconditionally
    (use ``TrainConfig.replace`` to set a field to ``None``).
    """
    path = Path(name_or_path)
    if not path.suffix and not path.exists():
        path = RECIPE_DIR / f"{name_or_path}.json"
        if not path.is_file():
            raise KeyError(f"unknown training recipe {str(name_or_path)!r}; shipped: {', '.join(list_recipes())}")
    return TrainConfig.from_json(path).replace(**{k: v for k, v in overrides.items() if v is not None})


__all__ = ["TrainConfig", "TrainRecipe", "list_recipes", "load_recipe", "RECIPE_DIR"]
