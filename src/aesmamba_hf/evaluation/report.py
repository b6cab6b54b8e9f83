"""Evaluation report of a model on a benchmark split: metrics JSON, predictions CSV and plots.

``evaluate_model(model, "AVA", root, split="test", out_dir="eval/")`` builds the split with
:mod:`aesmamba_hf.data` (the model's task selects comments for M and user prompts for P), predicts every
readable image and writes:

* ``metrics.json`` — per head (``heads.<name>``) ``plcc``, ``srcc``, ``acc`` (binary accuracy, score ≤ the
  head's threshold → 0), ``mae``, ``rmse`` (+ ``emd`` r=1 for a distribution head with vote
  labels), computed by :func:`aesmamba_hf.metrics.compute_aesthetic_metrics`; their ``mean`` over heads; the
  rows skipped because their image could not be read or their label is NaN/missing (``bad_images``: file,
  label source and line, reason) and the files written;
* ``predictions.csv`` — image id, label source, predicted and true score per head;
* ``scatter_<head>.png`` — predicted vs. true score per head; ``metrics_bar.png`` — PLCC/SRCC per head.

Targets: a distribution label (vote counts) becomes its expected score over the dataset's bins; scalar
labels are used as they are, one per head.
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch

from ..io_utils import atomic_open, atomic_savefig, atomic_write_json
from ..metrics import compute_aesthetic_metrics, expected_score, plcc, srcc

logger = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]


# ----------------------------------------------------------------------------------------------------------
# loading


def load_model_and_processor(
    name_or_path: Optional[PathLike], config: Any = None, device: Union[str, torch.device, None] = None,
    allow_random: bool = False,
) -> tuple[Any, Any]:
    """(model, processor) by the one loader's rules (:func:`aesmamba_hf.inference.loading.load_model`).

    With ``name_or_path=None`` only the processor a model of ``config`` gets without processor files is built
    (the model is ``None``).
    """
    from ..inference.loading import load_model, load_processor_for_config

    if name_or_path is None:
        return None, load_processor_for_config(config)
    loaded = load_model(name_or_path, device=device, allow_random=allow_random)
    return loaded.model, loaded.processor


# ----------------------------------------------------------------------------------------------------------
# prediction


@dataclass
class Predictions:
    """Model outputs and targets of the readable rows of a split."""

    scores: np.ndarray  # (N, num_heads)
    labels: np.ndarray  # (N, num_heads) scalar targets, or (N, K) vote counts of a distribution head
    targets: np.ndarray  # (N, num_heads) on the score scale (expected score of the votes)
    image_ids: list[str]
    sources: list[str]
    distribution: Optional[np.ndarray] = None  # (N, K) predicted, distribution heads only
    bin_values: Optional[list[float]] = None  # bins of vote labels
    bad_images: list[dict[str, str]] = field(default_factory=list)


def _score_targets(labels: np.ndarray, num_heads: int, bin_values: Optional[Sequence[float]],
                   where: str) -> np.ndarray:
    """Score-scale targets (N, num_heads): vote counts become their expected score."""
    if labels.shape[1] == num_heads:
        return labels
    if num_heads == 1 and bin_values and labels.shape[1] == len(bin_values):
        return expected_score(labels, bin_values)[:, None]
    raise ValueError(f"{where}: labels have {labels.shape[1]} values per row; the model has {num_heads} heads")


def _label_problem(labels: Any) -> Optional[str]:
    if labels is None:
        return "no label"
    values = np.asarray(labels if isinstance(labels, (list, tuple)) else [labels], dtype=np.float64)
    if values.size == 0:
        return "no label values"
    if not np.isfinite(values).all():
        return f"NaN or infinite label {values.tolist()}"
    return None


def _bad_row(row: dict[str, Any], reason: str) -> dict[str, str]:
    image = row.get("image")
    path = image.get("path") if isinstance(image, dict) else image
    return {"image": str(path), "source": str(row.get("source", "")), "reason": reason}


def predict_dataset(
    model: Any,
    processor: Any,
    dataset: Any,
    batch_size: int = 32,
    device: Union[str, torch.device, None] = None,
    progress: Optional[Callable[[int, int], None]] = None,
) -> Predictions:
    """Predict every row of a :mod:`aesmamba_hf.data` dataset with the one batched predictor; rows whose image
    cannot be read (or whose text cannot be built) are skipped and reported."""
    from datasets import Image

    from ..dataset_specs import get_dataset_spec
    from ..inference.predictor import Predictor

    config = model.config
    predictor = Predictor(model, processor, batch_size=batch_size, device=device)
    if "image" in dataset.column_names:
        dataset = dataset.cast_column("image", Image(decode=False))
    n = len(dataset)
    scores, dists, labels, ids, sources, bad = [], [], [], [], [], []
    chunk_size = max(batch_size, 256)  # rows read from the table at a time; the predictor batches them
    for start in range(0, n, chunk_size):
        chunk = dataset[start:start + chunk_size]
        rows = []
        for row in (dict(zip(chunk, values)) for values in zip(*chunk.values())):
            problem = _label_problem(row.get("labels"))
            if problem is None:
                rows.append(row)
            else:  # a row without a usable label cannot be scored against: skipped and listed, not predicted
                bad.append(_bad_row(row, problem))
        result = predictor.predict_examples(rows)
        for index, row in enumerate(rows):
            if index in result.errors:
                bad.append(_bad_row(row, result.errors[index]))
                continue
            labels.append(np.asarray(row["labels"] if isinstance(row["labels"], (list, tuple)) else [row["labels"]],
                                     dtype=np.float64))
            ids.append(str(row.get("image_id", "")))
            sources.append(str(row.get("source", "")))
        ok = result.ok
        scores.append(result.scores[ok])
        if result.distribution is not None:
            dists.append(result.distribution[ok])
        if progress is not None:
            progress(min(start + chunk_size, n), n)
    scores = [s for s in scores if len(s)]
    if bad:
        logger.warning("skipped %d rows (first: %s %s: %s)", len(bad), bad[0]["source"], bad[0]["image"],
                       bad[0]["reason"])
    if not scores:
        raise ValueError(f"no usable row among the {n} rows ({len(bad)} skipped; first: {bad[0]['source']} "
                         f"{bad[0]['image']}: {bad[0]['reason']})" if bad else f"the split has no rows ({n})")
    label_array = np.stack(labels)
    dist_head = config.distribution_head
    name = getattr(dataset, "split", "") or ""
    bins = None
    if dist_head is not None:
        bins = dist_head["bin_values"]
    elif label_array.shape[1] > 1 and config.num_heads == 1:
        try:
            spec = get_dataset_spec(config.dataset)
            bins = list(spec.bin_values) or None
        except KeyError:
            bins = None
    targets = _score_targets(label_array, config.num_heads, bins, f"split {name!r}")
    return Predictions(scores=np.concatenate(scores), labels=label_array, targets=targets, image_ids=ids,
                       sources=sources, distribution=np.concatenate(dists) if dists else None,
                       bin_values=list(bins) if bins and label_array.shape[1] == len(bins) else None,
                       bad_images=bad)


# ----------------------------------------------------------------------------------------------------------
# report


def compute_metrics(config: Any, predictions: Predictions, dataset_name: Optional[str] = None) -> dict[str, Any]:
    """Per-head metrics of :func:`aesmamba_hf.metrics.compute_aesthetic_metrics` (plcc, srcc, acc, mae, rmse,
    + emd for a distribution head with vote labels), regrouped as ``{"heads": {head: {...}}, "mean": {...}}``."""
    from ..dataset_specs import get_dataset_spec

    try:
        default_threshold = get_dataset_spec(dataset_name or config.dataset).binary_threshold
    except KeyError:
        default_threshold = None
    names = list(config.head_names)
    flat = compute_aesthetic_metrics(
        predictions.scores, predictions.labels, head_names=names,
        thresholds=[h.get("binary_threshold", default_threshold) for h in config.heads],
        bin_values=predictions.bin_values,
        pred_distribution=predictions.distribution if predictions.bin_values else None,
    )
    heads = {name: {key[: -len(name) - 1]: value for key, value in flat.items() if key.endswith(f"_{name}")}
             for name in names}
    result: dict[str, Any] = {"heads": heads}
    if len(names) > 1:
        result["mean"] = {key: value for key, value in flat.items() if not any(key.endswith(f"_{n}") for n in names)}
    return result


def plot_scatter(pred: np.ndarray, true: np.ndarray, path: PathLike, head: str,
                 score_range: Optional[Sequence[float]] = None, title: str = "") -> Path:
    """Predicted vs. true scores of one head, with the identity line and PLCC/SRCC in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    r_p, r_s = plcc(pred, true), srcc(pred, true)
    fig, ax = plt.subplots(figsize=(4.8, 4.6))
    small = len(pred) < 500
    ax.scatter(true, pred, s=14 if small else 5, alpha=0.7 if small else 0.35, edgecolors="none")
    low = float(min(np.min(true), np.min(pred)))
    high = float(max(np.max(true), np.max(pred)))
    if score_range is not None:
        low, high = min(low, score_range[0]), max(high, score_range[1])
    ax.plot([low, high], [low, high], color="gray", lw=1, ls="--")
    ax.set_xlabel(f"true {head}")
    ax.set_ylabel(f"predicted {head}")
    ax.set_title(f"{title + ' — ' if title else ''}{head}: PLCC {r_p:.3f}, SRCC {r_s:.3f} (n={len(pred)})",
                 fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=110)
    plt.close(fig)
    return Path(path)


