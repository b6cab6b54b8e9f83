"""The ``image-aesthetics`` pipeline (registered on ``import aesmamba_hf``; no ``trust_remote_code`` needed).

    >>> from transformers import pipeline
    >>> import aesmamba_hf  # registers the task
    >>> scorer = pipeline("image-aesthetics", model="aesmamba-demo-output/models/aesmamba-demo-v")
    >>> scorer("photo.jpg")["score"]

Inputs: a path, a PIL image, an array, a dict ``{"image": ..., "comment": ..., "user": ...}``, or a list of
those; ``comment=`` (M) and ``user=`` (P) apply to every input. ``batch_size=`` batches the model calls.
Preprocessing, the tokenizer and the text rules are those of :mod:`aesmamba_hf.inference.loading` and
:class:`~aesmamba_hf.inference.predictor.Predictor`, so the pipeline scores like ``aesmamba score``.
"""

from __future__ import annotations

import warnings
from typing import Any, Optional

import torch
from transformers import Pipeline

from .loading import LoaderWarning, has_random_weights, load_processor, random_weights_banner
from .predictor import Predictor, format_predictions

TASK_NAME = "image-aesthetics"


class ImageAestheticsPipeline(Pipeline):
    """Aesthetic scores of images with any AesMamba variant (V, M with ``comment=``, F, P with ``user=``)."""

    _load_processor = None  # optional: a folder without processor files gets the loader's default
    _load_image_processor = False
    _load_feature_extractor = False
    _load_tokenizer = False

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        config = self.model.config
        source = getattr(self.model, "name_or_path", "") or "the model"
        if self.processor is None or (config.uses_text and getattr(self.processor, "tokenizer", None) is None):
            self.processor = load_processor(source, config)
        if has_random_weights(config, source if source != "the model" else None):
            warnings.warn(random_weights_banner(source), LoaderWarning, stacklevel=2)
        self.predictor = Predictor(self.model, self.processor)
        # pad_collate_fn (batching) reads these two
        self.image_processor = self.processor.image_processor
        self.tokenizer = self.processor.tokenizer

    def __call__(self, inputs: Any, **kwargs: Any) -> Any:
        if isinstance(inputs, (list, tuple)) and len(inputs) == 0:
            return []
        return super().__call__(inputs, **kwargs)

    def _sanitize_parameters(self, comment: Any = None, user: Any = None, decimals: Optional[int] = None,
                             **kwargs: Any) -> tuple[dict, dict, dict]:
        if kwargs:
            raise TypeError(f"unexpected arguments for the image-aesthetics pipeline: {sorted(kwargs)}")
        preprocess: dict[str, Any] = {}
        if comment is not None:
            preprocess["comment"] = comment
        if user is not None:
            preprocess["user"] = user
        postprocess = {"decimals": decimals} if decimals is not None else {}
        return preprocess, {}, postprocess

    def preprocess(self, inputs: Any, comment: Any = None, user: Any = None) -> dict[str, torch.Tensor]:
        example = {"image": inputs, "comment": comment, "user": user}
        if isinstance(inputs, dict):
            if "image" not in inputs:
                raise ValueError(f"a dict input needs an 'image' key, got {sorted(inputs)}")
            example.update(inputs)
        if (example["comment"] is not None or example["user"] is not None) and not self.model.config.uses_text:
            raise ValueError(f"this {self.model.config.task} model takes no text; drop comment= / user=")
        return dict(self.predictor.encode(example))

    def _forward(self, model_inputs: dict[str, torch.Tensor]) -> dict[str, Optional[torch.Tensor]]:
        return self.predictor.forward(model_inputs)

    def postprocess(self, model_outputs: dict[str, Any], decimals: Optional[int] = None) -> dict[str, Any]:
        return format_predictions(self.model.config, model_outputs["scores"], model_outputs.get("distribution"),
                                  model_outputs.get("class_logits"), decimals=decimals)[0]


__all__ = ["ImageAestheticsPipeline", "TASK_NAME"]
