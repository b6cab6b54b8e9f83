"""Old import path of the ``image-aesthetics`` pipeline; it lives in :mod:`aesmamba_hf.inference.pipeline`."""

from .inference.loading import default_processor_for_config
from .inference.pipeline import TASK_NAME, ImageAestheticsPipeline
from .inference.predictor import format_predictions, overall_head_index

__all__ = ["ImageAestheticsPipeline", "TASK_NAME", "default_processor_for_config", "format_predictions",
           "overall_head_index"]
