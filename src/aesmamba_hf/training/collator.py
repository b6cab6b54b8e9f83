"""One data collator for every AesMamba variant: dataset rows → model inputs.

Rows follow the schema of :mod:`aesmamba_hf.data` (``image``, ``labels``, ``class_labels``, and ``comment``
for M or ``user`` for P). Images are decoded and transformed here, lazily, in the DataLoader workers: the
collator of the training split applies the random flip/crop augmentation (``train=True``), the one of the
evaluation splits the deterministic resize to
224×224 (bicubic, no crop).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any, Optional

import torch

from ..image_processing_aesmamba import ImageLoadError, load_image
from ..tasks import Task

logger = logging.getLogger(__name__)
TEXT_SOURCES = ("comment", "user")


def _row_name(row: Mapping[str, Any], index: int) -> str:
    return str(row.get("source") or row.get("image_id") or f"batch row {index}")


def open_image_cell(value: Any, row: Mapping[str, Any], index: int) -> Any:
    """A dataset ``image`` cell (path, ``{"bytes", "path"}`` dict, PIL image or array) → something the image
    processor takes; file errors name the row's label source as well as the file."""
    try:
        if isinstance(value, Mapping):
            if value.get("bytes"):
                return load_image(value["bytes"])  # the file rules (truncated data, bombs) apply to bytes too
            value = value.get("path")
        if isinstance(value, (str, os.PathLike, bytes, bytearray)):
            return load_image(value)
    except ImageLoadError as err:
        if not (row.get("source") or row.get("image_id")):
            raise  # the file name says it all
        raise ImageLoadError(err.path, f"{err.reason} (row {_row_name(row, index)})") from err
    if value is None:
        raise ValueError(f"row {_row_name(row, index)}: no image")
    return value


