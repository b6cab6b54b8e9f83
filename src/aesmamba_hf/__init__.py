"""aesmamba-hf: AesMamba universal image aesthetic assessment for the Hugging Face ecosystem.

Importing the package registers the ``vmamba`` and ``aesmamba`` model types, the processors and the
``image-aesthetics`` pipeline with transformers (all in :mod:`aesmamba_hf.registration`).
"""

from __future__ import annotations

from . import registration  # noqa: F401  (registers the model types, processors and the pipeline)
from .building import build_model
from .configuration_aesmamba import AesMambaConfig
from .configuration_vmamba import VMambaConfig
from .dataset_specs import DATASET_SPECS, PARA_ATTRIBUTE_NAMES, get_dataset_spec
from .image_processing_aesmamba import AesMambaImageProcessor, ImageLoadError, load_image
from .inference import (
    LoadedModel,
    ModelLoadError,
    Predictor,
    RandomWeightsError,
    format_predictions,
    load_model,
)
from .inference.pipeline import ImageAestheticsPipeline
from .inference.scorer import AestheticScorer, load_scorer
from .modeling_aesmamba import (
    AesMambaAssessmentOutput,
    AesMambaForAestheticAssessment,
    AesMambaModel,
    AesMambaModelOutput,
)
from .modeling_vmamba import VMambaModel
from .processing_aesmamba import AesMambaProcessor
from .prompts import UserProfile, build_prompt, clean_comment
from .registry import VARIANTS, get_variant, list_variants, resolve_model, variant_config
from .reward import AestheticReward, load_reward
from .selective_scan import selective_scan_fn
from .tasks import Task

__version__ = "0.1.0"

__all__ = [
    "AesMambaConfig",
    "AesMambaModel",
    "AesMambaForAestheticAssessment",
    "AesMambaModelOutput",
    "AesMambaAssessmentOutput",
    "VMambaConfig",
    "VMambaModel",
    "selective_scan_fn",
    "build_model",
    "variant_config",
    "AesMambaImageProcessor",
    "AesMambaProcessor",
    "ImageLoadError",
    "load_image",
    "UserProfile",
    "build_prompt",
    "clean_comment",
    "ImageAestheticsPipeline",
    "format_predictions",
    "AestheticScorer",
    "load_scorer",
    "AestheticReward",
    "load_reward",
    "VARIANTS",
    "get_variant",
    "resolve_model",
    "DATASET_SPECS",
    "PARA_ATTRIBUTE_NAMES",
    "get_dataset_spec",
    "list_variants",
    "load_model",
    "LoadedModel",
    "ModelLoadError",
    "RandomWeightsError",
    "Predictor",
    "Task",
]
