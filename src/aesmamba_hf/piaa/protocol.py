"""PIAA protocol runner: per-user few-shot fine-tuning of a generic AesMamba checkpoint on PARA.

For each selected user, each number of shots ``k`` and each repeat ``r``:

1. ``seed = run_seed(base_seed, user, r)`` (recorded); the k-shot set is the first ``k`` rows of a permutation
   of the user's rows in ``PARA-PiaaTrain.csv`` drawn with that seed (:func:`sample_shots`), so the 10-shot
   set of a repeat is contained in its 100-shot set and the same seed always gives the same rows;
2. a fresh copy of the generic model is fine-tuned on those shots with the authors' per-user recipe (AdamW
   lr 4e-5, betas (0.9, 0.99), weight decay 1e-3, eps 1e-6, cosine annealing stepped per epoch, batch 20,
   Σ MSE over the nine heads, training augmentation) for a fixed number of epochs;
3. it is evaluated on the user's fixed test set: the user's rows in ``PARA-PiaaTest.csv`` (optionally a fixed,
   seeded subset of ``test_size`` rows — the paper uses 50), PLCC/SRCC per attribute.

The generic model itself is evaluated once per user as the zero-shot baseline (``k = 0``).

Model selection never looks at the test rows (the released script keeps the epoch with the best *test*
aesthetic SRCC). ``selection="last"`` (default) trains a fixed number of epochs and keeps the last
weights. ``selection="folds"`` (adapters only) trains each user's adapter exactly as ``aesmamba personalize``
does: the epoch count is chosen on two folds of the k shots among 0 (keep the base), 5, 10, 20, 30 up to
``epochs``, then the adapter is trained on all k shots, with personalize's recipe — so the figures are what a
user of ``personalize`` gets. ``selection="validation"`` carves ``validation_fraction`` of the k shots (at
least one image) as a validation set when ``k >= min_shots_for_validation`` (default 50, so 100-shot runs
validate on 20 images and train on 80), keeps the epoch with the best validation aesthetic SRCC, and falls
back to ``"last"`` for smaller ``k`` (recorded per run in the CSV). Parameters tuned: ``tune="all"`` (as the authors),
``"fusion_heads"`` (cross-modal fusion + MBA heads) or ``"heads"`` (MBA heads only); frozen modules run in
eval mode (no dropout).

Differences from the paper's description (§4.4): the users are fixed across repeats (the paper draws new
users per repeat), and the default schedule is one half cosine over the run (``cosine_period_epochs=None``;
``5`` reproduces the released script's LR oscillation).

Outputs (``out_dir``): ``per_user.csv`` (user, k, repeat, seed, attribute, plcc, srcc, + run details),
``runs.jsonl`` (one line per run with the chosen image ids), ``summary.json`` (protocol settings and
mean ± std per k and attribute), ``summary.md`` (the table) and ``boxplot.png`` (per-user SRCC per k, and
the per-repeat mean as in the paper's Fig. 1).
"""

from __future__ import annotations

import copy
import json
import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch

from ..dataset_specs import PARA_ATTRIBUTE_NAMES
from ..inference.loading import load_model, load_processor_for_config
from ..inference.predictor import Predictor
from ..io_utils import atomic_write_json, atomic_write_text, check_output_dir, json_safe
from ..modeling_aesmamba import AesMambaForAestheticAssessment
from ..training.collator import AesMambaDataCollator
from ..training.finetune import fit, scan_backend_for_run, trainable_modules
from ..training.recipes import TrainConfig
from .adapters import attach_adapter
from .report import _metric_records, _write_csv, plot_boxplot, summarize, summary_table
from .sampling import PathLike, PIAAConfig, run_seed, sample_shots, split_validation
from .users import load_users

logger = logging.getLogger(__name__)


def attribute_columns(model_config: Any) -> list[int]:
    """Output column of each PARA attribute (``PARA_ATTRIBUTE_NAMES`` order) in the model's heads."""
    names = list(model_config.head_names)
    missing = [a for a in PARA_ATTRIBUTE_NAMES if a not in names]
    if missing:
        raise ValueError(
            f"the PIAA protocol needs a model with the nine PARA heads {list(PARA_ATTRIBUTE_NAMES)}; this "
            f"{model_config.task} model has {names} (missing {missing})"
        )
    return [names.index(a) for a in PARA_ATTRIBUTE_NAMES]


