"""Scoring glue between the page and the package's one :class:`~aesmamba_hf.inference.predictor.Predictor`.

Uploads arrive as files in the app's temporary folder. Each is checked for what the predictor cannot say well
(no file, an empty file, a file over the size limit) and the rest is scored in one batched call; an unreadable
image becomes a per-photo error with the decoder's reason, the other photos are scored.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any, Optional

from ..prompts import UserProfile
from .models import ServedModel

DEFAULT_MAX_FILE_MB = 20.0


@dataclass
class PhotoResult:
    """One uploaded photo and its record (``status`` ok with the predictor's fields, or ``error``)."""

    path: str
    record: dict[str, Any]

    @property
    def name(self) -> str:
        return os.path.basename(self.path)

    @property
    def ok(self) -> bool:
        return self.record.get("status") == "ok"

    @property
    def score(self) -> Optional[float]:
        return self.record.get("score") if self.ok else None

    @property
    def error(self) -> Optional[str]:
        return None if self.ok else self.record.get("error", "could not be scored")


def upload_paths(files: Any) -> list[str]:
    """File paths from what a Gradio file component gives (``None``, a path, a list of paths or FileData)."""
    if files is None:
        return []
    items = files if isinstance(files, (list, tuple)) else [files]
    paths = []
    for item in items:
        if isinstance(item, dict):
            path = item.get("path")
        elif isinstance(item, (str, os.PathLike)):
            path = item
        else:  # gradio.FileData or a tempfile wrapper
            path = getattr(item, "path", None) or getattr(item, "name", None)
        if path:
            paths.append(os.fspath(path))
    return paths


def rank(results: list[PhotoResult], higher_is_better: bool = True) -> list[PhotoResult]:
    """The scored photos, best first (failed ones left out)."""
    scored = [r for r in results if r.ok]
    return sorted(scored, key=lambda r: r.score, reverse=higher_is_better)


class AppScorer:
    """The models the app serves and how it scores uploads with them (one forward pass at a time)."""

    def __init__(self, models: list[ServedModel], max_file_mb: float = DEFAULT_MAX_FILE_MB):
        if not models:
            raise ValueError("the app needs at least one model")
        self.models = {m.name: m for m in models}
        self.max_file_bytes = int(max_file_mb * 1024 * 1024)
        self._lock = threading.Lock()  # Gradio runs handlers in threads; one model call at a time on the CPU

    @property
    def names(self) -> list[str]:
        return list(self.models)

    def model(self, name: Optional[str]) -> ServedModel:
        if name is None:
            return next(iter(self.models.values()))
        if name not in self.models:
            raise ValueError(f"unknown model {name!r}; this app serves {', '.join(self.models)}")
        return self.models[name]

    def check_file(self, path: str) -> Optional[str]:
        """Why ``path`` cannot be scored before it is even opened, or ``None``."""
        if not os.path.isfile(path):
            return "no such file (the upload did not arrive)"
        size = os.path.getsize(path)
        if size == 0:
            return "the file is empty (0 bytes)"
        if size > self.max_file_bytes:
            return (f"the file is {size / 1024 / 1024:.1f} MB, over the app's limit of "
                    f"{self.max_file_bytes / 1024 / 1024:g} MB")
        return None

    def score_files(self, name: Optional[str], paths: list[str], *, comment: Optional[str] = None,
                    user: Optional[UserProfile] = None, model: Any = None) -> list[PhotoResult]:
        """Records for ``paths`` in their order; ``comment`` (M) and ``user`` (P) apply to every photo.

        ``model``: score with this predictor instead of the served model's (a personalised copy).
        """
        served = self.model(name)
        predictor = model if model is not None else served.predictor
        results = [PhotoResult(p, {"status": "error", "error": why}) if (why := self.check_file(p)) else None
                   for p in paths]
        todo = [i for i, r in enumerate(results) if r is None]
        if todo:
            comment = comment if comment and comment.strip() and served.task.reads_comments else None
            user = user if served.task.reads_user_profile else None
            with self._lock:
                records = predictor.predict([paths[i] for i in todo], comments=comment, users=user)
            for i, record in zip(todo, records):
                results[i] = PhotoResult(paths[i], record)
        return results


__all__ = ["AppScorer", "DEFAULT_MAX_FILE_MB", "PhotoResult", "rank", "upload_paths"]
