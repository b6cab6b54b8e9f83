"""Inputs of large scoring jobs, cut into fixed units (one output shard each) and read back as raw bytes.

Four kinds of input, detected per path (``kind="auto"``) or named:

* ``images``: image files and folders (walked like ``aesmamba score`` does); the key is the absolute path; a
  video file found there is an error row saying that videos are scored by the local engine;
* ``parquet``: Parquet files or folders of them, with an image column (encoded bytes, a path, or a
  ``datasets`` image struct ``{"bytes", "path"}``) and a key column (img2dataset writes ``key``);
* ``webdataset``: ``.tar`` shards as img2dataset writes them (``000000001.jpg`` + ``.json`` + ``.txt``
  per sample); the key is the sample key (``__key__``: the member name up to its first dot);
* ``hf``: a ``datasets`` dataset saved with ``save_to_disk`` (or a Hub id, when online).

:func:`plan_units` cuts the inputs into :class:`InputUnit` s of at most ``shard_size`` rows (a stable
function of the inputs, frozen by the job that uses it); :func:`read_unit` reads one unit on whatever worker
runs it and returns plain columns: ``key``, ``image`` (encoded bytes, or ``None``) and ``read_error`` (why the
bytes could not be read: a missing file, a sample without an image member, an empty cell...). Nothing is
decoded here: decoding belongs to the scorer, which turns a bad image into an error row.
"""

from __future__ import annotations

import os
import tarfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

from ..inference.files import IMAGE_EXTENSIONS, MEDIA_EXTENSIONS, is_video_path, iter_image_files

INPUT_KINDS = ("images", "parquet", "webdataset", "hf")
VIDEO_NOT_SCORED = "a video: videos are scored by the local engine (aesmamba score without --engine ray)"
PARQUET_SUFFIXES = (".parquet", ".pq")
TAR_SUFFIXES = (".tar",)
FILE_SUFFIXES = frozenset((*MEDIA_EXTENSIONS, *PARQUET_SUFFIXES, *TAR_SUFFIXES, ".json", ".jsonl", ".csv", ".tsv",
                           ".txt", ".arrow", ".gz", ".zip"))  # a name ending so is a file, never a Hub id


class InputSourceError(ValueError):
    """An input cannot be used (missing, unknown format, no such column); the message names it."""


@dataclass
class InputUnit:
    """Rows ``start:stop`` of one source (or an explicit list of image files), scored into shard ``shard``."""

    shard: int
    kind: str
    source: str
    start: int = 0
    stop: int = 0
    files: list[str] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.files) if self.kind == "images" else self.stop - self.start

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InputUnit:
        return cls(**dict(data))


# -- detection -----------------------------------------------------------------------------------------


def _inside(path: str, folder: Optional[str]) -> bool:
    """Whether ``path`` is ``folder`` or lies under it (``folder`` None: never)."""
    if folder is None:
        return False
    path, folder = os.path.abspath(path), os.path.abspath(folder)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _files_with(path: Path, suffixes: Sequence[str], exclude: Optional[str] = None) -> list[str]:
    if path.is_file():
        return [str(path.resolve())] if path.suffix.lower() in suffixes else []
    found = []
    for root, dirs, names in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "_")) and not _inside(os.path.join(root, d), exclude))
        found += [os.path.join(root, n) for n in sorted(names)
                  if not n.startswith((".", "_")) and os.path.splitext(n)[1].lower() in suffixes]
    return [os.path.abspath(f) for f in found]


def is_saved_dataset(path: Path) -> bool:
    """A folder written by ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk``."""
    return path.is_dir() and ((path / "state.json").is_file() or (path / "dataset_dict.json").is_file())


def looks_like_hub_id(path: str) -> bool:
    """``owner/name`` without a file suffix whose ``owner`` is not a local folder: a typo in a file path
    (``photos/img.jpg``, ``data/part.parquet``) is then "no such file", not a download attempt."""
    parts = path.split("/")
    if len(parts) != 2 or not all(parts) or path.startswith((".", "~")) or os.path.isdir(parts[0]):
        return False
    return os.path.splitext(parts[1])[1].lower() not in FILE_SUFFIXES


def detect_kind(path: str, exclude: Optional[str] = None) -> str:
    """The input kind of one command-line path (see the module docstring).

    A folder holding ``.tar`` files is webdataset (img2dataset writes metadata ``.parquet`` next to its tars:
    those are not inputs); else one holding ``.parquet`` files is Parquet; else it is a folder of images.
    A path that does not exist is a Hub dataset id only if :func:`looks_like_hub_id`; else an error.
    Nothing under ``exclude`` (the job's own output folder) counts.
    """
    p = Path(path)
    if not p.exists():
        if looks_like_hub_id(path):
            return "hf"
        raise InputSourceError(f"input {path} does not exist (no such file or folder)")
    if is_saved_dataset(p):
        return "hf"
    if p.is_file():
        suffix = p.suffix.lower()
        return "webdataset" if suffix in TAR_SUFFIXES else "parquet" if suffix in PARQUET_SUFFIXES else "images"
    if _files_with(p, TAR_SUFFIXES, exclude):
        return "webdataset"
    if _files_with(p, PARQUET_SUFFIXES, exclude):
        return "parquet"
    return "images"


