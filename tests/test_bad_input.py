"""The project's corpus of bad input and faults, pushed through every entry point it reaches.

Each kind is generated here (images, file-system oddities, model folders and checkpoints, label files,
profiles, comments, output locations, interrupts) and its outcome asserted where it lands: the ``aesmamba``
CLI (exit code, a message naming the item, no traceback), the Python API (a typed exception, an error record
or a warning naming it). The rules themselves live once on the core path (loader, ``load_image``, predictor,
result writer, dataset validation, io_utils); this module checks that every entry point honours them.

Tiny models are saved once per module; images are a few dozen pixels.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import pipeline

from _io_helpers import png_bomb as _png_bomb
from _io_helpers import random_image, save_tiny_model
from aesmamba_hf import AesMambaConfig, AesMambaForAestheticAssessment
from aesmamba_hf.cli import main
from aesmamba_hf.data import build_dataset
from aesmamba_hf.data.validation import check_image, validate_dataset
from aesmamba_hf.image_processing_aesmamba import ImageLoadError
from aesmamba_hf.inference.loading import ModelLoadError, load_model
from aesmamba_hf.inference.predictor import format_predictions
from aesmamba_hf.io_utils import (
    OutputLocationError,
    atomic_output_dir,
    check_output_dir,
    check_output_file,
    remove_stale_partials,
)
from aesmamba_hf.processing_aesmamba import as_user_profile
from aesmamba_hf.prompts import PromptWarning, UserProfile, build_prompt
from aesmamba_hf.training.collator import AesMambaDataCollator
from aesmamba_hf.training.trainer import CheckpointWarning, find_resumable_checkpoint

ROOT = os.geteuid() == 0 if hasattr(os, "geteuid") else False


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad-input-models")
    return {task: save_tiny_model(root / task, task) for task in "VMP"}


def run_cli(capsys, *argv: str) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert "Traceback" not in text
    return code, text


# ----------------------------------------------------------------------------------------------------------
# images and file-system oddities


def _make_images(root: Path) -> dict[str, tuple[Path, str]]:
    """name -> (path, expected): ``"ok"`` or a fragment of the error reason."""
    root.mkdir(parents=True, exist_ok=True)
    cases: dict[str, tuple[Path, str]] = {}

    def add(name: str, filename: str, expected: str) -> Path:
        cases[name] = (root / filename, expected)
        return root / filename

    random_image(0, (96, 80)).save(root / "source.jpg", quality=95)
    full = (root / "source.jpg").read_bytes()
    add("truncated_jpeg", "truncated.jpg", "truncated").write_bytes(full[: len(full) // 2])
    add("zero_bytes", "zero.jpg", "empty file").write_bytes(b"")
    add("text_as_jpeg", "text.jpg", "not an image").write_text("a caption, not a JPEG\n")
    _png_bomb(add("png_bomb_header", "bomb.png", "decompression bomb"))
    sixteen = (np.random.default_rng(0).random((20, 24)) * 65535).astype(np.uint16)
    Image.fromarray(sixteen).save(add("png_16bit", "sixteen.png", "ok"))
    Image.new("CMYK", (24, 20), (10, 200, 30, 0)).save(add("cmyk_jpeg", "cmyk.jpg", "ok"))
    palette = Image.new("P", (24, 20))
    palette.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    palette.save(add("palette_alpha_png", "palette.png", "ok"), transparency=0)
    frames = [random_image(i, (24, 20)) for i in range(3)]
    frames[0].save(add("animated_gif", "animated.gif", "ok"), save_all=True, append_images=frames[1:])
    Image.new("RGB", (1, 4000), (120, 30, 60)).save(add("aspect_1x4000", "tall.png", "ok"))
    os.symlink(root / "loop_b.jpg", add("symlink_loop", "loop_a.jpg", "symbolic link loop"))
    os.symlink(root / "loop_a.jpg", root / "loop_b.jpg")
    os.symlink(root / "gone.jpg", add("broken_symlink", "broken_link.jpg", "broken symbolic link"))
    os.mkfifo(add("named_pipe", "pipe.jpg", "named pipe"))
    for name, filename in [("name_two_spaces", "two  spaces.png"), ("name_tab", "tab\there.png"),
                           ("name_newline", "new\nline.png"), ("name_comma_quote", 'com,ma "quote".png'),
                           ("name_unicode", "ünïcødé 写真.png")]:
        random_image(len(cases), (30, 24)).save(add(name, filename, "ok"))
    (root / "source.jpg").unlink()
    return cases


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return _make_images(tmp_path_factory.mktemp("corpus") / "photos")


IMAGE_KINDS = ["truncated_jpeg", "zero_bytes", "text_as_jpeg", "png_bomb_header", "png_16bit", "cmyk_jpeg",
               "palette_alpha_png", "animated_gif", "aspect_1x4000", "symlink_loop", "broken_symlink", "named_pipe",
               "name_two_spaces", "name_tab", "name_newline", "name_comma_quote", "name_unicode"]


@pytest.fixture(scope="module")
def scored_folder(models, corpus, tmp_path_factory):
    """``aesmamba score`` over the corpus folder (+ a missing file named explicitly), run twice."""
    folder = next(iter(corpus.values()))[0].parent
    output = tmp_path_factory.mktemp("score-out") / "scores.csv"
    missing = folder.parent / "not-there.jpg"
    argv = ["score", str(folder), str(missing), "--model", str(models["V"]), "--output", str(output),
            "--no-progress", "--batch-size", "4", "--workers", "0"]
    first = main(argv)
    with open(output, newline="", encoding="utf-8") as handle:
        rows_first = list(csv.DictReader(handle))
    second = main(argv)  # a plain re-run: everything is already there
    with open(output, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return {"codes": (first, second), "rows": rows, "rows_first": rows_first, "missing": str(missing)}


@pytest.mark.parametrize("kind", IMAGE_KINDS)
def test_image_kind_in_score_cli(kind, corpus, scored_folder):
    path, expected = corpus[kind]
    assert scored_folder["codes"] == (0, 0)
    rows = [r for r in scored_folder["rows"] if r["path"] == str(path)]  # the exact path, byte for byte
    assert len(rows) == 1, f"{kind}: {len(rows)} rows for {path!r}"
    if expected == "ok":
        assert rows[0]["status"] == "ok" and math.isfinite(float(rows[0]["score"]))
    else:
        assert rows[0]["status"] == "error" and expected in rows[0]["error"]


def test_score_cli_rerun_adds_nothing_and_missing_path_is_an_error_row(scored_folder):
    assert scored_folder["rows"] == scored_folder["rows_first"]  # nothing rescored, nothing duplicated
    assert len({r["path"] for r in scored_folder["rows"]}) == len(scored_folder["rows"])
    missing = [r for r in scored_folder["rows"] if r["path"] == scored_folder["missing"]]
    assert len(missing) == 1 and missing[0]["error"] == "no such file"


@pytest.fixture(scope="module")
def piped(models, corpus):
    pipe = pipeline("image-aesthetics", model=str(models["V"]))
    paths = [str(corpus[kind][0]) for kind in IMAGE_KINDS]
    return pipe, dict(zip(IMAGE_KINDS, pipe(paths, batch_size=4)))


@pytest.mark.parametrize("kind", IMAGE_KINDS)
def test_image_kind_in_pipeline_list(kind, corpus, piped):
    _, results = piped
    record = results[kind]
    path, expected = corpus[kind]
    if expected == "ok":
        assert record["status"] == "ok" and math.isfinite(record["score"])
    else:
        assert record["status"] == "error" and expected in record["error"]
        assert record["path"] == str(path) and record["input"] == IMAGE_KINDS.index(kind)


@pytest.mark.parametrize("kind", ["truncated_jpeg", "symlink_loop", "named_pipe", "zero_bytes"])
def test_image_kind_alone_in_pipeline_raises_naming_the_file(kind, corpus, piped):
    pipe, _ = piped
    path, expected = corpus[kind]
    with pytest.raises(ImageLoadError, match=expected) as info:
        pipe(str(path))
    assert info.value.path == str(path)


def test_directory_and_url_given_as_an_image(piped, tmp_path):
    pipe, _ = piped
    (tmp_path / "folder.jpg").mkdir()
    with pytest.raises(ImageLoadError, match="is a directory"):
        pipe(str(tmp_path / "folder.jpg"))
    with pytest.raises(ImageLoadError, match="URLs are not fetched.*download the image first"):
        pipe("https://example.com/photo.jpg")
    records = pipe([str(tmp_path / "folder.jpg"), random_image(3)])
    assert [r["status"] for r in records] == ["error", "ok"]


@pytest.mark.skipif(ROOT, reason="root reads every file")
def test_unreadable_permissions(piped, tmp_path):
    pipe, _ = piped
    path = tmp_path / "secret.png"
    random_image(1).save(path)
    path.chmod(0)
    try:
        assert "permission denied" in pipe([str(path)])[0]["error"]
    finally:
        path.chmod(0o644)


@pytest.mark.parametrize("value, accepted", [(5, "int"), (None, "NoneType"), (b"\xff\xd8", "bytes"),
                                             ({"comment": "no image"}, "without an 'image' key")])
def test_pipeline_wrong_argument_types(piped, value, accepted):
    pipe, _ = piped
    with pytest.raises(TypeError, match=f"{accepted}.*accepted: a file path"):
        pipe(value)
    with pytest.raises(TypeError, match="input 1"):  # in a list: named by position, nothing scored
        pipe([random_image(0), value])


def test_pipeline_other_argument_errors(piped):
    pipe, _ = piped
    assert pipe([]) == []
    with pytest.raises(TypeError, match="unexpected arguments.*colour"):
        pipe(random_image(0), colour=True)
    with pytest.raises(ValueError, match="takes no text"):
        pipe(random_image(0), comment="nice")
    with pytest.raises(ValueError, match=r"\[0, 1\] \(scaled\) or \[0, 255\]"):
        pipe(np.full((20, 20, 3), 300.0))


def test_scores_outside_a_head_range_are_flagged_not_clamped():
    config = AesMambaConfig.tiny(task="V", dataset="PARA")  # scalar head, range 1..5
    results = format_predictions(config, torch.tensor([[0.83], [3.0], [5.5]]))
    assert [r["score"] for r in results] == pytest.approx([0.83, 3.0, 5.5])
    assert [r["out_of_range"] for r in results] == [True, False, True]
    assert results[0]["heads"]["aesthetic"]["out_of_range"] is True


def test_training_collator_skips_an_image_that_fails_to_decode(models, corpus):
    from aesmamba_hf.inference.loading import load_config, load_processor

    folder = models["V"]
    processor = load_processor(folder, load_config(folder))
    good = corpus["png_16bit"][0]
    bad = corpus["truncated_jpeg"][0]
    rows = [{"image": {"path": str(p), "bytes": None}, "labels": [1.0] * 10, "source": f"train.csv:{i + 2}"}
            for i, p in enumerate([good, bad, good])]
    collator = AesMambaDataCollator(processor, train=True, skip_unreadable=True)
    batch = collator(rows)
    assert batch["pixel_values"].shape[0] == 2 and batch["labels"].shape[0] == 2
    assert collator.skipped == [{"image": str(bad), "source": "train.csv:3", "reason": collator.skipped[0]["reason"]}]
    assert "truncated" in collator.skipped[0]["reason"]
    with pytest.raises(ImageLoadError, match="every image of the batch"):
        collator(rows[1:2])
    with pytest.raises(ImageLoadError, match="truncated"):  # without the option the batch fails, as before
        AesMambaDataCollator(processor, train=True)(rows)
    # validation that decodes refuses it up front
    assert "truncated" in (check_image(str(bad), decode=True) or "")


# ----------------------------------------------------------------------------------------------------------
# model folders and checkpoints


def _break(folder: Path, kind: str, models: dict[str, Path]) -> str:
    """Damage a copy of the V model folder; returns a fragment of the expected message."""
    config_path = folder / "config.json"
    config = json.loads(config_path.read_text())
    weights = folder / "model.safetensors"
    if kind == "truncated_safetensors":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
        return "model.safetensors is corrupt or truncated"
    if kind == "garbage_safetensors":
        weights.write_bytes(b"definitely not safetensors")
        return "model.safetensors is corrupt or truncated"
    if kind == "no_config":
        config_path.unlink()
        return "has no config.json"
    if kind == "invalid_json_config":
        config_path.write_text("{\"model_type\": \"aesmamba\",")
        return "config.json:1: not valid JSON"
    if kind == "unknown_task":
        config["task"] = "Q"
        config_path.write_text(json.dumps(config))
        return "field 'task' is 'Q'"
    if kind == "unknown_model_type":
        config["model_type"] = "vit"
        config_path.write_text(json.dumps(config))
        return "model_type is 'vit', not 'aesmamba'"
    if kind == "weights_of_another_variant":
        shutil.copy(models["P"] / "model.safetensors", weights)
        return "weights do not fit config.json"
    if kind == "no_weights":
        weights.unlink()
        return "no weights"
    raise AssertionError(kind)


FOLDER_KINDS = ["truncated_safetensors", "garbage_safetensors", "no_config", "invalid_json_config", "unknown_task",
                "unknown_model_type", "weights_of_another_variant", "no_weights"]


@pytest.mark.parametrize("kind", FOLDER_KINDS)
def test_broken_model_folder(kind, models, tmp_path, capsys):
    folder = tmp_path / "model"
    shutil.copytree(models["V"], folder)
    expected = _break(folder, kind, models)
    with pytest.raises(ModelLoadError, match=re.escape(expected)) as info:
        load_model(folder)
    assert str(folder) in str(info.value)
    image = tmp_path / "photo.png"
    random_image(0).save(image)
    code, text = run_cli(capsys, "score", image, "--model", folder, "--output", tmp_path / "out.csv")
    assert code == 2 and expected in text and str(folder) in text
    assert not (tmp_path / "out.csv").exists()
    code, text = run_cli(capsys, "evaluate", folder, "TAD66K", tmp_path, "--out", tmp_path / "eval")
    assert code == 1 and expected in text
    if kind not in ("no_config", "no_weights"):  # info describes a folder without weights; no config: no model
        code, text = run_cli(capsys, "info", folder)
        assert code == 2 and expected in text


def test_missing_model_folder_is_named_as_such(tmp_path, capsys):
    with pytest.raises(ModelLoadError, match="no model folder .*does not exist"):
        load_model(tmp_path / "nowhere")
    with pytest.raises(ModelLoadError, match="no local folder of that name"):
        load_model("runs/model")  # owner/name form: looked up on the (offline) Hub, and said so
    image = tmp_path / "photo.png"
    random_image(0).save(image)
    code, text = run_cli(capsys, "score", image, "--model", tmp_path / "nowhere", "--output", tmp_path / "o.csv")
    assert code == 2 and "does not exist" in text and "Repo id must be" not in text


def test_m_model_without_tokenizer_and_another_vocabulary(tmp_path):
    config = AesMambaConfig.tiny(task="M")
    config.text_config.vocab_size = 1000
    config.vision_config.scan_backend = "reference"
    AesMambaForAestheticAssessment(config).save_pretrained(tmp_path / "m")
    with pytest.raises(ModelLoadError, match="no tokenizer files.*1000-token vocabulary"):
        load_model(tmp_path / "m")


def _checkpoint(folder: Path, step: int, weights: Path) -> Path:
    path = folder / f"checkpoint-{step}"
    path.mkdir(parents=True)
    shutil.copy(weights, path / "model.safetensors")
    (path / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return path


def test_corrupt_newest_checkpoint_falls_back_with_a_warning(models, tmp_path):
    weights = models["V"] / "model.safetensors"
    good = _checkpoint(tmp_path, 10, weights)
    cut = _checkpoint(tmp_path, 20, weights)
    (cut / "model.safetensors").write_bytes(weights.read_bytes()[:2000])
    broken_state = _checkpoint(tmp_path, 30, weights)
    (broken_state / "trainer_state.json").write_text('{"global_step": 3')
    torn_optimizer = _checkpoint(tmp_path, 40, weights)
    torch.save({"x": torch.zeros(100)}, torn_optimizer / "optimizer.pt")
    data = (torn_optimizer / "optimizer.pt").read_bytes()
    (torn_optimizer / "optimizer.pt").write_bytes(data[: len(data) // 2])
    with pytest.warns(CheckpointWarning) as record:
        assert find_resumable_checkpoint(tmp_path) == str(good)
    messages = [str(w.message) for w in record]
    assert any("checkpoint-40" in m and "optimizer.pt" in m for m in messages)
    assert any("checkpoint-30" in m and "trainer_state.json" in m for m in messages)
    assert any("checkpoint-20" in m and "model.safetensors" in m for m in messages)
    assert any(m.startswith(f"resuming from {good}") for m in messages)


# ----------------------------------------------------------------------------------------------------------
# output locations and interrupted runs


def test_output_locations_are_refused_before_the_model_loads(tmp_path, capsys, monkeypatch):
    import aesmamba_hf.hub.export as hub_export
    import aesmamba_hf.inference.loading as loading
    import aesmamba_hf.piaa.protocol as piaa_protocol

    def fail(*args, **kwargs):
        pytest.fail("model loaded before the check")

    # every module that binds the loader by name at import (imported above, so no module keeps the fake)
    for module in (loading, hub_export, piaa_protocol):
        monkeypatch.setattr(module, "load_model", fail)
    image = tmp_path / "photo.png"
    random_image(0).save(image)
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    code, text = run_cli(capsys, "score", image, "--model", "m", "--output", tmp_path / "missing" / "out.csv")
    assert code == 2 and "does not exist" in text and str(tmp_path / "missing") in text
    code, text = run_cli(capsys, "evaluate", "m", "TAD66K", tmp_path, "--out", a_file / "eval")
    assert code == 1 and str(a_file) in text and "is a file" in text
    code, text = run_cli(capsys, "export", "aesmamba-v-ava", a_file)
    assert code == 1 and "is a file" in text
    code, text = run_cli(capsys, "piaa", "m", tmp_path, "--out", a_file)
    assert code == 1 and "is a file" in text
    code, text = run_cli(capsys, "train", "v-ava", "--output-dir", a_file, "--data-root", tmp_path)
    assert code == 1 and "is a file" in text
    with pytest.raises(OutputLocationError, match="is a folder"):
        check_output_file(tmp_path)


@pytest.mark.skipif(ROOT, reason="root writes into read-only folders")
def test_read_only_output_folder(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(OutputLocationError, match="not writable"):
            check_output_file(folder / "out.csv")
        with pytest.raises(OutputLocationError, match="not writable"):
            check_output_dir(folder / "sub")
    finally:
        folder.chmod(0o755)


def test_export_failing_midway_leaves_nothing(models, tmp_path, monkeypatch):
    import aesmamba_hf.hub.export as export

    def fail(folder):
        raise export.ExportError("simulated failure after the weights were written")

    monkeypatch.setattr(export, "check_remote_code", fail)
    out = tmp_path / "exported"
    with pytest.raises(export.ExportError, match="simulated"):
        export.export_model(str(models["V"]), out)
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_stale_partial_folder_is_removed_and_reported(tmp_path):
    out = tmp_path / "demo-output"
    stale = tmp_path / ".demo-output.partial-999999999"  # a pid that does not exist: a killed run
    (stale / "models").mkdir(parents=True)
    (stale / "models" / "weights.bin").write_bytes(b"\0" * 1000)
    lines: list[str] = []
    assert remove_stale_partials(out, report=lines.append) == [stale]
    assert not stale.exists() and str(stale) in lines[0] and "interrupted run" in lines[0]
    (stale / "x").mkdir(parents=True)
    with atomic_output_dir(out, report=lines.append) as staging:
        (staging / "report.md").write_text("done")
    assert (out / "report.md").read_text() == "done" and not stale.exists() and len(lines) == 2
    with pytest.raises(RuntimeError), atomic_output_dir(out, overwrite=True) as staging:
        (staging / "half.md").write_text("half")
        raise RuntimeError("killed")
    assert (out / "report.md").exists() and not (out / "half.md").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["demo-output"]


def test_one_output_folder_check_serves_every_writer(tmp_path):
    """check_new_output_dir: a file, a non-empty folder (unless overwrite), each caller's wording kept."""
    import argparse

    from aesmamba_hf.cli.export import _space_problem
    from aesmamba_hf.hub.export import ExportError, check_export_dir
    from aesmamba_hf.io_utils import OutputExistsError, check_new_output_dir

    full, file = tmp_path / "full", tmp_path / "file.txt"
    (full / "x").mkdir(parents=True)
    file.write_text("x")
    with pytest.raises(OutputLocationError, match="is a file"):
        check_new_output_dir(file)
    with pytest.raises(OutputExistsError, match=r"adapter folder .*full is not empty; choose another folder or "
                                                r"pass --overwrite") as caught:
        check_new_output_dir(full, what="adapter folder", how="pass --overwrite")
    assert isinstance(caught.value, FileExistsError)
    assert check_new_output_dir(full, overwrite=True) == full and check_new_output_dir(tmp_path / "new")
    with pytest.raises(FileExistsError, match="not empty"), atomic_output_dir(full):
        pass
    with pytest.raises(ExportError, match=r"export folder .* not empty; .*--overwrite"):
        check_export_dir(full, overwrite=False)
    assert "--space folder" in _space_problem(argparse.Namespace(space=str(full), overwrite=False))
    assert _space_problem(argparse.Namespace(space=str(full), overwrite=True)) == ""