def predict(model: AesMambaForAestheticAssessment, processor: Any, rows: Sequence[dict[str, Any]],
            batch_size: int = 32) -> np.ndarray:
    """Scores (N, num_heads) of decoded rows, by the one batched predictor."""
    result = Predictor(model, processor, batch_size=batch_size).predict_examples(list(rows))
    if result.errors:
        index, reason = next(iter(result.errors.items()))
        raise ValueError(f"row {rows[index].get('source') or index}: {reason}")
    return result.scores.astype(np.float64)


def per_user_train_config(config: PIAAConfig, task: str, seed: int, validate: bool, augment: bool,
                          device: torch.device) -> TrainConfig:
    """The per-user recipe of :class:`PIAAConfig` as the :class:`TrainConfig` that :func:`fit` takes: AdamW on
    every tuned parameter, cosine annealing stepped per epoch, no clipping; with ``validate`` the epoch with
    the best validation aesthetic SRCC is kept, otherwise the last."""
    return TrainConfig(
        task=task, dataset="PARA", batch_size=config.batch_size, eval_batch_size=config.eval_batch_size,
        learning_rate=config.learning_rate, epochs=config.epochs, weight_decay=config.weight_decay,
        adam_beta1=config.adam_betas[0], adam_beta2=config.adam_betas[1], adam_epsilon=config.adam_epsilon,
        max_grad_norm=0.0, decay_all_parameters=True, lr_scheduler="cosine",
        min_learning_rate=config.min_learning_rate, cosine_period_epochs=config.cosine_period_epochs,
        scheduler_per_epoch=True, augment=augment, seed=seed, scan_backend=config.scan_backend,
        metric_for_best_model="srcc_aesthetic", eval_strategy="epoch" if validate else "no",
        save_total_limit=1, keep_checkpoints=False, check_images=False, dataloader_num_workers=0,
        use_cpu=device.type == "cpu", logging_steps=1,
        training_args={"logging_strategy": "epoch", "save_only_model": True},
    )


def finetune(
    base_model: AesMambaForAestheticAssessment,
    train_rows: Sequence[dict[str, Any]],
    collator: AesMambaDataCollator,
    config: PIAAConfig,
    seed: int,
    device: torch.device,
    validation: Optional[Sequence[dict[str, Any]]] = None,
    columns: Optional[list[int]] = None,
    taste_prior: Any = None,
) -> tuple[AesMambaForAestheticAssessment, dict[str, Any]]:
    """Fine-tune a copy of ``base_model`` on one user's shots with :func:`aesmamba_hf.training.fit` (the same
    path as ``train()``); returns it in eval mode and ``{"epochs", "train_loss", "validation_srcc"}``.

    ``collator`` gives the processor and whether the shots are augmented (``collator.train``);
    ``validation``: decoded rows on which the best epoch is chosen (never the test rows).
    ``columns`` is accepted for compatibility (the selection metric names the ``aesthetic`` head).
    ``taste_prior``: the loaded :class:`~.taste.TastePrior` for ``adapter="taste"`` (default: found as
    ``personalize`` finds it; :func:`run_piaa` loads it once per run).
    """
    del columns
    if config.adapter == "taste":
        return _taste_fit(base_model, train_rows, collator.processor, config, device, taste_prior)
    if config.selection == "folds":
        return _personalize_like(base_model, train_rows, collator, config, seed, device)
    model = copy.deepcopy(base_model).to(device)
    if config.adapter is not None:  # a per-user PEFT adapter on (a copy of) the shared base, as personalize()
        model = attach_adapter(model, config.adapter, config.adapter_rank)
    cfg = per_user_train_config(config, model.config.task, seed, validation is not None, collator.train, device)
    with tempfile.TemporaryDirectory(prefix="aesmamba-piaa-") as scratch:
        cfg.output_dir = scratch
        fitted = fit(cfg, model, collator.processor, list(train_rows), list(validation) if validation else None,
                     tune=None if config.adapter is not None else config.tune, quiet=True)
    state = fitted.trainer.state
    losses = [entry["loss"] for entry in state.log_history if "loss" in entry]
    best_epoch = config.epochs
    if validation is not None and state.best_global_step:
        best_epoch = int(round(state.best_global_step / max(1, state.max_steps / config.epochs)))
    best = state.best_metric
    info = {"epochs": best_epoch, "train_loss": losses,
            "validation_srcc": best if best is not None and np.isfinite(best) else None}
    model.requires_grad_(False)
    return model.eval(), info


