"""``aesmamba demo --quick``: every artefact of the end-to-end demo exists and is well formed.

The quick run trains tiny models for a few steps, so its numbers are meaningless: the accuracy goals are
checked by the full run (``aesmamba demo``), not here. The run is done once per module (~160 CPU-seconds).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aesmamba_hf.cli import main
from aesmamba_hf.dataset_specs import PARA_ATTRIBUTE_NAMES

demo_run = pytest.importorskip("aesmamba_demo.run", reason="the demo package is not installed: pip install -e demo")

os.environ.setdefault("HF_HUB_OFFLINE", "1")

STAGES = ("benchmark", "baseline", "ceiling", "train_F", "train_V", "train_M", "train_P", "train_P0", "taste_prior",
          "piaa",
          "evaluate", "export", "pipeline", "report")
EXPORTED = ("V", "M", "F", "P")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    base = tmp_path_factory.mktemp("demo")
    out = base / "aesmamba-demo-output"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):  # the CLI prints its progress lines to stdout
        code = main(["demo", "--quick", "--out", str(out), "--threads", "2"])
    assert code == 0
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    return out, report, stdout.getvalue().splitlines()


def _png(path: Path) -> tuple[int, int]:
    assert path.is_file(), path
    with Image.open(path) as im:
        assert im.format == "PNG"
        im.load()
        return im.size


def test_output_is_published_atomically(demo):
    out, report, _ = demo
    assert (out / demo_run.MARKER).is_file()
    siblings = [p.name for p in out.parent.iterdir() if p.name != out.name]
    assert siblings == []  # no staging or backup folder left behind
    assert report["out_dir"] == str(out.resolve())
    assert "work" not in {p.name for p in out.iterdir()}


def test_report_json_has_every_stage_and_measured_numbers(demo):
    _, report, _ = demo
    assert list(report["stages"]) == list(STAGES)
    assert all(report["stages"][s]["seconds"] >= 0 for s in STAGES)
    assert report["total_seconds"] >= sum(report["stages"][s]["seconds"] for s in STAGES) - 1
    assert report["benchmark"]["num_images"] == 96 and report["benchmark"]["num_users"] == 16
    for key in ("V", "M", "F", "P", "P0"):
        ev = report["evaluation"][key]
        assert ev["num_images"] > 0
        assert -1.0 <= ev["mean_srcc"] <= 1.0
        assert (Path(report["out_dir"]) / ev["metrics_file"]).is_file()
    assert set(report["evaluation"]["F"]["srcc"]) == set(PARA_ATTRIBUTE_NAMES)
    for key in ("P", "P0"):  # per-user view of the PIAA rows
        assert set(report["evaluation"][key]["per_user_srcc"]) == set(PARA_ATTRIBUTE_NAMES)
    # M and V are scored on the same test images; P and P0 on the same per-user rows
    assert report["evaluation"]["M"]["num_images"] == report["evaluation"]["V"]["num_images"]
    assert report["evaluation"]["P"]["num_images"] == report["evaluation"]["P0"]["num_images"]
    for task in ("V", "F", "P"):
        assert math.isfinite(report["baseline"][task]["mean_srcc"])
        assert 0.0 < report["ceiling"][task]["mean_srcc"] <= 1.0
    for key in ("V", "M", "F"):  # ranking of each held-out photo's edited variants
        assert -1.0 <= report["evaluation"][key]["within_photo_mean_srcc"] <= 1.0
    assert report["ceiling"]["V"]["within_photo_mean_srcc"] > 0.5  # the edits do drive the ratings
    assert report["training"]["F"]["init"].startswith("random")
    assert report["training"]["P"]["steps"] == report["training"]["P0"]["steps"] == 6


def test_goals_are_reported_with_the_measured_values(demo):
    _, report, _ = demo
    goals = report["goals"]
    assert len(goals) == 7  # five model goals, then the two PIAA few-shot goals
    v = report["evaluation"]["V"]["mean_srcc"]
    first = goals[0]
    assert first["met"] == (v >= 0.85) and f"{v:.4f}" in first["measured"]
    m_vs_v = goals[2]
    assert m_vs_v["met"] == (report["evaluation"]["M"]["mean_srcc"] > v)
    # the PIAA goals follow from the per-user SRCCs the report stores (means over finite users), of taste adapters
    per_user = report["piaa"]["methods"]["taste"]["per_user_aesthetic_srcc"]
    shots = sorted((k for k in per_user if k != "zero_shot"), key=int)
    mean = {k: float(np.nanmean([np.nan if x is None else x for x in per_user[k].values()]))
            for k in ("zero_shot", *shots)}
    few_goal, many_goal = goals[5], goals[6]
    assert few_goal["met"] == (mean[shots[0]] >= mean["zero_shot"] + 0.05)
    assert f"{mean[shots[0]]:.4f}" in few_goal["measured"]
    assert many_goal["met"] == (mean[shots[-1]] >= mean[shots[0]])


def test_report_markdown_states_data_numbers_and_ablation(demo):
    out, report, _ = demo
    text = (out / "report.md").read_text(encoding="utf-8")
    assert "not human aesthetics" in text
    assert "prompt is withheld" in text  # what "P without the prompt" means
    assert "taste-model ceiling" in text.lower()
    assert f"{report['evaluation']['F']['mean_srcc']:.3f}" in text
    for goal in report["goals"]:
        assert goal["goal"] in text
    for link in ("comparison.png", "piaa/boxplot.png", "piaa_taste/boxplot.png", "piaa_full/boxplot.png"):
        assert f"]({link})" in text
        _png(out / link)


def test_evaluation_plots_and_metrics(demo):
    out, _, _ = demo
    for key, heads in (("V", ["aesthetic"]), ("M", ["aesthetic"]), ("F", PARA_ATTRIBUTE_NAMES),
                       ("P", PARA_ATTRIBUTE_NAMES), ("P0", PARA_ATTRIBUTE_NAMES)):
        folder = out / "eval" / key
        metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
        assert set(metrics["heads"]) == set(heads)
        for head in heads:
            w, h = _png(folder / f"scatter_{head}.png")
            assert w > 100 and h > 100
        _png(folder / "metrics_bar.png")
        with open(folder / "predictions.csv", encoding="utf-8") as f:
            assert sum(1 for _ in f) == metrics["num_images"] + 1
    p_metrics = json.loads((out / "eval" / "P" / "metrics.json").read_text(encoding="utf-8"))
    assert p_metrics["per_user"]["num_groups"] > 1


def test_piaa_outputs(demo):
    out, report, _ = demo
    summary = json.loads((out / "piaa" / "summary.json").read_text(encoding="utf-8"))
    assert len(summary["users"]) == 2 and summary["config"]["shots"] == [5, 20]
    assert set(summary["summary"]) == {"zero_shot", "5", "20"}
    assert (out / "piaa" / "per_user.csv").is_file()
    assert report["piaa"]["users"] == summary["users"]
    # adapters (piaa/) beside the paper's full per-user fine-tuning (piaa_full/), on users P never trained on
    assert "adapter=lora_heads" in summary["description"]
    assert summary["config"]["selection"] == "folds"  # adapters trained as `aesmamba personalize` trains them
    full = json.loads((out / "piaa_full" / "summary.json").read_text(encoding="utf-8"))
    assert full["users"] == summary["users"] and "tune=" in full["description"]
    per_user = report["piaa"]["methods"]["adapter"]["per_user_aesthetic_srcc"]
    assert set(per_user) == {"zero_shot", "5", "20"} and set(per_user["5"]) == set(summary["users"])
    # taste adapters (piaa_taste/) under P's prior, learned from P's training raters only; shipped with P
    prior = report["piaa"]["taste_prior"]
    assert 2 <= prior["raters"] <= len(report["training"]["P"]["train_users"]) and prior["rank"] >= 1
    taste_summary = json.loads((out / "piaa_taste" / "summary.json").read_text(encoding="utf-8"))
    assert taste_summary["users"] == summary["users"] and "adapter=taste" in taste_summary["description"]
    from aesmamba_hf import load_model
    from aesmamba_hf.piaa import TastePrior

    TastePrior.load(out / "models" / "aesmamba-demo-p").check_model(load_model(out / "models" / "aesmamba-demo-p").model)
    assert not (out / "taste_prior.safetensors").exists()  # moved into the P folder
    taste = report["piaa"]["taste"]
    assert set(taste) == set(summary["users"]) and all(0 < t["personal_share"] < 1 for t in taste.values())
    p_train_users = set(report["training"]["P"]["train_users"])
    assert p_train_users and not p_train_users & set(summary["users"])
    probe = report["piaa"]["probe"]  # what the base's features carry of each rater's own taste, and the bound
    assert set(probe["users"]) == set(summary["users"]) and probe["factors"][0] == "blur"
    for u in probe["users"].values():
        assert set(u["informed_srcc"]) == {"5", "20"} and math.isfinite(u["features_r2"]) and u["features_r2"] <= 1
        assert set(u["factor_r2"]) == set(probe["factors"])
    text = (out / "report.md").read_text(encoding="utf-8")
    assert "personal share" in text and "piaa_full/boxplot.png" in text
    assert "informed 5-shot | taste 5-shot" in text and "own taste in features" in text
    assert any(g["goal"].startswith("PIAA 5-shot") for g in report["goals"])



def test_exported_models_are_hub_ready_and_load_in_the_pipeline(demo):
    from transformers import pipeline

    out, report, _ = demo
    for key in EXPORTED:
        folder = out / report["models"][key]
        for name in ("config.json", "model.safetensors", "README.md", "processor_config.json"):
            assert (folder / name).is_file(), (key, name)
        card = (folder / "README.md").read_text(encoding="utf-8")
        assert card.startswith("---") and "Demo model" in card
    pipe = pipeline("image-aesthetics", model=str(out / report["models"]["F"]), device="cpu")
    image = next((out / "benchmark" / "ava" / "images").glob("*.jpg"))
    result = pipe(str(image))
    assert set(result["heads"]) == set(PARA_ATTRIBUTE_NAMES)
    assert math.isfinite(result["score"])


def test_balanced_loss_counts_come_from_the_benchmark_training_split(demo):
    from aesmamba_hf.dataset_specs import PARA_CLASS_COUNTS

    out, report, _ = demo
    for key in ("F", "V", "M"):
        config = json.loads((out / report["models"][key] / "config.json").read_text(encoding="utf-8"))
        class_heads = [h for h in config["heads"] if h.get("num_scale_classes", 0)]
        assert class_heads, key
        for head in class_heads:  # one class per training row, not the real dataset's histogram
            assert sum(head["class_counts"]) == report["training"][key]["train_rows"], (key, head["name"])
            if key == "F":
                assert head["class_counts"] != PARA_CLASS_COUNTS[head["name"]]


def test_progress_and_pipeline_table_are_printed(demo):
    _, report, lines = demo
    text = "\n".join(lines)
    for stage in STAGES:
        assert f"] {stage}: " in text
    assert "validation SRCC" in text  # per-evaluation training progress
    rows = report["pipeline"]["rows"]
    assert len(rows) == 3
    header = report["pipeline"]["table"].splitlines()[0]
    assert header.split()[:5] == ["image", "true_ava_mean", "V", "M", "F_aesthetic"]
    assert report["pipeline"]["table"].splitlines()[1] in text
    assert "goal " in text


def test_validation_view_serves_the_benchmark_validation_split(demo, tmp_path):
    from aesmamba_hf.data import build_ava

    out, _, _ = demo
    ava = out / "benchmark" / "ava"
    view = demo_run.ava_validation_view(ava, tmp_path)
    ids = (ava / "validation.txt").read_text(encoding="utf-8").split()
    assert sorted(build_ava(view, "test")["image_id"]) == sorted(ids)
    assert sorted(build_ava(view, "test", captions=True)["image_id"]) == sorted(ids)
    assert not set(ids) & set(build_ava(ava, "test")["image_id"])


def test_refuses_a_foreign_folder_and_keeps_output_on_failure(demo, tmp_path, monkeypatch, capsys):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    assert main(["demo", "--quick", "--out", str(foreign), "--quiet"]) == 2
    assert "not written by `aesmamba demo`" in capsys.readouterr().err
    assert (foreign / "notes.txt").read_text() == "keep me"

    # a run that fails midway leaves the previous demo output untouched and no staging folder
    previous = tmp_path / "previous"
    previous.mkdir()
    (previous / demo_run.MARKER).write_text("x")
    (previous / "report.md").write_text("old report")

    def boom(*args, **kwargs):
        raise RuntimeError("baseline failed")

    monkeypatch.setattr(demo_run, "baseline_stage", boom)
    with pytest.raises(RuntimeError, match="baseline failed"):
        demo_run.run_demo(previous, demo_run.DemoConfig.preset("quick"), preset="quick", printer=None)
    assert (previous / "report.md").read_text() == "old report"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "previous"]


def test_presets():
    quick, full = demo_run.DemoConfig.preset("quick"), demo_run.DemoConfig.preset("default")
    assert quick.size == "quick" and full.size == "default"
    assert full.piaa_shots == [10, 100] and full.piaa_users >= 3 and full.piaa_repeats >= 1
    assert demo_run.DemoConfig.preset("quick", seed=3).seed == 3
    with pytest.raises(ValueError, match="unknown demo preset"):
        demo_run.DemoConfig.preset("huge")


def test_expected_scores_follow_the_generated_ratings(demo):
    import numpy as np

    from aesmamba_demo.benchmark import expected_scores

    out, _, _ = demo
    exp = expected_scores(out / "benchmark")
    n = len(exp["image_ids"])
    assert n == 96 and len(exp["user_ids"]) == 16
    assert exp["ava"].shape == (n,) and exp["piaa"]["aesthetic"].shape == (n, 16)
    assert set(exp["giaa"]) == set(PARA_ATTRIBUTE_NAMES)
    # each rater's own taste is a weighting of the factors, as the taste probe's informed learner assumes
    np.testing.assert_allclose(exp["personal_factors"] @ exp["personal_weights"].T, exp["piaa_personal"], atol=1e-9)
    # quality has no hidden per-photo part: the taste-model expectation predicts the GIAA means closely
    import csv

    with open(out / "benchmark" / "para" / "annotation" / "PARA-GiaaTrain.csv", encoding="utf-8") as f:
        rows = {r["imageName"]: float(r["qualityScore_mean"]) for r in csv.DictReader(f)}
    names = [i for i, name in enumerate(exp["image_names"]) if name in rows]
    true = np.array([rows[exp["image_names"][i]] for i in names])
    assert np.corrcoef(exp["giaa"]["quality"][names], true)[0, 1] > 0.8


def test_exported_models_carry_a_score_reference_from_the_validation_split(demo):
    import json

    from transformers import pipeline

    out, report, _ = demo
    for key in EXPORTED:
        folder = out / report["models"][key]
        reference = json.loads((folder / "config.json").read_text(encoding="utf-8"))["score_reference"]
        assert reference["size"] >= 1 and "validation split" in reference["source"], key
        assert "## Score reference" in (folder / "README.md").read_text(encoding="utf-8")
    pipe = pipeline("image-aesthetics", model=str(out / report["models"]["V"]), device="cpu")
    result = pipe(str(next((out / "benchmark" / "ava" / "images").glob("*.jpg"))))
    assert 0.0 <= result["percentile"] <= 100.0
