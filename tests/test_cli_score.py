"""``aesmamba score`` / ``info`` / ``download`` and the variant table, on tiny random models."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from transformers import AutoModel, pipeline

import aesmamba_hf.pipeline  # noqa: F401
from _io_helpers import png_bomb as _png_bomb
from _io_helpers import random_image, save_tiny_model
from aesmamba_hf import (
    AesMambaConfig,
    AesMambaForAestheticAssessment,
    RandomWeightsError,
    load_model,
    load_scorer,
)
from aesmamba_hf.cli import main
from aesmamba_hf.cli import score as score_cli
from aesmamba_hf.variants import ALIASES, VARIANTS, get_variant, resolve_model

HUB_CONFIGS = Path(__file__).resolve().parents[1] / "hub_configs"


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli-models")
    return {task: save_tiny_model(root / task, task) for task in "VFMP"}


@pytest.fixture
def photo_folder(tmp_path) -> tuple[Path, list[Path], dict[Path, str]]:
    """8 good images (some nested) plus the four kinds of broken file and a skipped .txt."""
    root = tmp_path / "photos"
    (root / "trip" / "day2").mkdir(parents=True)
    good = []
    for i in range(8):
        folder = root if i < 3 else root / "trip" if i < 6 else root / "trip" / "day2"
        path = folder / f"img{i}.{'png' if i % 3 == 0 else 'jpg'}"
        random_image(i, size=(50 + 3 * i, 40)).save(path)
        good.append(path)
    broken = {}
    _png_bomb(root / "bomb.png")
    broken[root / "bomb.png"] = "decompression bomb"
    full = (root / "img1.jpg").read_bytes()
    (root / "trip" / "truncated.jpg").write_bytes(full[: len(full) // 2])
    broken[root / "trip" / "truncated.jpg"] = "truncated"
    (root / "trip" / "day2" / "empty.jpg").write_bytes(b"")
    broken[root / "trip" / "day2" / "empty.jpg"] = "empty file"
    (root / "caption.jpg").write_text("this text file pretends to be a JPEG\n")
    broken[root / "caption.jpg"] = "not an image"
    (root / "notes.txt").write_text("not an image extension: skipped unless --all-files\n")
    (root / ".hidden.jpg").write_text("hidden: skipped")
    return root, good, broken


def _read(output: Path) -> list[dict]:
    if output.suffix == ".csv":
        with open(output, newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))
    return [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]


def test_score_folder_reports_exactly_the_broken_files_and_scores_the_rest(models, photo_folder, tmp_path,
                                                                          capsys):
    root, good, broken = photo_folder
    output = tmp_path / "scores.csv"
    assert main(["score", str(root), "--model", str(models["V"]), "--output", str(output),
                 "--batch-size", "3", "--no-progress"]) == 0
    rows = _read(output)
    by_path = {row["path"]: row for row in rows}
    assert len(rows) == len(by_path) == len(good) + len(broken)  # every file exactly once
    errors = {Path(r["path"]) for r in rows if r["status"] == "error"}
    assert errors == set(broken)
    for path, reason in broken.items():
        assert reason in by_path[str(path)]["error"] and by_path[str(path)]["score"] == ""
    assert str(root / "notes.txt") not in by_path and str(root / ".hidden.jpg") not in by_path
    pipe = pipeline("image-aesthetics", model=str(models["V"]))
    for path in good:
        row = by_path[str(path)]
        assert row["status"] == "ok" and row["error"] == ""
        expected = pipe(str(path))
        assert float(row["score"]) == pytest.approx(expected["score"], abs=1e-5)
        assert int(row["scale_class"]) == expected["scale_class"]
        assert sum(float(row[f"p_{b}"]) for b in range(1, 11)) == pytest.approx(1.0, abs=1e-5)
    err = capsys.readouterr().err
    summary = err[err.index("unreadable files (recorded with status=error):"):]
    assert all(str(path) in summary for path in broken)
    assert summary.count("\n  ") == len(broken)
    assert f"scored {len(good)} image(s), {len(broken)} unreadable" in err
    # --all-files also tries (and reports) the .txt file
    output2 = tmp_path / "all.jsonl"
    assert main(["score", str(root), "--model", str(models["V"]), "--output", str(output2), "--all-files",
                 "--no-progress", "--workers", "0"]) == 0
    records = {r["path"]: r for r in _read(output2)}
    assert records[str(root / "notes.txt")]["status"] == "error"
    assert len(records) == len(good) + len(broken) + 1


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_interrupted_run_resumes_without_duplicates(models, photo_folder, tmp_path, monkeypatch, suffix):
    root, good, broken = photo_folder
    output = tmp_path / f"run{suffix}"
    from aesmamba_hf.inference.predictor import Predictor

    original = Predictor.predict_examples
    calls = {"n": 0}

    def crashing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # Ctrl-C in the middle of the run
        return original(*args, **kwargs)

    monkeypatch.setattr(Predictor, "predict_examples", crashing)
    command = ["score", str(root), "--model", str(models["F"]), "--output", str(output), "--batch-size", "4",
               "--no-progress"]
    assert main(command) == 130
    first = _read(output)
    assert 0 < len(first) <= 4 and len({r["path"] for r in first}) == len(first)
    monkeypatch.setattr(Predictor, "predict_examples", original)
    # a torn last line (crash inside a write) is cut off on the next run
    with open(output, "a", encoding="utf-8") as handle:
        handle.write('{"path": "/half/writ' if suffix == ".jsonl" else "/half/written.jpg,ok,0.1")
    assert main(command) == 0
    rows = _read(output)
    paths = [r["path"] for r in rows]
    assert sorted(paths) == sorted(str(p) for p in [*good, *broken])  # each file exactly once
    assert rows[: len(first)] == first  # the rows written before the crash are kept as they were
    assert main(command) == 0  # a third run has nothing to do
    assert _read(output) == rows
    if suffix == ".jsonl":
        ok = next(r for r in rows if r["status"] == "ok")
        assert len(ok["heads"]) == 9 and ok["distribution"] is None


def test_retry_errors_and_mismatched_outputs(models, photo_folder, tmp_path, capsys):
    root, good, broken = photo_folder
    output = tmp_path / "scores.csv"
    command = ["score", str(root), "--model", str(models["V"]), "--output", str(output), "--no-progress"]
    assert main(command) == 0
    empty = root / "trip" / "day2" / "empty.jpg"
    random_image(99).save(empty, format="JPEG")  # the user fixes one file
    assert main(command) == 0
    assert next(r for r in _read(output) if r["path"] == str(empty))["status"] == "error"  # not retried
    assert main([*command, "--retry-errors"]) == 0
    rows = _read(output)
    assert [r["status"] for r in rows if r["path"] == str(empty)] == ["ok"]
    assert sum(r["status"] == "error" for r in rows) == len(broken) - 1
    assert len(rows) == len(good) + len(broken)
    # another model writes other columns: refuse to mix
    capsys.readouterr()
    assert main(["score", str(root), "--model", str(models["F"]), "--output", str(output), "--no-progress"]) == 2
    assert "different model" in capsys.readouterr().err
    assert main(["score", str(root), "--model", str(models["V"]), "--output", str(tmp_path / "x.txt")]) == 2
    # a missing path is an error row with its reason; the run goes on
    assert main(["score", str(tmp_path / "nowhere"), "--model", str(models["V"]), "--output", str(output)]) == 0
    assert next(r for r in _read(output) if r["path"] == str(tmp_path / "nowhere"))["error"] == "no such file"


def test_user_profile_and_comments_files(models, tmp_path):
    images = tmp_path / "imgs"
    images.mkdir()
    for i in range(3):
        random_image(i).save(images / f"{i}.jpg")
    profile = tmp_path / "me.json"
    profile.write_text(json.dumps({"openness": 8, "art_experience": "expert", "photo_experience": "beginner"}))
    out_user, out_plain = tmp_path / "user.csv", tmp_path / "plain.csv"
    base = ["score", str(images), "--model", str(models["P"]), "--no-progress"]
    assert main([*base, "--user", str(profile), "--output", str(out_user)]) == 0
    assert main([*base, "--output", str(out_plain)]) == 0
    pipe = pipeline("image-aesthetics", model=str(models["P"]))
    with_user = {r["path"]: float(r["score_quality"]) for r in _read(out_user)}
    plain = {r["path"]: float(r["score_quality"]) for r in _read(out_plain)}
    for path, value in with_user.items():
        assert value == pytest.approx(pipe(path, user=str(profile))["heads"]["quality"]["score"], abs=1e-5)
        assert value != pytest.approx(plain[path], abs=1e-7)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"openness": 99}))
    assert main([*base, "--user", str(bad), "--output", str(tmp_path / "bad.csv")]) == 2
    assert main(["score", str(images), "--model", str(models["V"]), "--user", str(profile),
                 "--output", str(tmp_path / "v.csv")]) == 2

    comments = tmp_path / "comments.csv"
    comments.write_text("image,comment\n0,\"['Great light :)', 'sharp']\"\n1.jpg,too dark\n")
    out_m = tmp_path / "m.jsonl"
    assert main(["score", str(images), "--model", str(models["M"]), "--comments", str(comments),
                 "--output", str(out_m), "--no-progress"]) == 0
    mpipe = pipeline("image-aesthetics", model=str(models["M"]))
    records = {Path(r["path"]).name: r for r in _read(out_m)}
    assert records["0.jpg"]["score"] == pytest.approx(
        mpipe(str(images / "0.jpg"), comment="['Great light :)', 'sharp']")["score"], abs=1e-5)
    assert records["1.jpg"]["score"] == pytest.approx(mpipe(str(images / "1.jpg"), comment="too dark")["score"],
                                                      abs=1e-5)
    assert records["2.jpg"]["score"] == pytest.approx(mpipe(str(images / "2.jpg"))["score"], abs=1e-5)


def _tiny_hub_configs(tmp_path: Path) -> Path:
    """A hub_configs folder whose aesmamba-p-para config is tiny (the real one is BERT-base sized)."""
    from aesmamba_hf import AesMambaConfig

    root = tmp_path / "hub_configs"
    folder = root / "aesmamba-p-para"
    shutil.copytree(HUB_CONFIGS / "aesmamba-p-para", folder)
    config = AesMambaConfig.tiny(task="P", variant="aesmamba-p-para")
    config.vision_config.scan_backend = "reference"
    config.architectures = ["AesMambaForAestheticAssessment"]
    config.to_json_file(folder / "config.json")
    return root


def test_download_offline_fails_without_opt_in_and_random_weights_are_refused_unless_allowed(
        tmp_path, monkeypatch, capsys):
    import huggingface_hub

    def offline(**kwargs):
        raise huggingface_hub.errors.LocalEntryNotFoundError("offline mode is enabled")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    monkeypatch.setenv("AESMAMBA_HUB_CONFIGS", str(_tiny_hub_configs(tmp_path)))
    monkeypatch.chdir(tmp_path)
    # no opt-in: a non-zero exit, a sentence, and nothing left behind
    assert main(["download", "aesmamba-p"]) == 1
    err = capsys.readouterr().err
    assert "could not be downloaded" in err and "offline mode" in err and "--random-weights" in err
    assert not (tmp_path / "aesmamba-p").exists()
    # explicit opt-in: built with random weights, marked one way (config.json), announced loudly
    assert main(["download", "aesmamba-p", "--random-weights"]) == 0
    err = capsys.readouterr().err
    assert "RANDOM WEIGHTS" in err and "aesmamba-hf/aesmamba-p-para" in err and "offline mode" in err
    folder = tmp_path / "aesmamba-p"
    names = {p.name for p in folder.iterdir()}
    assert {"config.json", "model.safetensors", "processor_config.json", "vocab.txt", "tokenizer_config.json"} <= names
    assert score_cli.RANDOM_WEIGHTS_MARKER not in names
    assert json.loads((folder / "config.json").read_text())["random_weights"] is True
    model = AutoModel.from_pretrained("aesmamba-p")  # as users write it
    assert model.config.task == "P" and model.config.variant == "aesmamba-p-para"
    assert resolve_model("aesmamba-p") == "aesmamba-p"
    assert main(["download", "aesmamba-p", "--random-weights"]) == 2  # will not overwrite
    assert "already exists" in capsys.readouterr().err
    # every entry point refuses the folder without the opt-in, and flags it with it
    random_image(0).save(tmp_path / "x.jpg")
    assert main(["score", "x.jpg", "--model", "aesmamba-p", "--output", "o.csv", "--no-progress"]) == 2
    assert "RANDOM weights" in capsys.readouterr().err and not (tmp_path / "o.csv").exists()
    assert main(["score", "x.jpg", "--model", "aesmamba-p", "--output", "o.csv", "--no-progress",
                 "--random-weights"]) == 0
    assert "RANDOM weights" in capsys.readouterr().err
    with pytest.raises(RandomWeightsError):
        load_scorer("aesmamba-p")
    assert main(["info", "aesmamba-p"]) == 0
    out = capsys.readouterr().out
    assert "weights:       RANDOM" in out and "task P" in out and "willingToShare" in out


def test_a_model_the_user_builds_and_saves_is_not_marked(tmp_path):
    config = AesMambaConfig.tiny(task="V")
    config.architectures = ["AesMambaForAestheticAssessment"]
    AesMambaForAestheticAssessment(config).save_pretrained(tmp_path / "mine")
    loaded = load_model(tmp_path / "mine")
    assert not loaded.random_weights and loaded.model.config.random_weights is False


def test_download_from_the_hub(tmp_path, monkeypatch):
    import huggingface_hub

    seen = {}

    def fake_snapshot_download(repo_id, local_dir, **kwargs):
        seen["repo_id"] = repo_id
        save_tiny_model(Path(local_dir), "V")
        return local_dir

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    assert main(["download", "aesmamba-v", str(tmp_path / "target")]) == 0
    assert seen["repo_id"] == "aesmamba-hf/aesmamba-v-ava"
    assert not (tmp_path / "target" / score_cli.RANDOM_WEIGHTS_MARKER).exists()


def test_info_describes_the_model(models, capsys):
    assert main(["info", str(models["V"])]) == 0
    out = capsys.readouterr().out
    assert "task V" in out and "distribution over 10 bins" in out and "range 1-10" in out
    assert "resize 224x224 (bicubic)" in out and "random crop 224x224" in out and "0.4815" in out
    assert main(["info", str(models["M"]), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    model = AutoModel.from_pretrained(models["M"])
    assert info["parameters"]["total"] == sum(p.numel() for p in model.parameters())
    assert info["preprocessing"]["text"]["vocab_size"] == 30522
    assert info["preprocessing"]["text"]["clean_comments"] is True
    assert main(["info", str(models["M"] / "missing")]) == 2


def test_variant_table():
    expected = {"aesmamba-v", "aesmamba-v-ava", "aesmamba-v-photonet", "aesmamba-v-para", "aesmamba-v-aadb",
                "aesmamba-v-tad66k", "aesmamba-m", "aesmamba-m-ava", "aesmamba-m-photonet", "aesmamba-f",
                "aesmamba-f-para", "aesmamba-p", "aesmamba-p-para",
                "aesmamba-v-dagger-tad66k", "aesmamba-v-dagger", "aesmamba-v-b-tad66k"}
    assert set(ALIASES) == expected
    assert get_variant("aesmamba-p").repo_id == "aesmamba-hf/aesmamba-p-para"
    assert get_variant("AesMamba-V").name == "aesmamba-v-ava"
    assert get_variant("aesmamba-hf/aesmamba-m-photonet").task == "M"
    for name, variant in VARIANTS.items():
        config = json.loads((HUB_CONFIGS / variant.hub_config_folder / "config.json").read_text())
        assert (config["task"], config["dataset"], config["variant"]) == (variant.task, variant.dataset, name)
    assert resolve_model("aesmamba-f") == "aesmamba-hf/aesmamba-f-para"  # no local folder of that name
    assert resolve_model("someone/their-model") == "someone/their-model"
    with pytest.raises(ValueError, match="no known AesMamba alias"):
        resolve_model("aesmamba-x")
    with pytest.raises(KeyError, match="unknown AesMamba variant"):
        get_variant("nope")


def test_adding_a_video_to_a_half_scored_folder_resumes(models, tmp_path, capsys):
    folder = tmp_path / "media"
    folder.mkdir()
    random_image(0).save(folder / "a.png")
    out = tmp_path / "out.csv"
    assert main(["score", str(folder), "-m", str(models["V"]), "-o", str(out), "--no-progress"]) == 0
    (folder / "clip.mp4").write_bytes(b"not really a video")  # an error row, but one with the video columns
    rc = main(["score", str(folder), "-m", str(models["V"]), "-o", str(out), "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    with open(out, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert "frame" in rows[0] and [Path(r["path"]).name for r in rows] == ["a.png", "clip.mp4"]
    assert rows[0]["status"] == "ok" and rows[1]["status"] == "error"
    assert main(["score", str(folder), "-m", str(models["V"]), "-o", str(out), "--no-progress"]) == 0


def test_resuming_with_other_settings_is_refused(models, tmp_path, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    random_image(0).save(folder / "a.png")
    out = tmp_path / "out.jsonl"
    base = ["score", str(folder), "-m", str(models["V"]), "-o", str(out), "--no-progress"]
    assert main(base) == 0
    assert json.loads(Path(f"{out}.settings.json").read_text())["dtype"] == "float32"
    capsys.readouterr()
    for extra, name in ((["--clamp"], "clamp"), (["--dtype", "bfloat16"], "dtype"), (["--frames", "4"], "frames")):
        assert main(base + extra) == 2
        assert f"{name}: " in capsys.readouterr().err
    assert len(out.read_text().splitlines()) == 1
    assert main(base + ["--dtype", "float32"]) == 0  # the default, spelled out: the same settings
    Path(f"{out}.settings.json").unlink()  # an output from before the sidecar: resumes unchecked
    assert main(base + ["--clamp"]) == 0
