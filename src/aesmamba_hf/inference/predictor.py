"""The one batched predictor: examples (image [+ comment | user]) → scores, behind every entry point.

The pipeline, the scorer, ``aesmamba score``, the evaluation report and the PIAA runner all call
:class:`Predictor`, so an image gets the same score whichever way it is scored. Rules written once here:

* an example is an image (path, PIL image, array, or a dataset cell ``{"bytes", "path"}``) with an optional
  ``comment`` (M models) or ``user`` profile (P models); an M example whose comment is missing or blank, and a
  P example without a user, is scored from the image alone (the pooled image feature, as the model does when
  no text is given);
* an example whose image cannot be read, or whose text cannot be built, becomes an error with its reason; the
  rest of its batch is scored;
* examples with and without text go through separate forward passes (batched results equal one-by-one
  results when the model masks text padding, ``mask_text_padding=True``, the default).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Optional, Union

import numpy as np
import torch

from ..evaluation.calibration import percentile_tables
from ..image_processing_aesmamba import ImageLoadError
from ..peft_utils import is_peft_model
from ..tasks import Task
from ..training.collator import AesMambaDataCollator, open_image_cell

MODEL_INPUTS = ("pixel_values", "input_ids", "attention_mask", "token_type_ids")


def overall_head_index(config: Any) -> int:
    """The head reported as ``score``: ``aesthetic`` if present, otherwise the first head."""
    names = [h["name"] for h in config.heads]
    return names.index("aesthetic") if "aesthetic" in names else 0


def _has_text(example: Mapping[str, Any], task: Task) -> bool:
    value = example.get(task.text_input) if task.text_input else None
    if value is None:
        return False
    if isinstance(value, float) and math.isnan(value):  # a missing cell of a pandas/datasets table
        return False
    return not (isinstance(value, str) and not value.strip() and task.reads_comments)


@dataclass
class Predictions:
    """Raw outputs for N examples in input order; rows of failed examples are NaN and listed in ``errors``."""

    scores: np.ndarray  # (N, num_heads)
    distribution: Optional[np.ndarray] = None  # (N, K) for a distribution head
    class_logits: Optional[np.ndarray] = None  # (N, heads with a class branch, C)
    errors: dict[int, str] = field(default_factory=dict)
    used_text: list[bool] = field(default_factory=list)
    features: Optional[np.ndarray] = None  # (N, D) the feature the heads read, when asked for

    @property
    def ok(self) -> np.ndarray:
        mask = np.ones(len(self.scores), dtype=bool)
        mask[list(self.errors)] = False
        return mask

    def records(self, config: Any, decimals: Optional[int] = None, clamp: bool = False) -> list[dict[str, Any]]:
        """One dict per example: ``status`` ``ok`` with :func:`format_predictions`' fields, or ``error``."""
        out: list[dict[str, Any]] = []
        for i in range(len(self.scores)):
            if i in self.errors:
                out.append({"status": "error", "error": self.errors[i]})
                continue
            dist = None if self.distribution is None else torch.from_numpy(self.distribution[i : i + 1])
            logits = None if self.class_logits is None else torch.from_numpy(self.class_logits[i : i + 1])
            record = format_predictions(config, torch.from_numpy(self.scores[i : i + 1]), dist, logits, decimals,
                                        clamp=clamp)[0]
            out.append({"status": "ok", **record})
        return out