def plot_metric_bars(heads: dict[str, dict[str, float]], path: PathLike, title: str = "") -> Path:
    """Grouped bars of PLCC and SRCC per head (attribute)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(heads)
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(names) + 2), 4.0))
    for offset, metric in ((-0.2, "plcc"), (0.2, "srcc")):
        values = [heads[n].get(metric, float("nan")) for n in names]
        ax.bar(x + offset, np.nan_to_num(values), width=0.4, label=metric.upper())
    ax.set_xticks(x, names, rotation=30 if len(names) > 3 else 0, ha="right" if len(names) > 3 else "center")
    ax.set_ylabel("correlation")
    ax.axhline(0, color="black", lw=0.8)
    ax.legend()
    ax.set_title(title or "PLCC / SRCC per head", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=110)
    plt.close(fig)
    return Path(path)


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


@dataclass
class EvaluationResult:
    """What :func:`evaluate_model` wrote and computed."""

    metrics: dict[str, Any]
    predictions: Predictions
    files: dict[str, Any]


def write_report(config: Any, predictions: Predictions, out_dir: PathLike, *, dataset_name: str,
                 split: str, model_name: str = "") -> EvaluationResult:
    """Metrics JSON, predictions CSV, scatter plots and the bar chart for computed predictions."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    computed = compute_metrics(config, predictions, dataset_name)
    files: dict[str, Any] = {"metrics": str(out / "metrics.json"), "predictions": str(out / "predictions.csv"),
                             "scatter": {}, "bars": str(out / "metrics_bar.png")}
    title = f"{dataset_name} {split}"
    for i, head in enumerate(config.heads):
        path = out / f"scatter_{_safe_name(head['name'])}.png"
        plot_scatter(predictions.scores[:, i], predictions.targets[:, i], path, head["name"],
                     head.get("score_range"), title=title)
        files["scatter"][head["name"]] = str(path)
    plot_metric_bars(computed["heads"], files["bars"], title=f"{model_name or config.task} on {title}")
    with atomic_open(files["predictions"], newline="") as f:
        writer = csv.writer(f)
        names = config.head_names
        writer.writerow(["image_id", "source", *[f"pred_{n}" for n in names], *[f"true_{n}" for n in names]])
        for j in range(len(predictions.image_ids)):
            writer.writerow([predictions.image_ids[j], predictions.sources[j],
                             *[repr(float(v)) for v in predictions.scores[j]],
                             *[repr(float(v)) for v in predictions.targets[j]]])
    metrics = {
        "model": model_name,
        "task": config.task,
        "variant": getattr(config, "variant", None),
        "dataset": dataset_name,
        "split": split,
        "num_images": int(len(predictions.image_ids)),
        "num_skipped": len(predictions.bad_images),
        "bad_images": predictions.bad_images,
        "score_ranges": {h["name"]: list(h["score_range"]) for h in config.heads},
        **computed,
        "files": files,
    }
    atomic_write_json(files["metrics"], metrics)
    return EvaluationResult(metrics=metrics, predictions=predictions, files=files)


