"""PIAA settings, seeds and shot sampling: every draw is reproducible from the recorded seed."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Optional, Union

import numpy as np

from ..tuning_choices import ADAPTER_KINDS, SELECTION_CHOICES, TUNE_CHOICES

PathLike = Union[str, os.PathLike]
ZERO_SHOT = "zero_shot"
CSV_COLUMNS = ("user", "k", "repeat", "seed", "attribute", "plcc", "srcc", "n_train", "n_val", "n_test",
               "epochs", "selection", "tune")



@dataclass
class PIAAConfig:
    """Settings of one protocol run (all JSON-serialisable; saved in ``summary.json``).

    Users and sampling:
        users: user ids to run (default: ``num_users`` drawn with ``seed`` from the eligible users, i.e.
            those with at least ``max(shots)`` training rows and ``min_test_rows`` test rows).
        num_users: how many users to draw when ``users`` is not given (``None``: every eligible user).
        shots: the k values (paper: 10 and 100).
        repeats: random k-shot draws per user and k (paper: 10).
        seed: base seed; every run's seed derives from it, the user id and the repeat (:func:`run_seed`).
        test_size: cap the user's test set to a fixed seeded subset of this many rows (paper: 50).
        min_test_rows: users with fewer test rows are not eligible.

    Fine-tuning (the authors' per-user recipe, except selection):
        tune: ``"all"``, ``"fusion_heads"`` or ``"heads"``.
        epochs, batch_size, learning_rate, adam_betas, weight_decay, adam_epsilon, min_learning_rate.
        cosine_period_epochs: ``T_max`` of the per-epoch cosine (``None``: the run length; authors: 5).
        augment: training augmentation (resize 256 → flip → crop 224) on the shots.
        selection, validation_fraction, min_shots_for_validation: see the module docstring.

    Per-user adapters:
        adapter: ``None`` — fine-tune a copy of the model (the paper's way, ``tune`` picks the parts); or a kind
            of :data:`~aesmamba_hf.piaa.adapters.ADAPTER_KINDS` — train a PEFT adapter per user on the shared
            base, as ``aesmamba personalize`` does (``tune`` is then unused); ``adapter_rank``: its LoRA rank.
            ``"taste"`` fits each user's taste in closed form under the base's taste prior (:mod:`.taste`):
            ``taste_prior`` is its file (default: the model folder's ``taste_prior.safetensors``).

    Running:
        zero_shot: evaluate the generic model per user (``k = 0`` rows).
        eval_batch_size, device (default: CUDA when available), scan_backend (override the model's).
    """

    users: Optional[list[str]] = None
    num_users: Optional[int] = 40
    shots: list[int] = field(default_factory=lambda: [10, 100])
    repeats: int = 10
    seed: int = 42
    test_size: Optional[int] = None
    min_test_rows: int = 5
    tune: str = "all"
    epochs: int = 50
    batch_size: int = 20
    learning_rate: float = 4e-5
    adam_betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = 1e-3
    adam_epsilon: float = 1e-6
    min_learning_rate: float = 1e-6
    cosine_period_epochs: Optional[float] = None
    augment: bool = True
    selection: str = "last"
    validation_fraction: float = 0.2
    min_shots_for_validation: int = 50
    zero_shot: bool = True
    eval_batch_size: int = 32
    device: Optional[str] = None
    scan_backend: Optional[str] = None
    adapter: Optional[str] = None
    adapter_rank: int = 4
    taste_prior: Optional[str] = None

    def __post_init__(self) -> None:
        if self.adapter is not None and self.adapter not in ADAPTER_KINDS:
            raise ValueError(f"PIAAConfig.adapter must be None (full fine-tuning) or one of {ADAPTER_KINDS}, "
                             f"got {self.adapter!r}")
        if self.tune not in TUNE_CHOICES:
            raise ValueError(f"PIAAConfig.tune must be one of {TUNE_CHOICES}, got {self.tune!r}")
        if self.selection not in SELECTION_CHOICES:
            raise ValueError(f"PIAAConfig.selection must be one of {SELECTION_CHOICES}, got {self.selection!r}")
        if self.taste_prior is not None and self.adapter != "taste":
            raise ValueError("PIAAConfig.taste_prior (--taste-prior) is for adapter='taste'; "
                             f"adapter={self.adapter!r} takes none")
        if self.adapter == "taste" and self.selection == "validation":
            raise ValueError("PIAAConfig.adapter='taste' is fitted in closed form on every shot: use selection="
                             "'last' or 'folds' (both mean the same for it)")
        if self.selection == "folds" and self.adapter is None:
            raise ValueError("PIAAConfig.selection='folds' chooses an adapter's epochs as `aesmamba personalize` "
                             "does: set adapter= (e.g. 'lora_heads'), or use selection='last'/'validation'")
        self.shots = sorted({int(k) for k in self.shots})
        if not self.shots or self.shots[0] < 1:
            raise ValueError(f"PIAAConfig.shots must be positive integers, got {self.shots}")
        if self.repeats < 1 or self.epochs < 1 or self.batch_size < 1:
            raise ValueError("PIAAConfig.repeats, epochs and batch_size must be >= 1")
        if not 0.0 < self.validation_fraction < 1.0:
            raise ValueError(f"PIAAConfig.validation_fraction must be in (0, 1), got {self.validation_fraction}")
        if self.users is not None:
            self.users = [str(u).strip() for u in self.users]
        self.adam_betas = tuple(float(b) for b in self.adam_betas)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ----------------------------------------------------------------------------------------------------------
# seeds and sampling


def stable_seed(*parts: Any) -> int:
    """A 31-bit seed from any values, identical across processes and platforms (unlike ``hash``)."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def run_seed(base_seed: int, user: str, repeat: int) -> int:
    """The recorded seed of repeat ``repeat`` for ``user`` (shared by every k of that repeat)."""
    return stable_seed("piaa", base_seed, user, repeat)


def sample_shots(image_ids: Sequence[str], k: int, seed: int) -> list[int]:
    """Indices of the k-shot rows: the first ``k`` of a seeded permutation of the rows, ordered by image id
    first so the draw does not depend on the CSV row order."""
    if k > len(image_ids):
        raise ValueError(f"cannot draw {k} shots from {len(image_ids)} rows")
    order = sorted(range(len(image_ids)), key=lambda i: (str(image_ids[i]), i))
    perm = np.random.default_rng(seed).permutation(len(order))
    return [order[i] for i in perm[:k]]


def split_validation(indices: Sequence[int], fraction: float) -> tuple[list[int], list[int]]:
    """(train, validation) from the k-shot indices: the last ``max(1, round(fraction·k))`` are validation."""
    n_val = max(1, int(round(fraction * len(indices))))
    return list(indices[: len(indices) - n_val]), list(indices[len(indices) - n_val:])


__all__ = ["PIAAConfig", "run_seed", "sample_shots", "split_validation", "stable_seed"]
