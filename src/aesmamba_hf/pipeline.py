"""The ``image-aesthetics`` pipeline (registered on import; no ``trust_remote_code`` needed).

    >>> from transformers import pipeline
    >>> import aesmamba_hf  # registers the task
    >>> scorer = pipeline("image-aesthetics", model="aesmamba-v-ava")
    >>> scorer("photo.jpg")
    {'score': 5.42, 'score_range': [1.0, 10.0], 'higher_is_better': True, 'scale_class': 4,
     'heads': {'aesthetic': {...}}, 'distribution': {'bins': [1.0, ..., 10.0], 'probabilities': [...]}}

Inputs: a path, a PIL image, an array, a dict ``{"image": ..., "comment": ..., "user": ...}``, or a list of
those; ``comment=`` (M) and ``user=`` (P) apply to every input. ``batch_size=`` batches the model calls;
batched results equal one-by-one results when the model masks text padding (``mask_text_padding=True``, the
default; the released behaviour ``False`` lets the other texts of a batch change a prediction, spec §13.5).
An M/P model given no comment/user scores from the image alone (the pooled visual feature).
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from transformers import AutoModel, Pipeline
from transformers.pipelines import PIPELINE_REGISTRY

from .image_processing_aesmamba import AesMambaImageProcessor, load_image
from .processing_aesmamba import AesMambaProcessor

TASK_NAME = "image-aesthetics"


def default_processor_for_config(config: Any, tokenizer: Any = None) -> AesMambaProcessor:
    """The processor a checkpoint without preprocessing files should use: the dataset's normalization
    (AADB has its own statistics), comment cleaning for M."""
    try:
        image_processor = AesMambaImageProcessor.for_dataset(config.dataset)
    except KeyError:  # a custom dataset: CLIP statistics
        image_processor = AesMambaImageProcessor()
    return AesMambaProcessor(image_processor=image_processor, tokenizer=tokenizer,
                             clean_comments=getattr(config, "task", None) == "M")


def overall_head_index(config: Any) -> int:
    """The head reported as ``score``: ``aesthetic`` if present, otherwise the first head."""
    names = [h["name"] for h in config.heads]
    return names.index("aesthetic") if "aesthetic" in names else 0


def format_predictions(
    config: Any,
    scores: torch.Tensor,
    distribution: Optional[torch.Tensor] = None,
    class_logits: Optional[torch.Tensor] = None,
    decimals: Optional[int] = None,
) -> list[dict[str, Any]]:
    """Turn batched model outputs into one plain dict per image (used by the pipeline, the CLI and the scorer).

    Each dict has ``score`` (the overall head), its ``score_range``/``higher_is_better``, ``scale_class``
    (argmax of the class branch, ``None`` when the head has none), ``heads`` (the same for every head, the nine
    PARA attributes for F/P) and ``distribution`` (bins and probabilities of a distribution head, else ``None``).
    """

    def num(value: float) -> float:
        return round(float(value), decimals) if decimals is not None else float(value)

    scores = scores.detach().float().cpu()
    if scores.ndim == 1:
        scores = scores[:, None]
    class_index = {}
    for head in config.heads:
        if head.get("num_scale_classes", 0):
            class_index[head["name"]] = len(class_index)
    classes = None
    if class_logits is not None and class_index:
        classes = class_logits.detach().float().cpu().argmax(dim=-1)  # (B, heads with a class branch)
    overall = overall_head_index(config)
    results = []
    for i in range(scores.shape[0]):
        heads: dict[str, Any] = {}
        for j, head in enumerate(config.heads):
            name = head["name"]
            heads[name] = {
                "score": num(scores[i, j]),
                "score_range": [float(v) for v in head["score_range"]],
                "higher_is_better": bool(head.get("higher_is_better", True)),
                "scale_class": int(classes[i, class_index[name]]) if classes is not None and name in class_index
                else None,
            }
        main = heads[config.heads[overall]["name"]]
        result: dict[str, Any] = {
            "score": main["score"],
            "score_range": main["score_range"],
            "higher_is_better": main["higher_is_better"],
            "scale_class": main["scale_class"],
            "heads": heads,
            "distribution": None,
        }
        dist_head = next((h for h in config.heads if h["kind"] == "distribution"), None)
        if distribution is not None and dist_head is not None:
            result["distribution"] = {
                "bins": [float(v) for v in dist_head["bin_values"]],
                "probabilities": [num(p) for p in distribution[i].detach().float().cpu().tolist()],
            }
        results.append(result)
    return results


class ImageAestheticsPipeline(Pipeline):
    """Aesthetic scores of images with any AesMamba variant (V, M with ``comment=``, F, P with ``user=``)."""

    _load_processor = None  # optional: a bare checkpoint gets default_processor_for_config
    _load_image_processor = False
    _load_feature_extractor = False
    _load_tokenizer = False

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        if self.processor is None:
            self.processor = default_processor_for_config(self.model.config, tokenizer=self.tokenizer)
        # pad_collate_fn (batching) reads these two
        self.image_processor = self.processor.image_processor
        self.tokenizer = self.processor.tokenizer

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
        image = inputs
        if isinstance(inputs, dict):
            if "image" not in inputs:
                raise ValueError(f"a dict input needs an 'image' key, got {sorted(inputs)}")
            image = inputs["image"]
            comment = inputs.get("comment", comment)
            user = inputs.get("user", user)
        if isinstance(image, (str, bytes)) or hasattr(image, "__fspath__"):
            image = load_image(image)
        if (comment is not None or user is not None) and not self.model.config.uses_text:
            raise ValueError(f"this {self.model.config.task} model takes no text; drop comment= / user=")
        encoded = self.processor(images=[image], comments=None if comment is None else [comment],
                                 users=None if user is None else [user], return_tensors="pt")
        return dict(encoded)

    def _forward(self, model_inputs: dict[str, torch.Tensor]) -> dict[str, Optional[torch.Tensor]]:
        outputs = self.model(**model_inputs)
        return {"scores": outputs.scores, "distribution": outputs.distribution,
                "class_logits": outputs.class_logits}

    def postprocess(self, model_outputs: dict[str, Any], decimals: Optional[int] = None) -> dict[str, Any]:
        return format_predictions(self.model.config, model_outputs["scores"], model_outputs.get("distribution"),
                                  model_outputs.get("class_logits"), decimals=decimals)[0]


PIPELINE_REGISTRY.register_pipeline(TASK_NAME, pipeline_class=ImageAestheticsPipeline, pt_model=AutoModel,
                                    type="multimodal")

__all__ = ["ImageAestheticsPipeline", "TASK_NAME", "default_processor_for_config", "format_predictions"]
