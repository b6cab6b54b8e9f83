"""Build ``datasets.Dataset`` objects from the IAA benchmarks' on-disk layouts (team contract).

Every builder returns one split with this schema (columns marked * only where they apply):

==============  ===================  ================================================================
column          feature              content
==============  ===================  ================================================================
image           ``Image()``          absolute path to the file (bytes are embedded only on export)
image_id        string               AVA/Photo.Net id, TAD66K/AADB file name, PARA ``<session>/<name>``
labels          list<float64>        AVA (10) / Photo.Net (7): vote counts for scores 1..K;
                                     PARA-V, AADB, TAD66K: ``[score]``; PARA-F: the 9 GIAA attribute
                                     means; PARA-P: the 9 per-user scores (``PARA_ATTRIBUTES`` order)
class_labels    list<int64>          one scale class per head by the dataset rule (DatasetSpec); -1 if NaN
score           float64              mean score (expected score of the votes; aesthetic for PARA)
split           string               ``train`` / ``validation`` / ``test``
source          string               ``<label file relative to root>:<line>``, named in error reports
comment*        string               (``captions=True``) the CSV comment field; see ``comment_mode``
user_id*        string               (PARA-P) ``userId``
user*           string               (PARA-P) JSON object of the user's ``PARA-UserInfo.csv`` row
semantic*       string               (PARA) image category
==============  ===================  ================================================================

Builders never open images (that is :func:`aesmamba_hf.data.validation.validate_dataset`'s job) and never
drop rows: unparsable labels become NaN so validation can report them with their file and line.

Splits. ``train`` and ``test`` come from the benchmark's files. ``validation`` is AADB's own list, or is
carved from ``train`` (never from ``test``) when ``validation_fraction > 0``: an image goes to validation
iff ``hash(seed, image_id) < validation_fraction`` (see :func:`make_validation_split`); with the same
fraction and seed, ``train`` then excludes exactly those images. Hashing image ids keeps the carve stable
under row order and keeps all rows of one image (PARA-P: one row per user) on the same side.

AVA without ``root/train.txt``/``root/test.txt``: an image is in ``test`` iff
``hash("ava-test", image_id) < test_fraction`` (default :data:`AVA_DEFAULT_TEST_FRACTION` = 0.2, close to
the authors' 204,424 / 255,502 train share). If only one list exists, the other split is its complement.

Extra accepted forms: PARA GIAA files may be the authors' ``PARA-Giaa{Train,Test}_w_class.csv`` (used when
the plain name is absent; their ``<attr>_class`` columns are checked against the rule and a mismatch is
logged, the rule wins); ``csv_path=`` overrides the label file of the PARA builders (e.g. the authors'
per-user ``annotation/user/random1/user1/train_100shot.csv``); AVA-Captions rows whose id is missing from
``AVA.txt`` take their votes from the CSV's optional ``label`` column (10 space-separated counts).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from datasets import Dataset, DatasetDict, DatasetInfo, Features, Image, List, NamedSplit, Value
from datasets.table import InMemoryTable

from ..dataset_specs import PARA_ATTRIBUTES, DatasetSpec, get_dataset_spec
from ..tasks import Task
from .formats import (
    ava_vote_matrix,
    join_comments,
    parse_vote_string,
    read_aadb_list,
    read_ava_txt,
    read_id_list,
    read_label_table,
)

logger = logging.getLogger(__name__)

AVA_DEFAULT_TEST_FRACTION = 0.2
SPLITS = ("train", "validation", "test")
CommentMode = Literal["raw", "joined"]
PathLike = str | os.PathLike


# ----------------------------------------------------------------------------------------------------------
# shared helpers


def scale_classes(scores: np.ndarray, spec: DatasetSpec) -> np.ndarray:
    """Vectorised ``dataset_specs.scale_class``: same floor/clip formula, NaN -> -1."""
    scores = np.asarray(scores, dtype=np.float64)
    out = np.full(scores.shape, -1, dtype=np.int64)
    ok = np.isfinite(scores)
    out[ok] = np.clip(np.floor(spec.class_scale * scores[ok] + spec.class_offset), 0, spec.num_classes - 1)
    return out


def expected_scores(votes: np.ndarray, bin_values: Sequence[float]) -> np.ndarray:
    """Mean score of (N, K) vote counts; rows without votes give NaN."""
    votes = np.asarray(votes, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (votes * np.asarray(bin_values, dtype=np.float64)).sum(axis=1) / votes.sum(axis=1)


def hash_unit(ids: Iterable[str], salt: str) -> np.ndarray:
    """Map ids to [0, 1) deterministically (blake2b of ``salt:id``), independent of order and platform."""
    # The top 53 bits are exact in float64, so the value is strictly below 1.
    return np.fromiter(
        (
            (int.from_bytes(hashlib.blake2b(f"{salt}:{i}".encode(), digest_size=8).digest(), "big") >> 11)
            / 2.0**53
            for i in ids
        ),
        dtype=np.float64,
    )


def aesthetic_features(comment: bool = False, user: bool = False, semantic: bool = False) -> Features:
    """The :class:`datasets.Features` of a builder's output (see the module docstring)."""
    spec: dict[str, Any] = {
        "image": Image(),
        "image_id": Value("string"),
        "labels": List(Value("float64")),
        "class_labels": List(Value("int64")),
        "score": Value("float64"),
        "split": Value("string"),
        "source": Value("string"),
    }
    if comment:
        spec["comment"] = Value("string")
    if user:
        spec["user_id"] = Value("string")
        spec["user"] = Value("string")
    if semantic:
        spec["semantic"] = Value("string")
    return Features(spec)


