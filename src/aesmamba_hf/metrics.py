"""The evaluation metrics the AesMamba authors report, and a ``Trainer`` ``compute_metrics``.

Plain NumPy/SciPy functions on predicted and target scores:

- PLCC (``scipy.stats.pearsonr``) and SRCC (``scipy.stats.spearmanr``); NaN when either side is constant
  or has fewer than 2 values (no warning, no exception);
- binary accuracy: a score ``<= threshold`` is class 0, above it class 1 (thresholds of the dataset
  specs: AVA/Photo.Net/TAD66K 5, PARA 3, AADB 0.5);
- MAE and RMSE;
- EMD with r = 1 on distributions (the reported metric; training uses r = 2):
  ``mean_b (mean_k |CDF_pred - CDF_target|^r)^(1/r)``; vote counts are normalised first.

NaN inputs are not masked: a diverged model must show up as NaN, not as a good score on the rest.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats

ArrayLike = Any  # np.ndarray, torch.Tensor (CPU), list


def _as_array(x: ArrayLike) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor without importing torch
        x = x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def _pair(pred: ArrayLike, target: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    p, t = _as_array(pred).reshape(-1), _as_array(target).reshape(-1)
    if p.shape != t.shape:
        raise ValueError(f"predictions ({p.shape[0]}) and targets ({t.shape[0]}) differ in length")
    return p, t


def _correlation(fn: Callable, pred: ArrayLike, target: ArrayLike) -> float:
    p, t = _pair(pred, target)
    if p.size < 2 or np.ptp(p) == 0 or np.ptp(t) == 0:  # ptp is NaN if a NaN is present: falls through
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(fn(p, t)[0])


def plcc(pred: ArrayLike, target: ArrayLike) -> float:
    """Pearson linear correlation coefficient."""
    return _correlation(stats.pearsonr, pred, target)


def srcc(pred: ArrayLike, target: ArrayLike) -> float:
    """Spearman rank-order correlation coefficient."""
    return _correlation(stats.spearmanr, pred, target)


def binary_accuracy(pred: ArrayLike, target: ArrayLike, threshold: float) -> float:
    """Share of images on the same side of ``threshold`` (``<= threshold`` is the low class)."""
    p, t = _pair(pred, target)
    if p.size == 0:
        return float("nan")
    if np.isnan(p).any() or np.isnan(t).any():
        return float("nan")
    return float(np.mean((p > threshold) == (t > threshold)))


def mae(pred: ArrayLike, target: ArrayLike) -> float:
    p, t = _pair(pred, target)
    return float(np.mean(np.abs(p - t))) if p.size else float("nan")


def rmse(pred: ArrayLike, target: ArrayLike) -> float:
    p, t = _pair(pred, target)
    return float(np.sqrt(np.mean((p - t) ** 2))) if p.size else float("nan")


def normalize_distribution(x: ArrayLike) -> np.ndarray:
    """Rows of vote counts (or probabilities) to probabilities; an all-zero row becomes NaN."""
    x = _as_array(x)
    with np.errstate(invalid="ignore", divide="ignore"):
        return x / x.sum(axis=-1, keepdims=True)


def expected_score(distribution: ArrayLike, bin_values: Sequence[float]) -> np.ndarray:
    """Mean score of each row of vote counts / probabilities over ``bin_values``."""
    p = normalize_distribution(distribution)
    values = np.asarray(bin_values, dtype=np.float64)
    if p.shape[-1] != values.size:
        raise ValueError(f"distribution has {p.shape[-1]} bins but {values.size} bin values were given")
    return p @ values


def emd(pred_distribution: ArrayLike, target_distribution: ArrayLike, r: int = 1) -> float:
    """Earth mover's distance between rows of two distributions (both normalised first)."""
    p, t = normalize_distribution(pred_distribution), normalize_distribution(target_distribution)
    if p.shape != t.shape:
        raise ValueError(f"distribution shapes differ: {p.shape} vs {t.shape}")
    if p.size == 0:
        return float("nan")
    diff = np.abs(np.cumsum(p, axis=-1) - np.cumsum(t, axis=-1))
    return float(np.mean(np.mean(diff**r, axis=-1) ** (1.0 / r)))


