"""The ``image-aesthetics`` pipeline (registered on ``import aesmamba_hf``; no ``trust_remote_code`` needed).

    >>> from transformers import pipeline
    >>> import aesmamba_hf  # registers the task
    >>> scorer = pipeline("image-aesthetics", model="aesmamba-demo-output/models/aesmamba-demo-v")
    >>> scorer("photo.jpg")["score"]

Inputs: a path, a PIL image, an array/tensor, a dict ``{"image": ..., "comment": ..., "user": ...}``, or a list
of those; ``comment=`` (M) and ``user=`` (P) apply to every input. ``batch_size=`` batches the model calls.
Preprocessing, the tokenizer and the text rules are those of :mod:`aesmamba_hf.inference.loading` and
:class:`~aesmamba_hf.inference.predictor.Predictor`, so the pipeline scores like ``aesmamba score``.

Bad inputs:

* one input (not a list) that cannot be read raises :class:`~aesmamba_hf.image_processing_aesmamba.ImageLoadError`
  naming the file and the reason;
* in a **list**, such an input becomes ``{"status": "error", "error": reason, "input": index}`` (plus ``path``
  for a path) and every other input is scored (``"status": "ok"``); the list goes through the one batched
  predictor, so the results equal those of one-by-one calls;
* an input of a type that is no image (a number, ``None``, bytes, a dict without ``"image"``) raises
  ``TypeError`` naming its position and the accepted types, before anything is scored;
* a URL is not fetched: download the image first.

Videos (a path with a video extension, alone or in a list with images): frames are sampled (``frames=8`` by
default, or ``every_seconds=``), scored and aggregated (``aggregate="mean"``, ``"median"`` or
``"trimmed_mean"``); the result is the aggregate record with the frames' records under ``frames`` (see
:mod:`aesmamba_hf.inference.video`). A single unreadable video raises :class:`VideoLoadError`; in a list it
becomes an error record.

Scores are the heads' raw outputs (see :func:`~aesmamba_hf.inference.predictor.format_predictions`): a value
outside a head's ``score_range`` is returned as it is and flagged ``out_of_range: true`` (``clamp=True``: moved
to the nearest end of the range, still flagged). A model with a score reference also returns ``percentile``.
"""

from __future__ import annotations

import os
import warnings
from typing import Any, Optional

import numpy as np
import torch
from PIL import Image
from transformers import Pipeline

from .files import is_video_path
from .loading import (
    LoaderWarning,
    has_random_weights,
    load_processor,
    load_processor_for_config,
    random_weights_banner,
    with_adapter,
)
from .predictor import Predictor, format_predictions
from .video import FrameSampling, VideoLoadError, predict_media

TASK_NAME = "image-aesthetics"
ACCEPTED_INPUTS = ("a file path (str or os.PathLike)", "a PIL image", "a numpy array or torch tensor (H×W×C or C×H×W)",
                   'a dict with an "image" key (and "comment" / "user")')


def check_input(value: Any, index: Optional[int] = None) -> None:
    """Raise ``TypeError`` for a pipeline input that is no image at all (a typo, not a bad file)."""
    image = value.get("image") if isinstance(value, dict) else value
    if isinstance(value, dict) and "image" not in value:
        problem = f"a dict without an 'image' key (keys {sorted(map(str, value))})"
    elif isinstance(image, (str, os.PathLike, Image.Image, np.ndarray, torch.Tensor)):
        return
    else:
        problem = f"of type {type(image).__name__} ({image!r:.40})"
    where = "the input" if index is None else f"input {index}"
    raise TypeError(f"image-aesthetics pipeline: {where} is {problem}; accepted: {'; '.join(ACCEPTED_INPUTS)}, "
                    "or a list of those")