class Predictor:
    """Batched, per-example-fault-tolerant scoring with an AesMamba model and its processor.

    Args:
        model: an ``AesMambaForAestheticAssessment`` (put in eval mode here).
        processor: its ``AesMambaProcessor``.
        batch_size: examples per forward pass.
        device: move the model there first (default: leave it where its parameters are).
        decode_workers: threads decoding images (0: decode in the calling thread).
        dtype: score with the model's weights in ``float32`` or ``bfloat16`` (default: leave them): a model in
            another dtype is *copied* and the copy cast (the caller's model is left as it is; to avoid the
            copy, load in that dtype: ``load_model(..., dtype=)``); scores are float32 either way.
    """

    def __init__(self, model: Any, processor: Any, *, batch_size: int = 8,
                 device: Union[str, torch.device, None] = None, decode_workers: int = 0,
                 dtype: Union[str, torch.dtype, None] = None):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model = model if device is None else model.to(device)
        if dtype is not None:
            from .precision import resolve_dtype

            dtype = resolve_dtype(dtype)
            if next(self.model.parameters()).dtype != dtype:  # a copy: .to() would change the caller's model
                self.model = copy.deepcopy(self.model).to(dtype)
        self.processor = processor
        self.batch_size = int(batch_size)
        self.decode_workers = int(decode_workers)
        self._pool: Optional[ThreadPoolExecutor] = None
        self.task = Task.parse(model.config.task)
        self._image_only = AesMambaDataCollator(processor, train=False, text_source=None, with_labels=False)
        self._with_text = (AesMambaDataCollator(processor, train=False, text_source=self.task.text_input,
                                                with_labels=False)
                           if self.task.uses_text and getattr(processor, "tokenizer", None) is not None else None)

    @property
    def config(self) -> Any:
        """The model's config; for a model with PEFT adapters (``piaa.load_adapter``/``AdapterBank``) a copy
        without ``score_reference``: the base's reference does not describe an adapted model, so such records
        have no ``percentile`` (a merged adapter carries its own, see ``with_adapter``)."""
        config = self.model.config
        if getattr(config, "score_reference", None) and is_peft_model(self.model):
            config = copy.copy(config)
            config.score_reference = None
        return config

    @property
    def device(self) -> torch.device:
        """Where the model is now (inputs follow it)."""
        return next(self.model.parameters()).device

    # -- one forward pass ----------------------------------------------------------------------------

    @torch.no_grad()
    def forward(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, Optional[torch.Tensor]]:
        """Model outputs (scores, distribution, class_logits) for already encoded inputs."""
        batch = {k: v.to(self.device) for k, v in inputs.items() if k in MODEL_INPUTS}
        if "pixel_values" in batch:
            batch["pixel_values"] = batch["pixel_values"].to(next(self.model.parameters()).dtype)
        was_training = self.model.training  # scoring in the middle of a training loop leaves its mode alone
        self.model.eval()
        try:
            outputs = self.model(**batch)
        finally:
            self.model.train(was_training)
        return {"scores": outputs.scores, "distribution": outputs.distribution,
                "class_logits": outputs.class_logits, "features": outputs.integrated_features}

    # -- examples ------------------------------------------------------------------------------------

    def _open(self, examples: Sequence[Mapping[str, Any]], offset: int, pool: Optional[ThreadPoolExecutor],
              errors: dict[int, str]) -> list[tuple[int, dict[str, Any]]]:
        def open_one(item: tuple[int, Mapping[str, Any]]) -> tuple[int, Any]:
            index, example = item
            try:
                return index, open_image_cell(example.get("image"), example, index)
            except (ImageLoadError, ValueError, TypeError, OSError) as err:
                return index, err

        items = list(enumerate(examples, start=offset))
        opened = list(pool.map(open_one, items)) if pool is not None else [open_one(item) for item in items]
        good = []
        for (index, example), (_, image) in zip(items, opened):
            if isinstance(image, Exception):
                errors[index] = getattr(image, "reason", None) or str(image)
            else:
                good.append((index, {**example, "image": image}))
        return good

    def _encode(self, rows: list[tuple[int, dict[str, Any]]], with_text: bool,
                errors: dict[int, str]) -> tuple[list[int], Optional[dict[str, torch.Tensor]]]:
        collator = self._with_text if with_text else self._image_only
        try:
            return [i for i, _ in rows], collator([row for _, row in rows])
        except (ValueError, TypeError, ImageLoadError):
            if len(rows) == 1:
                raise
        kept, encoded = [], []
        for index, row in rows:  # find the example that failed; the others are scored
            try:
                encoded.append(collator([row]))
                kept.append(index)
            except (ValueError, TypeError, ImageLoadError) as err:
                errors[index] = f"{err}"
        if not kept:
            return [], None
        merged = {k: torch.cat([e[k] for e in encoded]) if k == "pixel_values" else _pad_cat([e[k] for e in encoded])
                  for k in encoded[0]}
        return kept, merged

    def encode(self, example: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """Model inputs for one example (raises :class:`ImageLoadError` / ``ValueError`` naming the problem)."""
        row = {**example, "image": open_image_cell(example.get("image"), example, 0)}
        with_text = self._with_text is not None and _has_text(row, self.task)
        return (self._with_text if with_text else self._image_only)([row])

    def predict_examples(self, examples: Sequence[Mapping[str, Any]], with_features: bool = False) -> Predictions:
        """Scores of every example (see the module docstring for the rules); ``with_features``: also the (N, D)
        feature every head reads (after the image-text integration), e.g. to embed images or probe what a
        model encodes (NaN rows for failed examples)."""
        n, dist_head = len(examples), self.config.distribution_head
        result = Predictions(np.full((n, self.config.num_heads), np.nan, dtype=np.float32),
                             np.full((n, dist_head["num_bins"]), np.nan, dtype=np.float32) if dist_head else None,
                             None, {}, [False] * n)
        if with_features:  # sized at the first batch
            result.features = np.full((n, 0), np.nan, dtype=np.float32)
        for start in range(0, n, self.batch_size):
            rows = self._open(examples[start : start + self.batch_size], start, self._decoder_pool(), result.errors)
            groups: dict[bool, list] = {True: [], False: []}
            for index, row in rows:
                groups[self._with_text is not None and _has_text(row, self.task)].append((index, row))
            for with_text, group in groups.items():
                if group:
                    self._score_group(group, with_text, result)
        return result

    def _score_group(self, group: list[tuple[int, dict[str, Any]]], with_text: bool, result: Predictions) -> None:
        """One forward pass over examples that all have text, or all have none; fills ``result`` in place."""
        try:
            indices, encoded = self._encode(group, with_text, result.errors)
        except (ValueError, TypeError, ImageLoadError) as err:
            result.errors[group[0][0]] = f"{err}"
            return
        if not indices:
            return
        out = {k: None if v is None else v.float().cpu().numpy() for k, v in self.forward(encoded).items()}
        result.scores[indices] = out["scores"]
        if result.distribution is not None and out["distribution"] is not None:
            result.distribution[indices] = out["distribution"]
        if out["class_logits"] is not None:
            if result.class_logits is None:
                result.class_logits = np.full((len(result.scores), *out["class_logits"].shape[1:]), np.nan,
                                              dtype=np.float32)
            result.class_logits[indices] = out["class_logits"]
        if result.features is not None:
            if result.features.shape[1] != out["features"].shape[1]:
                result.features = np.full((len(result.scores), out["features"].shape[1]), np.nan, dtype=np.float32)
            result.features[indices] = out["features"]
        for i in indices:
            result.used_text[i] = with_text

    def _decoder_pool(self) -> Optional[ThreadPoolExecutor]:
        """Threads decoding images, kept across calls (``close()`` ends them)."""
        if self.decode_workers > 0 and self._pool is None:
            self._pool = ThreadPoolExecutor(self.decode_workers, thread_name_prefix="aesmamba-decode")
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def predict(self, images: Any, *, comments: Any = None, users: Any = None,
                decimals: Optional[int] = None) -> list[dict[str, Any]]:
        """Result dicts (``status``, ``score``, ``heads``, ...) for one image or a list of images.

        ``comments`` / ``users``: one value for every image, or a list with one per image.
        """
        images = list(images) if isinstance(images, (list, tuple)) else [images]
        examples = examples_from(images, comments=comments, users=users)
        return self.predict_examples(examples).records(self.config, decimals)


def examples_from(images: Sequence[Any], comments: Any = None, users: Any = None) -> list[dict[str, Any]]:
    """Examples for :meth:`Predictor.predict_examples`: ``comments`` / ``users`` are one value for every image
    or a list with one per image."""
    examples = [{"image": image} for image in images]
    for key, value in (("comment", comments), ("user", users)):
        if value is None:
            continue
        values = list(value) if isinstance(value, (list, tuple)) else [value] * len(examples)
        if len(values) != len(examples):
            raise ValueError(f"{len(values)} {key}s for {len(examples)} images")
        for example, item in zip(examples, values):
            example[key] = item
    return examples


def _pad_cat(tensors: list[torch.Tensor]) -> torch.Tensor:
    """Concatenate token tensors of different lengths, right-padding with 0 (the pad id and mask value)."""
    length = max(t.shape[1] for t in tensors)
    return torch.cat([torch.nn.functional.pad(t, (0, length - t.shape[1])) for t in tensors])


def format_predictions(
    config: Any,
    scores: torch.Tensor,
    distribution: Optional[torch.Tensor] = None,
    class_logits: Optional[torch.Tensor] = None,
    decimals: Optional[int] = None,
    clamp: bool = False,
) -> list[dict[str, Any]]:
    """Batched model outputs → one plain dict per image.

    Each dict has ``score`` (the overall head), its ``score_range``/``higher_is_better``, ``scale_class``
    (argmax of the class branch, ``None`` when the head has none), ``out_of_range``, ``heads`` (the same for
    every head, the nine PARA attributes for F/P) and ``distribution`` (bins and probabilities of a distribution
    head, else ``None``).

    Out-of-range rule (stated once, here): a scalar head is an unconstrained regression, so its score can fall
    outside the head's ``score_range`` (e.g. 0.83 on PARA's 1–5 scale, from an undertrained model or an image
    unlike the training data). Scores are returned as the model gives them, never clamped (clamping would hide
    the problem and tie such images), and flagged ``out_of_range: true``; treat them with suspicion. A
    distribution head's expected score always lies inside its bins. ``clamp=True`` (opt-in) reports such a
    score at the nearest end of the range instead, still flagged ``out_of_range``.

    When the model carries a reference distribution (``config.score_reference``, see
    :mod:`aesmamba_hf.evaluation.calibration`), each head of the reference also gets ``percentile``: the share
    of the reference set, in percent, that scored at or below the raw score. Without one there is no
    ``percentile`` key.
    """

    def num(value: float) -> float:
        return round(float(value), decimals) if decimals is not None else float(value)

    scores = torch.as_tensor(scores).detach().float().cpu()
    if scores.ndim == 1:
        scores = scores[:, None]
    class_index = {}
    for head in config.heads:
        if head.get("num_scale_classes", 0):
            class_index[head["name"]] = len(class_index)
    classes = None
    if class_logits is not None and class_index:
        classes = torch.as_tensor(class_logits).detach().float().cpu().argmax(dim=-1)
    tables = percentile_tables(getattr(config, "score_reference", None))
    overall = overall_head_index(config)
    dist_head = next((h for h in config.heads if h["kind"] == "distribution"), None)
    results = []
    for i in range(scores.shape[0]):
        heads: dict[str, Any] = {}
        for j, head in enumerate(config.heads):
            name = head["name"]
            has_class = classes is not None and name in class_index
            low, high = (float(v) for v in head["score_range"])
            raw = float(scores[i, j])
            heads[name] = {
                "score": num(min(max(raw, low), high) if clamp else raw),
                "score_range": [low, high],
                "higher_is_better": bool(head.get("higher_is_better", True)),
                "scale_class": int(classes[i, class_index[name]]) if has_class else None,
                "out_of_range": not low <= raw <= high,
            }
            if name in tables:
                heads[name]["percentile"] = num(tables[name].of(raw))
        main = heads[config.heads[overall]["name"]]
        keys = ("score", "score_range", "higher_is_better", "scale_class", "out_of_range", "percentile")
        result: dict[str, Any] = {key: main[key] for key in keys if key in main}
        result["heads"] = heads
        result["distribution"] = None
        if distribution is not None and dist_head is not None:
            probabilities = torch.as_tensor(distribution)[i].detach().float().cpu().tolist()
            result["distribution"] = {"bins": [float(v) for v in dist_head["bin_values"]],
                                      "probabilities": [num(p) for p in probabilities]}
        results.append(result)
    return results


__all__ = ["MODEL_INPUTS", "Predictions", "Predictor", "examples_from", "format_predictions", "overall_head_index"]