def _personalize_like(base_model: AesMambaForAestheticAssessment, train_rows: Sequence[dict[str, Any]],
                      collator: AesMambaDataCollator, config: PIAAConfig, seed: int, device: torch.device
                      ) -> tuple[AesMambaForAestheticAssessment, dict[str, Any]]:
    """One user's adapter trained by ``personalize``'s own functions (epochs chosen on folds of the shots)."""
    from .personalize import PersonalizeConfig, choose_epochs, train_adapter

    candidates = tuple(c for c in PersonalizeConfig.epoch_candidates if c < config.epochs) + (config.epochs,)
    settings = PersonalizeConfig(kind=config.adapter, rank=config.adapter_rank, learning_rate=config.learning_rate,
                                 weight_decay=config.weight_decay, epoch_candidates=candidates,
                                 batch_size=config.batch_size, augment=collator.train, seed=seed)
    epochs, curve = choose_epochs(base_model, collator.processor, list(train_rows), settings, device)
    model, _ = train_adapter(base_model, collator.processor, list(train_rows), settings, epochs, device=device)
    model.requires_grad_(False)
    return model.eval(), {"epochs": epochs, "train_loss": [], "validation_srcc": curve.get(epochs)}


def _taste_fit(base_model: AesMambaForAestheticAssessment, train_rows: Sequence[dict[str, Any]], processor: Any,
               config: PIAAConfig, device: torch.device, prior: Any = None) -> tuple[Any, dict[str, Any]]:
    """One user's taste adapter, fitted in closed form as ``personalize(kind="taste")`` fits it."""
    from .taste import fit_taste_adapter, prior_for

    prior = prior if prior is not None else prior_for(base_model, config.taste_prior)
    model = fit_taste_adapter(base_model, processor, list(train_rows), prior, config.eval_batch_size).to(device)
    return model, {"epochs": 0, "train_loss": [], "validation_srcc": None}


@dataclass
class PIAAResult:
    """What :func:`run_piaa` produced."""

    out_dir: Path
    records: list[dict[str, Any]]
    summary: dict[str, Any]
    files: dict[str, Path]


def _targets(rows: Sequence[dict[str, Any]]) -> np.ndarray:
    return np.asarray([r["labels"] for r in rows], dtype=np.float64).reshape(len(rows), -1)


