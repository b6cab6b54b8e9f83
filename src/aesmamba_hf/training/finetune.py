"""The one fine-tuning function: :func:`fit`, called by :func:`~aesmamba_hf.training.train` (whole runs from a
recipe) and by the PIAA runner (per-user few-shot runs).

It owns what both need and what is easy to get wrong when written twice: the selective-scan backend used for
the run (switched for the run only, restored afterwards even on error, never saved), which parts of the model
are trained (``tune``; frozen parts stay in eval mode, so their dropout is off), the ``Trainer`` with the
authors' AdamW + cosine schedule (:func:`~aesmamba_hf.training.trainer.build_trainer`), and the
random-weights mark (a model the user trained is theirs: the mark is cleared).
"""

from __future__ import annotations

import contextlib
import logging
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Optional

from torch import nn

from ..peft_utils import adapter_modules, is_peft_model
from ..tuning_choices import TUNE_CHOICES
from .recipes import TrainConfig

logger = logging.getLogger(__name__)


def trainable_modules(model: Any, tune: str) -> list[nn.Module]:
    """The modules whose parameters are trained for ``tune``: ``"all"``; ``"fusion_heads"`` (cross-modal fusion
    and MBA heads); ``"heads"`` (MBA heads only)."""
    if tune not in TUNE_CHOICES:
        raise ValueError(f"tune must be one of {TUNE_CHOICES}, got {tune!r}")
    if tune == "all":
        return [model]
    modules: list[nn.Module] = [model.heads]
    if tune == "fusion_heads":
        if model.aesmamba.fusion is None:
            logger.warning("tune='fusion_heads' on a model without text fusion: tuning the heads only")
        else:
            modules.insert(0, model.aesmamba.fusion)
    return modules


def _stay_in_eval(self: nn.Module, mode: bool = True) -> nn.Module:
    return nn.Module.train(self, False)


@contextlib.contextmanager
def _others_in_eval(model: nn.Module, tuned: list[nn.Module]) -> Iterator[None]:
    """Inside the block every module outside ``tuned`` (and holding none of them) stays in eval mode even when
    the Trainer calls ``model.train()`` (frozen dropout off); on exit every module's mode is as it was."""
    modes = {name: m.training for name, m in model.named_modules()}
    tuned_ids = {id(m) for t in tuned for m in t.modules()}
    frozen = [m for m in model.modules() if id(m) not in tuned_ids and not any(
        id(child) in tuned_ids for child in m.modules())]
    try:
        for module in frozen:
            module.train = types.MethodType(_stay_in_eval, module)
            nn.Module.train(module, False)
        yield
    finally:
        for module in frozen:
            module.__dict__.pop("train", None)  # back to the class's method
        for name, module in model.named_modules():
            module.training = modes[name]


@contextlib.contextmanager
def trainable_parts(model: Any, tune: str) -> Iterator[list[nn.Parameter]]:
    """Train only the modules of ``tune`` inside the block: the others get ``requires_grad=False`` and stay in
    eval mode even when the Trainer calls ``model.train()``; on exit every module's ``requires_grad`` and
    train/eval mode are as they were. ``"all"`` trains what the caller left trainable (e.g. a text encoder
    frozen for :func:`~aesmamba_hf.training.cached_text_encoder` stays frozen). The taste directions
    (``model.taste``, zero in a base) never train here: per-user adapters set them."""
    tuned = trainable_modules(model, tune)
    requires = {name: p.requires_grad for name, p in model.named_parameters()}
    try:
        if tune != "all":
            model.requires_grad_(False)
            for module in tuned:
                module.requires_grad_(True)
        if getattr(model, "taste", None) is not None:  # only per-user adapters set the taste directions
            model.taste.requires_grad_(False)
        with _others_in_eval(model, tuned) if tune != "all" else contextlib.nullcontext():
            yield [p for p in model.parameters() if p.requires_grad]
    finally:
        for name, param in model.named_parameters():
            param.requires_grad_(requires[name])


@contextlib.contextmanager
def adapter_only(model: Any) -> Iterator[list[nn.Parameter]]:
    """For a PEFT model: the adapter layers train (PEFT already left only their parameters trainable), every
    other module (the frozen base: vision dropout, BERT's dropout, ...) stays in eval mode inside the block."""
    with _others_in_eval(model, adapter_modules(model)):
        yield [p for p in model.parameters() if p.requires_grad]


@contextlib.contextmanager
def scan_backend_for_run(model: Any, backend: Optional[str]) -> Iterator[None]:
    """Use ``backend`` for the selective scan inside the block only (``None``: leave the model's choice)."""
    if not backend:
        yield
        return
    previous = model.get_scan_backend()  # the run-time choice found (None: the config's)
    model.set_scan_backend(backend)
    try:
        yield
    finally:
        model.set_scan_backend(previous)


@dataclass
class FitResult:
    """The trainer (its ``state`` holds the best metric and checkpoint) and ``trainer.train``'s output."""

    trainer: Any
    train_output: Any


def fit(
    cfg: TrainConfig,
    model: Any,
    processor: Any,
    train_dataset: Any,
    eval_dataset: Any = None,
    *,
    tune: Optional[str] = None,
    compute_metrics: Optional[Callable] = None,
    callbacks: Optional[list] = None,
    resume_from: Optional[str] = None,
    quiet: bool = False,
) -> FitResult:
    """Fine-tune ``model`` in place on ``train_dataset`` with the optimisation settings of ``cfg``.

    Args:
        cfg: batch, AdamW, schedule, epochs, seed, selection metric, output folder for checkpoints.
        train_dataset, eval_dataset: ``datasets.Dataset`` or a list of rows in the :mod:`aesmamba_hf.data`
            schema (``image``, ``labels``, optional ``class_labels``, ``comment`` or ``user``). Without an
            ``eval_dataset`` set ``cfg.eval_strategy="no"``: the last weights are kept.
        tune: which parts to train (:data:`TUNE_CHOICES`; default ``"all"``). A PEFT-wrapped model
            (``peft.PeftModel``, e.g. a per-user adapter of :mod:`aesmamba_hf.piaa.adapters`) trains its adapter
            only, with the frozen base in eval mode; giving it a ``tune`` is an error.
        resume_from: a ``checkpoint-*`` folder to continue from.
        quiet: no per-log line on stderr (many short runs, e.g. PIAA).
    """
    from .trainer import LogToStderr, build_trainer

    peft_wrapped = is_peft_model(model)
    if peft_wrapped and tune is not None:
        raise ValueError(f"tune={tune!r} with a PEFT model: its adapter is what trains (the base stays frozen); "
                         "leave tune unset, or fine-tune the base model itself")
    tune = tune or "all"
    parts = adapter_only(model) if peft_wrapped else trainable_parts(model, tune)
    with scan_backend_for_run(model, cfg.scan_backend), parts:
        trainer = build_trainer(cfg, model, processor, train_dataset, eval_dataset, compute_metrics, callbacks)
        if quiet:
            trainer.remove_callback(LogToStderr)
        output = trainer.train(resume_from_checkpoint=resume_from)
    if tune == "all" and not peft_wrapped and getattr(model.config, "random_weights", False):
        model.config.random_weights = False  # trained by the user: no longer the package's random weights
    return FitResult(trainer=trainer, train_output=output)


__all__ = ["FitResult", "TUNE_CHOICES", "adapter_only", "fit", "scan_backend_for_run", "trainable_modules",
           "trainable_parts"]