def _list_array(matrix: np.ndarray, value_type: pa.DataType) -> pa.ListArray:
    n, k = matrix.shape
    offsets = pa.array(np.arange(0, n * k + 1, k, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(matrix.reshape(-1), type=value_type))


def _vote_dataset(spec: DatasetSpec, root: Path, ids: Sequence[str], votes: np.ndarray, scores: np.ndarray,
                  split: str, sources: Sequence[str], extra: dict[str, Sequence[str]]) -> Dataset:
    """Rows of a vote-histogram benchmark (AVA, Photo.net): ``images/<id>.jpg``, votes as labels, one class."""
    return _to_dataset(
        dataset_name=spec.name, image_paths=_paths(root / "images", (f"{i}.jpg" for i in ids)), image_ids=ids,
        labels=votes, class_labels=scale_classes(scores, spec)[:, None], scores=scores, split=split,
        sources=sources, extra=extra,
    )


def _to_dataset(
    *,
    image_paths: Sequence[str],
    image_ids: Sequence[str],
    labels: np.ndarray,
    class_labels: np.ndarray,
    scores: np.ndarray,
    split: str,
    sources: Sequence[str],
    extra: dict[str, Sequence[str]] | None = None,
    dataset_name: str | None = None,
) -> Dataset:
    """Assemble the Arrow table directly (much faster than ``from_dict`` on 255k AVA rows)."""
    extra = extra or {}
    n = len(image_ids)
    labels = np.asarray(labels, dtype=np.float64).reshape(n, -1)
    class_labels = np.asarray(class_labels, dtype=np.int64).reshape(n, -1)
    features = aesthetic_features(
        comment="comment" in extra, user="user" in extra, semantic="semantic" in extra
    )
    columns = {
        "image": pa.StructArray.from_arrays(
            [pa.nulls(n, pa.binary()), pa.array(list(image_paths), pa.string())], names=["bytes", "path"]
        ),
        "image_id": pa.array([str(i) for i in image_ids], pa.string()),
        "labels": _list_array(labels, pa.float64()),
        "class_labels": _list_array(class_labels, pa.int64()),
        "score": pa.array(np.asarray(scores, dtype=np.float64)),
        "split": pa.array([split] * n, pa.string()),
        "source": pa.array(list(sources), pa.string()),
    }
    for name, values in extra.items():
        columns[name] = pa.array(list(values), pa.string())
    table = pa.table([columns[name] for name in features], names=list(features)).cast(features.arrow_schema)
    fingerprint = _fingerprint(
        split, "\x00".join(image_paths), "\x00".join(sources), labels.tobytes(), class_labels.tobytes(),
        np.asarray(scores, dtype=np.float64).tobytes(), *("\x00".join(v) for v in extra.values()),
    )
    return Dataset(
        InMemoryTable(table), info=DatasetInfo(features=features, dataset_name=dataset_name), split=NamedSplit(split),
        fingerprint=fingerprint,
    )


def _fingerprint(*parts: str | bytes) -> str:
    # datasets would otherwise dill-hash the whole in-memory table (seconds on AVA).
    digest = hashlib.blake2b(digest_size=16)
    for part in parts:
        digest.update(part.encode() if isinstance(part, str) else part)
        digest.update(b"\xff")
    return digest.hexdigest()


def _paths(directory: Path, names: Iterable[str]) -> list[str]:
    # Plain string joins: pathlib costs ~4 us per path, seconds on the 255k AVA images.
    prefix = str(directory.absolute()) + os.sep
    return [prefix + n for n in names]


def _sources(root: Path, file: Path, lines: Iterable[int]) -> list[str]:
    try:
        rel = file.relative_to(root).as_posix()
    except ValueError:
        rel = file.as_posix()
    return [f"{rel}:{int(line)}" for line in lines]


def _read_csv(path: Path, str_columns: Sequence[str] = ()) -> pd.DataFrame:
    df = read_label_table(path, dtype={c: str for c in str_columns})
    # 1-based line number of each record, assuming one line per record after the header.
    df["__line__"] = np.arange(2, len(df) + 2)
    return df


def _require_columns(df: pd.DataFrame, columns: Iterable[str], path: Path) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; found {list(df.columns)}")


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return split


def _comment_values(values: pd.Series, mode: CommentMode) -> list[str]:
    raw = values.fillna("").astype(str)
    if mode == "raw":
        return raw.tolist()
    if mode == "joined":
        return [join_comments(t) for t in raw]
    raise ValueError(f"comment_mode must be 'raw' or 'joined', got {mode!r}")


def make_validation_split(
    dataset: Dataset, fraction: float, seed: int = 0, key: str = "image_id"
) -> DatasetDict:
    """Split a training set into ``train`` and ``validation`` by hashing ``key`` with ``seed``.

    Row ``i`` goes to validation iff ``hash_unit(f"val{seed}", key_i) < fraction``; the ``split`` column
    is rewritten. Deterministic and order-independent; the validation size is ``fraction * n`` on average.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"validation fraction must be in (0, 1), got {fraction}")
    if key not in dataset.column_names:
        raise ValueError(f"cannot carve a validation split: no column {key!r}")
    keys = dataset.select_columns([key]).with_format("arrow")[:][key].to_pylist()  # Column iteration is slow
    is_val = hash_unit(keys, f"val{seed}") < fraction
    out = {}
    for name, mask in (("train", ~is_val), ("validation", is_val)):
        out[name] = _take_with_split(dataset, np.flatnonzero(mask), name)
    return DatasetDict(out)


def _take_with_split(dataset: Dataset, indices: np.ndarray, name: str) -> Dataset:
    """Rows ``indices`` of ``dataset`` with the ``split`` column set to ``name``."""
    if "split" not in dataset.column_names:
        return dataset.select(indices)
    if not dataset.cache_files:
        # In-memory (what the builders return): slice the Arrow table directly, no cache files.
        # One Arrow take (a list key to __getitem__ would gather row by row into one chunk per row).
        table = dataset.with_format("arrow")[:].take(pa.array(indices, pa.int64())).combine_chunks()
        col = table.schema.get_field_index("split")
        table = table.set_column(col, "split", pa.array([name] * len(table), pa.string()))
        fingerprint = _fingerprint(dataset._fingerprint, name, indices.tobytes())
        return Dataset(InMemoryTable(table), info=dataset.info.copy(), split=NamedSplit(name), fingerprint=fingerprint)
    part = dataset.select(indices).remove_columns("split")
    part = part.add_column("split", [name] * len(part))
    return part.select_columns(dataset.column_names)


def _apply_split(
    build: Callable[[str], Dataset], split: str, validation_fraction: float, seed: int, dataset_name: str
) -> Dataset:
    """``test`` straight from the files; ``train``/``validation`` carved from the file's train split."""
    _check_split(split)
    if split == "test":
        return build("test")
    if validation_fraction <= 0:
        if split == "validation":
            raise ValueError(
                f"{dataset_name} has no validation split on disk; pass validation_fraction > 0 to carve "
                "one from train (it is never taken from test)"
            )
        return build("train")
    return make_validation_split(build("train"), validation_fraction, seed)[split]


def compute_class_counts(dataset: Dataset, num_classes: int | Sequence[int]) -> list[list[int]]:
    """Histogram of ``class_labels`` per head: ``counts[h][c]`` (rows with class -1 are ignored).

    Compute it on the training split: these are the n_c of the balanced classification loss.
    """
    column = dataset.select_columns(["class_labels"]).with_format("arrow")[:]["class_labels"]
    flat = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    lengths = flat.value_lengths().to_numpy(zero_copy_only=False)
    if len(lengths) == 0:
        num_heads = 1 if isinstance(num_classes, int) else len(num_classes)
        classes = np.zeros((0, num_heads), dtype=np.int64)
    else:
        if np.any(lengths != lengths[0]):
            raise ValueError("class_labels rows differ in length; cannot count classes per head")
        classes = flat.flatten().to_numpy(zero_copy_only=False).reshape(len(lengths), int(lengths[0]))
    heads = classes.shape[1]
    sizes = [int(num_classes)] * heads if isinstance(num_classes, int) else [int(c) for c in num_classes]
    if len(sizes) != heads:
        raise ValueError(f"num_classes has {len(sizes)} entries but class_labels has {heads} heads")
    counts = []
    for h, size in enumerate(sizes):
        col = classes[:, h]
        if np.any(col >= size):
            raise ValueError(f"head {h}: class label {int(col.max())} >= num_classes {size}")
        counts.append(np.bincount(col[col >= 0], minlength=size).astype(int).tolist())
    return counts


# ----------------------------------------------------------------------------------------------------------
# AVA


def _ava_split_mask(root: Path, ids: np.ndarray, file_split: str, test_fraction: float) -> np.ndarray:
    lists = {s: root / f"{s}.txt" for s in ("train", "test")}
    present = {s: p for s, p in lists.items() if p.is_file()}
    if present:
        members = {s: set(read_id_list(p)) for s, p in present.items()}
        known = set(ids.tolist())
        for s, m in members.items():
            unknown = len(m - known)
            if unknown:
                logger.warning("%s: %d listed ids are not in AVA.txt and are ignored", present[s], unknown)
        # Arrow's hash-based is_in: np.isin on object arrays is quadratic, pandas' is slow on str dtype.
        id_array = pa.array(ids.tolist(), pa.string())
        if file_split in members:
            return pc.is_in(id_array, value_set=pa.array(list(members[file_split]), pa.string())).to_numpy(
                zero_copy_only=False
            )
        other = "test" if file_split == "train" else "train"
        return ~pc.is_in(id_array, value_set=pa.array(list(members[other]), pa.string())).to_numpy(
            zero_copy_only=False
        )
    is_test = hash_unit(ids, "ava-test") < test_fraction
    return is_test if file_split == "test" else ~is_test


def build_ava(
    root: PathLike,
    split: str = "train",
    captions: bool = False,
    *,
    validation_fraction: float = 0.0,
    seed: int = 0,
    test_fraction: float = AVA_DEFAULT_TEST_FRACTION,
    comment_mode: CommentMode = "raw",
) -> Dataset:
    """AVA (V) or AVA-Captions (M, ``captions=True``) from ``root/AVA.txt`` and ``root/images/<id>.jpg``.

    ``labels`` are the 10 vote counts, ``score`` their mean, class = clip(floor(mean) - 1, 0, 6).
    With ``captions=True`` the rows and split come from ``root/captions/{train,test}.csv`` (columns
    ``index``, ``comment``); ``comment_mode="raw"`` stores the comment field verbatim (the list repr the
    processor's cleaning expects), ``"joined"`` stores the comments joined by spaces.
    """
    root = Path(root)
    spec = get_dataset_spec("AVA")
    ava_path = root / "AVA.txt"

    def build(file_split: str) -> Dataset:
        if not captions:
            if not ava_path.is_file():
                raise FileNotFoundError(f"AVA label file not found: {ava_path}")
            df = read_ava_txt(ava_path)
            df = df[_ava_split_mask(root, df["image_id"].to_numpy(), file_split, test_fraction)]
            votes, ids = ava_vote_matrix(df), df["image_id"].to_numpy()
            sources, extra = _sources(root, ava_path, df["line"]), {}
        else:
            csv_path = root / "captions" / f"{file_split}.csv"
            df = _read_csv(csv_path, str_columns=("index",))
            _require_columns(df, ("index", "comment"), csv_path)
            ids = df["index"].str.strip().to_numpy()
            votes = np.full((len(df), spec.num_bins), np.nan)
            found = np.zeros(len(df), dtype=bool)
            if ava_path.is_file():
                ava = read_ava_txt(ava_path).drop_duplicates("image_id").set_index("image_id")
                pos = ava.index.get_indexer(ids)
                found = pos >= 0
                votes[found] = ava_vote_matrix(ava)[pos[found]]
            if "label" in df.columns and not found.all():
                votes[~found] = parse_vote_string(df["label"][~found], spec.num_bins)
            sources = _sources(root, csv_path, df["__line__"])
            extra = {"comment": _comment_values(df["comment"], comment_mode)}
        scores = expected_scores(votes, spec.bin_values)
        return _vote_dataset(spec, root, ids, votes, scores, file_split, sources, extra)

    return _apply_split(build, split, validation_fraction, seed, "AVA")


# ----------------------------------------------------------------------------------------------------------
# Photo.Net


def build_photonet(
    root: PathLike,
    split: str = "train",
    captions: bool = False,
    *,
    validation_fraction: float = 0.0,
    seed: int = 0,
    comment_mode: CommentMode = "raw",
) -> Dataset:
    """Photo.Net from ``root/{train,test}.csv`` (columns ``index, comment, label, score, class``).

    ``labels`` = the 7 vote counts of ``label``; ``score`` is recomputed from them (a disagreement with
    the CSV's ``score`` column is logged); class = floor(score) - 3 clipped to 0..3.
    """
    root = Path(root)
    spec = get_dataset_spec("PhotoNet")

    def build(file_split: str) -> Dataset:
        csv_path = root / f"{file_split}.csv"
        df = _read_csv(csv_path, str_columns=("index",))
        _require_columns(df, ("index", "label") + (("comment",) if captions else ()), csv_path)
        ids = df["index"].str.strip().to_numpy()
        votes = parse_vote_string(df["label"], spec.num_bins)
        scores = expected_scores(votes, spec.bin_values)
        if "score" in df.columns:
            csv_scores = pd.to_numeric(df["score"], errors="coerce").to_numpy(dtype=np.float64)
            bad = np.flatnonzero(np.abs(csv_scores - scores) > 1e-6)
            if len(bad):
                logger.warning(
                    "%s: %d rows have a 'score' that differs from the mean of 'label' (first at line %d); "
                    "using the mean of 'label'", csv_path, len(bad), int(df["__line__"].iloc[bad[0]]),
                )
        extra = {"comment": _comment_values(df["comment"], comment_mode)} if captions else {}
        return _vote_dataset(spec, root, ids, votes, scores, file_split, _sources(root, csv_path, df["__line__"]),
                             extra)

    return _apply_split(build, split, validation_fraction, seed, "PhotoNet")


# ----------------------------------------------------------------------------------------------------------
# TAD66K and AADB (one scalar score per image)


def _scalar_dataset(
    spec: DatasetSpec, root: Path, label_file: Path, names: np.ndarray, scores: np.ndarray,
    lines: Iterable[int], image_dir: Path, split: str,
) -> Dataset:
    return _to_dataset(
        dataset_name=spec.name,
        image_paths=_paths(image_dir, names),
        image_ids=names,
        labels=scores[:, None],
        class_labels=scale_classes(scores, spec)[:, None],
        scores=scores,
        split=split,
        sources=_sources(root, label_file, lines),
    )


def build_tad66k(
    root: PathLike, split: str = "train", *, validation_fraction: float = 0.0, seed: int = 0
) -> Dataset:
    """TAD66K from ``root/labels/merge/{train,test}.csv`` (``image, score``, score in 0..10)."""
    root = Path(root)
    spec = get_dataset_spec("TAD66K")

    def build(file_split: str) -> Dataset:
        csv_path = root / "labels" / "merge" / f"{file_split}.csv"
        df = _read_csv(csv_path, str_columns=("image",))
        _require_columns(df, ("image", "score"), csv_path)
        scores = pd.to_numeric(df["score"], errors="coerce").to_numpy(dtype=np.float64)
        return _scalar_dataset(
            spec, root, csv_path, df["image"].str.strip().to_numpy(), scores, df["__line__"],
            root / "images", file_split,
        )

    return _apply_split(build, split, validation_fraction, seed, "TAD66K")


AADB_LIST_NAMES = {"train": "Train", "validation": "Validation", "test": "Test"}


def build_aadb(
    root: PathLike, split: str = "train", *, validation_fraction: float = 0.0, seed: int = 0
) -> Dataset:
    """AADB from ``root/imgListFiles_label/imgList{Train,Validation,Test}Regression_score.txt``.

    Images are ``root/datasetImages_originalSize/<name>``; score in [0, 1], class = min(floor(5s), 4).
    ``validation`` is AADB's own list unless ``validation_fraction > 0``, which carves it from the Train
    list instead (as for the other datasets).
    """
    root = Path(root)
    spec = get_dataset_spec("AADB")

    def build(list_split: str) -> Dataset:
        list_path = root / "imgListFiles_label" / f"imgList{AADB_LIST_NAMES[list_split]}Regression_score.txt"
        if not list_path.is_file():
            raise FileNotFoundError(f"AADB label list not found: {list_path}")
        df = read_aadb_list(list_path)
        return _scalar_dataset(
            spec, root, list_path, df["name"].to_numpy(), df["score"].to_numpy(), df["line"],
            root / "datasetImages_originalSize", list_split,
        )

    if _check_split(split) == "validation" and validation_fraction <= 0:
        return build("validation")
    return _apply_split(build, split, validation_fraction, seed, "AADB")


# ----------------------------------------------------------------------------------------------------------
# PARA


def _para_file(root: Path, stem: str, file_split: str) -> Path:
    base = root / "annotation" / f"PARA-{stem}{file_split.capitalize()}.csv"
    if base.is_file():
        return base
    with_class = base.with_name(base.stem + "_w_class.csv")
    return with_class if with_class.is_file() else base


def _para_image_paths(root: Path, df: pd.DataFrame) -> tuple[list[str], list[str]]:
    sessions = df["sessionId"].str.strip().tolist()
    names = df["imageName"].str.strip().tolist()
    ids = [f"{s}/{n}" for s, n in zip(sessions, names)]
    return _paths(root / "imgs", (i.replace("/", os.sep) for i in ids)), ids


def _semantic(df: pd.DataFrame) -> list[str]:
    if "semantic" not in df.columns:
        return [""] * len(df)
    return df["semantic"].fillna("").astype(str).tolist()


def build_para_giaa(
    root: PathLike,
    split: str = "train",
    task: Literal["V", "F"] = "V",
    *,
    validation_fraction: float = 0.0,
    seed: int = 0,
    csv_path: PathLike | None = None,
) -> Dataset:
    """PARA GIAA from ``root/annotation/PARA-Giaa{Train,Test}.csv`` and ``root/imgs/<session>/<name>``.

    ``task="V"``: ``labels = [aestheticScore_mean]``, one class head. ``task="F"``: the 9 attribute means
    (``PARA_ATTRIBUTES`` order) and 9 class labels, class = clip(floor(mean) - 1, 0, 3).
    ``csv_path`` (optional) replaces the label file for every split.
    """
    if task not in ("V", "F"):
        raise ValueError(f"PARA GIAA task must be 'V' or 'F', got {task!r}")
    root = Path(root)
    spec = get_dataset_spec("PARA")
    attrs = PARA_ATTRIBUTES[:1] if task == "V" else PARA_ATTRIBUTES

    def build(file_split: str) -> Dataset:
        path = Path(csv_path) if csv_path is not None else _para_file(root, "Giaa", file_split)
        df = _read_csv(path, str_columns=("sessionId", "imageName"))
        mean_cols = [a[1] for a in attrs]
        _require_columns(df, ["sessionId", "imageName", *mean_cols], path)
        labels = df[mean_cols].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
        classes = scale_classes(labels, spec)
        # The authors' *_w_class files carry precomputed classes: they must agree with the rule.
        for h, col in enumerate(mean_cols):
            class_col = col.removesuffix("_mean") + "_class"
            if class_col in df.columns:
                given = pd.to_numeric(df[class_col], errors="coerce").to_numpy()
                bad = np.flatnonzero(given != classes[:, h])
                if len(bad):
                    logger.warning(
                        "%s: column %s disagrees with clip(floor(mean)-1, 0, 3) on %d rows (first at line "
                        "%d); using the rule", path, class_col, len(bad), int(df["__line__"].iloc[bad[0]]),
                    )
        image_paths, image_ids = _para_image_paths(root, df)
        return _to_dataset(
            dataset_name=spec.name,
            image_paths=image_paths,
            image_ids=image_ids,
            labels=labels,
            class_labels=classes,
            scores=labels[:, 0],
            split=file_split,
            sources=_sources(root, path, df["__line__"]),
            extra={"semantic": _semantic(df)},
        )

    return _apply_split(build, split, validation_fraction, seed, f"PARA-{task}")


def _json_value(value: Any) -> Any:
    # Keep ints as ints and floats as floats: the SMP prompt prints them with str(), 7 vs 7.0, as the
    # authors' prompt does.
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) else float(value)
    return value


