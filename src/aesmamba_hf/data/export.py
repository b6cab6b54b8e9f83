"""Export built datasets to Parquet with the image bytes embedded (Hub-ready, self-contained).

``Dataset.to_parquet`` on a path-based ``Image()`` column stores only the path (datasets 5), so
each batch goes through ``datasets.table.embed_table_storage`` before it is written. Embedding keeps only
the file's base name as ``path``, so no local directory leaks into the files.

Output layout (what ``load_dataset(<dir or hub id>)`` and :func:`load_aesthetic_dataset` detect)::

    output_dir/README.md                                  # dataset card with the ``configs`` split map
    output_dir/data/<split>-00000-of-0000N.parquet        # shards of at most ``max_shard_size`` bytes

Upload with ``huggingface_hub.HfApi().upload_folder(folder_path=output_dir, repo_id=..., repo_type="dataset")``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from datasets import Dataset, DatasetDict
from datasets.table import embed_table_storage

DEFAULT_MAX_SHARD_SIZE = 500 * 2**20  # bytes of image data per shard; the Hub viewer likes < 1 GB


def _image_nbytes(dataset: Dataset) -> int:
    if "image" not in dataset.column_names:
        return 0
    col = dataset.select_columns(["image"]).with_format("arrow")[:]["image"].combine_chunks()
    if not pa.types.is_struct(col.type):
        return 0
    total = sum(len(b) for b in col.field("bytes").to_pylist() if b is not None)
    for path, data in zip(col.field("path").to_pylist(), col.field("bytes").to_pylist()):
        if data is None and path and os.path.isfile(path):
            total += os.path.getsize(path)
    return total


def export_split(
    dataset: Dataset,
    output_dir: str | os.PathLike,
    split: str,
    *,
    max_shard_size: int = DEFAULT_MAX_SHARD_SIZE,
    batch_size: int = 64,
) -> list[Path]:
    """Write ``dataset`` as ``output_dir/data/<split>-XXXXX-of-YYYYY.parquet`` with embedded images."""
    data_dir = Path(output_dir) / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    for stale in data_dir.glob(f"{split}-[0-9][0-9][0-9][0-9][0-9]-of-*.parquet"):
        stale.unlink()  # a re-export with fewer shards must not leave old shards behind
    n = len(dataset)
    num_shards = max(1, math.ceil(_image_nbytes(dataset) / max_shard_size)) if n else 1
    num_shards = min(num_shards, max(n, 1))
    bounds = [round(i * n / num_shards) for i in range(num_shards + 1)]
    schema = dataset.features.arrow_schema  # carries the "huggingface" features metadata (Image, List...)
    arrow = dataset.with_format("arrow")
    files = []
    for shard in range(num_shards):
        path = data_dir / f"{split}-{shard:05d}-of-{num_shards:05d}.parquet"
        with pq.ParquetWriter(path, schema=schema) as writer:
            for start in range(bounds[shard], bounds[shard + 1], batch_size):
                stop = min(start + batch_size, bounds[shard + 1])
                table = arrow[start:stop].cast(schema)
                try:
                    table = embed_table_storage(table)
                except (FileNotFoundError, OSError) as err:
                    raise type(err)(
                        f"cannot embed the images of rows {start}..{stop - 1} of split {split!r}: {err}; "
                        "run aesmamba_hf.data.validate_dataset first to drop missing files"
                    ) from err
                writer.write_table(table)
            if bounds[shard] == bounds[shard + 1]:
                writer.write_table(schema.empty_table())
        files.append(path)
    return files


def _card(splits: dict[str, int], features_doc: str) -> str:
    configs = "\n".join(f"  - split: {s}\n    path: data/{s}-*" for s in splits)
    sizes = "\n".join(f"| {s} | {n} |" for s, n in splits.items())
    return (
        f"---\nconfigs:\n- config_name: default\n  data_files:\n{configs}\n---\n\n"
        "# Image aesthetic assessment dataset (aesmamba-hf)\n\n"
        "Exported by `aesmamba_hf.data.export_parquet`; images are embedded as bytes.\n"
        "Load with `aesmamba_hf.data.load_aesthetic_dataset(<this repo or folder>)` or "
        "`datasets.load_dataset(<this repo or folder>)`.\n\n"
        f"| split | rows |\n|---|---|\n{sizes}\n\nColumns: {features_doc}\n"
    )


def export_parquet(
    dataset: Dataset | DatasetDict | Mapping[str, Dataset],
    output_dir: str | os.PathLike,
    *,
    split: str | None = None,
    max_shard_size: int = DEFAULT_MAX_SHARD_SIZE,
    batch_size: int = 64,
    write_card: bool = True,
) -> dict[str, list[Path]]:
    """Export one split (``split`` defaults to ``dataset.split`` or ``train``) or every split of a
    ``DatasetDict`` (or a plain ``{split: Dataset}`` dict); returns ``{split: [parquet files]}``. Validate
    first: a missing image file raises.
    """
    if isinstance(dataset, (DatasetDict, Mapping)):
        parts = dict(dataset.items())
    else:
        parts = {split or (str(dataset.split) if dataset.split is not None else "train"): dataset}
    written = {
        name: export_split(ds, output_dir, name, max_shard_size=max_shard_size, batch_size=batch_size)
        for name, ds in parts.items()
    }
    if write_card:
        first = next(iter(parts.values()))
        doc = ", ".join(f"`{k}`" for k in first.features)
        # Splits exported earlier into the same folder stay listed in the card.
        rows: dict[str, int] = {}
        for f in sorted((Path(output_dir) / "data").glob("*-*-of-*.parquet")):
            name = f.name.rsplit("-", 3)[0]
            rows[name] = rows.get(name, 0) + pq.ParquetFile(f).metadata.num_rows
        (Path(output_dir) / "README.md").write_text(_card(rows, doc), encoding="utf-8")
    return written


__all__ = ["DEFAULT_MAX_SHARD_SIZE", "export_parquet", "export_split"]