# -- planning ------------------------------------------------------------------------------------------


def _ranges(total: int, size: int) -> Iterable[tuple[int, int]]:
    for start in range(0, total, size):
        yield start, min(start + size, total)


def tar_sample_keys(path: str) -> list[str]:
    """Sample keys of a webdataset tar in file order (a key's members are adjacent, as webdataset requires)."""
    keys: list[str] = []
    try:
        with tarfile.open(path) as archive:
            for member in archive:
                if not member.isfile():
                    continue
                key = sample_key(member.name)
                if not keys or keys[-1] != key:
                    keys.append(key)
    except (OSError, tarfile.TarError) as err:
        raise InputSourceError(f"cannot read webdataset shard {path}: {err}") from err
    return keys


def sample_key(member_name: str) -> str:
    """webdataset's rule: the member path up to the first dot of its base name."""
    folder, base = os.path.split(member_name)
    stem = base.split(".", 1)[0]
    return f"{folder}/{stem}" if folder else stem


def _parquet_rows(path: str, image_column: str) -> int:
    import pyarrow.parquet as pq

    try:
        metadata = pq.ParquetFile(path).schema_arrow
        rows = pq.ParquetFile(path).metadata.num_rows
    except (OSError, ValueError) as err:
        raise InputSourceError(f"cannot read Parquet file {path}: {err}") from err
    if image_column not in metadata.names:
        raise InputSourceError(f"{path} has no image column {image_column!r} (columns: {metadata.names}); "
                               "name it with --image-column")
    return rows


def load_hf_dataset(source: str, split: Optional[str] = None) -> Any:
    """A ``datasets.Dataset`` from a ``save_to_disk`` folder or a Hub id (one split)."""
    import datasets

    try:
        if Path(source).exists():
            loaded = datasets.load_from_disk(source)
        else:
            loaded = datasets.load_dataset(source, split=split) if split else datasets.load_dataset(source)
    except (OSError, ValueError, FileNotFoundError) as err:
        raise InputSourceError(f"cannot load dataset {source}: {err}") from err
    if isinstance(loaded, datasets.DatasetDict):
        if split is None and len(loaded) == 1:
            split = next(iter(loaded))
        if split not in loaded:
            raise InputSourceError(f"dataset {source} has splits {sorted(loaded)}; choose one with --split")
        loaded = loaded[split]
    return loaded


def plan_units(paths: Sequence[str], *, kind: str = "auto", shard_size: int = 1000, image_column: str = "image",
               split: Optional[str] = None, all_files: bool = False,
               exclude: Optional[str] = None) -> list[InputUnit]:
    """Every input cut into units of at most ``shard_size`` rows, numbered from 0 in input order. Files under
    ``exclude`` (the job's output folder, which may lie inside an input folder) are never inputs."""
    if shard_size < 1:
        raise InputSourceError(f"shard size must be >= 1, got {shard_size}")
    units: list[InputUnit] = []
    image_paths: list[str] = []

    def add(kind_: str, source: str, total: int) -> None:
        for start, stop in _ranges(total, shard_size):
            units.append(InputUnit(len(units), kind_, source, start, stop))

    for path in paths:
        if _inside(path, exclude):
            raise InputSourceError(f"input {path} lies inside the output folder {exclude}")
        path_kind = detect_kind(path, exclude) if kind == "auto" else kind
        if path_kind == "images":
            image_paths.append(path)
        elif path_kind == "parquet":
            for file in _files_with(Path(path), PARQUET_SUFFIXES, exclude) or [os.path.abspath(path)]:
                add("parquet", file, _parquet_rows(file, image_column))
        elif path_kind == "webdataset":
            for file in _files_with(Path(path), TAR_SUFFIXES, exclude) or [os.path.abspath(path)]:
                add("webdataset", file, len(tar_sample_keys(file)))
        elif path_kind == "hf":
            source = os.path.abspath(path) if Path(path).exists() else path
            dataset = load_hf_dataset(source, split)
            if image_column not in dataset.column_names:
                raise InputSourceError(f"dataset {path} has no image column {image_column!r} "
                                       f"(columns: {dataset.column_names}); name it with --image-column")
            add("hf", source, len(dataset))
        else:
            raise InputSourceError(f"unknown input kind {path_kind!r}; use one of {INPUT_KINDS}")
    if image_paths:
        files = [f for f in iter_image_files(image_paths, all_files=all_files) if not _inside(f, exclude)]
        for start, stop in _ranges(len(files), shard_size):
            units.append(InputUnit(len(units), "images", "files", 0, 0, files[start:stop]))
    return units