@pytest.mark.slow
def test_interrupted_score_then_rerun_gives_each_image_once(models, tmp_path, monkeypatch, capsys):
    from aesmamba_hf.inference.results import ResultWriter

    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(7):
        random_image(i, (30, 24)).save(folder / f"p {i}.png")
    output = tmp_path / "out.jsonl"
    real_append = ResultWriter.append
    calls = {"n": 0}

    def append_then_die(self, records):
        real_append(self, records)
        calls["n"] += 1
        if calls["n"] == 2:
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write('{"path": "torn')  # a half-written line, as a kill mid-write leaves
            raise KeyboardInterrupt

    argv = ["score", folder, "--model", models["V"], "--output", output, "--batch-size", "2", "--no-progress"]
    monkeypatch.setattr(ResultWriter, "append", append_then_die)
    assert run_cli(capsys, *argv)[0] == 130
    monkeypatch.setattr(ResultWriter, "append", real_append)
    code, text = run_cli(capsys, *argv)
    assert code == 0 and "removed a partial last line" in text
    rows = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    assert sorted(r["path"] for r in rows) == sorted(str(p) for p in folder.iterdir())


# ----------------------------------------------------------------------------------------------------------
# label files and datasets (TAD66K layout: labels/merge/<split>.csv, images/)


