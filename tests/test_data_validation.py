"""Validation reports every bad row (file + line + reason) before training, and skips or raises."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from datasets import DatasetDict
from PIL import Image as PILImage

from aesmamba_hf.data import (
    DatasetValidationError,
    build_ava,
    build_para_piaa,
    check_image,
    export_parquet,
    load_aesthetic_dataset,
    validate_dataset,
    validate_dataset_dict,
    write_ava_txt,
    write_id_list,
)
from aesmamba_hf.dataset_specs import PARA_ATTRIBUTES


def write_image(path: Path, seed: int = 0, size: int = 8) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    PILImage.fromarray(pixels).save(path, format="JPEG")
    return path


GOOD = [0, 0, 0, 1, 2, 1, 0, 0, 0, 0]


@pytest.fixture()
def broken_ava(tmp_path: Path) -> Path:
    """Eight AVA rows; rows 2-6 (AVA.txt lines 3-7) are broken in different ways."""
    root = tmp_path / "AVA"
    root.mkdir()
    ids = [f"{i}" for i in range(1, 9)]
    votes = [GOOD] * 8
    votes[4] = [0] * 10  # id 5: no votes -> NaN mean
    write_ava_txt(root / "AVA.txt", ids, votes)
    lines = (root / "AVA.txt").read_text().splitlines()
    fields = lines[5].split()
    fields[4] = "x"  # id 6: a malformed count -> NaN label
    lines[5] = " ".join(fields)
    (root / "AVA.txt").write_text("\n".join(lines) + "\n")
    for k, i in enumerate(ids):
        write_image(root / "images" / f"{i}.jpg", seed=k)
    (root / "images" / "3.jpg").unlink()  # id 3: missing file
    (root / "images" / "4.jpg").write_bytes(b"not a jpeg at all")  # id 4: unreadable
    (root / "images" / "7.jpg").write_bytes(b"")  # id 7: empty
    write_id_list(root / "train.txt", ids)
    write_id_list(root / "test.txt", [])
    return root


def test_skip_drops_exactly_the_bad_rows_and_names_file_and_line(broken_ava: Path):
    ds = build_ava(broken_ava, "train")
    cleaned, report = validate_dataset(ds, on_error="skip")
    assert cleaned["image_id"][:] == ["1", "2", "8"]
    assert report.num_rows == 8 and report.bad_rows == [2, 3, 4, 5, 6] and report.num_valid == 3
    by_row = {}
    for issue in report.issues:
        by_row.setdefault(issue.row, []).append(issue)
    assert [(i.field, i.reason) for i in by_row[2]] == [("image", "file not found")]
    assert by_row[2][0].source == "AVA.txt:3" and by_row[2][0].image.endswith("images/3.jpg")
    assert by_row[3][0].field == "image" and by_row[3][0].reason.startswith("unreadable image")
    assert {i.field for i in by_row[4]} == {"score", "class_labels"}  # zero votes
    assert {i.field for i in by_row[5]} == {"labels", "score", "class_labels"}  # "x" in the counts
    assert any(i.reason == "NaN or infinite label" for i in by_row[5])
    assert [(i.field, i.reason) for i in by_row[6]] == [("image", "empty file")]
    text = str(report)
    assert "5 of 8 rows invalid" in text and "AVA.txt:3: row 2" in text


def test_raise_lists_the_issues(broken_ava: Path, tmp_path: Path):
    ds = build_ava(broken_ava, "train")
    with pytest.raises(DatasetValidationError, match=r"AVA\.txt:3: row 2 .*file not found") as info:
        validate_dataset(ds, on_error="raise")
    assert info.value.report.bad_rows == [2, 3, 4, 5, 6]
    info.value.report.to_csv(tmp_path / "issues.csv")
    rows = list(csv.DictReader(open(tmp_path / "issues.csv")))
    assert rows[0]["source"] == "AVA.txt:3" and rows[0]["field"] == "image" and len(rows) == 8
    with pytest.raises(ValueError, match="on_error"):
        validate_dataset(ds, on_error="ignore")


def test_clean_dataset_passes_unchanged_and_labels_only_mode(broken_ava: Path):
    ds = build_ava(broken_ava, "train")
    good = ds.select([0, 1, 7])
    same, report = validate_dataset(good, on_error="raise")
    assert report.ok and same is good
    # without the image check only the label problems remain
    _, labels_only = validate_dataset(ds, check_images=False)
    assert labels_only.bad_rows == [4, 5]


def test_num_classes_and_decode(tmp_path: Path):
    root = tmp_path / "AVA"
    root.mkdir()
    write_ava_txt(root / "AVA.txt", ["1", "2"], [GOOD, [0, 0, 0, 0, 0, 0, 0, 0, 0, 3]])  # classes 4 and 6
    write_image(root / "images" / "1.jpg")
    good = write_image(root / "images" / "2.jpg", seed=1, size=64).read_bytes()  # ~10 kB of scan data
    (root / "images" / "2.jpg").write_bytes(good[: len(good) // 2])  # truncated: header intact
    ds = build_ava(root, "train", test_fraction=0.0)
    _, report = validate_dataset(ds, num_classes=5)
    assert [(i.row, i.field) for i in report.issues] == [(1, "class_labels")]
    # verify() only reads the structure; decode=True finds the truncated pixel data
    assert check_image(str(root / "images" / "2.jpg")) is None
    _, decoded = validate_dataset(ds, decode=True)
    assert [(i.row, i.field) for i in decoded.issues] == [(1, "image")]


def test_piaa_user_without_userinfo_row(tmp_path: Path):
    ann = tmp_path / "PARA" / "annotation"
    ann.mkdir(parents=True)
    rows = {"userId": ["u1", "ghost"], "imageName": ["a.jpg", "a.jpg"], "sessionId": ["s", "s"]}
    for _, _, col in PARA_ATTRIBUTES:
        rows[col] = [3.0, 4.0]
    pd.DataFrame(rows).to_csv(ann / "PARA-PiaaTrain.csv", index=False)
    pd.DataFrame({"userId": ["u1"], "personality-O": [5]}).to_csv(ann / "PARA-UserInfo.csv", index=False)
    write_image(tmp_path / "PARA" / "imgs" / "s" / "a.jpg")
    ds = build_para_piaa(tmp_path / "PARA", "train")
    _, report = validate_dataset(ds)
    assert [(i.row, i.field, i.source) for i in report.issues] == [
        (1, "user", "annotation/PARA-PiaaTrain.csv:3")
    ]
    assert "'ghost'" in report.issues[0].reason


def test_dataset_dict_and_embedded_bytes(broken_ava: Path, tmp_path: Path):
    ds = build_ava(broken_ava, "train")
    splits = DatasetDict({"train": ds.select([0, 1, 2]), "test": ds.select([6, 7])})
    with pytest.raises(DatasetValidationError, match=r"(?s)split 'train'.*split 'test'") as info:
        validate_dataset_dict(splits, on_error="raise")
    assert set(info.value.reports) == {"train", "test"}
    cleaned, reports = validate_dataset_dict(splits)
    assert cleaned["train"]["image_id"][:] == ["1", "2"] and cleaned["test"]["image_id"][:] == ["8"]
    # a Parquet export carries the bytes; validation reads them instead of the (now relative) paths
    export_parquet(cleaned, tmp_path / "export")
    reloaded = load_aesthetic_dataset(tmp_path / "export", split="train", cache_dir=str(tmp_path / "cache"))
    _, report = validate_dataset(reloaded, on_error="raise")
    assert report.ok and report.num_rows == 2