def head_metrics(pred: ArrayLike, target: ArrayLike, threshold: float | None = None) -> dict[str, float]:
    """PLCC, SRCC, MAE, RMSE and (with a threshold) binary accuracy of one head."""
    out = {"plcc": plcc(pred, target), "srcc": srcc(pred, target), "mae": mae(pred, target),
           "rmse": rmse(pred, target)}
    if threshold is not None:
        out["acc"] = binary_accuracy(pred, target, threshold)
    return out


def _per_head(value: Any, num_heads: int, what: str) -> list:
    if value is None or np.isscalar(value):
        return [value] * num_heads
    value = list(value)
    if len(value) != num_heads:
        raise ValueError(f"{what} has {len(value)} entries for {num_heads} heads")
    return value


def compute_aesthetic_metrics(
    scores: ArrayLike,
    labels: ArrayLike,
    *,
    head_names: Sequence[str] | None = None,
    thresholds: float | Sequence[float | None] | None = None,
    bin_values: Sequence[float] | None = None,
    pred_distribution: ArrayLike | None = None,
) -> dict[str, float]:
    """Metrics of every head and their means.

    ``scores``: (N,) or (N, H) predicted scores. ``labels``: (N, H) / (N,) target scores, or (N, K) vote
    counts of a single distribution head when ``bin_values`` (K values) is given; they are turned into
    expected scores, and into the target distribution of EMD when ``pred_distribution`` (N, K) is given.

    Keys: ``<metric>_<head>`` for each head and ``<metric>`` = mean over heads (NaN if any head is NaN),
    metric in plcc, srcc, mae, rmse, acc (with thresholds); ``emd`` / ``emd_<head>`` for the distribution
    head.
    """
    s = _as_array(scores)
    s = s.reshape(len(s), -1) if s.ndim else s.reshape(1, 1)
    y = _as_array(labels)
    y = y.reshape(len(y), -1) if y.ndim else y.reshape(1, 1)
    num_heads = s.shape[1]
    target_dist = None
    if bin_values is not None and len(bin_values) > 1 and y.shape[1] == len(bin_values):
        if num_heads != 1:
            raise ValueError("vote-count labels need a single (distribution) head")
        target_dist = normalize_distribution(y)
        y = expected_score(y, bin_values)[:, None]
    if y.shape != s.shape:
        raise ValueError(f"labels of shape {y.shape} do not match scores of shape {s.shape}")
    names = list(head_names) if head_names is not None else (
        ["aesthetic"] if num_heads == 1 else [f"head{h}" for h in range(num_heads)]
    )
    if len(names) != num_heads:
        raise ValueError(f"{len(names)} head names for {num_heads} heads")
    limits = _per_head(thresholds, num_heads, "thresholds")

    out: dict[str, float] = {}
    per_metric: dict[str, list[float]] = {}
    for h, name in enumerate(names):
        for key, value in head_metrics(s[:, h], y[:, h], limits[h]).items():
            out[f"{key}_{name}"] = value
            per_metric.setdefault(key, []).append(value)
    for key, values in per_metric.items():
        out[key] = float(np.mean(values))
    if pred_distribution is not None and target_dist is not None:
        out[f"emd_{names[0]}"] = out["emd"] = emd(pred_distribution, target_dist, r=1)
    return out