def evaluate_model(
    model: Union[PathLike, Any],
    dataset_name: str,
    dataset_root: PathLike,
    out_dir: PathLike,
    split: str = "test",
    *,
    processor: Any = None,
    batch_size: int = 32,
    device: Union[str, torch.device, None] = None,
    max_images: Optional[int] = None,
    dataset_kwargs: Optional[dict[str, Any]] = None,
    progress: Optional[Callable[[int, int], None]] = None,
    allow_random: bool = False,
) -> EvaluationResult:
    """Evaluate ``model`` (folder / alias / Hub id, or a loaded model) on ``split`` of a benchmark.

    Args:
        dataset_name: ``AVA``, ``PhotoNet``, ``PARA``, ``AADB`` or ``TAD66K``; the model's task picks the
            captions (M), the nine attributes (F) or the per-user rows (P).
        max_images: evaluate only the first N rows (quick checks).
        dataset_kwargs: passed to the dataset builder (e.g. ``users=[...]`` for PARA-P).
        allow_random: accept a model folder marked as holding random weights.
    """
    from ..data.builders import build_dataset
    from ..io_utils import check_output_dir

    check_output_dir(out_dir, "evaluation output folder")  # before the model loads
    if isinstance(model, (str, os.PathLike)):
        model_name = os.fspath(model)
        model, loaded = load_model_and_processor(model, device=device, allow_random=allow_random)
        processor = processor if processor is not None else loaded
    else:
        model_name = getattr(model.config, "variant", None) or "in-memory model"
        if processor is None:
            _, processor = load_model_and_processor(None, config=model.config)
    device = device or next(model.parameters()).device
    config = model.config
    dataset = build_dataset(dataset_name, dataset_root, split, task=config.task, **(dataset_kwargs or {}))
    if max_images is not None:
        dataset = dataset.select(range(min(max_images, len(dataset))))
    predictions = predict_dataset(model, processor, dataset, batch_size=batch_size, device=device,
                                  progress=progress)
    return write_report(config, predictions, out_dir, dataset_name=dataset_name, split=split, model_name=model_name)


__all__ = [
    "EvaluationResult",
    "Predictions",
    "compute_metrics",
    "evaluate_model",
    "load_model_and_processor",
    "plot_metric_bars",
    "plot_scatter",
    "predict_dataset",
    "write_report",
]
