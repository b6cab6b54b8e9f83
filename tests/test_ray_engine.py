"""The Ray Data engine: per-actor scorer (also for ``datasets.map``), pool sizing, thresholds, the shard store,
and end-to-end jobs on a local 2-CPU Ray cluster (one per module) including a killed worker and driver."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from _io_helpers import save_tiny_model
from _ray_inputs import image_folder, parquet_with_bytes, png_bytes, webdataset_shard
from aesmamba_hf.cli import main
from aesmamba_hf.inference.ray_engine import (
    PAUSE_ENV,
    BatchScorer,
    JobOptions,
    check_threshold,
    output_schema,
    run_job,
    size_pool,
)
from aesmamba_hf.inference.shards import MANIFEST_FILE, ShardStore, ShardStoreError, shard_name


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("model") / "tiny-v")


@pytest.fixture(scope="module")
def local_predictor(model_dir):
    from aesmamba_hf.inference.loading import load_model

    return load_model(str(model_dir), device="cpu").predictor(batch_size=8)


@pytest.fixture(scope="module")
def ray_cluster():
    """One local 2-CPU cluster for the module (starting one costs ~8 s)."""
    ray = pytest.importorskip("ray")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def _local_scores(predictor, cells):
    return [r.get("score") for r in predictor.predict([{"bytes": c} if isinstance(c, bytes) else c for c in cells])]


# -- without Ray -----------------------------------------------------------------------------------------


def test_size_pool_leaves_cpu_for_the_read_tasks():
    pool = size_pool({"CPU": 2.0})
    assert pool.actors == 1 and pool.read_cpus >= 0.5
    assert pool.actors * pool.cpus_per_actor + pool.read_cpus <= 2.0
    two = size_pool({"CPU": 2.0}, actors=2)  # the stalling case: two whole-CPU actors on two CPUs
    assert two.actors == 2 and two.actors * two.cpus_per_actor + two.read_cpus <= 2.0 and two.threads == 1
    big = size_pool({"CPU": 64.0})
    assert big.actors == 56 and big.read_cpus == 8.0
    gpu = size_pool({"CPU": 16.0, "GPU": 1.0}, actors=4)
    assert gpu.gpus_per_actor == 0.25 and gpu.actors == 4
    assert size_pool({"CPU": 16.0, "GPU": 2.0}, use_gpu=False).gpus_per_actor == 0
    with pytest.raises(ValueError, match="at least 1"):
        size_pool({"CPU": 0.5})
    with pytest.raises(ValueError, match="at most"):
        size_pool({"CPU": 2.0}, actors=100)


def test_threshold_outside_the_head_range_is_refused():
    from aesmamba_hf import AesMambaConfig

    ava = AesMambaConfig.tiny(task="V")
    low, high = ava.heads[0]["score_range"]
    with pytest.raises(ValueError, match=rf"outside the score range of head 'aesthetic', \[{low:g}, {high:g}\]"):
        check_threshold(ava, None, 0.5)  # NeMo Curator's default threshold on a 1-10 head
    assert check_threshold(ava, "aesthetic", (low + high) / 2)["name"] == "aesthetic"
    para = AesMambaConfig.tiny(task="F")
    with pytest.raises(ValueError, match="not a head of this model; its heads are"):
        check_threshold(para, "sharpness", 3.0)
    head = para.heads[3]
    assert check_threshold(para, head["name"], head["score_range"][1])["name"] == head["name"]


def test_cli_refuses_threshold_before_any_work(model_dir, tmp_path, capsys):
    folder = image_folder(tmp_path / "imgs", 1)
    out = tmp_path / "out"
    rc = main(["score", str(folder), "-m", str(model_dir), "--engine", "ray", "-o", str(out), "--min-score", "0.5"])
    assert rc == 2 and "[1, 10]" in capsys.readouterr().err and not out.exists()
    rc = main(["score", str(folder), "-m", str(model_dir), "-o", str(tmp_path / "a.csv"), "--min-score", "5"])
    assert rc == 2 and "--min-score cannot be used with --engine local" in capsys.readouterr().err


def test_cli_ray_engine_refuses_random_weights_without_opt_in(tmp_path, capsys):
    marked = save_tiny_model(tmp_path / "random", random_weights=True)
    out = tmp_path / "out"
    rc = main(["score", str(image_folder(tmp_path / "imgs", 1)), "-m", str(marked), "--engine", "ray", "-o", str(out)])
    assert rc == 2 and "RANDOM weights" in capsys.readouterr().err and not out.exists()


def test_cli_ray_engine_refuses_the_video_flags(model_dir, tmp_path, capsys):
    folder = image_folder(tmp_path / "imgs", 1)
    for flags in (["--frames", "4"], ["--every-seconds", "2"], ["--aggregate", "mean"]):
        out = tmp_path / "out"
        rc = main(["score", str(folder), "-m", str(model_dir), "--engine", "ray", "-o", str(out), *flags])
        err = capsys.readouterr().err
        assert rc == 2 and f"{flags[0]} cannot be used with --engine ray" in err and "local engine" in err
        assert not out.exists()


def test_video_in_an_image_folder_is_an_error_row_on_the_ray_path(tmp_path):
    from aesmamba_hf.data.sources import plan_units, read_unit

    folder = image_folder(tmp_path / "imgs", 1)
    (folder / "clip.mp4").write_bytes(b"not scored here")
    units = plan_units([str(folder)])
    rows = read_unit(units[0])
    errors = dict(zip(rows["key"], rows["read_error"]))
    assert "videos are scored by the local engine" in errors[str(folder / "clip.mp4")]


def test_batch_scorer_applies_dtype_clamp_and_adapter(model_dir, tmp_path):
    import torch

    from aesmamba_hf.inference.loading import ModelLoadError, load_model

    batch = {"image": [png_bytes(3)], "key": ["a"]}
    assert BatchScorer(str(model_dir), dtype="bfloat16").predictor.model.dtype == torch.bfloat16
    loaded = load_model(str(model_dir), device="cpu")
    raw = BatchScorer(loaded, as_arrow=False)(batch)["score"][0]
    loaded.config.heads[0]["score_range"] = [raw + 1, raw + 2]  # the raw score now lies below the range
    clamped = BatchScorer(loaded, clamp=True, as_arrow=False)(batch)
    assert clamped["score"][0] == pytest.approx(raw + 1) and clamped["out_of_range"][0] is True
    with pytest.raises((ModelLoadError, ValueError, OSError)):
        BatchScorer(str(model_dir), adapter=str(tmp_path / "no-adapter"))


def test_job_identity_holds_adapter_dtype_and_clamp(tmp_path):
    base = JobOptions(inputs=["x"], model="m", output="o")
    assert "dtype" not in base.identity("m")  # at their defaults: an older job's _job.json still matches
    changed = [JobOptions(inputs=["x"], model="m", output="o", **kw).identity("m")
               for kw in ({"dtype": "bfloat16"}, {"clamp": True}, {"adapter": str(tmp_path)})]
    assert all(identity != base.identity("m") for identity in changed)
    store = ShardStore(tmp_path / "out")
    store.open(base.identity("m"), [])
    with pytest.raises(ShardStoreError, match="clamp"):
        ShardStore(tmp_path / "out").open(changed[1], [])


def test_driver_reads_the_config_without_loading_the_weights(model_dir, tmp_path, monkeypatch):
    from aesmamba_hf import AesMambaForAestheticAssessment

    def no_weights(*args, **kwargs):
        raise AssertionError("the driver loaded the weights")

    monkeypatch.setattr(AesMambaForAestheticAssessment, "from_pretrained", no_weights)
    (tmp_path / "empty").mkdir()  # nothing to score: no Ray cluster is started
    options = JobOptions(inputs=[str(tmp_path / "empty")], model=str(model_dir), output=str(tmp_path / "out"))
    assert run_job(options, progress=False).shards == 0


def test_recalibrated_model_does_not_resume_the_job(tmp_path):
    from aesmamba_hf import AesMambaConfig
    from aesmamba_hf.evaluation.calibration import build_score_reference, write_score_reference

    model = save_tiny_model(tmp_path / "model")
    (tmp_path / "empty").mkdir()  # nothing to score: no Ray cluster is started
    options = JobOptions(inputs=[str(tmp_path / "empty")], model=str(model), output=str(tmp_path / "out"))
    run_job(options, progress=False)
    config = AesMambaConfig.from_pretrained(model)
    write_score_reference(model, build_score_reference(np.array([[4.0], [6.0]]), config.head_names, source="x"))
    with pytest.raises(ShardStoreError, match="score_reference"):
        run_job(options, progress=False)


def test_corrupt_manifest_line_is_a_shard_store_error_naming_the_line(tmp_path):
    store = ShardStore(tmp_path / "out")
    store.open({"a": 1}, [])
    (tmp_path / "out" / MANIFEST_FILE).write_text('{"shard": 0, "file": "part-000000.parquet"}\n{"shard": 1, "fi\n')
    with pytest.raises(ShardStoreError, match=f"{MANIFEST_FILE}:2: not a manifest entry"):
        ShardStore(tmp_path / "out").open({"a": 1}, [])


def test_cli_ray_job_failures_exit_1_with_a_message(model_dir, tmp_path, capsys, monkeypatch):
    from ray.exceptions import RayActorError

    from aesmamba_hf.inference import ray_engine

    folder = image_folder(tmp_path / "imgs", 1)
    for error in (RuntimeError("2 shard(s) did not receive all their rows"), RayActorError()):
        def failing_job(*args, error=error, **kwargs):
            raise error

        monkeypatch.setattr(ray_engine, "run_job", failing_job)
        rc = main(["score", str(folder), "-m", str(model_dir), "--engine", "ray", "-o", str(tmp_path / "out")])
        err = capsys.readouterr().err
        assert rc == 1 and err.startswith("error: ") and "Traceback" not in err
        assert str(error).splitlines()[-1] in err


def test_batch_scorer_serves_datasets_map(model_dir, local_predictor):
    import datasets

    cells = [{"bytes": png_bytes(i), "path": None} for i in range(5)] + [{"bytes": b"junk", "path": "x.jpg"}]
    dataset = datasets.Dataset.from_dict({"image": cells, "key": [f"k{i}" for i in range(6)]}).cast_column(
        "image", datasets.Image(decode=False))
    expected = _local_scores(local_predictor, [png_bytes(i) for i in range(5)])
    threshold = float(np.median(expected))
    scorer = BatchScorer(str(model_dir), batch_size=4, min_score=threshold)
    scored = dataset.map(scorer, batched=True, batch_size=4, remove_columns=["image"])
    assert scored["key"] == [f"k{i}" for i in range(6)]
    assert scored["status"] == ["ok"] * 5 + ["error"]
    assert scored["error"][5] == "not an image file or an unsupported image format"
    np.testing.assert_allclose(scored["score"][:5], expected, rtol=1e-5)
    assert scored["keep"] == [s >= threshold for s in expected] + [False] and 0 < sum(scored["keep"]) < 5
    clone = pickle.loads(pickle.dumps(scorer))  # carries its arguments, loads its own model
    assert clone(dataset[:4])["score"].to_pylist() == pytest.approx(scored["score"][:4], rel=1e-5)


def test_rows_have_the_schema_columns_for_a_multi_head_model(tmp_path):
    folder = save_tiny_model(tmp_path / "tiny-f", task="F")
    scorer = BatchScorer(str(folder), as_arrow=True, with_distribution=True)
    table = scorer({"image": [png_bytes(1), b"", None], "key": ["a", "b", "c"]})
    assert table.schema.equals(output_schema(scorer.config, with_distribution=True))
    heads = [h["name"] for h in scorer.config.heads]
    assert {f"score_{h}" for h in heads} <= set(table.column_names)
    row = table.to_pylist()[0]
    record = scorer.predictor.predict([{"bytes": png_bytes(1)}])[0]
    assert [row[f"score_{h}"] for h in heads] == pytest.approx([record["heads"][h]["score"] for h in heads])
    assert table.column("status").to_pylist() == ["ok", "error", "error"]


def test_shard_store_commits_resumes_and_refuses_another_job(tmp_path):
    import pyarrow as pa

    plan = [{"shard": 0}, {"shard": 1}, {"shard": 2}]
    store = ShardStore(tmp_path / "out")
    assert store.open({"model": "a"}, plan) == plan
    store.commit(0, pa.table({"key": ["x", "y"]}), inputs=2)
    with pytest.raises(ShardStoreError, match="already committed"):
        store.commit(0, pa.table({"key": ["x"]}), inputs=1)
    first = (tmp_path / "out" / shard_name(0)).stat()
    # a crash after the rename of shard 1 but before its manifest line, and a half-written shard 2
    store.commit(1, pa.table({"key": ["z"]}), inputs=3)
    manifest = tmp_path / "out" / MANIFEST_FILE
    lines = manifest.read_text().splitlines(keepends=True)
    manifest.write_text(lines[0] + lines[1][:5])
    (tmp_path / "out" / ".part-000002-1.tmp").write_bytes(b"PAR1half")
    again = ShardStore(tmp_path / "out")
    again.open({"model": "a"}, [{"shard": 9}])  # the stored plan wins
    assert sorted(again.committed) == [0, 1] and again.committed[1]["inputs"] == 3
    assert again.committed[1]["recovered"] and not (tmp_path / "out" / ".part-000002-1.tmp").exists()
    assert len(again.notes) == 2
    after = (tmp_path / "out" / shard_name(0)).stat()
    assert (after.st_ino, after.st_mtime_ns) == (first.st_ino, first.st_mtime_ns)
    with pytest.raises(ShardStoreError, match="model: 'a' there, 'b' now"):
        ShardStore(tmp_path / "out").open({"model": "b"}, plan)


# -- on a local Ray cluster --------------------------------------------------------------------------------


def _read_output(out: Path):
    import pyarrow.parquet as pq

    return pq.read_table(out).to_pylist()  # the _job/_manifest files are skipped by pyarrow


def _assert_exactly_once(rows, keys):
    seen = [r["key"] for r in rows]
    assert sorted(seen) == sorted(keys) and len(seen) == len(set(seen))


@pytest.mark.slow
def test_ray_job_scores_every_input_exactly_once(ray_cluster, model_dir, local_predictor, tmp_path):
    folder = image_folder(tmp_path / "imgs", 6)
    parquet = parquet_with_bytes(tmp_path / "data.parquet", 7)
    tar = webdataset_shard(tmp_path / "00000.tar", 5)
    out = tmp_path / "out"
    files = sorted(str(p) for p in folder.iterdir())
    keys = files + [f"pq{i:03d}" for i in range(7)] + [f"{i:09d}" for i in range(5)]
    bad = {str(folder / n) for n in ("empty.png", "not_an_image.jpg", "truncated.png")} | {"pq001", "000000004"}
    ok = [k for k in keys if k not in bad]
    cells = {**{f"pq{i:03d}": png_bytes(100 + i) for i in range(7)}, **{f"{i:09d}": png_bytes(200 + i) for i in range(5)}}
    expected = _local_scores(local_predictor, [cells.get(k, k) for k in ok])
    threshold = float(np.median(expected))
    options = JobOptions(inputs=[str(folder), str(parquet), str(tar)], model=str(model_dir), output=str(out),
                         shard_size=4, batch_size=3, min_score=threshold)
    summary = run_job(options, progress=False)
    rows = _read_output(out)
    _assert_exactly_once(rows, keys)
    by_key = {r["key"]: r for r in rows}
    assert summary.errors == 5 and summary.ok == len(keys) - 5 == sum(r["status"] == "ok" for r in rows)
    assert by_key[str(folder / "empty.png")]["error"].endswith("is empty")
    assert by_key[str(folder / "not_an_image.jpg")]["error"] == "not an image file or an unsupported image format"
    assert by_key[str(folder / "truncated.png")]["error"].startswith(("truncated image data", "corrupt"))
    assert by_key["pq001"]["error"] == "not an image file or an unsupported image format"
    assert "has no (non-empty) image member" in by_key["000000004"]["error"]
    np.testing.assert_allclose([by_key[k]["score"] for k in ok], expected, rtol=1e-5)
    assert [by_key[k]["keep"] for k in ok] == [s >= threshold for s in expected]
    assert not any(by_key[k]["keep"] for k in bad)
    import datasets

    assert datasets.load_dataset("parquet", data_files=str(out / "*.parquet"), split="train").num_rows == len(keys)
    stats = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.glob("part-*.parquet")}
    again = run_job(options, progress=False)  # resume of a finished job: nothing to do, nothing rewritten
    assert (again.skipped_shards, again.committed_shards) == (summary.shards, 0)
    assert stats == {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.glob("part-*.parquet")}


def _actor_pids():
    import psutil

    pids = []
    for child in psutil.Process().children(recursive=True):
        try:
            if "BatchScorer" in " ".join(child.cmdline()):
                pids.append(child.pid)
        except psutil.Error:
            continue
    return pids


@pytest.mark.slow
def test_killed_worker_leaves_every_input_exactly_once(ray_cluster, model_dir, local_predictor, tmp_path):
    folder = image_folder(tmp_path / "imgs", 14)
    threshold = float(np.median(_local_scores(local_predictor, sorted(str(p) for p in folder.glob("good*")))))
    out = tmp_path / "out"
    killed: list[int] = []

    def kill_an_actor(entry):
        if not killed:
            for pid in _actor_pids():
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)

    options = JobOptions(inputs=[str(folder)], model=str(model_dir), output=str(out), shard_size=2, batch_size=2,
                         min_score=threshold, kept_only=True)
    summary = run_job(options, progress=False, on_commit=kill_an_actor)
    assert killed, "no scoring actor process was found to kill"
    manifest = [json.loads(line) for line in (out / MANIFEST_FILE).read_text().splitlines()]
    assert sorted(e["shard"] for e in manifest) == list(range(summary.shards)) == list(range(9))
    assert sum(e["inputs"] for e in manifest) == 17  # every input once, though only kept rows are written
    rows = _read_output(out)
    assert all(r["keep"] for r in rows) and len(rows) == summary.kept == sum(e["rows"] for e in manifest) >= 7
    assert len({r["key"] for r in rows}) == len(rows)


@pytest.mark.slow
def test_killed_driver_then_rerun_leaves_every_input_exactly_once(model_dir, tmp_path):
    import psutil

    folder = image_folder(tmp_path / "imgs", 17)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "aesmamba_hf", "score", str(folder), "-m", str(model_dir), "--engine", "ray",
               "-o", str(out), "--shard-size", "2", "--batch-size", "2", "--no-progress"]
    # the driver stops for good after its 2nd commit (a test hook): killed there, whatever the machine's load
    paused = {**os.environ, PAUSE_ENV: "2"}
    driver = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
                              env=paused)
    manifest = out / MANIFEST_FILE
    deadline = time.monotonic() + 300  # a hang guard only: the kill point is the pause, not a time
    while time.monotonic() < deadline and driver.poll() is None:
        if manifest.exists() and manifest.read_text().count("\n") >= 2:
            break
        time.sleep(0.2)
    assert driver.poll() is None, f"the driver did not pause after 2 commits: {driver.stderr.read().decode()[-2000:]}"
    cluster = psutil.Process(driver.pid).children(recursive=True)
    driver.send_signal(signal.SIGKILL)  # the driver dies half-way (the local cluster with it)
    driver.wait()
    for process in cluster:  # whatever of its local cluster outlived it
        try:
            process.kill()
        except psutil.Error:
            pass
    committed = [json.loads(line)["file"] for line in manifest.read_text().splitlines() if line.strip()]
    assert len(committed) == 2
    before = {name: (out / name).stat().st_mtime_ns for name in committed}
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert f"{len(committed)} already committed" in rerun.stderr
    _assert_exactly_once(_read_output(out), [str(p) for p in folder.iterdir()])
    assert before == {name: (out / name).stat().st_mtime_ns for name in committed}
