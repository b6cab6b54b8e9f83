"""The personal view's glue: a profile from the form, its SMP prompt, and a per-user adapter from ratings.

The adapter is trained by :func:`aesmamba_hf.piaa.personalize` on the model the app already serves (no second
copy is loaded; a ``--random-weights`` model works too) and scored with the result's in-memory adapter model.
"""

from __future__ import annotations

import csv
import math
import tempfile
from pathlib import Path
from typing import Any, Optional

from ..inference.predictor import Predictor
from ..piaa.personalize import MIN_RATINGS, personalize
from ..prompts import BIG_FIVE_NAMES, UserProfile, build_prompt
from .models import ServedModel

MAX_RATED_PHOTOS = 10


def profile_from_form(*values: Any) -> UserProfile:
    """The form's values in SMP order (the five Big-Five scores, art and photo experience)."""
    traits, (art, photo) = values[: len(BIG_FIVE_NAMES)], values[len(BIG_FIVE_NAMES):]
    fields = {name: None if v is None else int(v) for name, v in zip(BIG_FIVE_NAMES, traits)}
    return UserProfile(**fields, art_experience=art or None, photo_experience=photo or None)


def prompt_for(profile: UserProfile, served: Optional[ServedModel] = None) -> str:
    """The prompt a P model reads for ``profile`` (with that model's prompt settings when given)."""
    if served is not None and served.task.reads_user_profile:
        return served.loaded.processor.build_prompt(profile)
    return build_prompt(profile)


def ratings_from_table(rows: list[list[Any]], paths: list[str], score_range: tuple[float, float]
                       ) -> list[tuple[str, float]]:
    """(photo, rating) for the rows that have a rating; an unreadable or out-of-range one is an error."""
    rated = []
    low, high = score_range
    for index, (path, row) in enumerate(zip(paths, rows), start=1):
        cell = row[1] if len(row) > 1 else None
        if cell is None or (isinstance(cell, str) and not cell.strip()):
            continue
        try:
            value = float(cell)
        except (TypeError, ValueError):
            raise ValueError(f"row {index} ({Path(path).name}): rating {cell!r} is not a number") from None
        if math.isnan(value):
            continue
        if not low <= value <= high:
            raise ValueError(f"row {index} ({Path(path).name}): rating {value:g} is outside {low:g}–{high:g}")
        rated.append((path, value))
    return rated


def adapted_predictor(result: Any, served: ServedModel) -> Predictor:
    """A predictor over the adapter model of a :class:`~aesmamba_hf.piaa.PersonalizeResult` (a ``PeftModel`` on
    a copy of the served base, which stays shared and unchanged)."""
    return Predictor(result.model.eval(), served.loaded.processor)


def train_adapter(served: ServedModel, rated: list[tuple[str, float]], profile: UserProfile, workdir: Path,
                  config: Any = None) -> Predictor:
    """Write the ratings as a CSV (``image``, ``score``) in ``workdir``, train an adapter on the served model
    (``config``: a :class:`~aesmamba_hf.piaa.PersonalizeConfig`, default the library's), return its scorer."""
    run_dir = Path(tempfile.mkdtemp(prefix="adapter-", dir=workdir))
    ratings = run_dir / "ratings.csv"
    with ratings.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "score"])
        writer.writerows(rated)
    result = personalize(served.loaded.model, str(ratings), profile=profile, output_dir=run_dir / "adapter",
                         config=config, processor=served.loaded.processor)
    return adapted_predictor(result, served)


__all__ = ["MAX_RATED_PHOTOS", "MIN_RATINGS", "adapted_predictor", "profile_from_form", "prompt_for",
           "ratings_from_table", "train_adapter"]
