"""Inference: the one loader (:mod:`.loading`), the one batched predictor (:mod:`.predictor`), and the entry
points built on them: the ``image-aesthetics`` pipeline, the pyiqa-style scorer, and image-folder scoring."""

from .loading import (
    LoadedModel,
    LoaderWarning,
    ModelLoadError,
    RandomWeightsError,
    default_processor_for_config,
    has_random_weights,
    load_model,
    load_processor,
    pick_device,
)
from .predictor import Predictions, Predictor, examples_from, format_predictions, overall_head_index

__all__ = [
    "LoadedModel",
    "LoaderWarning",
    "ModelLoadError",
    "Predictions",
    "Predictor",
    "RandomWeightsError",
    "default_processor_for_config",
    "examples_from",
    "format_predictions",
    "has_random_weights",
    "load_model",
    "load_processor",
    "overall_head_index",
    "pick_device",
]