def _tad(root: Path, text: str | bytes, images=("a.jpg", "b.jpg", "c.jpg")) -> Path:
    (root / "labels" / "merge").mkdir(parents=True, exist_ok=True)
    (root / "images").mkdir(exist_ok=True)
    for i, name in enumerate(images):
        random_image(i, (24, 20)).save(root / "images" / name)
    path = root / "labels" / "merge" / "test.csv"
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


@pytest.mark.parametrize("kind, content, expected", [
    ("missing_column", "image,rating\na.jpg,5\n", "missing column(s) ['score']"),
    ("empty_file", "", "the label file is empty"),
    ("not_utf8", b"image,score\n\xe9t\xe9.jpg,5\n", "not UTF-8"),
    ("unparsable", 'image,score\n"a.jpg,5\n', "cannot parse the label file"),
])
def test_malformed_label_file_is_named(kind, content, expected, tmp_path):
    path = _tad(tmp_path, content)
    with pytest.raises(ValueError) as info:
        build_dataset("TAD66K", tmp_path, "test")
    assert str(path) in str(info.value) and expected in str(info.value)


@pytest.mark.parametrize("kind, content", [("bom", "\ufeffimage,score\na.jpg,5\nb.jpg,6\n"),
                                           ("crlf", "image,score\r\na.jpg,5\r\nb.jpg,6\r\n")])
