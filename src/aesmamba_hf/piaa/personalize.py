"""``personalize()``: one user's ratings → a per-user PEFT adapter on a shared base model.

The ratings are read and checked (:func:`read_ratings`), the user's profile builds the SMP prompt of a P model,
the number of epochs is chosen on a split of the user's *own* ratings (never on a test set): the adapter is
trained on one part with the validation SRCC of the other part recorded after every epoch, the folds swapped,
and the epoch count with the best mean SRCC kept — ``0`` (no adaptation) is a candidate, so a user whose
ratings the base already ranks well keeps the base. The final adapter is then trained on every rating for
that many epochs and written atomically (:func:`aesmamba_hf.io_utils.atomic_output_dir`). Every training run
goes through the package's one fine-tuning function, :func:`aesmamba_hf.training.fit` (the Trainer path).

Attributes a ratings file leaves out (PARA's quality, composition, ...) are trained towards the base model's
own prediction for that image, so the adapter changes only what the user rated.
"""

from __future__ import annotations

import copy
import csv
import math
import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch

from ..image_processing_aesmamba import ImageLoadError, load_image
from ..inference.predictor import overall_head_index
from ..io_utils import atomic_output_dir, atomic_write_json, check_new_output_dir
from ..prompts import UserProfile
from .adapters import (
    DEFAULT_ADAPTER_KIND,
    PERSONALIZATION_FILE,
    adapter_size_bytes,
    attach_adapter,
    is_peft_model,
)

PathLike = Union[str, os.PathLike]
MIN_RATINGS = 4  # two per validation fold at least
OVERALL_COLUMN = "score"
PROFILE_FILE = "profile.json"


class RatingsError(ValueError):
    """A ratings file or list that cannot be used; the message names the row or column."""


@dataclass
class PersonalizeConfig:
    """How an adapter is trained. ``epoch_candidates``: the epoch counts compared on the user's own split
    (``0`` = keep the base); ``learning_rate``/``weight_decay``: AdamW on the adapter's weights only.
    ``kind="taste"`` trains nothing: the user's taste is fitted in closed form under the base's taste prior
    (``taste_prior``: its file; default the base folder's ``taste_prior.safetensors``), see :mod:`.taste`."""

    kind: str = DEFAULT_ADAPTER_KIND
    rank: int = 4
    learning_rate: float = 1e-2
    weight_decay: float = 1e-2
    epoch_candidates: tuple[int, ...] = (0, 5, 10, 20, 30)
    batch_size: int = 16
    augment: bool = True
    seed: int = 0
    min_ratings: int = MIN_RATINGS
    validation_folds: int = 2
    device: Optional[str] = None
    taste_prior: Optional[str] = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class PersonalizeResult:
    """What :func:`personalize` made: ``adapter_dir`` (``None`` when no ``output_dir`` was given), the adapter
    model in memory (``model``: a ``peft.PeftModel`` on the base), the chosen epochs and the validation curve."""

    adapter_dir: Optional[Path]
    model: Any
    epochs: int
    validation_srcc: dict[int, float]
    num_ratings: int
    prompt: Optional[str]
    seconds: float
    adapter_bytes: Optional[int] = None
    details: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------------------
# input


def _number(value: Any, where: str, low: float, high: float, required: bool) -> Optional[float]:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise RatingsError(f"{where}: the score is empty")
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise RatingsError(f"{where}: {value!r} is not a number") from None
    if not math.isfinite(number):
        raise RatingsError(f"{where}: the score is {value!r} (NaN/inf); give a number in [{low:g}, {high:g}]")
    if not low <= number <= high:
        raise RatingsError(f"{where}: the score {number:g} is outside [{low:g}, {high:g}]")
    return number


