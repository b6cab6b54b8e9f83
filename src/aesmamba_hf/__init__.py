"""aesmamba-hf: AesMamba universal image aesthetic assessment for the Hugging Face ecosystem.

Importing the package registers the ``vmamba`` and ``aesmamba`` model types with the transformers Auto
classes (and, once their modules are present, the processors and the ``image-aesthetics`` pipeline).
"""

from __future__ import annotations

from transformers import AutoConfig, AutoModel

from .building import build_model, variant_config
from .configuration_aesmamba import AesMambaConfig
from .configuration_vmamba import VMambaConfig
from .dataset_specs import DATASET_SPECS, PARA_ATTRIBUTE_NAMES, get_dataset_spec
from .image_processing_aesmamba import AesMambaImageProcessor, ImageLoadError, load_image
from .modeling_aesmamba import (
    AesMambaAssessmentOutput,
    AesMambaForAestheticAssessment,
    AesMambaModel,
    AesMambaModelOutput,
)
from .modeling_vmamba import VMambaModel
from .pipeline import ImageAestheticsPipeline, format_predictions  # registers the "image-aesthetics" task
from .processing_aesmamba import AesMambaProcessor
from .prompts import UserProfile, build_prompt, clean_comment
from .scorer import AestheticScorer, load_scorer
from .selective_scan import selective_scan_fn
from .variants import VARIANTS, get_variant, resolve_model

__version__ = "0.1.0"

AutoConfig.register(VMambaConfig.model_type, VMambaConfig, exist_ok=True)
AutoConfig.register(AesMambaConfig.model_type, AesMambaConfig, exist_ok=True)
AutoModel.register(VMambaConfig, VMambaModel, exist_ok=True)
# one config, two heads-or-not classes: AutoModel picks the one named in config.architectures
AutoModel.register(AesMambaConfig, (AesMambaForAestheticAssessment, AesMambaModel), exist_ok=True)

# saved checkpoints carry the modeling files so they also load with trust_remote_code=True
VMambaConfig.register_for_auto_class()
VMambaModel.register_for_auto_class("AutoModel")
AesMambaConfig.register_for_auto_class()
AesMambaForAestheticAssessment.register_for_auto_class("AutoModel")

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
    "VARIANTS",
    "get_variant",
    "resolve_model",
    "DATASET_SPECS",
    "PARA_ATTRIBUTE_NAMES",
    "get_dataset_spec",
]