class ImageAestheticsPipeline(Pipeline):
    """Aesthetic scores of images with any AesMamba variant (V, M with ``comment=``, F, P with ``user=``)."""

    _load_processor = None  # optional: a folder without processor files gets the loader's default
    _load_image_processor = False
    _load_feature_extractor = False
    _load_tokenizer = False

    def __init__(self, *args: Any, adapter: Any = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        if adapter is not None:  # a per-user PEFT adapter folder (aesmamba personalize), merged into the model
            self.model = with_adapter(self.model, adapter)
        config = self.model.config
        source = getattr(self.model, "name_or_path", "") or None  # None: a model built in memory
        if self.processor is None or (config.uses_text and getattr(self.processor, "tokenizer", None) is None):
            self.processor = load_processor(source, config) if source else load_processor_for_config(config)
        if has_random_weights(config, source if source and os.path.isdir(source) else None):
            warnings.warn(random_weights_banner(source or "the model"), LoaderWarning, stacklevel=2)
        self.predictor = Predictor(self.model, self.processor)
        # pad_collate_fn (batching) reads these two
        self.image_processor = self.processor.image_processor
        self.tokenizer = self.processor.tokenizer

    def __call__(self, inputs: Any, **kwargs: Any) -> Any:
        sampling = _frame_sampling(kwargs)  # frames= / every_seconds= / aggregate= (videos)
        if isinstance(inputs, (list, tuple)):
            return self._score_list(list(inputs), sampling=sampling, **kwargs)
        if is_video_path(inputs.get("image") if isinstance(inputs, dict) else inputs):
            record = self._score_list([inputs], sampling=sampling, **kwargs)[0]
            if record["status"] == "error":
                raise VideoLoadError(record.get("path"), record["error"])
            return record
        if not _is_stream(inputs):  # generators and datasets stream through transformers' own loop
            check_input(inputs)
        return super().__call__(inputs, **kwargs)

    def _score_list(self, items: list[Any], batch_size: Optional[int] = None, num_workers: Optional[int] = None,
                    sampling: Optional[FrameSampling] = None, **kwargs: Any) -> list[dict[str, Any]]:
        """A list through the one batched predictor: a bad item becomes an error record, the rest is scored."""
        for index, item in enumerate(items):
            check_input(item, index)
        preprocess, _, postprocess = self._sanitize_parameters(**kwargs)
        preprocess = {**self._preprocess_params, **preprocess}
        postprocess = {**self._postprocess_params, **postprocess}
        examples = [self._example(item, **preprocess) for item in items]
        size = batch_size or self._batch_size or 1
        predictor = Predictor(self.model, self.processor, batch_size=size, decode_workers=num_workers or 0)
        records = predict_media(predictor, examples, sampling, decimals=postprocess.get("decimals"),
                                clamp=postprocess.get("clamp", False))
        for index, (item, record) in enumerate(zip(items, records)):
            if record["status"] == "error":
                record["input"] = index
                image = item.get("image") if isinstance(item, dict) else item
                if isinstance(image, (str, os.PathLike)):
                    record["path"] = os.fspath(image)
        return records

    def _sanitize_parameters(self, comment: Any = None, user: Any = None, decimals: Optional[int] = None,
                             clamp: Optional[bool] = None, **kwargs: Any) -> tuple[dict, dict, dict]:
        if kwargs:
            raise TypeError(f"unexpected arguments for the image-aesthetics pipeline: {sorted(kwargs)}")
        preprocess: dict[str, Any] = {}
        if comment is not None:
            preprocess["comment"] = comment
        if user is not None:
            preprocess["user"] = user
        postprocess = {"decimals": decimals} if decimals is not None else {}
        if clamp is not None:
            postprocess["clamp"] = bool(clamp)
        return preprocess, {}, postprocess

    def _example(self, inputs: Any, comment: Any = None, user: Any = None) -> dict[str, Any]:
        example = {"image": inputs, "comment": comment, "user": user}
        if isinstance(inputs, dict):
            check_input(inputs)
            example.update(inputs)
        if (example["comment"] is not None or example["user"] is not None) and not self.model.config.uses_text:
            raise ValueError(f"this {self.model.config.task} model takes no text; drop comment= / user=")
        return example

    def preprocess(self, inputs: Any, comment: Any = None, user: Any = None) -> dict[str, torch.Tensor]:
        return dict(self.predictor.encode(self._example(inputs, comment, user)))

    def _forward(self, model_inputs: dict[str, torch.Tensor]) -> dict[str, Optional[torch.Tensor]]:
        return self.predictor.forward(model_inputs)

    def postprocess(self, model_outputs: dict[str, Any], decimals: Optional[int] = None,
                    clamp: bool = False) -> dict[str, Any]:
        record = format_predictions(self.model.config, model_outputs["scores"], model_outputs.get("distribution"),
                                    model_outputs.get("class_logits"), decimals=decimals, clamp=clamp)[0]
        return {"status": "ok", **record}


def _frame_sampling(kwargs: dict[str, Any]) -> Optional[FrameSampling]:
    """Pop the video arguments (``frames``, ``every_seconds``, ``aggregate``) from a call's keyword arguments."""
    given = {key: kwargs.pop(key) for key in ("frames", "every_seconds", "aggregate") if key in kwargs}
    return FrameSampling(**given) if given else None


def _is_stream(inputs: Any) -> bool:
    from collections.abc import Iterator

    return isinstance(inputs, Iterator) or type(inputs).__name__ in ("Dataset", "KeyDataset", "IterableDataset")


__all__ = ["ACCEPTED_INPUTS", "ImageAestheticsPipeline", "TASK_NAME", "check_input"]
