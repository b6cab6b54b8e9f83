"""PIAA users: who takes part, and each user's training pool and fixed test rows (images decoded once)."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..image_processing_aesmamba import ImageLoadError, load_image
from .sampling import PathLike, sample_shots, stable_seed

logger = logging.getLogger(__name__)


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


def rows_by_user(dataset: Any) -> dict[str, list[dict[str, Any]]]:
    """A PIAA dataset's rows per ``user_id`` (images as paths, not decoded), in dataset order."""
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


def load_users(para_root: PathLike, config: Any) -> tuple[list[UserData], list[dict[str, Any]]]:
    """Select the users and collect their rows (image paths, not yet decoded); returns (users, skipped)."""
    from ..data.builders import build_para_piaa

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
    train_by_user = rows_by_user(train_ds.select(np.flatnonzero(np.isin(train_ids, chosen))))
    test_by_user = rows_by_user(test_ds.select(np.flatnonzero(np.isin(test_ids, chosen))))
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


__all__ = ["UserData", "load_users", "rows_by_user"]
