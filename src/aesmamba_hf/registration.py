"""Every registration with transformers, in one place; ``import aesmamba_hf`` runs it once.

* ``AutoConfig`` / ``AutoModel`` know the ``vmamba`` and ``aesmamba`` model types. One config maps to two
  classes; ``AutoModel`` picks the one named in ``config.architectures`` (the assessment model, with
  ``.scores``, for every published variant).
* ``AutoImageProcessor`` / ``AutoProcessor`` know the AesMamba processors (PIL backend: the torchvision
  backend is not required).
* ``pipeline("image-aesthetics")`` works without ``trust_remote_code``.
* Saved checkpoints carry the modeling files (``register_for_auto_class``) so they also load with
  ``trust_remote_code=True`` on machines without this package.
"""

from __future__ import annotations

from transformers import AutoConfig, AutoImageProcessor, AutoModel, AutoProcessor
from transformers.pipelines import PIPELINE_REGISTRY

from .configuration_aesmamba import AesMambaConfig
from .configuration_vmamba import VMambaConfig
from .image_processing_aesmamba import AesMambaImageProcessor
from .inference.pipeline import TASK_NAME, ImageAestheticsPipeline
from .modeling_aesmamba import AesMambaForAestheticAssessment, AesMambaModel
from .modeling_vmamba import VMambaModel
from .processing_aesmamba import AesMambaProcessor


def register_all() -> None:
    """Idempotent: safe to call again (``exist_ok=True`` everywhere)."""
    AutoConfig.register(VMambaConfig.model_type, VMambaConfig, exist_ok=True)
    AutoConfig.register(AesMambaConfig.model_type, AesMambaConfig, exist_ok=True)
    AutoModel.register(VMambaConfig, VMambaModel, exist_ok=True)
    AutoModel.register(AesMambaConfig, (AesMambaForAestheticAssessment, AesMambaModel), exist_ok=True)
    AutoImageProcessor.register(AesMambaConfig, image_processor_classes={"pil": AesMambaImageProcessor},
                                exist_ok=True)
    AutoProcessor.register(AesMambaConfig, AesMambaProcessor, exist_ok=True)

    VMambaConfig.register_for_auto_class()
    VMambaModel.register_for_auto_class("AutoModel")
    AesMambaConfig.register_for_auto_class()
    AesMambaForAestheticAssessment.register_for_auto_class("AutoModel")

    PIPELINE_REGISTRY.register_pipeline(TASK_NAME, pipeline_class=ImageAestheticsPipeline, pt_model=AutoModel,
                                        type="multimodal")


register_all()

__all__ = ["register_all"]
