"""Inputs for the Ray engine / sources tests: image folders with bad files, Parquet with embedded bytes, a
webdataset shard laid out as img2dataset writes it."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

from _io_helpers import random_image


def png_bytes(seed: int, size: tuple[int, int] = (40, 32)) -> bytes:
    buffer = io.BytesIO()
    random_image(seed, size).save(buffer, format="PNG")
    return buffer.getvalue()


def image_folder(root: Path, count: int, seed: int = 0) -> Path:
    """``count`` good PNGs plus a non-image .jpg, an empty .png and a truncated .png."""
    root.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (root / f"good{i:03d}.png").write_bytes(png_bytes(seed + i))
    (root / "not_an_image.jpg").write_bytes(b"this is text, not a JPEG")
    (root / "empty.png").write_bytes(b"")
    (root / "truncated.png").write_bytes(png_bytes(seed + 999)[:60])
    return root


def parquet_with_bytes(path: Path, count: int, seed: int = 100, bad_row: bool = True) -> Path:
    """A Parquet file ``key`` + ``image`` (encoded bytes); with ``bad_row``, row 1 holds garbage bytes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    images = [png_bytes(seed + i) for i in range(count)]
    if bad_row:
        images[1] = b"\x00garbage"
    pq.write_table(pa.table({"key": [f"pq{i:03d}" for i in range(count)], "image": pa.array(images, pa.binary())}),
                   path, row_group_size=3)
    return path


def webdataset_shard(path: Path, count: int, seed: int = 200, missing_image: bool = True) -> Path:
    """An img2dataset-style tar: ``<key>.jpg`` (PNG data is fine for PIL) + ``.json`` + ``.txt`` per sample;
    with ``missing_image``, the last sample has only its ``.json`` and ``.txt``."""
    with tarfile.open(path, "w") as archive:
        for i in range(count):
            key = f"{i:09d}"
            members = {f"{key}.txt": b"a caption", f"{key}.json": json.dumps({"key": key}).encode()}
            if not (missing_image and i == count - 1):
                members = {f"{key}.jpg": png_bytes(seed + i), **members}
            for name, data in members.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    return path