def test_bom_and_crlf_label_files_read_like_plain_ones(kind, content, tmp_path):
    _tad(tmp_path, content)
    dataset = build_dataset("TAD66K", tmp_path, "test")
    assert dataset["image_id"] == ["a.jpg", "b.jpg"] and dataset["labels"] == [[5.0], [6.0]]


@pytest.mark.parametrize("kind, row, expected", [
    ("nan_label", "b.jpg,", "NaN or infinite"),
    ("inf_label", "b.jpg,inf", "NaN or infinite"),
    ("out_of_range", "b.jpg,50", "outside TAD66K's score range [0, 10]"),
    ("negative", "b.jpg,-1", "outside TAD66K's score range"),
    ("duplicate_id", "a.jpg,4", "duplicate image id 'a.jpg' (first at labels/merge/test.csv:2)"),
])
def test_bad_label_rows_are_reported_by_file_and_line(kind, row, expected, tmp_path):
    _tad(tmp_path, f"image,score\na.jpg,5\n{row}\nc.jpg,7\n")
    dataset = build_dataset("TAD66K", tmp_path, "test")
    kept, report = validate_dataset(dataset, on_error="skip")
    assert len(kept) == 2 and report.num_bad == 1
    issue = report.issues[0]
    assert issue.source == "labels/merge/test.csv:3" and expected in issue.reason
    assert "labels/merge/test.csv:3" in str(issue)