class AesMambaDataCollator:
    """Turn a list of dataset rows into ``pixel_values``, ``labels``, ``class_labels`` (+ text inputs).

    Args:
        processor: an :class:`~aesmamba_hf.processing_aesmamba.AesMambaProcessor` (its tokenizer is used for
            M/P) or a bare image processor for image-only variants.
        train: apply the training augmentation (random flip + crop) instead of the evaluation resize.
        text_source: ``"comment"`` (M), ``"user"`` (P: the SMP prompt is built from the row's PARA UserInfo
            JSON), or ``None`` (V/F: no text). ``for_config`` picks it from the model config.
        with_labels: also collate ``labels`` / ``class_labels`` (off for unlabelled inference).
        skip_unreadable: drop a row whose image cannot be decoded (a truncated JPEG that passed validation's
            cheap check) from its batch, with a warning naming the file and label row, instead of failing the
            batch; the rows are listed in ``skipped`` (in this process). A batch of only such rows still fails.

    ``labels`` become float (B, K) — vote counts for distribution heads, one score per head otherwise — and
    ``class_labels`` long (B, num_heads). A NaN label or a -1 class (a row that failed validation) is an error
    naming the row's ``source``.
    """

    def __init__(
        self,
        processor: Any,
        train: bool = False,
        text_source: Optional[str] = None,
        with_labels: bool = True,
        skip_unreadable: bool = False,
    ):
        if text_source is not None and text_source not in TEXT_SOURCES:
            raise ValueError(f"text_source must be one of {TEXT_SOURCES} or None, got {text_source!r}")
        if text_source is not None and getattr(processor, "tokenizer", None) is None:
            raise ValueError(f"text_source={text_source!r} needs a processor with a tokenizer (an M/P variant)")
        self.processor = processor
        self.train = bool(train)
        self.text_source = text_source
        self.with_labels = with_labels
        self.skip_unreadable = skip_unreadable
        self.skipped: list[dict[str, str]] = []

    @classmethod
    def for_config(cls, config: Any, processor: Any, train: bool = False, **kwargs: Any) -> AesMambaDataCollator:
        """The collator matching an ``AesMambaConfig``: comments for M, the user prompt for P."""
        text_source = Task.parse(config.task).text_input if config.uses_text else None
        return cls(processor, train=train, text_source=text_source, **kwargs)

    def with_train(self, train: bool) -> AesMambaDataCollator:
        """The same collator with the other transform (training augmentation on/off)."""
        return type(self)(self.processor, train=train, text_source=self.text_source, with_labels=self.with_labels,
                          skip_unreadable=self.skip_unreadable)

    # -- pieces ---------------------------------------------------------------------------------------

    def _open_images(self, rows: Sequence[Mapping[str, Any]]) -> tuple[list[Mapping[str, Any]], list[Any]]:
        """The rows whose image opens and those images; unreadable ones are skipped (and listed) if allowed."""
        if not self.skip_unreadable:
            return list(rows), [open_image_cell(row.get("image"), row, i) for i, row in enumerate(rows)]
        kept, images, failed = [], [], []
        for i, row in enumerate(rows):
            try:
                images.append(open_image_cell(row.get("image"), row, i))
                kept.append(row)
            except ImageLoadError as err:
                failed.append(err)
                self.skipped.append({"image": str(err.path), "source": _row_name(row, i), "reason": err.reason})
                logger.warning("skipping an unreadable training image: %s", err)
        if not kept:
            raise ImageLoadError(None, "every image of the batch is unreadable: " + "; ".join(map(str, failed)))
        return kept, images

    def _pixel_values(self, images: Sequence[Any]) -> torch.Tensor:
        image_processor = getattr(self.processor, "image_processor", self.processor)
        return image_processor(images, train=self.train, return_tensors="pt")["pixel_values"]

    def _text_inputs(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        column = self.text_source
        values = []
        for i, row in enumerate(rows):
            value = row.get(column)
            if value is None or (isinstance(value, str) and not value.strip() and column == "user"):
                raise ValueError(
                    f"row {_row_name(row, i)}: the {'P' if column == 'user' else 'M'} model needs a "
                    f"non-empty {column!r} column (got {value!r})"
                )
            values.append(value)
        try:
            if column == "user":
                encoded = self.processor(users=values, return_tensors="pt")
            else:
                encoded = self.processor(comments=values, return_tensors="pt")
        except ValueError as err:
            where = ", ".join(_row_name(r, i) for i, r in enumerate(rows))
            raise ValueError(f"cannot build the {column} text of rows [{where}]: {err}") from err
        return {k: v for k, v in encoded.items() if k in ("input_ids", "attention_mask", "token_type_ids")}

    @staticmethod
    def _labels(rows: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        labels, classes = [], []
        for i, row in enumerate(rows):
            value = row.get("labels")
            if value is None:
                raise ValueError(f"row {_row_name(row, i)}: no 'labels'")
            value = [float(v) for v in (value if isinstance(value, (list, tuple)) else [value])]
            if any(not math.isfinite(v) for v in value):
                raise ValueError(f"row {_row_name(row, i)}: non-finite label {value} (run data validation)")
            labels.append(value)
            cls_value = row.get("class_labels")
            if cls_value is not None:
                cls_value = [int(c) for c in (cls_value if isinstance(cls_value, (list, tuple)) else [cls_value])]
                if any(c < 0 for c in cls_value):
                    raise ValueError(f"row {_row_name(row, i)}: invalid class label {cls_value}")
            classes.append(cls_value)
        if len({len(v) for v in labels}) != 1:
            raise ValueError(f"rows have labels of different lengths: {sorted({len(v) for v in labels})}")
        out = {"labels": torch.tensor(labels, dtype=torch.float32)}
        if all(c is not None for c in classes):  # otherwise the model derives them from the scores
            out["class_labels"] = torch.tensor(classes, dtype=torch.long)
        return out

    # -- entry point ----------------------------------------------------------------------------------

    def __call__(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        if not rows:
            raise ValueError("cannot collate an empty batch")
        rows, images = self._open_images(rows)
        batch: dict[str, torch.Tensor] = {"pixel_values": self._pixel_values(images)}
        if self.text_source is not None:
            batch.update(self._text_inputs(rows))
        if self.with_labels:
            batch.update(self._labels(rows))
        return batch

    def __repr__(self) -> str:
        return f"{type(self).__name__}(train={self.train}, text_source={self.text_source!r})"


__all__ = ["AesMambaDataCollator", "open_image_cell"]
