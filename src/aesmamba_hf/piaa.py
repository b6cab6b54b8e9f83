"""PIAA protocol runner: per-user few-shot fine-tuning of a generic AesMamba checkpoint on PARA (spec §9.3).

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
SRCC, spec §13.5/§15.11). ``selection="last"`` (default) trains a fixed number of epochs and keeps the last
weights. ``selection="validation"`` carves ``validation_fraction`` of the k shots (at least one image) as a
validation set when ``k >= min_shots_for_validation`` (default 50, so 100-shot runs validate on 20 images
and train on 80), keeps the epoch with the best validation aesthetic SRCC, and falls back to ``"last"``
for smaller ``k`` (recorded per run in the CSV). Parameters tuned: ``tune="all"`` (as the authors),
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
import csv
import dataclasses
import hashlib
import json
import logging
import math
import os
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch

from .dataset_specs import PARA_ATTRIBUTE_NAMES
from .evaluation.report import load_model_and_processor
from .image_processing_aesmamba import ImageLoadError, load_image
from .io_utils import atomic_open, atomic_savefig, atomic_write_json, atomic_write_text, json_safe
from .metrics import finite_mean, plcc, srcc
from .modeling_aesmamba import AesMambaForAestheticAssessment
from .training.collator import AesMambaDataCollator
from .training.trainer import CosineAnnealing

logger = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]
TUNE_CHOICES = ("all", "fusion_heads", "heads")
SELECTION_CHOICES = ("last", "validation")
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

    Fine-tuning (the authors' per-user recipe, spec §9.3, except selection):
        tune: ``"all"``, ``"fusion_heads"`` or ``"heads"``.
        epochs, batch_size, learning_rate, adam_betas, weight_decay, adam_epsilon, min_learning_rate.
        cosine_period_epochs: ``T_max`` of the per-epoch cosine (``None``: the run length; authors: 5).
        augment: training augmentation (resize 256 → flip → crop 224) on the shots.
        selection, validation_fraction, min_shots_for_validation: see the module docstring.

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

    def __post_init__(self) -> None:
        if self.tune not in TUNE_CHOICES:
            raise ValueError(f"PIAAConfig.tune must be one of {TUNE_CHOICES}, got {self.tune!r}")
        if self.selection not in SELECTION_CHOICES:
            raise ValueError(f"PIAAConfig.selection must be one of {SELECTION_CHOICES}, got {self.selection!r}")
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


# ----------------------------------------------------------------------------------------------------------
# model helpers


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


def trainable_modules(model: AesMambaForAestheticAssessment, tune: str) -> list[torch.nn.Module]:
    """The modules whose parameters are fine-tuned for ``tune``."""
    if tune == "all":
        return [model]
    modules: list[torch.nn.Module] = [model.heads]
    if tune == "fusion_heads":
        if model.aesmamba.fusion is None:
            logger.warning("tune='fusion_heads' on a model without text fusion: tuning the heads only")
        else:
            modules.insert(0, model.aesmamba.fusion)
    return modules


def _set_trainable(model: AesMambaForAestheticAssessment, tune: str) -> list[torch.nn.Parameter]:
    modules = trainable_modules(model, tune)
    model.requires_grad_(False)
    for module in modules:
        module.requires_grad_(True)
    return [p for p in model.parameters() if p.requires_grad]


def _train_mode(model: AesMambaForAestheticAssessment, tune: str) -> None:
    """Train mode for the tuned modules only: frozen parts keep eval behaviour (no dropout)."""
    model.eval()
    for module in trainable_modules(model, tune):
        module.train()


def _to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in batch.items()}


@torch.no_grad()
def predict(model: AesMambaForAestheticAssessment, batches: Iterable[dict[str, torch.Tensor]],
            device: torch.device) -> np.ndarray:
    """Scores (N, num_heads) over prepared batches (labels are not passed to the model)."""
    model.eval()
    out = []
    for batch in batches:
        inputs = {k: v for k, v in batch.items() if k not in ("labels", "class_labels")}
        out.append(model(**_to_device(inputs, device)).scores.float().cpu().numpy())
    return np.concatenate(out, axis=0) if out else np.zeros((0, model.config.num_heads))


def finetune(
    base_model: AesMambaForAestheticAssessment,
    train_rows: Sequence[dict[str, Any]],
    collator: AesMambaDataCollator,
    config: PIAAConfig,
    seed: int,
    device: torch.device,
    validation: Optional[tuple[list[dict[str, torch.Tensor]], np.ndarray]] = None,
    columns: Optional[list[int]] = None,
) -> tuple[AesMambaForAestheticAssessment, dict[str, Any]]:
    """Fine-tune a copy of ``base_model`` on ``train_rows`` (see :class:`PIAAConfig`); returns it in eval mode.

    ``validation`` = (prepared batches, targets (N, 9)): keep the epoch with the best aesthetic SRCC on it.
    """
    torch.manual_seed(seed)  # augmentation draws (the image processor uses torch's global RNG)
    generator = torch.Generator().manual_seed(seed)
    model = copy.deepcopy(base_model).to(device)
    params = _set_trainable(model, config.tune)
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, betas=config.adam_betas,
                                  weight_decay=config.weight_decay, eps=config.adam_epsilon)
    steps_per_epoch = math.ceil(len(train_rows) / config.batch_size)
    schedule = CosineAnnealing(steps_per_epoch, config.cosine_period_epochs or config.epochs,
                               config.min_learning_rate / config.learning_rate, per_epoch=True)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    best_score, best_epoch, best_state, losses = -math.inf, config.epochs, None, []
    for epoch in range(config.epochs):
        _train_mode(model, config.tune)
        order = torch.randperm(len(train_rows), generator=generator).tolist()
        epoch_loss = 0.0
        for start in range(0, len(order), config.batch_size):
            batch = collator([train_rows[i] for i in order[start:start + config.batch_size]])
            loss = model(**_to_device(batch, device)).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            epoch_loss += float(loss.detach()) * len(batch["labels"])
        losses.append(epoch_loss / len(train_rows))
        if validation is not None:
            scores = predict(model, validation[0], device)
            col = columns[0] if columns else 0
            score = srcc(scores[:, col], validation[1][:, 0])
            score = -math.inf if score != score else score
            if score > best_score:
                best_score, best_epoch = score, epoch + 1
                best_state = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    if best_state is not None:
        with torch.no_grad():
            for name, param in model.named_parameters():
                if name in best_state:
                    param.copy_(best_state[name])
    model.requires_grad_(False)
    info = {"epochs": best_epoch, "train_loss": losses,
            "validation_srcc": best_score if math.isfinite(best_score) else None}
    return model.eval(), info


# ----------------------------------------------------------------------------------------------------------
# data


@dataclass
class UserData:
    """One user's rows: training pool (shots are drawn from it) and the fixed test set.

    Rows hold image paths; :meth:`decoded` opens them (once per user, kept in memory while the user runs).
    """

    user: str
    train_rows: list[dict[str, Any]]
    test_rows: list[dict[str, Any]]
    bad_images: list[dict[str, str]] = field(default_factory=list)

    def decoded(self) -> UserData:
        """The same rows with decoded images; unreadable images are dropped and listed in ``bad_images``."""
        bad: list[dict[str, str]] = []
        return UserData(self.user, _load_rows(self.train_rows, bad), _load_rows(self.test_rows, bad), bad)


def _rows_by_user(dataset: Any) -> dict[str, list[dict[str, Any]]]:
    from datasets import Image

    columns = [c for c in ("image", "image_id", "labels", "class_labels", "user_id", "user", "source")
               if c in dataset.column_names]
    by_user: dict[str, list[dict[str, Any]]] = {}
    for row in dataset.select_columns(columns).cast_column("image", Image(decode=False)).to_list():
        row["image"] = row["image"]["path"] if isinstance(row["image"], dict) else row["image"]
        by_user.setdefault(row["user_id"], []).append(row)
    return by_user


def _load_rows(rows: list[dict[str, Any]], bad: list[dict[str, str]]) -> list[dict[str, Any]]:
    """Decode every image once (kept in memory: a user has a few hundred at most); drop unreadable ones."""
    kept = []
    for row in rows:
        try:
            kept.append({**row, "image": load_image(row["image"])})
        except ImageLoadError as err:
            bad.append({"user": row["user_id"], "image": str(row["image"]), "source": row.get("source", ""),
                        "reason": err.reason})
            logger.warning("skipping unreadable image %s (%s): %s", row["image"], row.get("source"), err.reason)
    return kept


def load_users(para_root: PathLike, config: PIAAConfig) -> tuple[list[UserData], list[dict[str, Any]]]:
    """Select the users and collect their rows (image paths, not yet decoded); returns (users, skipped)."""
    from .data.builders import build_para_piaa

    train_ds = build_para_piaa(para_root, "train", users=config.users)
    test_ds = build_para_piaa(para_root, "test", users=config.users)
    # count rows per user on the id column only: PARA's PIAA files hold hundreds of thousands of rows
    train_ids, test_ids = np.asarray(train_ds["user_id"]), np.asarray(test_ds["user_id"])
    train_count, test_count = Counter(train_ids.tolist()), Counter(test_ids.tolist())
    skipped: list[dict[str, Any]] = []
    need = max(config.shots)
    if config.users is not None:
        chosen = list(config.users)
    else:
        eligible = sorted(u for u, n in train_count.items() if n >= need and test_count[u] >= config.min_test_rows)
        if not eligible:
            raise ValueError(f"{para_root}: no user has >= {need} PIAA training rows and >= {config.min_test_rows} "
                             "test rows; lower --shots or --min-test-rows")
        if config.num_users is not None and config.num_users < len(eligible):
            rng = np.random.default_rng(stable_seed("piaa-users", config.seed))
            chosen = sorted(eligible[i] for i in rng.choice(len(eligible), config.num_users, replace=False))
        else:
            chosen = eligible
    train_by_user = _rows_by_user(train_ds.select(np.flatnonzero(np.isin(train_ids, chosen))))
    test_by_user = _rows_by_user(test_ds.select(np.flatnonzero(np.isin(test_ids, chosen))))
    users = []
    for user in chosen:
        train_rows, test_rows = train_by_user.get(user, []), test_by_user.get(user, [])
        if not test_rows or not train_rows:
            skipped.append({"user": user, "reason": f"{len(train_rows)} training rows, {len(test_rows)} test rows"})
            continue
        if config.test_size is not None and len(test_rows) > config.test_size:
            keep = sample_shots([r["image_id"] for r in test_rows], config.test_size,
                                stable_seed("piaa-test", config.seed, user))
            test_rows = [test_rows[i] for i in sorted(keep)]
        users.append(UserData(user, train_rows, test_rows))
    return users, skipped


# ----------------------------------------------------------------------------------------------------------
# the protocol


@dataclass
class PIAAResult:
    """What :func:`run_piaa` produced."""

    out_dir: Path
    records: list[dict[str, Any]]
    summary: dict[str, Any]
    files: dict[str, Path]


def _prepare_batches(collator: AesMambaDataCollator, rows: Sequence[dict[str, Any]],
                     batch_size: int) -> list[dict[str, torch.Tensor]]:
    return [collator(list(rows[i:i + batch_size])) for i in range(0, len(rows), batch_size)]


def _targets(rows: Sequence[dict[str, Any]]) -> np.ndarray:
    return np.asarray([r["labels"] for r in rows], dtype=np.float64).reshape(len(rows), -1)


def _metric_records(user: str, k: Union[int, str], repeat: int, seed: Optional[int], scores: np.ndarray,
                    targets: np.ndarray, columns: list[int], extra: dict[str, Any]) -> list[dict[str, Any]]:
    records = []
    for j, attribute in enumerate(PARA_ATTRIBUTE_NAMES):
        pred, true = scores[:, columns[j]], targets[:, j]
        records.append({"user": user, "k": k, "repeat": repeat, "seed": "" if seed is None else seed,
                        "attribute": attribute, "plcc": plcc(pred, true), "srcc": srcc(pred, true), **extra})
    return records


def _std(values: Sequence[float]) -> float:
    values = [v for v in values if v == v]
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def summarize(records: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """mean ± std of PLCC/SRCC per k and attribute (and their mean over attributes, ``"mean"``).

    ``mean``: over users of the per-user mean over repeats; ``std_users``: spread of those per-user means;
    ``std_repeats``: spread over repeats of the mean over users (the paper's ± in Table 4). NaN correlations
    (constant predictions or targets) are left out of the means.
    """
    keys: list[str] = []
    for r in records:
        key = ZERO_SHOT if r["k"] in (0, ZERO_SHOT) else str(r["k"])
        if key not in keys:
            keys.append(key)
    keys.sort(key=lambda s: -1 if s == ZERO_SHOT else int(s))
    summary: dict[str, dict[str, Any]] = {}
    for key in keys:
        block: dict[str, Any] = {}
        rows_k = [r for r in records if (ZERO_SHOT if r["k"] in (0, ZERO_SHOT) else str(r["k"])) == key]
        for attribute in [*PARA_ATTRIBUTE_NAMES, "mean"]:
            rows = rows_k if attribute == "mean" else [r for r in rows_k if r["attribute"] == attribute]
            users = sorted({r["user"] for r in rows})
            repeats = sorted({r["repeat"] for r in rows})
            entry: dict[str, Any] = {"num_users": len(users), "num_repeats": len(repeats)}
            for metric in ("plcc", "srcc"):
                per_user = [finite_mean(r[metric] for r in rows if r["user"] == u) for u in users]
                per_repeat = [finite_mean(r[metric] for r in rows if r["repeat"] == rep) for rep in repeats]
                entry[metric] = {"mean": finite_mean(per_user), "std_users": _std(per_user),
                                 "std_repeats": _std(per_repeat)}
            block[attribute] = entry
        summary[key] = block
    return summary


def summary_table(summary: dict[str, dict[str, Any]]) -> str:
    """Markdown table: one row per attribute, PLCC and SRCC (mean ± std over repeats) per k."""
    keys = list(summary)
    label = {k: ("zero-shot" if k == ZERO_SHOT else f"{k}-shot") for k in keys}
    head = "| attribute | " + " | ".join(f"PLCC {label[k]} | SRCC {label[k]}" for k in keys) + " |"
    lines = [head, "|---" * (1 + 2 * len(keys)) + "|"]
    for attribute in [*PARA_ATTRIBUTE_NAMES, "mean"]:
        cells = []
        for k in keys:
            entry = summary[k][attribute]
            for metric in ("plcc", "srcc"):
                m = entry[metric]
                cells.append(f"{m['mean']:.4f} ± {m['std_repeats']:.4f}")
        lines.append(f"| {attribute} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_boxplot(records: Sequence[dict[str, Any]], path: PathLike, attribute: str = "aesthetic",
                 title: str = "") -> Path:
    """Box plots of the SRCC of ``attribute`` per k: per user (mean over repeats), and per repeat (mean over
    users, the paper's Fig. 1 view)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in records if r["attribute"] == attribute]
    keys = sorted({ZERO_SHOT if r["k"] in (0, ZERO_SHOT) else str(r["k"]) for r in rows},
                  key=lambda s: -1 if s == ZERO_SHOT else int(s))
    labels = ["zero-shot" if k == ZERO_SHOT else f"{k}-shot" for k in keys]

    def of(key: str) -> list[dict[str, Any]]:
        return [r for r in rows if (ZERO_SHOT if r["k"] in (0, ZERO_SHOT) else str(r["k"])) == key]

    per_user = [[finite_mean(r["srcc"] for r in of(k) if r["user"] == u) for u in sorted({r["user"] for r in of(k)})]
                for k in keys]
    per_repeat = [[finite_mean(r["srcc"] for r in of(k) if r["repeat"] == rep)
                   for rep in sorted({r["repeat"] for r in of(k)})] for k in keys]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), sharey=True)
    rng = np.random.default_rng(0)
    for ax, data, what in ((axes[0], per_user, "per user (mean over repeats)"),
                           (axes[1], per_repeat, "per repeat (mean over users)")):
        clean = [[v for v in d if v == v] or [float("nan")] for d in data]
        ax.boxplot(clean, showmeans=True)
        ax.set_xticks(range(1, len(labels) + 1), labels)
        for i, values in enumerate(clean, start=1):
            ax.scatter(i + rng.uniform(-0.12, 0.12, len(values)), values, s=10, alpha=0.6, color="tab:blue")
        ax.set_title(f"{attribute} SRCC, {what}", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("SRCC")
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=120)
    plt.close(fig)
    return Path(path)