def read_para_user_info(path: PathLike) -> dict[str, str]:
    """``userId -> JSON`` of each ``PARA-UserInfo.csv`` row (all columns, CSV order, native types)."""
    path = Path(path)
    df = _read_csv(path, str_columns=("userId",)).drop(columns="__line__")
    _require_columns(df, ("userId",), path)
    df["userId"] = df["userId"].str.strip()
    records = df.to_dict(orient="records")
    return {r["userId"]: json.dumps({k: _json_value(v) for k, v in r.items()}) for r in records}


def build_para_piaa(
    root: PathLike,
    split: str = "train",
    users: Iterable[str | int] | None = None,
    *,
    validation_fraction: float = 0.0,
    seed: int = 0,
    csv_path: PathLike | None = None,
    user_info_path: PathLike | None = None,
) -> Dataset:
    """PARA PIAA from ``root/annotation/PARA-Piaa{Train,Test}.csv`` (one row per user and image).

    ``labels`` = the user's 9 attribute scores, ``user_id``, and ``user`` = JSON of the user's
    ``PARA-UserInfo.csv`` row (empty when the user has no row; validation reports it). ``users`` keeps
    only those ``userId`` values. ``csv_path`` replaces the label file for every split.
    """
    root = Path(root)
    spec = get_dataset_spec("PARA")
    info_path = Path(user_info_path) if user_info_path is not None else root / "annotation" / "PARA-UserInfo.csv"
    keep = None if users is None else {str(u).strip() for u in users}

    def build(file_split: str) -> Dataset:
        path = Path(csv_path) if csv_path is not None else _para_file(root, "Piaa", file_split)
        df = _read_csv(path, str_columns=("userId", "sessionId", "imageName"))
        score_cols = [a[2] for a in PARA_ATTRIBUTES]
        _require_columns(df, ["userId", "sessionId", "imageName", *score_cols], path)
        df["userId"] = df["userId"].str.strip()
        if keep is not None:
            df = df[df["userId"].isin(keep)]
        user_json = read_para_user_info(info_path)
        labels = df[score_cols].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
        image_paths, image_ids = _para_image_paths(root, df)
        return _to_dataset(
            dataset_name=spec.name,
            image_paths=image_paths,
            image_ids=image_ids,
            labels=labels,
            class_labels=scale_classes(labels, spec),
            scores=labels[:, 0],
            split=file_split,
            sources=_sources(root, path, df["__line__"]),
            extra={
                "user_id": df["userId"].tolist(),
                "user": [user_json.get(u, "") for u in df["userId"]],
                "semantic": _semantic(df),
            },
        )

    return _apply_split(build, split, validation_fraction, seed, "PARA-P")


