"""Input sources of large scoring jobs: detection, planning into units, and reading units back as bytes."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from _ray_inputs import image_folder, parquet_with_bytes, png_bytes, webdataset_shard
from aesmamba_hf.data.sources import (
    InputSourceError,
    InputUnit,
    cell_bytes,
    detect_kind,
    plan_units,
    read_unit,
    sample_key,
)


def _read_all(units, **kwargs):
    rows = {"key": [], "image": [], "read_error": []}
    for unit in units:
        for name, values in read_unit(unit, **kwargs).items():
            rows[name] += values
    return rows


def test_detect_kind(tmp_path):
    folder = image_folder(tmp_path / "imgs", 2)
    pq_dir = tmp_path / "pq"
    pq_dir.mkdir()
    parquet_with_bytes(pq_dir / "a.parquet", 3)
    wds = tmp_path / "wds"
    wds.mkdir()
    webdataset_shard(wds / "00000.tar", 2)
    parquet_with_bytes(wds / "00000.parquet", 2)  # img2dataset's metadata next to the tar: not an input
    assert [detect_kind(str(p)) for p in (folder, pq_dir, pq_dir / "a.parquet", wds, wds / "00000.tar")] == [
        "images", "parquet", "parquet", "webdataset", "webdataset"]
    assert detect_kind("someone/some-dataset") == "hf"
    with pytest.raises(InputSourceError, match="does not exist"):
        detect_kind(str(tmp_path / "missing" / "x.parquet"))


def test_a_typo_in_a_file_path_is_not_taken_for_a_hub_id(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "photos").mkdir()
    for typo in ("photos/img0001.jpg", "data/part-0.parquet", "photos/holiday"):  # a suffix, or a local folder
        with pytest.raises(InputSourceError, match=f"{typo} does not exist"):
            detect_kind(typo)
    assert detect_kind("someone/aesthetics-v2") == "hf"


def test_plan_cuts_every_kind_into_units_of_shard_size(tmp_path):
    folder = image_folder(tmp_path / "imgs", 4)  # 4 good + 3 bad = 7 files
    parquet = parquet_with_bytes(tmp_path / "a.parquet", 7)  # row groups of 3: units straddle them
    tar = webdataset_shard(tmp_path / "s.tar", 5)
    units = plan_units([str(parquet), str(tar), str(folder)], shard_size=3)
    assert [(u.kind, u.size) for u in units] == [("parquet", 3), ("parquet", 3), ("parquet", 1),
                                                 ("webdataset", 3), ("webdataset", 2),
                                                 ("images", 3), ("images", 3), ("images", 1)]
    assert [u.shard for u in units] == list(range(8))
    assert InputUnit.from_dict(units[5].to_dict()) == units[5]
    rows = _read_all(units)
    assert rows["key"][:7] == [f"pq{i:03d}" for i in range(7)]
    assert rows["key"][7:12] == [f"{i:09d}" for i in range(5)]
    assert len(rows["key"]) == len(set(rows["key"])) == 7 + 5 + 7


def test_read_parquet_rows_match_their_bytes(tmp_path):
    parquet = parquet_with_bytes(tmp_path / "a.parquet", 7, bad_row=False)
    rows = _read_all(plan_units([str(parquet)], shard_size=4))
    assert rows["image"] == [png_bytes(100 + i) for i in range(7)]
    assert rows["read_error"] == [None] * 7


def test_read_parquet_paths_structs_and_missing_key(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "a.png").write_bytes(png_bytes(1))
    cells = [{"bytes": png_bytes(2), "path": None}, {"bytes": None, "path": "a.png"}, {"bytes": None, "path": None},
             {"bytes": None, "path": "gone.png"}]
    pq.write_table(pa.table({"img": cells}), tmp_path / "t.parquet")
    units = plan_units([str(tmp_path / "t.parquet")], image_column="img")
    rows = read_unit(units[0], image_column="img")
    assert rows["key"] == [f"{tmp_path / 't.parquet'}#{i}" for i in range(4)]
    assert rows["image"][:2] == [png_bytes(2), png_bytes(1)]  # a relative path is found next to the file
    assert rows["image"][2:] == [None, None]
    assert rows["read_error"][2] == "no image in this row"
    assert "gone.png" in rows["read_error"][3]
    with pytest.raises(InputSourceError, match="no image column 'image'.*--image-column"):
        plan_units([str(tmp_path / "t.parquet")])


def test_read_webdataset_sample_without_image(tmp_path):
    tar = webdataset_shard(tmp_path / "s.tar", 4)
    rows = _read_all(plan_units([str(tar)], shard_size=3))
    assert rows["key"] == [f"{i:09d}" for i in range(4)]
    assert rows["image"][:3] == [png_bytes(200 + i) for i in range(3)]
    assert rows["image"][3] is None and "has no (non-empty) image member" in rows["read_error"][3]
    assert sample_key("dir/000000001.jpg") == "dir/000000001" and sample_key("a.b.c.png") == "a"


def test_read_images_folder_reasons(tmp_path):
    folder = image_folder(tmp_path / "imgs", 2)
    rows = _read_all(plan_units([str(folder)], shard_size=2))
    reasons = dict(zip([k.rsplit("/", 1)[1] for k in rows["key"]], rows["read_error"]))
    assert reasons["empty.png"].endswith("is empty")
    assert reasons["good000.png"] is None and reasons["truncated.png"] is None  # decoding decides, later
    missing = InputUnit(0, "images", "files", files=[str(tmp_path / "nope.png")])
    assert "cannot read" in read_unit(missing)["read_error"][0]


def test_read_saved_datasets_dataset(tmp_path):
    import datasets

    dataset = datasets.Dataset.from_dict({"image": [Image.open(io.BytesIO(png_bytes(i))) for i in range(5)],
                                          "id": [f"row{i}" for i in range(5)]}).cast_column("image", datasets.Image())
    dataset.save_to_disk(str(tmp_path / "saved"))
    assert detect_kind(str(tmp_path / "saved")) == "hf"
    units = plan_units([str(tmp_path / "saved")], shard_size=2)
    assert [u.size for u in units] == [2, 2, 1]
    rows = _read_all(units, key_column="id")
    assert rows["key"] == [f"row{i}" for i in range(5)]
    assert all(Image.open(io.BytesIO(b)).size == (40, 32) for b in rows["image"])
    assert _read_all(units)["key"] == ["0", "1", "2", "3", "4"]  # no key column: the row number


def test_cell_bytes_kinds():
    assert cell_bytes(b"abc") == (b"abc", None)
    assert cell_bytes(b"") == (None, "empty image bytes")
    assert cell_bytes(None) == (None, "no image in this row")


def test_image_bytes_decode_by_the_file_rules():
    """A Parquet/webdataset cell decodes like a file: a loaded RGB image, or an ImageLoadError with the reason
    (a truncated PNG used to escape as a bare AssertionError from PIL, failing the whole batch)."""
    import numpy as np

    from aesmamba_hf.image_processing_aesmamba import ImageLoadError
    from aesmamba_hf.training.collator import open_image_cell

    image = open_image_cell({"bytes": png_bytes(3), "path": None}, {}, 0)
    assert np.asarray(image).shape == (32, 40, 3)
    assert np.array_equal(np.asarray(open_image_cell(png_bytes(3), {}, 0)), np.asarray(image))
    with pytest.raises(ImageLoadError, match="truncated|corrupt"):
        open_image_cell({"bytes": png_bytes(3)[:60]}, {}, 0)
    with pytest.raises(ImageLoadError, match="not an image file"):
        open_image_cell({"bytes": b"text"}, {}, 0)


def test_the_output_folder_inside_an_input_folder_is_not_an_input(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "a.png").write_bytes(png_bytes(0))
    out = folder / "scores"  # a rerun finds the first run's shards here
    out.mkdir()
    pq.write_table(pa.table({"key": ["x"], "score": [5.0]}), out / "part-000000.parquet")
    for all_files in (False, True):
        units = plan_units([str(folder)], exclude=str(out), all_files=all_files)
        assert [(u.kind, u.files) for u in units] == [("images", [str(folder / "a.png")])]
    with pytest.raises(InputSourceError, match="inside the output folder"):
        plan_units([str(out / "part-000000.parquet")], exclude=str(out))