def _read_csv(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            columns = [c.strip() for c in (reader.fieldnames or [])]
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise RatingsError(f"cannot read the ratings file {path}: {err}") from err
    return [{(k or "").strip(): v for k, v in row.items()} for row in rows], columns


def read_ratings(ratings: Union[PathLike, Sequence[Mapping[str, Any]]], config: Any,
                 min_rows: int = MIN_RATINGS) -> list[dict[str, Any]]:
    """Checked rating rows ``{"image", "source", "scores": {head: value}}`` for a model ``config``.

    ``ratings``: a CSV (columns ``image`` — a path, relative to the CSV's folder — and ``score``, the overall
    rating; optionally one column per other head, e.g. PARA's ``quality``, ``composition``, ...) or a list of
    mappings with the same keys (``image`` may also be a PIL image). Raises :class:`RatingsError` naming the
    row or column: missing columns, missing/unreadable images, empty/NaN/out-of-range scores, an image rated
    twice, fewer than ``min_rows`` rows.
    """
    overall = config.head_names[overall_head_index(config)]
    ranges = config.score_ranges
    if isinstance(ratings, (str, os.PathLike)):
        path = Path(ratings)
        if not path.is_file():
            raise RatingsError(f"ratings file {path} does not exist")
        table, columns = _read_csv(path)
        base_dir, origin = path.parent, str(path)
        first_row = 2  # a CSV row number as a spreadsheet shows it (header = row 1)
    else:
        table = [dict(r) for r in ratings]
        columns = sorted({k for r in table for k in r})
        base_dir, origin, first_row = Path.cwd(), "ratings", 0
    missing = [c for c in ("image", OVERALL_COLUMN) if c not in columns]
    if missing:
        raise RatingsError(f"{origin}: missing column(s) {missing}; a ratings file needs 'image' (path) and "
                           f"'score' (the overall {overall!r} rating), optionally {sorted(set(ranges) - {overall})}")
    extra = [c for c in columns if c in ranges and c != overall]
    unknown = [c for c in columns if c not in ("image", OVERALL_COLUMN, *extra)]
    if unknown:
        raise RatingsError(f"{origin}: unknown column(s) {unknown}; known: image, score, "
                           f"{sorted(set(ranges) - {overall})}")
    rows: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(table):
        where = f"{origin} row {i + first_row}"
        image = raw.get("image")
        if image is None or (isinstance(image, str) and not image.strip()):
            raise RatingsError(f"{where}: no image")
        if isinstance(image, (str, os.PathLike)):
            file = Path(image) if Path(image).is_absolute() else base_dir / image
            key = os.path.normcase(os.path.realpath(file))
            if key in seen:
                raise RatingsError(f"{where}: image {image} is rated twice (also row {seen[key] + first_row})")
            seen[key] = i
            if not file.is_file():
                raise RatingsError(f"{where}: image {file} does not exist")
            try:
                load_image(file)
            except ImageLoadError as err:
                raise RatingsError(f"{where}: {err}") from err
            image = str(file)
        scores = {overall: _number(raw.get(OVERALL_COLUMN), f"{where}, column score", *ranges[overall], True)}
        for column in extra:
            value = _number(raw.get(column), f"{where}, column {column}", *ranges[column], False)
            if value is not None:
                scores[column] = value
        rows.append({"image": image, "source": where, "scores": scores})
    if len(rows) < min_rows:
        raise RatingsError(f"{origin}: {len(rows)} rating(s); personalising needs at least {min_rows}")
    return rows


def load_profile(profile: Union[None, PathLike, Mapping[str, Any], UserProfile]) -> Optional[UserProfile]:
    """A :class:`UserProfile` from a JSON file, JSON text, a mapping or a profile (unknown fields are an
    error naming them)."""
    if profile is None or isinstance(profile, UserProfile):
        return profile
    if isinstance(profile, Mapping):
        return UserProfile.from_dict(profile)
    return UserProfile.from_json(profile)


# ----------------------------------------------------------------------------------------------------------
# training


def _training_rows(rows: Sequence[dict[str, Any]], base: Any, processor: Any, profile: Optional[UserProfile],
                   batch_size: int, with_features: bool = False) -> tuple[list[dict[str, Any]], Any]:
    """Rows in the training schema: the user's scores, and the base's own predictions for unrated heads; and
    those predictions (``Predictions``, with the heads' feature when ``with_features``: a taste fit reuses them)."""
    from ..inference.predictor import Predictor

    examples = [{"image": r["image"], **({"user": profile} if profile is not None else {})} for r in rows]
    result = Predictor(base, processor, batch_size=batch_size).predict_examples(examples, with_features=with_features)
    if result.errors:
        index, reason = next(iter(result.errors.items()))
        raise RatingsError(f"{rows[index]['source']}: {reason}")
    names = base.config.head_names
    out = []
    for row, predicted in zip(rows, result.scores.astype(np.float64)):
        labels = [row["scores"].get(name, float(predicted[j])) for j, name in enumerate(names)]
        out.append({"image": row["image"], "labels": labels, "class_labels": _scale_classes(base.config, labels),
                    "source": row["source"],
                    **({"user": profile} if profile is not None else {})})
    return out, result


def _scale_classes(config: Any, labels: Sequence[float]) -> list[int]:
    """Each head's scale class of ``labels`` (0 for heads without a class branch). The Trainer's evaluation
    needs every label column present to compute metrics."""
    classes = []
    for head, value in zip(config.heads, labels):
        n = head.get("num_scale_classes", 0)
        classes.append(int(min(max(math.floor(value * head["class_scale"] + head["class_offset"]), 0), n - 1))
                       if n else 0)
    return classes


def _train_config(config: PersonalizeConfig, task: str, overall: str, epochs: int, validate: bool,
                  device: torch.device, scratch: str) -> Any:
    from ..training.recipes import TrainConfig

    return TrainConfig(
        task=task, dataset="PARA", batch_size=config.batch_size, eval_batch_size=32,
        learning_rate=config.learning_rate, epochs=max(1, epochs), weight_decay=config.weight_decay,
        max_grad_norm=1.0, lr_scheduler="cosine", scheduler_per_epoch=True, augment=config.augment,
        seed=config.seed, metric_for_best_model=f"srcc_{overall}", eval_strategy="epoch" if validate else "no",
        save_total_limit=1, keep_checkpoints=False, check_images=False, dataloader_num_workers=0,
        use_cpu=device.type == "cpu", logging_steps=1, output_dir=scratch,
        training_args={"logging_strategy": "epoch", "save_strategy": "no", "load_best_model_at_end": False},
    )


def train_adapter(base: Any, processor: Any, train_rows: Sequence[dict[str, Any]], config: PersonalizeConfig,
                  epochs: int, validation: Optional[Sequence[dict[str, Any]]] = None,
                  device: Optional[torch.device] = None) -> tuple[Any, list[float]]:
    """A fresh adapter on a copy of ``base`` trained ``epochs`` epochs on ``train_rows`` by
    :func:`aesmamba_hf.training.fit`; returns it (eval mode) and the validation SRCC of the overall head after
    each epoch (empty without ``validation``)."""
    from ..training.finetune import fit

    device = device or torch.device("cpu")
    model = attach_adapter(copy.deepcopy(base).to(device), config.kind, config.rank)
    overall = base.config.head_names[overall_head_index(base.config)]
    if epochs <= 0:
        return model.eval(), []
    with tempfile.TemporaryDirectory(prefix="aesmamba-personalize-") as scratch:
        cfg = _train_config(config, base.config.task, overall, epochs, validation is not None, device, scratch)
        fitted = fit(cfg, model, processor, list(train_rows), list(validation) if validation else None, quiet=True)
    curve = [float(e[f"eval_srcc_{overall}"]) for e in fitted.trainer.state.log_history
             if f"eval_srcc_{overall}" in e]
    return model.eval(), curve


def _srcc_of(model: Any, processor: Any, rows: Sequence[dict[str, Any]]) -> float:
    from ..inference.predictor import Predictor
    from ..metrics import srcc

    column = overall_head_index(model.config)
    scores = Predictor(model, processor, batch_size=32).predict_examples(
        [{k: r[k] for k in ("image", "user") if k in r} for r in rows]).scores
    return float(srcc(scores[:, column], np.asarray([r["labels"][column] for r in rows])))


def choose_epochs(base: Any, processor: Any, rows: Sequence[dict[str, Any]], config: PersonalizeConfig,
                  device: torch.device) -> tuple[int, dict[int, float]]:
    """The epoch count (from ``config.epoch_candidates``) with the best mean validation SRCC over
    ``config.validation_folds`` folds of the user's own rows (seeded); ties go to fewer epochs."""
    order = np.random.default_rng(config.seed).permutation(len(rows))
    folds = np.array_split(order, max(2, config.validation_folds))
    candidates = sorted(set(config.epoch_candidates))
    per_candidate: dict[int, list[float]] = {c: [] for c in candidates}
    longest = max(candidates)
    for fold in folds:
        held = set(fold.tolist())
        train = [rows[i] for i in order if i not in held]
        validation = [rows[i] for i in fold]
        _, curve = train_adapter(base, processor, train, config, longest, validation, device)
        base_srcc = _srcc_of(base, processor, validation)
        for c in candidates:
            value = base_srcc if c == 0 else (curve[c - 1] if c - 1 < len(curve) else float("nan"))
            per_candidate[c].append(value)
    means = {c: float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")
             for c, v in per_candidate.items()}
    finite = {c: m for c, m in means.items() if m == m}
    best = max(finite, key=lambda c: (finite[c], -c)) if finite else 0
    return best, means


def personalize(
    base: Any,
    ratings: Union[PathLike, Sequence[Mapping[str, Any]]],
    profile: Union[None, PathLike, Mapping[str, Any], UserProfile] = None,
    output_dir: Optional[PathLike] = None,
    *,
    config: Optional[PersonalizeConfig] = None,
    processor: Any = None,
    overwrite: bool = False,
    progress: Optional[Callable[[str], None]] = None,
) -> PersonalizeResult:
    """Train one user's adapter from their ratings (module docstring) and, with ``output_dir``, save it.

    Args:
        base: the shared base model — a folder / variant alias / Hub id, or a loaded AesMamba model (left
            unchanged: the adapter is trained on a copy).
        ratings: a CSV path (``image``, ``score``, optional attribute columns) or a list of
            ``{"image": path or PIL image, "score": x, ...}``.
        profile: the user's profile (JSON file/text, mapping or :class:`~aesmamba_hf.prompts.UserProfile`);
            required for a P model (it builds the SMP prompt), not taken by V/F models.
        output_dir: where the adapter folder is written (atomically; an existing non-empty folder needs
            ``overwrite``). ``None``: the adapter stays in memory (``result.model``).
        config: :class:`PersonalizeConfig` (adapter kind, rank, learning rate, epoch candidates, seed).
        processor: the base's processor when ``base`` is an in-memory model (default: its config's).

    Returns:
        :class:`PersonalizeResult` with ``adapter_dir``; score with ``load_model(base, adapter=adapter_dir)``.

    Raises:
        RatingsError: bad ratings (the message names the row/column); ValueError: a bad profile (names the field).
    """
    from ..inference.loading import pick_device

    config = config or PersonalizeConfig()
    say = progress or (lambda line: None)
    start = time.perf_counter()
    device = pick_device(config.device)
    base_model, processor, base_name = _base_and_processor(base, processor, device)
    user = _profile_for(base_model.config, profile)
    prior = _taste_prior(base_model, config)  # a missing or foreign prior fails before any image is read
    checked = read_ratings(ratings, base_model.config, config.min_ratings)
    if output_dir is not None:  # refuse a bad output folder before the training
        check_new_output_dir(output_dir, overwrite=overwrite, what="adapter folder",
                             how="pass overwrite=True (--overwrite)")
    rows, predictions = _training_rows(checked, base_model, processor, user, config.batch_size,
                                       with_features=prior is not None)
    if prior is not None:
        from .taste import fit_taste_adapter

        say(f"{len(rows)} ratings read; fitting the taste direction under the base's taste prior")
        model = fit_taste_adapter(base_model, processor, rows, prior, config.batch_size, predictions=predictions)
        epochs, curve = 0, {}
    else:
        say(f"{len(rows)} ratings read; choosing the epochs on {config.validation_folds} folds of them")
        epochs, curve = choose_epochs(base_model, processor, rows, config, device)
        say(f"validation SRCC per epoch count: {curve}; training the adapter on all ratings for {epochs} epochs")
        model, _ = train_adapter(base_model, processor, rows, config, epochs, device=device)
    meta = _metadata(base_name, base_model.config, user, checked, epochs, curve, config)
    if prior is not None:
        from .taste import taste_summary

        meta["taste_prior"] = taste_summary(prior)
    result = PersonalizeResult(adapter_dir=None, model=model, epochs=epochs, validation_srcc=curve,
                               num_ratings=len(rows), prompt=meta["prompt"], seconds=0.0, details=meta)
    if output_dir is not None:
        result.adapter_dir = _save_adapter(output_dir, model, meta, user, overwrite)
        result.adapter_bytes = adapter_size_bytes(output_dir)
    result.seconds = time.perf_counter() - start
    say(f"done in {result.seconds:.1f} s" + (f": {result.adapter_dir}" if result.adapter_dir else ""))
    return result


def _taste_prior(base: Any, config: PersonalizeConfig) -> Any:
    """The taste prior for ``kind="taste"`` (``None`` for the trained kinds, which take none)."""
    if config.kind != "taste":
        if config.taste_prior is not None:
            raise ValueError(f"taste_prior / --taste-prior is for kind 'taste'; kind {config.kind!r} takes none")
        return None
    from .taste import prior_for

    return prior_for(base, config.taste_prior)


def _base_and_processor(base: Any, processor: Any, device: torch.device) -> tuple[Any, Any, str]:
    """The base model (eval mode), its processor and the name recorded for it: ``base`` loaded when it is a
    folder / alias / Hub id, else used as given (never an adapter model)."""
    from ..inference.loading import load_model, load_processor_for_config

    if isinstance(base, (str, os.PathLike)):
        loaded = load_model(base, device=device)
        return loaded.model.eval(), processor or loaded.processor, os.fspath(base)
    if is_peft_model(base):
        raise ValueError("personalize() takes the shared base model, not a model with an adapter")
    name = getattr(base, "name_or_path", "") or "in-memory model"
    return base.eval(), processor or load_processor_for_config(base.config), name


def _profile_for(config: Any, profile: Union[None, PathLike, Mapping[str, Any], UserProfile]
                 ) -> Optional[UserProfile]:
    """The user's profile, required by a P model (it builds the SMP prompt) and refused by the others."""
    user = load_profile(profile)
    reads_profile = config.uses_text and config.task == "P"
    if reads_profile and user is None:
        raise ValueError("a P model personalises with the user's profile (it builds the SMP prompt): pass "
                         "profile= / --profile USER.json")
    if user is not None and not reads_profile:
        raise ValueError(f"a {config.task} model takes no user profile; drop profile= / --profile")
    return user


def _metadata(base_name: str, config: Any, user: Optional[UserProfile], checked: Sequence[dict[str, Any]],
              epochs: int, curve: dict[int, float], settings: PersonalizeConfig) -> dict[str, Any]:
    """What ``personalization.json`` records: the base, the user, the training and the rated images."""
    return {"base": base_name, "base_task": config.task, "base_heads": list(config.head_names),
            "profile": user.to_dict() if user is not None else None,
            "prompt": user.to_prompt() if user is not None else None, "num_ratings": len(checked),
            "epochs": epochs, "validation_srcc": {str(k): v for k, v in curve.items()}, "config": settings.to_dict(),
            "images": [str(r["image"]) if isinstance(r["image"], (str, os.PathLike)) else None for r in checked]}


def _save_adapter(output_dir: PathLike, model: Any, meta: dict[str, Any], user: Optional[UserProfile],
                  overwrite: bool) -> Path:
    """The adapter folder, written atomically: PEFT's files, ``personalization.json`` and the profile."""
    with atomic_output_dir(output_dir, overwrite=overwrite) as staging:
        model.save_pretrained(staging)
        atomic_write_json(staging / PERSONALIZATION_FILE, meta)
        if user is not None:  # what `aesmamba score --adapter DIR` builds the prompt from
            user.to_json(staging / PROFILE_FILE)
    return Path(output_dir)


__all__ = ["MIN_RATINGS", "PersonalizeConfig", "PersonalizeResult", "RatingsError", "choose_epochs",
           "load_profile", "personalize", "read_ratings", "train_adapter"]
