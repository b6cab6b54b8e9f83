"""Check a built dataset before training: every bad row is found up front, not hours into an epoch.

Checks per row (all vectorised except the image check):

- ``image``: the file exists, is non-empty and passes ``PIL.Image.verify()`` (header and structure, cheap;
  ``decode=True`` also decodes the pixels, which catches truncated JPEGs at ~10x the cost). Embedded bytes
  (a dataset reloaded from Parquet) are checked the same way.
- ``labels``: non-empty, same length as the other rows, finite; vote counts non-negative and below
  ``MAX_VOTES`` (a count of 1e12 is a corrupt row, not a popular photo); scalar labels inside the dataset's
  score range (TAD66K 1–10, PARA 1–5, AADB 0–1) when the dataset is known (``spec=`` or the builder's
  ``info.dataset_name``).
- ``image_id``: unique (PARA-P: unique per user); a repeated id would count one image twice.
- ``score``: finite (a row without votes has a NaN mean).
- ``class_labels``: defined (>= 0) and, when ``num_classes`` is given, below it.
- ``user`` (PARA-P): present, i.e. the user has a ``PARA-UserInfo.csv`` row.

Each issue names the label file and line (``source`` column), the dataset row and the image path.
``on_error="skip"`` drops the bad rows (and logs a summary), ``on_error="raise"`` raises
:class:`DatasetValidationError` carrying the :class:`ValidationReport`.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pyarrow as pa
from datasets import Dataset, DatasetDict
from PIL import Image as PILImage

from ..dataset_specs import DatasetSpec, get_dataset_spec

logger = logging.getLogger(__name__)

# Far above any real per-image vote count (AVA's busiest images have a few hundred votes per bin).
MAX_VOTES = 1e6


@dataclass(frozen=True)
class ValidationIssue:
    row: int  # index in the validated dataset
    field: str  # image | labels | score | class_labels | user
    reason: str
    image: str = ""  # image path, or "<embedded>" for bytes without a path
    source: str = ""  # "<label file>:<line>" when the dataset has a ``source`` column

    def __str__(self) -> str:
        where = self.source or "(no source)"
        return f"{where}: row {self.row} ({self.image}): {self.field}: {self.reason}"


@dataclass
class ValidationReport:
    num_rows: int
    issues: list[ValidationIssue] = field(default_factory=list)

    @property
    def bad_rows(self) -> list[int]:
        return sorted({i.row for i in self.issues})

    @property
    def num_bad(self) -> int:
        return len(self.bad_rows)

    @property
    def num_valid(self) -> int:
        return self.num_rows - self.num_bad

    @property
    def ok(self) -> bool:
        return not self.issues

    def summary(self, max_issues: int = 20) -> str:
        head = f"{self.num_bad} of {self.num_rows} rows invalid ({len(self.issues)} issues)"
        lines = [head] + [f"  {issue}" for issue in self.issues[:max_issues]]
        if len(self.issues) > max_issues:
            lines.append(f"  ... {len(self.issues) - max_issues} more (ValidationReport.to_csv for all)")
        return "\n".join(lines)

    __str__ = summary

    def to_csv(self, path: str | os.PathLike) -> None:
        with open(path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["row", "source", "image", "field", "reason"])
            for i in self.issues:
                writer.writerow([i.row, i.source, i.image, i.field, i.reason])


class DatasetValidationError(ValueError):
    """Raised by ``on_error="raise"``; ``.report`` (or ``.reports`` per split) holds every issue."""

    def __init__(self, report: ValidationReport, message: str | None = None):
        super().__init__(message or report.summary())
        self.report = report
        self.reports: dict[str, ValidationReport] = {}


def check_image(path: str | None, data: bytes | None = None, decode: bool = False) -> str | None:
    """Why the image cannot be used, or None when it is fine."""
    try:
        if data is None:
            if not path:
                return "no image path or bytes"
            if not os.path.isfile(path):
                return "file not found"
            if os.path.getsize(path) == 0:
                return "empty file"
            with open(path, "rb") as fh:
                data = fh.read()
        with PILImage.open(io.BytesIO(data)) as im:
            im.verify()
        if decode:
            with PILImage.open(io.BytesIO(data)) as im:
                im.load()
    except Exception as err:  # any decoder error means the row cannot be trained on
        return f"unreadable image ({type(err).__name__}: {err})"
    return None


def _column(dataset: Dataset, name: str) -> pa.Array:
    col = dataset.select_columns([name]).with_format("arrow")[:][name]
    return col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col


def _list_rows(col: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(lengths, start offsets) and the flat values of a list column."""
    lengths = col.value_lengths().fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    return lengths, col.flatten().to_numpy(zero_copy_only=False)