def test_vote_counts_out_of_range_are_reported():
    from datasets import Dataset, DatasetInfo

    votes = [[1.0] * 10, [1e12] + [1.0] * 9, [-2.0] + [1.0] * 9]
    dataset = Dataset.from_dict({"labels": votes, "source": [f"AVA.txt:{i}" for i in (1, 2, 3)]},
                                info=DatasetInfo(dataset_name="AVA"))
    _, report = validate_dataset(dataset)
    assert [(i.source, i.reason) for i in report.issues] == [
        ("AVA.txt:2", "implausible vote count above 1e+06"), ("AVA.txt:3", "negative vote count")]
    para = Dataset.from_dict({"labels": [[3.0], [9.5]], "source": ["PARA.csv:2", "PARA.csv:3"]},
                             info=DatasetInfo(dataset_name="PARA"))
    assert [i.source for i in validate_dataset(para)[1].issues] == ["PARA.csv:3"]


@pytest.mark.slow
def test_evaluate_skips_nan_label_and_unreadable_image_rows(models, tmp_path, capsys):
    _tad(tmp_path / "TAD", "image,score\na.jpg,5\nb.jpg,\nc.jpg,7\nd.jpg,3\ne.jpg,6\n", images=("a.jpg", "b.jpg",
                                                                                                "c.jpg", "e.jpg"))
    (tmp_path / "TAD" / "images" / "d.jpg").write_bytes(b"\xff\xd8 truncated")
    code, text = run_cli(capsys, "evaluate", models["V"], "TAD66K", tmp_path / "TAD", "--split", "test",
                         "--out", tmp_path / "eval")
    assert code == 0 and "2 rows skipped" in text
    assert "labels/merge/test.csv:3" in text and "NaN" in text
    assert "labels/merge/test.csv:5" in text and "d.jpg" in text
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["num_images"] == 3 and metrics["num_skipped"] == 2


