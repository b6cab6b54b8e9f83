"""Videos: frames sampled with PyAV, scored by the one predictor, aggregated per head; broken videos are error
rows and the batch goes on."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from _io_helpers import random_image, save_tiny_model
from aesmamba_hf import load_model
from aesmamba_hf.cli import main
from aesmamba_hf.inference.video import FrameSampling, VideoLoadError, predict_media

av = pytest.importorskip("av")

FPS, NUM_FRAMES, SIZE = 6, 12, (64, 48)  # a 2-second video


def write_video(path, num_frames: int = NUM_FRAMES, fps: int = FPS) -> None:
    """A small mpeg4 video whose frames differ (a bright square moving over a gradient)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = SIZE[0], SIZE[1], "yuv420p"
        for i in range(num_frames):
            frame = np.tile(np.linspace(0, 255, SIZE[0], dtype=np.uint8)[None, :, None], (SIZE[1], 1, 3))
            frame[8:24, 4 * i : 4 * i + 16] = (255, 40 * (i % 6), 0)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def decoded_frames(path) -> list[tuple[float, object]]:
    """Every frame of ``path`` as (seconds, PIL image), decoded here without the package."""
    with av.open(str(path)) as container:
        return [(float(f.time), f.to_image()) for f in container.decode(video=0)]


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    root = tmp_path_factory.mktemp("video")
    model = save_tiny_model(root / "model", "F")  # several heads: aggregates per head
    clips = root / "clips"
    clips.mkdir()
    write_video(clips / "clip.mp4")
    random_image(0).save(clips / "photo.png")
    (clips / "noise.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    good = (clips / "clip.mp4").read_bytes()
    (clips / "truncated.mp4").write_bytes(good[: len(good) // 2])
    return model, clips


@pytest.fixture(scope="module")
def predictor(media):
    return load_model(media[0]).predictor(batch_size=3)


def test_uniform_frames_give_one_row_per_frame_and_aggregates(media, predictor):
    _, clips = media
    record = predict_media(predictor, [{"image": str(clips / "clip.mp4")}], FrameSampling(frames=4))[0]
    assert record["status"] == "ok" and record["num_frames"] == 4 and len(record["frames"]) == 4
    # the frame on screen at the centre of each quarter of the 2 s video: frames 1, 4, 7, 10 at 6 fps
    truth = decoded_frames(clips / "clip.mp4")
    assert [f["time"] for f in record["frames"]] == pytest.approx([truth[i][0] for i in (1, 4, 7, 10)], abs=1e-3)
    alone = predictor.predict([truth[i][1] for i in (1, 4, 7, 10)])  # the same pictures as plain images
    heads = predictor.config.head_names
    frame_scores = np.array([[f["heads"][h]["score"] for h in heads] for f in record["frames"]])
    np.testing.assert_allclose(frame_scores, [[r["heads"][h]["score"] for h in heads] for r in alone], atol=1e-5)
    from scipy.stats import trim_mean

    for j, name in enumerate(heads):
        head = record["heads"][name]
        assert head["mean"] == pytest.approx(frame_scores[:, j].mean(), abs=1e-6)
        assert head["median"] == pytest.approx(np.median(frame_scores[:, j]), abs=1e-6)
        assert head["trimmed_mean"] == pytest.approx(trim_mean(frame_scores[:, j], 0.1), abs=1e-6)
        assert head["score"] == pytest.approx(head["mean"], abs=1e-6)  # aggregate="mean" by default
    assert record["score"] == record["heads"]["aesthetic"]["score"]


def test_every_seconds_and_the_median_aggregate(media, predictor):
    _, clips = media
    sampling = FrameSampling(every_seconds=0.5, aggregate="median")
    record = predict_media(predictor, [{"image": str(clips / "clip.mp4")}], sampling)[0]
    assert [f["time"] for f in record["frames"]] == pytest.approx([0.0, 0.5, 1.0, 1.5], abs=1e-3)
    assert record["aggregate"] == "median" and record["score"] == pytest.approx(record["median"])
    more = predict_media(predictor, [{"image": str(clips / "clip.mp4")}], FrameSampling(frames=50))[0]
    assert more["num_frames"] == NUM_FRAMES  # never the same frame twice


@pytest.mark.parametrize("name", ["noise.mp4", "truncated.mp4", "missing.mp4"])
def test_broken_video_is_an_error_row_and_the_batch_goes_on(media, predictor, name):
    _, clips = media
    examples = [{"image": str(clips / "photo.png")}, {"image": str(clips / name)}, {"image": str(clips / "clip.mp4")}]
    records = predict_media(predictor, examples, FrameSampling(frames=2))
    assert [r["status"] for r in records] == ["ok", "error", "ok"]
    assert records[1]["error"] and "frames" not in records[1]
    assert records[2]["num_frames"] == 2


def test_pipeline_mixes_images_and_videos_and_raises_for_one_broken_video(media):
    from transformers import pipeline

    model, clips = media
    scorer = pipeline("image-aesthetics", model=str(model))
    results = scorer([str(clips / "photo.png"), str(clips / "clip.mp4"), str(clips / "noise.mp4")], frames=3)
    assert results[0]["status"] == "ok" and "frames" not in results[0]
    assert results[1]["num_frames"] == 3 and results[2]["status"] == "error"
    assert results[2]["path"].endswith("noise.mp4")
    with pytest.raises(VideoLoadError, match="noise.mp4"):
        scorer(str(clips / "noise.mp4"))
    with pytest.raises(ValueError, match="not both"):
        scorer(str(clips / "clip.mp4"), frames=2, every_seconds=1.0)


def test_cli_score_writes_frame_rows_aggregates_and_error_rows(media, tmp_path):
    model, clips = media
    out = tmp_path / "scores.csv"
    assert main(["score", str(clips), "--model", str(model), "--output", str(out), "--frames", "3",
                 "--aggregate", "trimmed_mean", "--no-progress"]) == 0
    rows = list(csv.DictReader(out.open()))
    by_path: dict[str, list[dict]] = {}
    for row in rows:
        by_path.setdefault(row["path"].rsplit("/", 1)[-1], []).append(row)
    assert [r["frame"] for r in by_path["clip.mp4"]] == ["0", "1", "2", "aggregate"]
    frames, aggregate = by_path["clip.mp4"][:3], by_path["clip.mp4"][3]
    frame_scores = [float(r["score"]) for r in frames]
    assert float(aggregate["score_mean"]) == pytest.approx(np.mean(frame_scores), abs=1e-6)
    assert float(aggregate["score"]) == pytest.approx(float(aggregate["score_trimmed_mean"]))
    assert len(by_path["photo.png"]) == 1 and by_path["photo.png"][0]["status"] == "ok"
    for broken in ("noise.mp4", "truncated.mp4"):
        assert [r["status"] for r in by_path[broken]] == ["error"] and by_path[broken][0]["error"]
    jsonl = tmp_path / "scores.jsonl"
    assert main(["score", str(clips / "clip.mp4"), "--model", str(model), "--output", str(jsonl),
                 "--every-seconds", "1", "--no-progress"]) == 0
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [r["frame"] for r in records] == [0, 1, "aggregate"]
    assert set(records[-1]["heads"]["aesthetic"]) >= {"mean", "median", "trimmed_mean"}
    assert main(["score", str(clips), "--model", str(model), "--output", str(tmp_path / "x.csv"),
                 "--frames", "0"]) == 2


def test_sampling_arguments_are_checked():
    with pytest.raises(ValueError):
        FrameSampling(frames=2, every_seconds=1.0)
    with pytest.raises(ValueError):
        FrameSampling(aggregate="max")
    with pytest.raises(ValueError):
        FrameSampling(every_seconds=0)