def finite_mean(values: Iterable[float]) -> float:
    """Mean of the finite values (an undefined correlation is NaN, not a zero); NaN when none is finite."""
    finite = [float(v) for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def compute_grouped_metrics(
    scores: ArrayLike, labels: ArrayLike, groups: Sequence[Any], **kwargs: Any
) -> dict[str, float]:
    """Metrics computed within each group (e.g. each PARA user, as PIAA is reported) and averaged over groups.

    Returns the per-group means of :func:`compute_aesthetic_metrics` keys plus ``num_groups``. A group where a
    metric is undefined (a correlation over constant scores or labels, e.g. a user who gave every test image the
    same rating) is left out of that metric's mean; it is NaN only when no group defines it. The over-heads keys
    (``srcc``, ...) are the means of the per-head keys (``srcc_<head>``).
    """
    s, y = _as_array(scores), _as_array(labels)
    keys = np.asarray([str(g) for g in groups])
    if len(keys) != len(s) or len(keys) != len(y):
        raise ValueError("scores, labels and groups differ in length")
    collected: dict[str, list[float]] = {}
    group_names = list(dict.fromkeys(keys.tolist()))
    for g in group_names:
        mask = keys == g
        for key, value in compute_aesthetic_metrics(s[mask], y[mask], **kwargs).items():
            collected.setdefault(key, []).append(value)
    out = {key: finite_mean(values) for key, values in collected.items()}
    # The over-heads means (bare metric names) again, from the per-head group means: a user undefined on one head
    # still counts on the others (the per-group over-heads mean would drop that user entirely).
    for key in [k for k in out if "_" not in k]:
        per_head = [v for k, v in out.items() if k.startswith(f"{key}_")]
        if per_head:
            out[key] = float(np.mean(per_head))
    out["num_groups"] = float(len(group_names))
    return out


def _heads_of(config: Any) -> list[Mapping[str, Any]]:
    heads = config.get("heads") if isinstance(config, Mapping) else getattr(config, "heads", None)
    if heads:
        return [dict(h) for h in heads]
    # No head list: one head from the dataset spec (e.g. a bare dataset name or a minimal config).
    from .dataset_specs import get_dataset_spec

    name = config if isinstance(config, str) else (
        config.get("dataset") if isinstance(config, Mapping) else getattr(config, "dataset", None)
    )
    spec = get_dataset_spec(name)
    kind = "distribution" if spec.num_bins > 1 else "scalar"
    return [{"name": "aesthetic", "kind": kind, "num_bins": spec.num_bins, "bin_values": list(spec.bin_values),
             "binary_threshold": spec.binary_threshold}]


def make_compute_metrics(config: Any) -> Callable[[Any], dict[str, float]]:
    """A ``Trainer`` ``compute_metrics`` for an ``AesMambaConfig`` (or a dict with ``heads``, or a
    dataset name).

    ``EvalPrediction.predictions`` is the model's ``scores`` (B, H), or a tuple whose first element is
    ``scores``; a later (B, K) element with K = the distribution head's ``num_bins`` is taken as the
    predicted distribution (for EMD). ``label_ids`` is ``labels`` (B, K) vote counts for a distribution
    head or (B, H) / (B,) scalar targets, or a tuple whose first element is that.
    """
    heads = _heads_of(config)
    names = [h.get("name", f"head{i}") for i, h in enumerate(heads)]
    thresholds = [h.get("binary_threshold") for h in heads]
    dist_head = heads[0] if len(heads) == 1 and heads[0].get("kind") == "distribution" else None
    bin_values = list(dist_head.get("bin_values") or []) if dist_head else None
    num_bins = len(bin_values) if bin_values else None

    def compute_metrics(eval_pred: Any) -> dict[str, float]:
        predictions = getattr(eval_pred, "predictions", None)
        label_ids = getattr(eval_pred, "label_ids", None)
        if predictions is None and isinstance(eval_pred, (tuple, list)):
            predictions, label_ids = eval_pred[0], eval_pred[1]
        extras: list[np.ndarray] = []
        if isinstance(predictions, (tuple, list)):
            predictions, extras = predictions[0], [_as_array(p) for p in predictions[1:] if p is not None]
        if isinstance(label_ids, (tuple, list)):
            label_ids = label_ids[0]
        scores = _as_array(predictions)
        scores = scores.reshape(len(scores), -1)
        pred_dist = None
        if num_bins:
            pred_dist = next((e for e in extras if e.ndim == 2 and e.shape == (len(scores), num_bins)), None)
            if scores.shape[1] == num_bins and num_bins != len(heads):  # given the distribution itself
                pred_dist, scores = scores, expected_score(scores, bin_values)[:, None]
        return compute_aesthetic_metrics(
            scores, label_ids, head_names=names, thresholds=thresholds, bin_values=bin_values,
            pred_distribution=pred_dist,
        )

    return compute_metrics


__all__ = [
    "binary_accuracy",
    "compute_aesthetic_metrics",
    "compute_grouped_metrics",
    "emd",
    "expected_score",
    "finite_mean",
    "head_metrics",
    "mae",
    "make_compute_metrics",
    "normalize_distribution",
    "plcc",
    "rmse",
    "srcc",
]