def _write_csv(records: Sequence[dict[str, Any]], path: Path) -> None:
    with atomic_open(path, newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(CSV_COLUMNS), extrasaction="ignore")
        writer.writeheader()
        for r in records:
            writer.writerow({**r, "plcc": "" if r["plcc"] != r["plcc"] else f"{r['plcc']:.6f}",
                             "srcc": "" if r["srcc"] != r["srcc"] else f"{r['srcc']:.6f}"})


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
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device(config.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if isinstance(model, AesMambaForAestheticAssessment):
        base_model, model_name = model, getattr(model.config, "variant", None) or "in-memory model"
        if processor is None:
            _, processor = load_model_and_processor(None, config=model.config)
    else:
        model_name = os.fspath(model)
        base_model, loaded = load_model_and_processor(model)
        processor = processor if processor is not None else loaded
    base_model = base_model.to(torch.float32).eval()
    if config.scan_backend:
        base_model.set_scan_backend(config.scan_backend)
    columns = attribute_columns(base_model.config)
    train_collator = AesMambaDataCollator.for_config(base_model.config, processor, train=config.augment)
    eval_collator = AesMambaDataCollator.for_config(base_model.config, processor, train=False)
    base_device_model = base_model.to(device)

    users, skipped = load_users(para_root, config)
    records: list[dict[str, Any]] = []
    bad_images: list[dict[str, str]] = []
    done: list[str] = []
    runs_path = out / "runs.jsonl"
    with runs_path.open("w", encoding="utf-8") as runs_file:
        for lazy in users:
            data = lazy.decoded()
            bad_images += data.bad_images
            if len(data.test_rows) < 2:
                skipped.append({"user": data.user, "reason": "fewer than 2 readable test images"})
                continue
            done.append(data.user)
            test_batches = _prepare_batches(eval_collator, data.test_rows, config.eval_batch_size)
            test_targets = _targets(data.test_rows)
            n_test = len(data.test_rows)
            if config.zero_shot:
                scores = predict(base_device_model, test_batches, device)
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
                    selection, val_idx, fit_idx = "last", [], shots
                    if config.selection == "validation" and k >= config.min_shots_for_validation:
                        fit_idx, val_idx = split_validation(shots, config.validation_fraction)
                        selection = "validation"
                    validation = None
                    if val_idx:
                        val_rows = [data.train_rows[i] for i in val_idx]
                        validation = (_prepare_batches(eval_collator, val_rows, config.eval_batch_size),
                                      _targets(val_rows))
                    tuned, info = finetune(base_device_model, [data.train_rows[i] for i in fit_idx], train_collator,
                                           config, seed, device, validation=validation, columns=columns)
                    scores = predict(tuned, test_batches, device)
                    del tuned
                    new = _metric_records(data.user, k, repeat, seed, scores, test_targets, columns,
                                          {"n_train": len(fit_idx), "n_val": len(val_idx), "n_test": n_test,
                                           "epochs": info["epochs"], "selection": selection, "tune": config.tune})
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
    description = (f"{len(done)} users, shots {config.shots}, {config.repeats} repeats, tune={config.tune}, "
                   f"{config.epochs} epochs, selection={config.selection} (never on test)")
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


__all__ = [
    "PIAAConfig",
    "PIAAResult",
    "attribute_columns",
    "finetune",
    "load_users",
    "plot_boxplot",
    "predict",
    "run_piaa",
    "run_seed",
    "sample_shots",
    "split_validation",
    "stable_seed",
    "summarize",
    "summary_table",
    "trainable_modules",
]