# ----------------------------------------------------------------------------------------------------------
# user profiles and comments

FULL_PROFILE = {"openness": 7, "conscientiousness": 6, "extroversion": 4, "agreeableness": 6, "neuroticism": 3,
                "art_experience": "proficient", "photo_experience": "beginner"}


@pytest.mark.parametrize("kind, change, field", [
    ("missing_trait", {"neuroticism": None}, "neuroticism"),
    ("nan_trait", {"openness": float("nan")}, "openness"),
    ("missing_experience", {"art_experience": None}, "art_experience"),
])
def test_partial_profile_warns_naming_the_field(kind, change, field):
    profile = UserProfile(**{**FULL_PROFILE, **change})
    with pytest.warns(PromptWarning, match=field):
        prompt = build_prompt(profile)
    assert prompt
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build_prompt(UserProfile(**FULL_PROFILE))  # a complete profile: silent


@pytest.mark.parametrize("kind, change, expected", [
    ("out_of_range_trait", {"openness": 42}, "openness=42 is outside the PARA Big-Five range"),
    ("unknown_experience", {"photo_experience": "guru"}, "photo_experience must be one of"),
    ("text_trait", {"agreeableness": "high"}, "agreeableness must be a number"),
])
def test_invalid_profile_is_an_error_naming_the_field(kind, change, expected, models, tmp_path, capsys):
    with pytest.raises(ValueError, match=expected):
        as_user_profile({**FULL_PROFILE, **change})
    profile = tmp_path / "user.json"
    profile.write_text(json.dumps({**FULL_PROFILE, **change}))
    image = tmp_path / "photo.png"
    random_image(0).save(image)
    code, text = run_cli(capsys, "score", image, "--model", models["P"], "--user", profile, "--output",
                         tmp_path / "o.csv")
    assert code == 2 and expected in text and str(profile) in text


