"""Load an exported (or any Parquet / ``save_to_disk``) aesthetic dataset from a path or the Hub.

datasets 5 has no loading scripts, so a Hub dataset must be data files (Parquet, what
:func:`aesmamba_hf.data.export_parquet` and ``push_to_hub`` write). Accepted sources:

- a ``.parquet`` file (one split: ``split`` or ``train``);
- a folder written by ``Dataset(Dict).save_to_disk`` (``dataset_dict.json`` or ``state.json``);
- a folder of Parquet files named ``<split>-XXXXX-of-YYYYY.parquet`` or ``<split>.parquet`` anywhere
  below it (our export puts them in ``data/``); other names are all read as ``train``;
- anything else is treated as a Hub dataset id (``org/name``); offline this raises ``ConnectionError``.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

from datasets import Dataset, DatasetDict, load_dataset, load_from_disk

_SHARD = re.compile(r"^(?P<split>[A-Za-z][\w.]*?)(-\d{5}-of-\d{5})?\.parquet$")


def _parquet_splits(folder: Path) -> dict[str, list[str]]:
    files = sorted(p for p in folder.rglob("*.parquet") if p.is_file())
    groups: dict[str, list[str]] = defaultdict(list)
    for f in files:
        match = _SHARD.match(f.name)
        groups[match.group("split") if match else "train"].append(str(f))
    return dict(groups)


def load_aesthetic_dataset(
    path_or_hub_id: str | os.PathLike, split: str | None = None, **kwargs: Any
) -> Dataset | DatasetDict:
    """Return the ``split`` (a ``Dataset``) or all splits (a ``DatasetDict``) of a local export or a Hub
    dataset. Extra keyword arguments go to ``datasets.load_dataset`` (``cache_dir``, ``revision``,
    ``streaming``...). Image columns come back as ``Image()`` features with embedded bytes.
    """
    path = Path(path_or_hub_id)
    if path.is_file():
        if path.suffix != ".parquet":
            raise ValueError(f"{path}: expected a .parquet file")
        name = split or "train"
        return load_dataset("parquet", data_files={name: str(path)}, split=split, **kwargs)
    if path.is_dir():
        if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
            loaded = load_from_disk(str(path))
            if split is None or isinstance(loaded, Dataset):
                return loaded
            if split not in loaded:
                raise KeyError(f"{path}: no split {split!r}; available: {list(loaded)}")
            return loaded[split]
        groups = _parquet_splits(path)
        if not groups:
            raise FileNotFoundError(f"{path}: no .parquet files and no save_to_disk metadata")
        if split is not None and split not in groups:
            raise KeyError(f"{path}: no split {split!r}; available: {sorted(groups)}")
        return load_dataset("parquet", data_files=groups, split=split, **kwargs)
    text = str(path_or_hub_id)
    if text.startswith((".", "/", "~")) or text.count("/") > 1 or (os.sep != "/" and os.sep in text):
        raise FileNotFoundError(f"no such file or folder (and not a Hub id 'org/name'): {text}")
    try:
        return load_dataset(text, split=split, **kwargs)
    except ConnectionError as err:
        raise ConnectionError(
            f"could not reach the Hub for dataset {path_or_hub_id!r} (offline?); pass a local export instead"
        ) from err


__all__ = ["load_aesthetic_dataset"]
