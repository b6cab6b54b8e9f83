"""Inputs of folder scoring: which files to score, and the comments an M model reads for them."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

IMAGE_EXTENSIONS = frozenset(
    ".jpg .jpeg .jpe .jfif .png .apng .gif .bmp .dib .tif .tiff .webp .ppm .pgm .pbm .pnm .tga .ico .jp2 .j2k "
    ".avif .heic .heif .psd".split()
)
# Scored as sampled frames (inference/video.py, PyAV); a GIF stays an image (its first frame).
VIDEO_EXTENSIONS = frozenset(".mp4 .m4v .mov .avi .mkv .webm .mpg .mpeg .wmv .flv .3gp .ts .mts .m2ts .ogv".split())
MEDIA_EXTENSIONS = IMAGE_EXTENSIONS | VIDEO_EXTENSIONS


def is_video_path(value: object) -> bool:
    """Whether ``value`` is a path (str or os.PathLike) with a video extension."""
    return isinstance(value, (str, os.PathLike)) and os.path.splitext(os.fspath(value))[1].lower() in VIDEO_EXTENSIONS


def iter_image_files(paths: Sequence[str], all_files: bool = False) -> list[str]:
    """Absolute paths of the files to score (images and videos), in a stable order, without duplicates."""
    found: list[str] = []
    seen: set[str] = set()

    def add(path: str) -> None:
        path = os.path.abspath(path)
        if path not in seen:
            seen.add(path)
            found.append(path)

    for given in paths:
        if os.path.isdir(given):
            for root, dirs, files in os.walk(given):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    if name.startswith("."):
                        continue
                    if all_files or os.path.splitext(name)[1].lower() in MEDIA_EXTENSIONS:
                        add(os.path.join(root, name))
        else:
            add(given)  # named explicitly: always tried (a missing file becomes an error row)
    return found


KEY_COLUMNS = ("path", "image", "file", "filename", "image_id", "imageName", "index", "id")
TEXT_COLUMNS = ("comment", "comments", "text", "caption")
TABLE_EXTENSIONS = (".csv", ".tsv", ".jsonl", ".ndjson")


def load_image_table(path: str) -> list[dict[str, str]]:
    """Images listed in a CSV/TSV/JSONL table: ``{"image": path, "comment"?: text}`` per row, in order.

    The image column is the first of :data:`KEY_COLUMNS` present; relative paths are taken from the table's
    folder; a text column (:data:`TEXT_COLUMNS`), when present, gives each row's comment (M models).
    """
    if Path(path).suffix.lower() not in TABLE_EXTENSIONS:
        raise ValueError(f"image list {path}: use a .csv, .tsv or .jsonl file")
    try:
        records = _read_records(path)
    except ValueError as err:
        raise ValueError(f"image list {path}: {err}") from err
    except (OSError, json.JSONDecodeError, csv.Error) as err:
        raise ValueError(f"cannot read image list {path}: {err}") from err
    if not records:
        raise ValueError(f"image list {path} has no rows")
    keys = [k for k in KEY_COLUMNS if k in records[0]]
    if not keys:
        raise ValueError(f"image list {path} needs an image column (one of {KEY_COLUMNS}); found {sorted(records[0])}")
    texts = [k for k in TEXT_COLUMNS if k in records[0]]
    folder = os.path.dirname(os.path.abspath(path))
    rows = []
    for number, record in enumerate(records, start=2):
        value = str(record.get(keys[0]) or "").strip()
        if not value:
            raise ValueError(f"image list {path}, row {number}: empty {keys[0]!r}")
        row = {"image": value if os.path.isabs(value) else os.path.join(folder, value)}
        if texts and record.get(texts[0]) not in (None, ""):
            row["comment"] = str(record[texts[0]])
        rows.append(row)
    return rows


def _read_records(path: str) -> list[dict]:
    """The rows of a CSV/TSV (dicts by header) or JSON-lines file."""
    suffix = Path(path).suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        records = []
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    records.append(json.loads(line))
        return records
    if suffix in (".csv", ".tsv", ".txt"):
        with open(path, encoding="utf-8", newline="") as handle:
            return list(csv.DictReader(handle, delimiter="\t" if suffix == ".tsv" else ","))
    raise ValueError("use a .csv, .tsv, .json or .jsonl file")


def load_comments(path: str) -> dict[str, str]:
    """Comments per image from CSV/TSV (an image column + a comment column), JSON (object) or JSONL."""
    suffix = Path(path).suffix.lower()
    key_names, text_names = KEY_COLUMNS, TEXT_COLUMNS
    try:
        if suffix == ".json":
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
            if not isinstance(data, dict):
                raise ValueError("a .json comments file must hold an object {image: comment}")
            return {str(k): v if isinstance(v, str) else str(v) for k, v in data.items()}
        records = _read_records(path)
    except (OSError, json.JSONDecodeError, csv.Error) as err:
        raise ValueError(f"cannot read comments file {path}: {err}") from err
    except ValueError as err:
        raise ValueError(f"comments file {path}: {err}") from err
    if not records:
        return {}
    keys = [k for k in key_names if k in records[0]]
    texts = [k for k in text_names if k in records[0]]
    if not keys or not texts:
        raise ValueError(
            f"comments file {path} needs an image column (one of {key_names}) and a text column "
            f"(one of {text_names}); found {sorted(records[0])}"
        )
    return {str(r[keys[0]]): str(r[texts[0]]) for r in records if r.get(texts[0]) not in (None, "")}


def find_comment(comments: dict[str, str], path: str, roots: Sequence[str]) -> Optional[str]:
    """Match an image to a comment by absolute path, path relative to a given root, file name, or stem."""
    candidates = [path]
    for root in roots:
        root = os.path.abspath(root)
        if os.path.isdir(root) and path.startswith(root + os.sep):
            candidates.append(os.path.relpath(path, root))
    candidates += [os.path.basename(path), os.path.splitext(os.path.basename(path))[0]]
    for candidate in candidates:
        if candidate in comments:
            return comments[candidate]
    return None


__all__ = ["IMAGE_EXTENSIONS", "MEDIA_EXTENSIONS", "TABLE_EXTENSIONS", "VIDEO_EXTENSIONS", "find_comment",
           "is_video_path", "iter_image_files", "load_comments", "load_image_table"]


def text_inputs(config: Any, processor: Any, user: Optional[str] = None, comments: Optional[str] = None,
                model_name: str = "the model") -> tuple[Any, dict[str, str], list[str]]:
    """The user profile file (P models) and comments file (M models) given for a scoring run, validated
    against the model: ``(profile, comments by image, notes)``. A file given to a model that does not read it
    is a ``ValueError``; a P/M model given none gets a note (it then scores from the image alone)."""
    from ..processing_aesmamba import as_user_profile
    from ..tasks import Task

    task = Task.parse(config.task)
    profile, texts, notes = None, {}, []
    if user:
        if not task.reads_user_profile:
            raise ValueError(f"--user needs a personalized (P) model; {model_name} is task {task}")
        profile = as_user_profile(user)
        processor.build_prompt(profile)  # fail now, not at the first batch
    if comments:
        if not task.reads_comments:
            raise ValueError(f"--comments needs a comment (M) model; {model_name} is task {task}")
        texts = load_comments(comments)
    if task.reads_user_profile and profile is None:
        notes.append("no --user given; the personalized model scores from the image alone")
    if task.reads_comments and not texts:
        notes.append("no --comments given; the comment model scores from the image alone")
    return profile, texts, notes