def run_piaa(
    model: Union[PathLike, AesMambaForAestheticAssessment],
    para_root: PathLike,
    out_dir: PathLike,
    config: Optional[PIAAConfig] = None,
    processor: Any = None,
    progress: Optional[Callable[[str], None]] = None,
) -> PIAAResult:
    """Run the PIAA protocol (module docstring) and write its outputs to ``out_dir``.

    Args:
        model: a checkpoint folder / variant alias / Hub id, or a loaded model, with the nine PARA heads (a
            loaded model is moved to ``config.device`` in fp32; every run fine-tunes a copy of it).
        para_root: PARA in the team layout (``annotation/PARA-Piaa{Train,Test}.csv``, ``PARA-UserInfo.csv``,
            ``imgs/<session>/<image>``).
        out_dir: output folder (created).
        config: protocol settings (:class:`PIAAConfig`).
        processor: processor to use with an in-memory model (default: the checkpoint's).
        progress: called with one line per finished run (e.g. ``print``).
    """
    config = config or PIAAConfig()
    progress = progress or (lambda line: logger.info("%s", line))
    out = Path(out_dir)
    check_output_dir(out, "PIAA output folder")  # before the model loads
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device(config.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if isinstance(model, AesMambaForAestheticAssessment):
        base_model, model_name = model, getattr(model.config, "variant", None) or "in-memory model"
        if processor is None:
            processor = load_processor_for_config(model.config)
    else:
        model_name = os.fspath(model)
        loaded = load_model(model, device=device)
        base_model, processor = loaded.model, processor if processor is not None else loaded.processor
    base_model = base_model.to(device=device, dtype=torch.float32).eval()
    columns = attribute_columns(base_model.config)
    train_collator = AesMambaDataCollator.for_config(base_model.config, processor, train=config.augment)
    taste_prior = None
    if config.adapter == "taste":  # once per run, and a missing or foreign prior fails before any image is read
        from .taste import prior_for

        taste_prior = prior_for(base_model, config.taste_prior)

    users, skipped = load_users(para_root, config)
    records: list[dict[str, Any]] = []
    bad_images: list[dict[str, str]] = []
    done: list[str] = []
    runs_path = out / "runs.jsonl"
    # the zero-shot and tuned predictions use the protocol's scan backend too, not only the fine-tuning
    with scan_backend_for_run(base_model, config.scan_backend), \
            runs_path.open("w", encoding="utf-8") as runs_file:
        for lazy in users:
            data = lazy.decoded()
            bad_images += data.bad_images
            if len(data.test_rows) < 2:
                skipped.append({"user": data.user, "reason": "fewer than 2 readable test images"})
                continue
            done.append(data.user)
            test_targets = _targets(data.test_rows)
            n_test = len(data.test_rows)
            if config.zero_shot:
                scores = predict(base_model, processor, data.test_rows, config.eval_batch_size)
                new = _metric_records(data.user, 0, 0, None, scores, test_targets, columns,
                                      {"n_train": 0, "n_val": 0, "n_test": n_test, "epochs": 0,
                                       "selection": "", "tune": ""})
                records += new
                progress(f"{data.user} zero-shot: aesthetic SRCC {new[0]['srcc']:.4f}")
            train_ids = [r["image_id"] for r in data.train_rows]
            for k in config.shots:
                if k > len(data.train_rows):
                    skipped.append({"user": data.user, "k": k,
                                    "reason": f"only {len(data.train_rows)} readable training rows"})
                    continue
                for repeat in range(config.repeats):
                    seed = run_seed(config.seed, data.user, repeat)
                    shots = sample_shots(train_ids, k, seed)
                    selection, val_idx, fit_idx = ("folds" if config.selection == "folds" else "last"), [], shots
                    if config.selection == "validation" and k >= config.min_shots_for_validation:
                        fit_idx, val_idx = split_validation(shots, config.validation_fraction)
                        selection = "validation"
                    validation = [data.train_rows[i] for i in val_idx] if val_idx else None
                    tuned, info = finetune(base_model, [data.train_rows[i] for i in fit_idx], train_collator,
                                           config, seed, device, validation=validation, columns=columns,
                                           taste_prior=taste_prior)
                    scores = predict(tuned, processor, data.test_rows, config.eval_batch_size)
                    del tuned
                    new = _metric_records(data.user, k, repeat, seed, scores, test_targets, columns,
                                          {"n_train": len(fit_idx), "n_val": len(val_idx), "n_test": n_test,
                                           "epochs": info["epochs"], "selection": selection,
                                           "tune": f"adapter:{config.adapter}" if config.adapter else config.tune})
                    records += new
                    runs_file.write(json.dumps(json_safe({
                        "user": data.user, "k": k, "repeat": repeat, "seed": seed, "selection": selection,
                        "train_images": [train_ids[i] for i in fit_idx],
                        "validation_images": [train_ids[i] for i in val_idx],
                        "epochs": info["epochs"], "train_loss": info["train_loss"],
                        "validation_srcc": info["validation_srcc"],
                        "test_plcc": {r["attribute"]: r["plcc"] for r in new},
                        "test_srcc": {r["attribute"]: r["srcc"] for r in new},
                    })) + "\n")
                    runs_file.flush()
                    progress(f"{data.user} k={k} repeat={repeat} seed={seed}: aesthetic SRCC {new[0]['srcc']:.4f}")
    if not records:
        raise ValueError(f"no PIAA run could be made on {para_root}: {skipped}")

    summary = summarize(records)
    files = {"per_user_csv": out / "per_user.csv", "runs": runs_path, "summary_json": out / "summary.json",
             "summary_md": out / "summary.md", "boxplot": out / "boxplot.png"}
    _write_csv(records, files["per_user_csv"])
    table = summary_table(summary)
    if config.adapter == "taste":
        method = "adapter=taste (closed form under the model's taste prior, no training)"
    else:
        method = (f"adapter={config.adapter} (rank {config.adapter_rank})" if config.adapter else
                  f"tune={config.tune}") + f", {config.epochs} epochs, selection={config.selection} (never on test)"
    description = f"{len(done)} users, shots {config.shots}, {config.repeats} repeats, {method}"
    payload = {
        "protocol": "piaa",
        "description": description,
        "model": model_name,
        "para_root": os.fspath(para_root),
        "config": config.to_dict(),
        "users": done,
        "skipped": skipped,
        "bad_images": bad_images,
        "summary": summary,
    }
    atomic_write_json(files["summary_json"], payload)
    atomic_write_text(files["summary_md"], f"# PIAA results\n\nModel: `{model_name}`; {description}.\n\n{table}\n\n"
                      "± = standard deviation over repeats of the mean over users.\n")
    plot_boxplot(records, files["boxplot"], title=f"PIAA — {model_name}")
    return PIAAResult(out_dir=out, records=records, summary=summary, files=files)


__all__ = ["PIAAResult", "attribute_columns", "finetune", "per_user_train_config", "predict", "run_piaa",
           "trainable_modules"]