def test_profile_file_that_is_not_json(models, tmp_path, capsys):
    profile = tmp_path / "user.json"
    profile.write_text("openness: 7\n")
    with pytest.raises(ValueError, match=f"user profile {profile} is not valid JSON"):
        as_user_profile(str(profile))
    image = tmp_path / "photo.png"
    random_image(0).save(image)
    code, text = run_cli(capsys, "score", image, "--model", models["P"], "--user", profile, "--output",
                         tmp_path / "o.csv")
    assert code == 2 and "is not valid JSON" in text


@pytest.fixture
def m_photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(3):
        random_image(i, (30, 24)).save(folder / f"shot{i}.png")
    return folder


def _score_m(capsys, models, folder, comments, output):
    return run_cli(capsys, "score", folder, "--model", models["M"], "--comments", comments, "--output", output,
                   "--no-progress")


def test_comments_matching_no_image_warn_naming_the_file(models, m_photos, tmp_path, capsys):
    comments = tmp_path / "comments.csv"
    comments.write_text("image,comment\nother.png,lovely light\n")
    code, text = _score_m(capsys, models, m_photos, comments, tmp_path / "o.csv")
    assert code == 0 and f"no image matched an entry of {comments}" in text


def test_comments_partially_matched_are_counted(models, m_photos, tmp_path, capsys):
    comments = tmp_path / "comments.csv"
    comments.write_text("image,comment\nshot0.png,lovely light\nshot1,too dark\n")
    code, text = _score_m(capsys, models, m_photos, comments, tmp_path / "o.csv")
    assert code == 0 and f"2 of 3 image(s) matched a comment in {comments}" in text


@pytest.mark.slow
def test_empty_comment_is_image_only_at_every_entry_point(models, m_photos):
    image = str(m_photos / "shot0.png")
    loaded = load_model(models["M"])
    predictor = loaded.predictor()
    alone = predictor.predict_examples([{"image": image}])
    pipe = pipeline("image-aesthetics", model=str(models["M"]))
    for blank in ("", "   "):
        result = predictor.predict_examples([{"image": image, "comment": blank}])
        assert result.used_text == [False] and result.scores[0, 0] == pytest.approx(alone.scores[0, 0])
        assert pipe(image, comment=blank)["score"] == pytest.approx(float(alone.scores[0, 0]), abs=1e-6)


def test_comments_file_that_is_not_utf8(models, m_photos, tmp_path, capsys):
    comments = tmp_path / "comments.csv"
    comments.write_bytes(b"image,comment\nshot0.png,tr\xe8s beau\n")
    code, text = _score_m(capsys, models, m_photos, comments, tmp_path / "o.csv")
    assert code == 2 and str(comments) in text and "utf-8" in text.lower()