# ----------------------------------------------------------------------------------------------------------
# dispatch


def build_dataset(name: str, root: PathLike, split: str = "train", task: str | None = None, **kwargs: Any) -> Dataset:
    """Build ``split`` of benchmark ``name`` (AVA, PhotoNet, PARA, AADB, TAD66K; aliases of
    ``get_dataset_spec``). ``task``: ``"M"`` selects the captions of AVA/Photo.Net; for PARA ``"V"``
    (default), ``"F"`` or ``"P"``. Other keyword arguments go to the builder.
    """
    spec_name = get_dataset_spec(name).name
    task = Task.parse(task) if task else None
    para_only = task is not None and task.predicts_para_attributes
    if spec_name in ("AVA", "PhotoNet"):
        if para_only:
            raise ValueError(f"task {task} exists only for PARA, not {spec_name}")
        if task is Task.MULTIMODAL:
            kwargs["captions"] = True
        fn = build_ava if spec_name == "AVA" else build_photonet
        return fn(root, split, **kwargs)
    if task is Task.MULTIMODAL:
        raise ValueError(f"task M (comments) exists only for AVA and PhotoNet, not {spec_name}")
    if spec_name == "PARA":
        if task is Task.PERSONALIZED:
            return build_para_piaa(root, split, **kwargs)
        return build_para_giaa(root, split, task=(task or Task.GENERIC).value, **kwargs)
    if para_only:
        raise ValueError(f"task {task} exists only for PARA, not {spec_name}")
    if spec_name == "AADB":
        return build_aadb(root, split, **kwargs)
    return build_tad66k(root, split, **kwargs)


def build_dataset_for_config(config: Any, root: PathLike, split: str = "train", **kwargs: Any) -> Dataset:
    """Build the split that matches an ``AesMambaConfig`` (its ``dataset`` and ``task``)."""
    return build_dataset(config.dataset, root, split, task=config.task, **kwargs)


__all__ = [
    "AVA_DEFAULT_TEST_FRACTION",
    "aesthetic_features",
    "build_aadb",
    "build_ava",
    "build_dataset",
    "build_dataset_for_config",
    "build_para_giaa",
    "build_para_piaa",
    "build_photonet",
    "build_tad66k",
    "compute_class_counts",
    "expected_scores",
    "hash_unit",
    "make_validation_split",
    "read_para_user_info",
    "scale_classes",
]
