"""The personal view's glue: a profile from the form, its SMP prompt, and a per-user adapter from ratings.

The adapter is trained by ``aesmamba_hf.piaa.personalize(base, ratings, profile=None, output_dir=None)``
(PEFT, issue 19), imported when first needed: a build without it shows :data:`PERSONALIZE_UNAVAILABLE`.
"""

from __future__ import annotations

import copy
import csv
import math
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

from ..inference.predictor import Predictor
from ..prompts import BIG_FIVE_NAMES, UserProfile, build_prompt
from .models import ServedModel

PERSONALIZE_UNAVAILABLE = ("Personalisation is not available in this build (aesmamba_hf.piaa.personalize is "
                           "missing). The profile and the re-ranking by profile above still work.")
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


def personalize_function() -> Optional[Callable[..., Any]]:
    try:
        from ..piaa import personalize
    except ImportError:
        return None
    return personalize


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


def adapted_predictor(result: Any, served: ServedModel, adapter_dir: Path) -> Predictor:
    """A predictor over the base model with the user's adapter (whatever form ``personalize`` returns)."""
    import torch

    model = getattr(result, "model", None)
    if model is None and isinstance(result, torch.nn.Module):
        model = result
    if model is None:  # only the saved adapter: put it on a copy, the served base stays shared
        from peft import PeftModel

        model = PeftModel.from_pretrained(copy.deepcopy(served.loaded.model), str(adapter_dir))
    return Predictor(model.eval(), served.loaded.processor)


def train_adapter(served: ServedModel, rated: list[tuple[str, float]], profile: UserProfile, workdir: Path,
                  personalize: Callable[..., Any]) -> Predictor:
    """Write the ratings as a CSV (``image``, ``score``) in ``workdir``, train, and return the adapted scorer."""
    run_dir = Path(tempfile.mkdtemp(prefix="adapter-", dir=workdir))
    ratings = run_dir / "ratings.csv"
    with ratings.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "score"])
        writer.writerows(rated)
    adapter_dir = run_dir / "adapter"
    result = personalize(served.loaded.source, str(ratings), profile=profile, output_dir=str(adapter_dir))
    return adapted_predictor(result, served, adapter_dir)


__all__ = ["MAX_RATED_PHOTOS", "PERSONALIZE_UNAVAILABLE", "adapted_predictor", "personalize_function",
           "profile_from_form", "prompt_for", "ratings_from_table", "train_adapter"]
