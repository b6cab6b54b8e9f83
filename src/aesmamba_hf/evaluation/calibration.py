"""Scores that say what they mean: a model's reference distribution of scores, and percentiles from it.

A raw score ("6.1") says little without knowing how the model scores typical images: every scorer has its own
spread and offset. A *score reference* is the distribution of a model's scores on a set of images the user
chooses (their own validation images, the demo's validation split, ...); once a model carries one in
``config.score_reference``, every result (pipeline, ``aesmamba score``, Ray, video aggregates) gets a
``percentile`` beside its ``score``: the share of the reference set, in percent, that scored at or below it.

What is stored (per head), decided so that ``config.json`` stays small and percentiles stay exact where the
set is modest:

* ``quantiles``: 101 scores at 0, 1, ..., 100 % (``numpy.quantile``, linear), always;
* ``sorted_scores``: every score, sorted, when the set has at most :data:`EXACT_LIMIT` (2,000) images. Then the
  percentile is exactly the empirical CDF: ``100 * #{reference scores <= s} / n``;
* beyond that, the percentile is the CDF interpolated linearly between the 101 quantiles (0 below the
  smallest reference score, 100 at or above the largest); it is within about one percentile point of the
  exact value;
* ``count``, ``mean``, ``std``, ``min``, ``max`` and ``out_of_range`` (the share outside the head's
  ``score_range``), for the model card.

Scores are stored and compared at float32 precision (the models' output precision), so the percentile of a
reference image's own score counts that image. Percentiles are computed from the raw score, never from a
clamped or rounded one.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

import numpy as np

EXACT_LIMIT = 2000
NUM_QUANTILES = 101
REFERENCE_FORMAT = 1


def _as_float32_list(values: np.ndarray) -> list[float]:
    """float32 values as the shortest decimals that read back as the same float32 (a compact config.json)."""
    return [float(np.format_float_positional(v, unique=True, trim="-")) for v in values.astype(np.float32)]


def build_score_reference(
    scores: np.ndarray,
    head_names: Sequence[str],
    *,
    source: str,
    score_ranges: Optional[Mapping[str, Sequence[float]]] = None,
    exact_limit: int = EXACT_LIMIT,
    num_failed: int = 0,
) -> dict[str, Any]:
    """The ``score_reference`` of scores ``(n, num_heads)`` (rows with a NaN are dropped per head).

    Args:
        scores: the model's scores on the reference set, one column per head in ``head_names`` order.
        head_names: the model's head names (``config.head_names``).
        source: what the set was (a folder, a CSV, "demo validation split"): stated on the model card.
        score_ranges: ``config.score_ranges``, to record the share of reference scores outside each range.
        exact_limit: keep every sorted score when the set has at most this many (exact percentiles).
        num_failed: images of the set that could not be scored (recorded, not counted in ``size``).
    """
    scores = np.asarray(scores, dtype=np.float32)
    if scores.ndim == 1:
        scores = scores[:, None]
    if scores.shape[1] != len(head_names):
        raise ValueError(f"scores have {scores.shape[1]} columns for {len(head_names)} heads {list(head_names)}")
    levels = np.linspace(0.0, 1.0, NUM_QUANTILES)
    heads: dict[str, Any] = {}
    for column, name in enumerate(head_names):
        values = np.sort(scores[:, column][np.isfinite(scores[:, column])])
        if values.size == 0:
            raise ValueError(f"no finite score for head {name!r}: the reference set needs at least one scored image")
        table: dict[str, Any] = {
            "count": int(values.size),
            "mean": float(values.mean(dtype=np.float64)),
            "std": float(values.std(dtype=np.float64)),
            "min": float(values[0]),
            "max": float(values[-1]),
            "quantiles": _as_float32_list(np.quantile(values.astype(np.float64), levels)),
            "sorted_scores": _as_float32_list(values) if values.size <= exact_limit else None,
        }
        if score_ranges is not None and name in score_ranges:
            low, high = score_ranges[name]
            table["out_of_range"] = float(np.mean((values < low) | (values > high)))
        heads[name] = table
    return {
        "format": REFERENCE_FORMAT,
        "source": str(source),
        "size": int(scores.shape[0]),
        "num_failed": int(num_failed),
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "method": "exact" if all(h["sorted_scores"] is not None for h in heads.values()) else "quantiles",
        "heads": heads,
    }


class PercentileTable:
    """The percentile function of one head of a reference (built once, used for every score)."""

    def __init__(self, table: Mapping[str, Any]):
        exact = table.get("sorted_scores")
        self.exact = exact is not None
        values = np.asarray(exact if self.exact else table["quantiles"], dtype=np.float32)
        self.levels = np.linspace(0.0, 100.0, len(values))
        self._values = values.astype(np.float64).tolist()  # the float32 numbers as Python floats, for bisect

    def of(self, score: float) -> float:
        """The percentile (0–100) of one score: one bisection in the stored float32 numbers; NaN for NaN."""
        score = float(np.float32(score))
        if score != score:
            return float("nan")
        right = bisect.bisect_right(self._values, score)
        n = len(self._values)
        if self.exact:
            return 100.0 * right / n
        if right == 0 or right >= n:
            return 0.0 if right == 0 else 100.0
        low, high = self._values[right - 1], self._values[right]
        fraction = (score - low) / (high - low)  # high > low: q[right-1] <= score < q[right]
        return float(self.levels[right - 1] + fraction * (self.levels[right] - self.levels[right - 1]))


_TABLES: dict[int, tuple[Any, dict[str, PercentileTable]]] = {}


def percentile_tables(reference: Optional[Mapping[str, Any]]) -> dict[str, PercentileTable]:
    """Per-head percentile functions of a reference (cached by identity: replace a reference, do not mutate it)."""
    if not reference:
        return {}
    cached = _TABLES.get(id(reference))
    if cached is not None and cached[0] is reference:
        return cached[1]
    tables = {name: PercentileTable(table) for name, table in reference["heads"].items()}
    if len(_TABLES) > 16:
        _TABLES.clear()
    _TABLES[id(reference)] = (reference, tables)
    return tables


def percentile(reference: Mapping[str, Any], head: str, score: float) -> float:
    """The percentile (0–100) of one score of ``head`` in ``reference``."""
    tables = percentile_tables(reference)
    if head not in tables:
        raise KeyError(f"the score reference has no head {head!r} (it has {sorted(tables)})")
    return tables[head].of(score)


# -- computing a reference with a model ----------------------------------------------------------------------


def reference_scores(predictor: Any, examples: Sequence[Mapping[str, Any]], *, chunk: int = 256,
                     progress: Any = None) -> tuple[np.ndarray, dict[int, str]]:
    """Scores ``(n, num_heads)`` of ``examples`` through the one :class:`Predictor` (NaN rows for failures)
    and the failures ``{index: reason}``."""
    parts, errors = [], {}
    for start in range(0, len(examples), chunk):
        predictions = predictor.predict_examples(examples[start : start + chunk])
        parts.append(predictions.scores)
        errors.update({start + i: reason for i, reason in predictions.errors.items()})
        if progress is not None:
            progress(min(start + chunk, len(examples)))
    scores = np.concatenate(parts) if parts else np.zeros((0, predictor.config.num_heads), dtype=np.float32)
    return scores, errors


def compute_score_reference(predictor: Any, examples: Sequence[Mapping[str, Any]], *, source: str,
                            exact_limit: int = EXACT_LIMIT, progress: Any = None,
                            failures: Optional[dict[int, str]] = None) -> dict[str, Any]:
    """Score ``examples`` (the predictor's example dicts: ``{"image": ..., "comment"/"user": ...}``) and build
    the model's ``score_reference`` from the images that could be read (``failures`` receives the others,
    ``{index: reason}``)."""
    config = predictor.config
    scores, errors = reference_scores(predictor, examples, progress=progress)
    if failures is not None:
        failures.update(errors)
    ok = np.isfinite(scores).all(axis=1)
    if not ok.any():
        reasons = "; ".join(f"{i}: {r}" for i, r in list(errors.items())[:3])
        raise ValueError(f"none of the {len(examples)} reference images could be scored ({reasons})")
    return build_score_reference(scores[ok], config.head_names, source=source, score_ranges=config.score_ranges,
                                 exact_limit=exact_limit, num_failed=int((~ok).sum()))


def dataset_score_reference(model: Any, processor: Any, dataset: Any, *, source: str, batch_size: int = 32,
                            exact_limit: int = EXACT_LIMIT) -> dict[str, Any]:
    """The ``score_reference`` of a labelled :mod:`aesmamba_hf.data` split (e.g. a validation split), scored like
    ``aesmamba evaluate`` scores it (:func:`~aesmamba_hf.evaluation.report.predict_dataset`)."""
    from .report import predict_dataset

    predictions = predict_dataset(model, processor, dataset, batch_size=batch_size)
    return build_score_reference(predictions.scores, model.config.head_names, source=source,
                                 score_ranges=model.config.score_ranges, exact_limit=exact_limit,
                                 num_failed=len(predictions.bad_images))


def write_score_reference(model_dir: Any, reference: Optional[Mapping[str, Any]]) -> Path:
    """Put ``reference`` into a saved model folder: ``config.json`` (replaced atomically, checked by loading it
    as an ``AesMambaConfig`` first) and, when the folder has a model card, its "Score reference" section.

    ``None`` removes the reference. Returns the path of ``config.json``.
    """
    from ..configuration_aesmamba import AesMambaConfig
    from ..hub.model_card import with_score_reference
    from ..io_utils import atomic_write_text

    folder = Path(model_dir)
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{folder} is not a saved model folder (no config.json)")
    data = json.loads(config_path.read_text(encoding="utf-8"))
    if reference is None:
        data.pop("score_reference", None)
    else:
        data["score_reference"] = dict(reference)
    AesMambaConfig.from_dict(dict(data))  # refuses a reference that does not fit the model's heads
    atomic_write_text(config_path, json.dumps(data, indent=2, sort_keys=True) + "\n")
    readme = folder / "README.md"
    if readme.is_file():
        atomic_write_text(readme, with_score_reference(readme.read_text(encoding="utf-8"), reference))
    return config_path


def describe_reference(reference: Mapping[str, Any], decimals: int = 3) -> list[str]:
    """Markdown lines (a table per head: percentiles 5/25/50/75/95, mean, std) for model cards and the CLI."""
    method = ("every score kept: percentiles are the exact empirical CDF" if reference.get("method") == "exact"
              else f"{NUM_QUANTILES} quantiles kept: percentiles interpolate between them (within ~1 point)")
    lines = [f"Reference set: **{reference.get('source', '?')}**, {reference['size']} images"
             + (f" ({reference['num_failed']} unreadable, left out)" if reference.get("num_failed") else "")
             + f"; {method}.", "",
             "| head | p5 | p25 | median | p75 | p95 | mean | std | outside score range |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, table in reference["heads"].items():
        q = table["quantiles"]
        picks = [q[round(p * (len(q) - 1))] for p in (0.05, 0.25, 0.5, 0.75, 0.95)]
        share = table.get("out_of_range")
        lines.append(f"| `{name}` | " + " | ".join(f"{v:.{decimals}f}" for v in picks)
                     + f" | {table['mean']:.{decimals}f} | {table['std']:.{decimals}f} | "
                     + ("" if share is None else f"{100 * share:.1f} %") + " |")
    return lines


__all__ = ["EXACT_LIMIT", "NUM_QUANTILES", "PercentileTable", "build_score_reference", "compute_score_reference",
           "dataset_score_reference", "describe_reference", "percentile", "percentile_tables", "reference_scores", "write_score_reference"]