def _per_row(values: np.ndarray, lengths: np.ndarray, bad_value: np.ndarray) -> np.ndarray:
    """True for rows that contain at least one ``bad_value`` entry."""
    if len(values) == 0:
        return np.zeros(len(lengths), dtype=bool)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    nonempty = lengths > 0
    out = np.zeros(len(lengths), dtype=bool)
    out[nonempty] = np.add.reduceat(bad_value.astype(np.int64), starts[nonempty]) > 0
    return out


def validate_dataset(
    dataset: Dataset,
    on_error: Literal["skip", "raise"] = "skip",
    *,
    check_images: bool = True,
    decode: bool = False,
    num_classes: int | Sequence[int] | None = None,
    num_workers: int | None = None,
    spec: DatasetSpec | str | None = None,
) -> tuple[Dataset, ValidationReport]:
    """Validate ``dataset`` (builder schema; missing columns are skipped) and return it without the bad
    rows (``on_error="skip"``) together with the report, or raise :class:`DatasetValidationError`.
    ``spec`` (default: the builder's ``dataset.info.dataset_name``) gives the score range of scalar labels.
    """
    if on_error not in ("skip", "raise"):
        raise ValueError(f"on_error must be 'skip' or 'raise', got {on_error!r}")
    n = len(dataset)
    cols = set(dataset.column_names)
    found: list[tuple[int, str, str]] = []  # (row, field, reason)

    if "labels" in cols:
        lengths, values = _list_rows(_column(dataset, "labels"))
        values = values.astype(np.float64)
        expected = int(np.bincount(lengths).argmax()) if n else 0
        for r in np.flatnonzero(lengths == 0):
            found.append((int(r), "labels", "no label values"))
        for r in np.flatnonzero((lengths != expected) & (lengths > 0)):
            found.append((int(r), "labels", f"{lengths[r]} values where the other rows have {expected}"))
        for r in np.flatnonzero(_per_row(values, lengths, ~np.isfinite(values))):
            found.append((int(r), "labels", "NaN or infinite label"))
        known = _spec_of(dataset, spec)
        if (known.num_bins > 1) if known is not None else expected > 1:  # vote counts / distributions
            for r in np.flatnonzero(_per_row(values, lengths, values < 0)):
                found.append((int(r), "labels", "negative vote count"))
            for r in np.flatnonzero(_per_row(values, lengths, values > MAX_VOTES)):
                found.append((int(r), "labels", f"implausible vote count above {MAX_VOTES:g}"))
        elif known is not None:
            found.extend(_out_of_range(values, lengths, known))
    if "score" in cols:
        scores = _column(dataset, "score").to_numpy(zero_copy_only=False).astype(np.float64)
        for r in np.flatnonzero(~np.isfinite(scores)):
            found.append((int(r), "score", "NaN or infinite score (no votes, or a missing value)"))
    if "class_labels" in cols:
        lengths, values = _list_rows(_column(dataset, "class_labels"))
        for r in np.flatnonzero(_per_row(values, lengths, values < 0)):
            found.append((int(r), "class_labels", "scale class undefined (its score is NaN)"))
        if num_classes is not None and len(values):
            heads = int(lengths.max())
            limits = np.asarray([num_classes] * heads if isinstance(num_classes, int) else list(num_classes))
            pos = np.arange(len(values)) - np.repeat(np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
            too_big = values >= limits[np.minimum(pos, len(limits) - 1)]
            for r in np.flatnonzero(_per_row(values, lengths, too_big)):
                found.append((int(r), "class_labels", f"class label >= num_classes {list(limits)}"))
    if "user" in cols:
        users = _column(dataset, "user").to_pylist()
        user_ids = _column(dataset, "user_id").to_pylist() if "user_id" in cols else [""] * n
        for r, (u, uid) in enumerate(zip(users, user_ids)):
            if not u:
                found.append((r, "user", f"no PARA-UserInfo row for userId {uid!r}"))

    if "image_id" in cols:
        found.extend(_duplicates(dataset, cols))

    paths: list[str | None] = [None] * n
    if "image" in cols:
        image_col = _column(dataset, "image")
        if pa.types.is_struct(image_col.type):
            paths = image_col.field("path").to_pylist()
        else:  # a plain string column of paths
            paths = image_col.to_pylist()
        if check_images:
            found.extend(_check_images(dataset, paths, decode, num_workers))

    sources = _column(dataset, "source").to_pylist() if "source" in cols else [""] * n
    issues = [
        ValidationIssue(row=r, field=f, reason=why, image=paths[r] or "<embedded>", source=sources[r] or "")
        for r, f, why in sorted(found, key=lambda t: t[0])
    ]
    report = ValidationReport(num_rows=n, issues=issues)
    if report.ok:
        return dataset, report
    if on_error == "raise":
        raise DatasetValidationError(report)
    logger.warning("dropping invalid rows: %s", report.summary(max_issues=10))
    bad = set(report.bad_rows)
    return dataset.select([i for i in range(n) if i not in bad]), report


def _spec_of(dataset: Dataset, spec: DatasetSpec | str | None) -> DatasetSpec | None:
    name = spec if spec is not None else getattr(dataset.info, "dataset_name", None)
    if name is None or isinstance(name, DatasetSpec):
        return name
    try:
        return get_dataset_spec(name)
    except KeyError:
        return None  # a custom dataset: no range to check against


def _out_of_range(values: np.ndarray, lengths: np.ndarray, spec: DatasetSpec) -> list[tuple[int, str, str]]:
    """Scalar labels (one score, or PARA's nine attributes) outside the dataset's score range."""
    low, high = spec.score_range
    finite = np.isfinite(values)
    outside = finite & ((values < low) | (values > high))
    return [(int(r), "labels", f"label outside {spec.name}'s score range [{low:g}, {high:g}]")
            for r in np.flatnonzero(_per_row(values, lengths, outside))]


def _duplicates(dataset: Dataset, cols: set[str]) -> list[tuple[int, str, str]]:
    """Rows repeating an earlier row's image id (per user for PARA-P, whose rows are one per user)."""
    ids = _column(dataset, "image_id").to_pylist()
    users = _column(dataset, "user_id").to_pylist() if "user_id" in cols else [None] * len(ids)
    sources = _column(dataset, "source").to_pylist() if "source" in cols else [""] * len(ids)
    first: dict[tuple, int] = {}
    out = []
    for r, key in enumerate(zip(ids, users)):
        if key in first:
            where = sources[first[key]] or f"row {first[key]}"
            out.append((r, "image_id", f"duplicate image id {key[0]!r}{'' if key[1] is None else f' for user {key[1]!r}'}"
                        f" (first at {where})"))
        else:
            first[key] = r
    return out


def _check_images(
    dataset: Dataset, paths: list[str | None], decode: bool, num_workers: int | None
) -> list[tuple[int, str, str]]:
    has_bytes_field = pa.types.is_struct(dataset.features.arrow_schema.field("image").type)
    workers = num_workers or min(8, os.cpu_count() or 1)
    out: list[tuple[int, str, str]] = []
    batch = 512
    images = dataset.select_columns(["image"]).with_format("arrow")
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for start in range(0, len(dataset), batch):
            stop = min(start + batch, len(dataset))
            if has_bytes_field:
                blobs = images[start:stop]["image"].combine_chunks().field("bytes").to_pylist()
            else:
                blobs = [None] * (stop - start)
            reasons = pool.map(lambda a: check_image(*a, decode), zip(paths[start:stop], blobs))
            out.extend((start + k, "image", why) for k, why in enumerate(reasons) if why is not None)
    return out


def validate_dataset_dict(
    datasets: DatasetDict, on_error: Literal["skip", "raise"] = "skip", **kwargs
) -> tuple[DatasetDict, dict[str, ValidationReport]]:
    """:func:`validate_dataset` on every split; with ``raise``, all splits are checked before raising."""
    cleaned, reports = {}, {}
    for name, ds in datasets.items():
        cleaned[name], reports[name] = validate_dataset(ds, on_error="skip", **kwargs)
    failing = {name: r for name, r in reports.items() if not r.ok}
    if on_error == "raise" and failing:
        message = "\n".join(f"split {name!r}: {r.summary()}" for name, r in failing.items())
        err = DatasetValidationError(next(iter(failing.values())), message)
        err.reports = failing
        raise err
    return DatasetDict(cleaned), reports


__all__ = [
    "DatasetValidationError",
    "ValidationIssue",
    "ValidationReport",
    "check_image",
    "validate_dataset",
    "validate_dataset_dict",
]
