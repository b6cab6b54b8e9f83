"""Readers and writers of the benchmarks' label files (the on-disk layouts of the team contract).

Every reader is vectorised with pandas so that the full AVA list (255k rows) parses in about a second,
and returns a ``pandas.DataFrame`` plus, where rows are reported later, the 1-based line number of each
record in its file (``line`` column) so that validation errors can name ``file:line``.

Accepted forms beyond the contract:

- ``AVA.txt``: any run of spaces/tabs separates fields; lines may carry only ``index image_id c1..c10``
  (the tags and challenge id are optional). Split lists (``train.txt``/``test.txt``) may contain ids with
  a ``.jpg`` suffix or blank lines.
- AADB ``imgList*Regression_score.txt``: ``<name> <score>`` separated by any whitespace.
- Comment fields (AVA-Captions, Photo.Net): the authors store a Python-list repr of the comment strings;
  :func:`parse_comment_list` turns it into a list and falls back to ``[text]`` for plain text.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

AVA_NUM_VOTE_BINS = 10



def read_label_table(path: str | os.PathLike, **kwargs: Any) -> pd.DataFrame:
    """``pandas.read_csv`` of a label file whose errors name the file (pandas' own name the line at best).

    A UTF-8 byte-order mark is dropped (``utf-8-sig``); Windows line ends are read like Unix ones.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"label file not found: {path}")
    try:
        return pd.read_csv(path, encoding="utf-8-sig", **kwargs)
    except pd.errors.EmptyDataError as err:
        raise ValueError(f"{path}: the label file is empty") from err
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 text (byte {err.start}); save the label file as UTF-8") from err
    except (pd.errors.ParserError, ValueError) as err:
        raise ValueError(f"{path}: cannot parse the label file ({str(err).strip()})") from err

def read_ava_txt(path: str | os.PathLike) -> pd.DataFrame:
    """Read the official ``AVA.txt`` (``index image_id c1..c10 tag1 tag2 challenge_id``).

    Returns a frame with ``image_id`` (str), the ten vote counts as float64 columns ``c1``..``c10``
    (a malformed count becomes NaN and is reported by validation), ``line`` (1-based line number) and,
    when present, ``semantic_tag1``, ``semantic_tag2``, ``challenge_id``.
    """
    path = os.fspath(path)
    # The id column stays text; the C parser reads the counts as numbers directly (fast), and a column
    # with a malformed entry falls back to text and is coerced below.
    df = read_label_table(path, sep=r"\s+", header=None, dtype={1: str}, skip_blank_lines=False)
    # Keep blank lines in the count so that ``line`` is the editor's line number, then drop them.
    df["line"] = np.arange(1, len(df) + 1)
    df = df.dropna(subset=[0]).reset_index(drop=True)
    if df.shape[1] - 1 < 2 + AVA_NUM_VOTE_BINS:
        raise ValueError(
            f"{path}: expected at least {2 + AVA_NUM_VOTE_BINS} space-separated fields per line "
            f"(index image_id c1..c10 [tag1 tag2 challenge_id]), found {df.shape[1] - 1}"
        )
    out = pd.DataFrame({"image_id": df[1].astype(str).to_numpy(), "line": df["line"].to_numpy()})
    for k in range(AVA_NUM_VOTE_BINS):
        col = df[2 + k]
        if not pd.api.types.is_numeric_dtype(col):
            col = pd.to_numeric(col, errors="coerce")
        out[f"c{k + 1}"] = col.to_numpy(dtype=np.float64)
    extra = {12: "semantic_tag1", 13: "semantic_tag2", 14: "challenge_id"}
    for idx, name in extra.items():
        if idx in df.columns:
            out[name] = df[idx].to_numpy()
    return out


def ava_vote_matrix(df: pd.DataFrame) -> np.ndarray:
    """(N, 10) float64 vote counts of a frame returned by :func:`read_ava_txt`."""
    return df[[f"c{k + 1}" for k in range(AVA_NUM_VOTE_BINS)]].to_numpy(dtype=np.float64)


