"""The web app (``aesmamba app``): scoring glue, bad uploads, the Space writer, the ``score`` API endpoint through
gradio_client, and the page in a real headless Chromium (Selenium + Debian's chromium-driver), all offline."""

from __future__ import annotations

import os
import runpy
import socket
import sys
from pathlib import Path

import pytest

from _io_helpers import png_bomb, random_image, save_tiny_model

pytest.importorskip("gradio")
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

from aesmamba_hf.app import AppScorer, AppSetupError, load_served_models, personal, render, write_space  # noqa: E402  # noqa: E402
from aesmamba_hf.app.charts import record_chart  # noqa: E402
from aesmamba_hf.app.scoring import PhotoResult, rank  # noqa: E402
from aesmamba_hf.inference.loading import RandomWeightsError  # noqa: E402
from aesmamba_hf.prompts import UserProfile, build_prompt  # noqa: E402


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Two tiny saved models (V with a 10-bin AVA distribution, F with nine PARA heads), photos, bad files."""
    root = tmp_path_factory.mktemp("app")
    models = {"V": save_tiny_model(root / "tiny-v", task="V", dataset="AVA"),
              "F": save_tiny_model(root / "tiny-f", task="F", seed=1)}
    photos = []
    for seed, size in ((1, (64, 48)), (2, (40, 72)), (3, (56, 56))):
        path = root / f"photo{seed}.jpg"
        random_image(seed, size).save(path, quality=92)
        photos.append(path)
    bad = {"empty": root / "empty.jpg", "text": root / "notes.txt", "corrupt": root / "corrupt.jpg",
           "bomb": root / "bomb.png", "huge": root / "huge.jpg"}
    bad["empty"].write_bytes(b"")
    bad["text"].write_text("not a photo\n")
    bad["corrupt"].write_bytes(photos[0].read_bytes()[:200])
    png_bomb(bad["bomb"])
    bad["huge"].write_bytes(photos[0].read_bytes() + b"\0" * (2 * 1024 * 1024))  # a valid JPEG padded past 2 MB
    return {"root": root, "models": models, "photos": photos, "bad": bad}


@pytest.fixture(scope="module")
def scorer(files):
    return AppScorer(load_served_models([files["models"]["V"], files["models"]["F"]]), max_file_mb=1)


def pipeline_scores(model_dir, photos):
    from transformers import pipeline

    import aesmamba_hf  # noqa: F401  (registers the task)

    scorer = pipeline("image-aesthetics", model=str(model_dir))
    return [scorer(str(p)) for p in photos]


# -- scoring glue -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("task", ["V", "F"])
def test_app_scores_equal_the_pipeline(files, scorer, task):
    name = Path(files["models"][task]).name
    results = scorer.score_files(name, [str(p) for p in files["photos"]])
    expected = pipeline_scores(files["models"][task], files["photos"])
    assert [r.record["status"] for r in results] == ["ok"] * 3
    for result, want in zip(results, expected):
        assert result.score == pytest.approx(want["score"], rel=1e-5, abs=1e-6)
        assert set(result.record["heads"]) == set(want["heads"])
        for head, value in want["heads"].items():
            assert result.record["heads"][head]["score"] == pytest.approx(value["score"], rel=1e-5, abs=1e-6)
    if task == "V":
        assert len(results[0].record["distribution"]["probabilities"]) == 10
    ranked = rank(results)
    assert [r.score for r in ranked] == sorted((r.score for r in results), reverse=True)


@pytest.mark.slow
@pytest.mark.parametrize("task", ["M", "P"])
def test_text_models_read_the_comment_or_profile_like_the_pipeline(files, tmp_path, task):
    folder = save_tiny_model(tmp_path / f"tiny-{task.lower()}", task=task, seed=2)
    scorer = AppScorer(load_served_models([folder]))
    text = {"comment": "sharp, lovely light"} if task == "M" else {
        "user": personal.profile_from_form(7, 5, 6, 8, 4, "proficient", "competent")}
    photos = [str(p) for p in files["photos"][:2]]
    with_text = scorer.score_files(None, photos, **text)
    without = scorer.score_files(None, photos)
    from transformers import pipeline  # the task is registered: aesmamba_hf is imported above

    pipe = pipeline("image-aesthetics", model=str(folder))
    for result, plain, photo in zip(with_text, without, photos):
        assert result.score == pytest.approx(pipe(photo, **text)["score"], rel=1e-5, abs=1e-6)
        assert plain.score == pytest.approx(pipe(photo)["score"], rel=1e-5, abs=1e-6)
        assert result.score != plain.score  # the text reached the model
    if task == "M":  # a blank comment box means no comment
        assert scorer.score_files(None, photos[:1], comment="  ")[0].score == without[0].score


def test_each_bad_upload_gets_its_message_and_the_rest_is_scored(files, scorer):
    bad = files["bad"]
    paths = [str(files["photos"][0]), *(str(bad[k]) for k in ("empty", "text", "corrupt", "bomb", "huge")),
             str(files["root"] / "vanished.jpg")]
    results = scorer.score_files("tiny-v", paths)
    assert results[0].ok and results[0].score is not None
    errors = {Path(r.path).name: r.error for r in results[1:]}
    assert all(not r.ok for r in results[1:])
    assert "empty" in errors["empty.jpg"]
    assert "not an image" in errors["notes.txt"]
    assert "truncated" in errors["corrupt.jpg"]
    assert "decompression bomb" in errors["bomb.png"]
    assert "over the app's limit of 1 MB" in errors["huge.jpg"]
    assert "no such file" in errors["vanished.jpg"]
    html = render.results_html(results, rank(results), scorer.model("tiny-v"))
    assert html.count("<li><b>") == 6 and 'class="aes-score"' in html


def test_page_html_escapes_file_names(files, scorer):
    hostile = PhotoResult("/tmp/<img src=x onerror=alert(1)>.jpg", {"status": "error", "error": "<b>bad</b>"})
    html = render.errors_html([hostile])
    assert "<img" not in html and "&lt;img" in html and "&lt;b&gt;bad" in html


def test_unknown_model_name_is_an_error(scorer):
    with pytest.raises(ValueError, match="serves tiny-v, tiny-f"):
        scorer.model("tiny-x")


# -- which models are served -----------------------------------------------------------------------------


def test_without_models_or_demo_output_the_message_says_what_to_run(tmp_path):
    with pytest.raises(AppSetupError, match=r"aesmamba demo --quick.*--model|--model.*aesmamba demo --quick"):
        load_served_models(None, demo_dir=tmp_path / "nowhere")
    from aesmamba_hf.cli import main

    assert main(["app", "--demo-dir", str(tmp_path / "nowhere")]) == 1


def test_default_serves_the_demo_models_and_says_so(tmp_path):
    save_tiny_model(tmp_path / "models" / "aesmamba-demo-v", task="V", dataset="AVA")
    save_tiny_model(tmp_path / "models" / "aesmamba-demo-f", task="F")
    served = load_served_models(None, demo_dir=tmp_path)
    assert [m.name for m in served] == ["aesmamba-demo-v", "aesmamba-demo-f"] and all(m.demo for m in served)
    from aesmamba_hf.app.ui import header_markdown

    assert "synthetic ratings" in header_markdown(AppScorer(served))
    assert "synthetic" not in header_markdown(AppScorer(load_served_models([tmp_path / "models" /
                                                                            "aesmamba-demo-v"])))


def test_random_weights_are_refused_unless_allowed_then_bannered(tmp_path):
    folder = save_tiny_model(tmp_path / "random-v", task="V", random_weights=True)
    with pytest.raises(RandomWeightsError):
        load_served_models([folder])
    from aesmamba_hf.app.ui import random_banner

    served = load_served_models([folder], allow_random=True)
    assert "RANDOM WEIGHTS" in random_banner(AppScorer(served)) and "RANDOM" in served[0].describe()


# -- charts, personal glue -------------------------------------------------------------------------------


def test_charts_fit_the_heads(files, scorer):
    v = scorer.score_files("tiny-v", [str(files["photos"][0])])[0].record
    f_a, f_b = (r.record for r in scorer.score_files("tiny-f", [str(p) for p in files["photos"][:2]]))
    histogram = record_chart([v], ["a"])
    assert len(histogram.axes[0].patches) == 10
    assert [round(p.get_height(), 6) for p in histogram.axes[0].patches] == [
        round(p, 6) for p in v["distribution"]["probabilities"]]
    attributes = record_chart([f_a, f_b], ["A", "B"])
    assert len(attributes.axes[0].patches) == 18
    assert [t.get_text() for t in attributes.axes[0].get_yticklabels()] == list(f_a["heads"])
    assert record_chart([{"status": "error", "error": "x"}], ["x"]) is None


def test_profile_form_builds_the_smp_prompt():
    profile = personal.profile_from_form(7, 5, 6, 8, 4, "proficient", "competent")
    assert personal.prompt_for(profile) == build_prompt(UserProfile(7, 5, 6, 8, 4, "proficient", "competent"))
    assert personal.prompt_for(profile).startswith("In the Big-Five personality traits test")
    with pytest.raises(ValueError, match="openness"):
        personal.profile_from_form(11, 5, 6, 8, 4, "proficient", "competent")


def test_ratings_table_rows_are_checked():
    paths = ["/x/a.jpg", "/x/b.jpg", "/x/c.jpg"]
    assert personal.ratings_from_table([["a.jpg", 4], ["b.jpg", None], ["c.jpg", "2.5"]], paths, (1, 5)) == [
        ("/x/a.jpg", 4.0), ("/x/c.jpg", 2.5)]
    with pytest.raises(ValueError, match=r"row 2 \(b.jpg\): rating 'great' is not a number"):
        personal.ratings_from_table([["a.jpg", 4], ["b.jpg", "great"]], paths, (1, 5))
    with pytest.raises(ValueError, match=r"row 1 \(a.jpg\): rating 9 is outside 1–5"):
        personal.ratings_from_table([["a.jpg", 9]], paths, (1, 5))


@pytest.mark.slow
def test_adapter_trains_on_the_served_random_weights_model_and_rescores(files, tmp_path):
    """The personal view's adapter: the real piaa.personalize on the served (already loaded, random-weights) tiny
    P model — not a second copy from its folder — with 5 ratings; the re-ranking scores with the adapter."""
    import torch

    from aesmamba_hf.piaa import PersonalizeConfig
    from test_piaa import small_processor

    folder = save_tiny_model(tmp_path / "tiny-p", task="P", random_weights=True)
    small_processor().save_pretrained(folder)  # 32-px images keep the training fast
    scorer = AppScorer(load_served_models([folder], allow_random=True))
    served = scorer.model("tiny-p")
    before_weights = {k: v.clone() for k, v in served.loaded.model.state_dict().items()}
    photos = []
    for seed in range(5):
        photos.append(str(tmp_path / f"rated{seed}.png"))
        random_image(10 + seed, (40, 32)).save(photos[-1])
    profile = personal.profile_from_form(7, 5, 6, 8, 4, "proficient", "competent")
    config = PersonalizeConfig(epoch_candidates=(3,), learning_rate=5e-2, batch_size=8, augment=False, device="cpu")
    predictor = personal.train_adapter(served, list(zip(photos, [1.0, 5.0, 2.0, 4.5, 3.0])), profile, tmp_path,
                                       config)
    assert list(tmp_path.glob("adapter-*/adapter/adapter_config.json"))  # written in the app's work folder
    for name, value in served.loaded.model.state_dict().items():  # the served base is shared and unchanged
        assert torch.equal(value, before_weights[name]), name
    before = scorer.score_files("tiny-p", photos, user=profile)
    after = scorer.score_files("tiny-p", photos, user=profile, model=predictor)
    assert all(a.ok for a in after)
    assert max(abs(a.score - b.score) for a, b in zip(after, before)) > 1e-3


def test_percentile_is_shown_and_returned_when_the_model_has_a_reference(files, scorer, tmp_path):
    import shutil

    import numpy as np

    from aesmamba_hf.app.ui import score_api_result
    from aesmamba_hf.evaluation.calibration import build_score_reference, write_score_reference

    folder = tmp_path / "tiny-v-ref"
    shutil.copytree(files["models"]["V"], folder)
    write_score_reference(folder, build_score_reference(np.linspace(0, 10, 21)[:, None], ["aesthetic"],
                                                        source="test"))
    with_reference = AppScorer(load_served_models([folder]))
    photo = str(files["photos"][0])
    expected = pipeline_scores(folder, [photo])[0]
    assert 0 <= expected["percentile"] <= 100
    score, heads, percentile = score_api_result(with_reference, photo)
    assert percentile == pytest.approx(expected["percentile"]) and score == pytest.approx(expected["score"])
    result = with_reference.score_files(None, [photo])[0]
    html = render.score_card(result, with_reference.model(None))
    assert f'data-percentile="{result.record["percentile"]!r}"' in html
    assert score_api_result(scorer, photo, "tiny-v")[2] is None  # no reference: no percentile
    assert "aes-percentile" not in render.score_card(scorer.score_files("tiny-v", [photo])[0], scorer.model("tiny-v"))


# -- the Space ----------------------------------------------------------------------------------------------


def test_export_space_writes_an_app_that_serves_the_exported_model(files, tmp_path):
    from aesmamba_hf.cli import main

    out, space = tmp_path / "exported", tmp_path / "space"
    assert main(["export", str(files["models"]["V"]), str(out), "--space", str(space),
                 "--repo-id", "someone/tiny-v"]) == 0
    assert sorted(p.name for p in space.iterdir()) == ["README.md", "app.py", "model", "requirements.txt"]
    assert "sdk: gradio" in (space / "README.md").read_text() and "someone/tiny-v" in (space / "README.md").read_text()
    assert "aesmamba-hf[app]" in (space / "requirements.txt").read_text()
    namespace = runpy.run_path(str(space / "app.py"), run_name="space_app")
    assert namespace["MODEL"] == str(space / "model") and namespace["ALLOW_RANDOM"] is False
    served = load_served_models([namespace["MODEL"]])
    result = AppScorer(served).score_files(None, [str(files["photos"][0])])[0]
    assert result.score == pytest.approx(pipeline_scores(out, files["photos"][:1])[0]["score"], rel=1e-5)
    assert main(["app", "--write-space", str(tmp_path / "space2")]) == 2  # needs exactly one --model
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    assert main(["export", str(files["models"]["V"]), str(tmp_path / "exported2"), "--space",
                 str(tmp_path / "taken")]) == 1
    assert not (tmp_path / "exported2").exists()  # refused before exporting anything
    write_space(files["models"]["F"], tmp_path / "space3", copy_model=False)
    assert not (tmp_path / "space3" / "model").exists()
    assert "'tiny-f'" in (tmp_path / "space3" / "app.py").read_text()


def test_app_write_space_takes_repo_id_and_overwrite_like_export(files, tmp_path, monkeypatch):
    import importlib.metadata

    from aesmamba_hf.cli import main

    space, model = tmp_path / "space", str(files["models"]["V"])
    assert main(["app", "--model", model, "--write-space", str(space), "--repo-id", "someone/tiny-v"]) == 0
    assert "models:\n- someone/tiny-v" in (space / "README.md").read_text()
    assert main(["app", "--model", model, "--write-space", str(space)]) == 1  # not empty: refused
    assert "someone/tiny-v" in (space / "README.md").read_text()  # and left as it was

    def no_metadata(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", no_metadata)
    assert main(["app", "--model", model, "--write-space", str(space), "--overwrite"]) == 0
    readme = (space / "README.md").read_text()
    assert "someone/tiny-v" not in readme and "sdk_version: 6.0.0" in readme  # the app extra's floor


# -- the running app: API and browser ----------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def running(files):
    from aesmamba_hf.app import serve

    app = serve([files["models"]["V"], files["models"]["F"]], host="127.0.0.1", port=_free_port(), block=False,
                quiet=True, max_file_mb=1)
    yield app
    app.close()
    assert not app.workdir.exists()  # everything the app wrote was in its temporary folder


@pytest.mark.slow
def test_api_score_endpoint_matches_the_pipeline(files, running):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    client = Client(running.url, verbose=False, download_files=False)
    assert "/score" in client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    expected = pipeline_scores(files["models"]["F"], files["photos"][:1])[0]
    score, heads, percentile = client.predict(handle_file(str(files["photos"][0])), "tiny-f", "", api_name="/score")
    assert percentile is None  # no score reference in this model
    assert score == pytest.approx(expected["score"], rel=1e-5, abs=1e-6)
    assert heads == pytest.approx({k: v["score"] for k, v in expected["heads"].items()}, rel=1e-5, abs=1e-6)
    with pytest.raises(AppError, match="corrupt.jpg"):
        client.predict(handle_file(str(files["bad"]["corrupt"])), api_name="/score")
    with pytest.raises(Exception, match="(?i)size|large|exceed"):  # Gradio's upload limit (1 MB here)
        client.predict(handle_file(str(files["bad"]["huge"])), api_name="/score")
    score_v, heads_v, _ = client.predict(handle_file(str(files["photos"][1])), api_name="/score")  # still serving
    assert list(heads_v) == ["aesthetic"] and score_v == pytest.approx(
        pipeline_scores(files["models"]["V"], files["photos"][1:2])[0]["score"], rel=1e-5)
    uploads = running.workdir / "uploads"
    assert any(uploads.rglob("photo1.jpg"))  # uploads land in the app's temporary folder


@pytest.mark.slow
def test_page_in_headless_chromium(files, running, tmp_path):
    sys.path.insert(0, str(Path(__file__).parent))
    from _browser import chromium, click, missing_browser, upload, wait_for

    reason = missing_browser()
    if reason:
        pytest.skip(f"no browser for the page test: {reason}")
    photo = files["photos"][2]
    expected = pipeline_scores(files["models"]["V"], [photo])[0]["score"]
    with chromium() as driver:
        driver.get(running.url)
        upload(driver, "aes-photos", [str(photo)])
        click(driver, "aes-score-button")
        shown = wait_for(driver, "#aes-score-result .aes-score")
        assert float(shown.get_attribute("data-score")) == pytest.approx(expected, rel=1e-6)
        assert shown.text == f"{expected:.2f}"
        driver.save_screenshot(str(tmp_path / "score.png"))
        assert (tmp_path / "score.png").stat().st_size > 10_000

        driver.refresh()
        upload(driver, "aes-photos", [str(files["bad"]["text"]), str(files["photos"][0])])
        click(driver, "aes-score-button")
        error = wait_for(driver, "#aes-score-result .aes-error", text="notes.txt")
        assert "not an image" in error.text
        assert wait_for(driver, "#aes-score-result .aes-score").get_attribute("data-score")  # the other photo

        driver.refresh()  # over --max-file-mb: Gradio refuses the upload with a message naming the file
        wait_for(driver, "#aes-photos")
        driver.find_element("css selector", "#aes-photos input[type=file]").send_keys(str(files["bad"]["huge"]))
        assert "huge.jpg" in wait_for(driver, "body", text="exceed the maximum allowed size").text

        driver.refresh()
        click(driver, "aes-score-button")  # nothing uploaded
        assert "Upload one or more photos first" in wait_for(driver, "#aes-score-result .aes-error").text