# -- reading -------------------------------------------------------------------------------------------


def _read_file(path: str) -> tuple[Optional[bytes], Optional[str]]:
    if is_video_path(path):  # frame sampling is the local engine's; here a video is an error row that says so
        return None, VIDEO_NOT_SCORED
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as err:
        return None, f"cannot read {path}: {err.strerror or err}"
    return (data, None) if data else (None, f"{path} is empty")


def cell_bytes(value: Any, base_dir: Optional[str] = None) -> tuple[Optional[bytes], Optional[str]]:
    """Encoded image bytes from a table cell: bytes, a path (relative ones against ``base_dir``), or a
    ``{"bytes", "path"}`` struct; or ``None`` and the reason."""
    if isinstance(value, Mapping):
        if value.get("bytes"):
            return bytes(value["bytes"]), None
        value = value.get("path")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return (bytes(value), None) if len(value) else (None, "empty image bytes")
    if isinstance(value, str) and value:
        if base_dir and not os.path.isabs(value) and not os.path.exists(value):
            value = os.path.join(base_dir, value)
        return _read_file(value)
    return None, "no image in this row"


def _columns(keys: list[str], cells: list[tuple[Optional[bytes], Optional[str]]]) -> dict[str, list]:
    return {"key": keys, "image": [c[0] for c in cells], "read_error": [c[1] for c in cells]}


def _read_parquet(unit: InputUnit, image_column: str, key_column: str) -> dict[str, list]:
    import pyarrow.parquet as pq

    handle = pq.ParquetFile(unit.source)
    columns = [image_column] + ([key_column] if key_column in handle.schema_arrow.names else [])
    groups, first, offset = [], None, 0  # the row groups covering start:stop
    for index in range(handle.num_row_groups):
        rows = handle.metadata.row_group(index).num_rows
        if offset + rows > unit.start and offset < unit.stop:
            groups.append(index)
            first = offset if first is None else first
        offset += rows
    table = handle.read_row_groups(groups, columns=columns).slice(unit.start - first, unit.size)
    images = table.column(image_column).to_pylist()
    if key_column in table.column_names:
        keys = [str(k) for k in table.column(key_column).to_pylist()]
    else:  # no key column: the row's place in its file
        keys = [f"{unit.source}#{row}" for row in range(unit.start, unit.stop)]
    base_dir = os.path.dirname(unit.source)
    return _columns(keys, [cell_bytes(v, base_dir) for v in images])


def _read_webdataset(unit: InputUnit) -> dict[str, list]:
    samples: dict[str, Optional[bytes]] = {}
    order: list[str] = []
    with tarfile.open(unit.source) as archive:
        for member in archive:
            if not member.isfile():
                continue
            key = sample_key(member.name)
            if not order or order[-1] != key:
                if len(order) == unit.stop:
                    break
                order.append(key)
            if len(order) <= unit.start:
                continue
            if os.path.splitext(member.name)[1].lower() in IMAGE_EXTENSIONS and samples.get(key) is None:
                extracted = archive.extractfile(member)
                samples[key] = extracted.read() if extracted is not None else None
            else:
                samples.setdefault(key, None)
    keys = order[unit.start : unit.stop]
    cells = [(samples[k], None) if samples.get(k) else
             (None, f"sample {k} of {unit.source} has no (non-empty) image member") for k in keys]
    return _columns(keys, cells)


def _read_hf(unit: InputUnit, image_column: str, key_column: str, split: Optional[str]) -> dict[str, list]:
    import datasets

    dataset = load_hf_dataset(unit.source, split).select(range(unit.start, unit.stop))
    if isinstance(dataset.features.get(image_column), datasets.Image):
        dataset = dataset.cast_column(image_column, datasets.Image(decode=False))
    images = dataset[image_column]
    keys = ([str(k) for k in dataset[key_column]] if key_column in dataset.column_names
            else [str(row) for row in range(unit.start, unit.stop)])
    return _columns(keys, [cell_bytes(v) for v in images])


def read_unit(unit: InputUnit, *, image_column: str = "image", key_column: str = "key",
              split: Optional[str] = None) -> dict[str, list]:
    """The rows of one unit: ``key``, ``image`` (bytes or ``None``), ``read_error`` (reason or ``None``)."""
    if unit.kind == "images":
        return _columns(list(unit.files), [_read_file(f) for f in unit.files])
    if unit.kind == "parquet":
        return _read_parquet(unit, image_column, key_column)
    if unit.kind == "webdataset":
        return _read_webdataset(unit)
    if unit.kind == "hf":
        return _read_hf(unit, image_column, key_column, split)
    raise InputSourceError(f"unknown input kind {unit.kind!r}")


__all__ = ["INPUT_KINDS", "InputSourceError", "InputUnit", "cell_bytes", "detect_kind", "is_saved_dataset",
           "load_hf_dataset", "looks_like_hub_id", "plan_units", "read_unit", "sample_key", "tar_sample_keys"]