def write_ava_txt(
    path: str | os.PathLike,
    image_ids: Sequence[str | int],
    vote_counts: np.ndarray | Sequence[Sequence[int]],
    semantic_tags: Sequence[tuple[int, int]] | None = None,
    challenge_ids: Sequence[int] | None = None,
) -> None:
    """Write ``AVA.txt`` in the official format; missing tags/challenge ids are written as 0."""
    counts = np.asarray(vote_counts)
    n = len(image_ids)
    if counts.shape != (n, AVA_NUM_VOTE_BINS):
        raise ValueError(f"vote_counts must have shape ({n}, {AVA_NUM_VOTE_BINS}), got {counts.shape}")
    if np.any(counts != np.round(counts)) or np.any(counts < 0):
        raise ValueError("AVA vote counts must be non-negative integers")
    tags = np.zeros((n, 2), dtype=np.int64) if semantic_tags is None else np.asarray(semantic_tags)
    chal = np.zeros(n, dtype=np.int64) if challenge_ids is None else np.asarray(challenge_ids)
    frame = pd.DataFrame({"index": np.arange(1, n + 1), "image_id": [str(i) for i in image_ids]})
    for k in range(AVA_NUM_VOTE_BINS):
        frame[f"c{k + 1}"] = counts[:, k].astype(np.int64)
    frame["tag1"], frame["tag2"], frame["challenge"] = tags[:, 0], tags[:, 1], chal
    frame.to_csv(path, sep=" ", header=False, index=False)


def read_id_list(path: str | os.PathLike) -> list[str]:
    """Whitespace-separated image ids (one per line); a trailing ``.jpg`` is removed."""
    with open(path, encoding="utf-8") as fh:
        tokens = fh.read().split()
    return [t[:-4] if t.lower().endswith(".jpg") else t for t in tokens]


def write_id_list(path: str | os.PathLike, image_ids: Sequence[str | int]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        fh.writelines(f"{i}\n" for i in image_ids)


def read_aadb_list(path: str | os.PathLike) -> pd.DataFrame:
    """AADB ``imgList*Regression_score.txt``: columns ``name`` (str), ``score`` (float), ``line``."""
    df = read_label_table(path, sep=r"\s+", header=None, dtype=str, skip_blank_lines=False)
    df["line"] = np.arange(1, len(df) + 1)
    df = df.dropna(subset=[0]).reset_index(drop=True)
    if df.shape[1] < 3:
        raise ValueError(f"{os.fspath(path)}: expected '<name> <score>' per line")
    return pd.DataFrame(
        {
            "name": df[0].to_numpy(),
            "score": pd.to_numeric(df[1], errors="coerce").to_numpy(dtype=np.float64),
            "line": df["line"].to_numpy(),
        }
    )


def write_aadb_list(path: str | os.PathLike, names: Sequence[str], scores: Sequence[float]) -> None:
    """Write ``<name> <score>`` lines; ``repr`` keeps every float exactly."""
    if len(names) != len(scores):
        raise ValueError("names and scores differ in length")
    with open(path, "w", encoding="utf-8") as fh:
        fh.writelines(f"{n} {float(s)!r}\n" for n, s in zip(names, scores))


def parse_vote_string(values: pd.Series, num_bins: int) -> np.ndarray:
    """Parse a column of space-separated vote counts (Photo.Net ``label``) into (N, num_bins) floats.

    Rows with the wrong number of fields or non-numeric entries become NaN rows (reported by validation).
    """
    parts = values.fillna("").astype(str).str.split()
    out = np.full((len(values), num_bins), np.nan)
    lengths = parts.str.len().to_numpy()
    ok = lengths == num_bins
    if ok.any():
        block = pd.DataFrame(parts[ok].tolist()).apply(pd.to_numeric, errors="coerce")
        out[ok] = block.to_numpy(dtype=np.float64)
    return out


def parse_comment_list(text: str) -> list[str]:
    """The comment strings of one AVA-Captions / Photo.Net ``comment`` field.

    The field is a Python-list repr (``"['nice shot', 'great light\\r\\n']"``); plain text is returned as a
    one-element list so that user CSVs with ordinary sentences also work.
    """
    if not isinstance(text, str):
        return []
    stripped = text.strip()
    if stripped.startswith("[") and stripped.endswith("]"):
        try:
            value = ast.literal_eval(stripped)
        except (ValueError, SyntaxError):
            return [text]
        if isinstance(value, (list, tuple)):
            return [str(v) for v in value]
    return [text]


def join_comments(text: str, sep: str = " ") -> str:
    """Join the comments of a list-repr field into one plain string."""
    return sep.join(parse_comment_list(text))
