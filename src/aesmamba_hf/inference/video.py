"""Video scoring: frames sampled from a video, scored by the one :class:`Predictor`, and aggregated per head.

Frames are decoded with PyAV (``pip install 'aesmamba-hf[video]'``; its wheels bundle FFmpeg) and passed to the
predictor as PIL images, like any other image, so a frame scores exactly as the same picture saved as a file.

Sampling (:class:`FrameSampling`), times measured from the first frame:

* ``frames=N`` (default 8): N times spread uniformly, at the centres of N equal slices of the video
  (``duration * (i + 0.5) / N``), so neither the first frame (often black) nor the last is favoured;
* ``every_seconds=S``: at 0, S, 2S, ... up to the end.

At each time the frame on screen then is taken (the last frame starting at or before it); a time that falls on
a frame already taken does not repeat it, so a short video gives fewer rows than asked.

The result of a video is one record: the aggregate over its frames (``score`` and each head's ``score`` are
the chosen statistic, ``aggregate``: ``mean`` by default; ``mean``, ``median`` and ``trimmed_mean`` (10 % cut
at each end) are all given per head), with the frames' own records under ``frames`` (``frame``: position in
the sample, ``time``: seconds). ``percentile``, ``out_of_range`` and clamping apply to the aggregate as to any
score. A video that cannot be opened or decoded (missing, truncated, not a video, no video stream) becomes an
error record naming the file and the reason; the other inputs are scored.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import torch
from PIL import Image

from ..image_processing_aesmamba import ImageLoadError
from .files import is_video_path
from .predictor import Predictor, format_predictions, overall_head_index

AGGREGATES = ("mean", "median", "trimmed_mean")
DEFAULT_FRAMES = 8


class VideoLoadError(ImageLoadError):
    """A video file could not be opened or decoded; ``path`` names it and ``reason`` says why."""

    def __init__(self, path: Any, reason: str):
        super().__init__(path, reason)
        self.args = (f"cannot read video file {self.path!r}: {reason}",)

    def __str__(self) -> str:
        return self.args[0]


@dataclass(frozen=True)
class FrameSampling:
    """Which frames of a video are scored and how they are summarised (see the module docstring)."""

    frames: Optional[int] = None
    every_seconds: Optional[float] = None
    aggregate: str = "mean"
    trim: float = 0.1  # share cut at each end by the trimmed mean

    def __post_init__(self) -> None:
        if self.frames is not None and self.every_seconds is not None:
            raise ValueError("give either frames (uniform sampling) or every_seconds, not both")
        if self.frames is not None and self.frames < 1:
            raise ValueError(f"frames must be >= 1, got {self.frames}")
        if self.every_seconds is not None and not self.every_seconds > 0:
            raise ValueError(f"every_seconds must be > 0, got {self.every_seconds}")
        if self.aggregate not in AGGREGATES:
            raise ValueError(f"aggregate must be one of {AGGREGATES}, got {self.aggregate!r}")
        if not 0 <= self.trim < 0.5:
            raise ValueError(f"trim must be in [0, 0.5), got {self.trim}")

    def times(self, duration: float) -> list[float]:
        """Sample times in seconds from the first frame, for a video lasting ``duration`` seconds."""
        if self.every_seconds is not None:
            count = max(1, int(np.ceil(duration / self.every_seconds - 1e-9)))
            return [k * self.every_seconds for k in range(count)]
        n = self.frames or DEFAULT_FRAMES
        return [duration * (i + 0.5) / n for i in range(n)]


def _duration(container: Any, stream: Any) -> Optional[float]:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / 1_000_000  # AV_TIME_BASE
    return None


def _frame_times(path: str) -> Iterator[tuple[float, Any]]:
    """(seconds from the first frame, PyAV frame) of every decoded frame, in order."""
    import av

    with av.open(path) as container:
        if not container.streams.video:
            raise VideoLoadError(path, "the file has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = float(stream.average_rate or stream.guessed_rate or 25)
        origin = None
        for index, frame in enumerate(container.decode(stream)):
            time = frame.time if frame.time is not None else index / rate
            origin = time if origin is None else origin
            yield time - origin, frame


def _probe_duration(path: str) -> float:
    import av

    with av.open(path) as container:
        if not container.streams.video:
            raise VideoLoadError(path, "the file has no video stream")
        stream = container.streams.video[0]
        known = _duration(container, stream)
        frame_step = 1.0 / float(stream.average_rate or stream.guessed_rate or 25)
    if known is not None:
        return known
    times = [time for time, _ in _frame_times(path)]  # no duration in the header: decode once to find the end
    if not times:
        raise VideoLoadError(path, "no frame could be decoded")
    return times[-1] + frame_step


def iter_video_frames(path: Any, sampling: FrameSampling) -> Iterator[tuple[float, Image.Image]]:
    """(time in seconds, RGB PIL image) of the sampled frames of ``path``, in order.

    Raises:
        VideoLoadError: the file is missing, cannot be decoded, has no video stream, or PyAV is not installed.
    """
    path = os.fspath(path)
    try:
        import av
    except ImportError as err:
        raise VideoLoadError(path, "scoring videos needs PyAV: pip install 'aesmamba-hf[video]'") from err
    if not os.path.isfile(path):
        raise VideoLoadError(path, "no such file")
    try:
        targets = sampling.times(_probe_duration(path))
        taken, previous, k = -1, None, 0
        for position, (time, frame) in enumerate(_frame_times(path)):
            while k < len(targets) and targets[k] < time and previous is not None:
                if previous[0] != taken:  # the frame on screen at targets[k] started before it
                    taken = previous[0]
                    yield previous[1], previous[2].to_image()
                k += 1
            if k == len(targets):
                return
            previous = (position, time, frame)
        if previous is None:
            raise VideoLoadError(path, "no frame could be decoded")
        if previous[0] != taken:  # the remaining times fall on the last frame
            yield previous[1], previous[2].to_image()
    except VideoLoadError:
        raise
    except (av.error.FFmpegError, OSError, ValueError, RuntimeError) as err:
        raise VideoLoadError(path, f"{type(err).__name__}: {err}") from err


def trimmed_mean(values: np.ndarray, trim: float = 0.1, axis: int = 0) -> np.ndarray:
    """Mean after cutting ``floor(trim * n)`` values at each end (SciPy's ``trim_mean`` rule)."""
    values = np.sort(np.asarray(values, dtype=np.float64), axis=axis)
    n = values.shape[axis]
    cut = int(np.floor(trim * n))
    return np.take(values, np.arange(cut, n - cut), axis=axis).mean(axis=axis)


def aggregate_scores(scores: np.ndarray, trim: float = 0.1) -> dict[str, np.ndarray]:
    """Per-head mean, median and trimmed mean of frame scores ``(frames, heads)``."""
    return {"mean": scores.mean(axis=0, dtype=np.float64), "median": np.median(scores, axis=0),
            "trimmed_mean": trimmed_mean(scores, trim)}


def score_video(predictor: Predictor, example: Mapping[str, Any], sampling: FrameSampling, *,
                decimals: Optional[int] = None, clamp: bool = False) -> dict[str, Any]:
    """The aggregate record of one video example (``{"image": path, ...}``), its frames under ``frames``."""
    config = predictor.config
    path = example["image"]
    frames, scores, distributions = [], [], []
    try:
        chunk: list[tuple[float, Image.Image]] = []
        for item in iter_video_frames(path, sampling):
            chunk.append(item)
            if len(chunk) == predictor.batch_size:
                _score_frames(predictor, example, chunk, frames, scores, distributions, decimals, clamp)
                chunk = []
        _score_frames(predictor, example, chunk, frames, scores, distributions, decimals, clamp)
    except VideoLoadError as err:
        return {"status": "error", "error": err.reason}
    if not scores:
        reasons = "; ".join(sorted({f["error"] for f in frames if f["status"] == "error"}))
        return {"status": "error", "error": f"no frame could be scored ({reasons or 'no frames'})"}
    per_frame = np.stack(scores)
    statistics = aggregate_scores(per_frame, sampling.trim)
    chosen = torch.from_numpy(statistics[sampling.aggregate][None].astype(np.float32))
    mean_distribution = torch.from_numpy(np.mean(distributions, axis=0)[None]) if distributions else None
    record = format_predictions(config, chosen, mean_distribution, None, decimals, clamp=clamp)[0]
    def num(value: float) -> float:
        return round(float(value), decimals) if decimals is not None else float(value)

    for j, name in enumerate(config.head_names):
        record["heads"][name].update({key: num(values[j]) for key, values in statistics.items()})
    main = record["heads"][config.head_names[overall_head_index(config)]]
    record.update({key: main[key] for key in AGGREGATES})
    return {"status": "ok", **record, "aggregate": sampling.aggregate, "num_frames": len(scores), "frames": frames}


def _score_frames(predictor: Predictor, example: Mapping[str, Any], chunk: list[tuple[float, Image.Image]],
                  frames: list, scores: list, distributions: list, decimals: Optional[int], clamp: bool) -> None:
    """Score one batch of frames through the predictor; append their records and raw outputs."""
    if not chunk:
        return
    predictions = predictor.predict_examples([{**example, "image": image} for _, image in chunk])
    for i, ((time, _), record) in enumerate(zip(chunk, predictions.records(predictor.config, decimals, clamp))):
        frames.append({"frame": len(frames), "time": round(time, 3), **record})
        if record["status"] == "ok":
            scores.append(predictions.scores[i])
            if predictions.distribution is not None:
                distributions.append(predictions.distribution[i])


def _is_video_example(example: Mapping[str, Any]) -> bool:
    return is_video_path(example.get("image"))


def predict_media(predictor: Predictor, examples: Sequence[Mapping[str, Any]], sampling: Optional[FrameSampling]
                  = None, *, decimals: Optional[int] = None, clamp: bool = False) -> list[dict[str, Any]]:
    """One record per example: images as :meth:`Predictions.records` gives them, videos aggregated
    (:func:`score_video`). Images go through the predictor in one batched call, as without videos."""
    sampling = sampling or FrameSampling()
    results: list[Optional[dict[str, Any]]] = [None] * len(examples)
    images = [i for i, example in enumerate(examples) if not _is_video_example(example)]
    if images:
        records = predictor.predict_examples([examples[i] for i in images]).records(predictor.config, decimals, clamp)
        for i, record in zip(images, records):
            results[i] = record
    for i, example in enumerate(examples):
        if results[i] is None:
            results[i] = score_video(predictor, example, sampling, decimals=decimals, clamp=clamp)
    return results  # type: ignore[return-value]


def media_rows(path: str, record: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Result-file rows of one input: an image or a failed video as one row; a video as one row per frame
    (``frame``: 0, 1, ...) and its aggregate row (``frame: "aggregate"``)."""
    if "frames" not in record:
        return [{"path": path, **record}]
    rows = [{"path": path, **frame} for frame in record["frames"]]
    aggregate = {key: value for key, value in record.items() if key != "frames"}
    return rows + [{"path": path, "frame": "aggregate", "time": None, **aggregate}]


__all__ = ["AGGREGATES", "DEFAULT_FRAMES", "FrameSampling", "VideoLoadError", "aggregate_scores", "iter_video_frames",
           "media_rows", "predict_media", "score_video", "trimmed_mean"]
