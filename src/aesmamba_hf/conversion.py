"""Load the authors' checkpoints (spec §2.5, §11) into this package's classes.

* ``convert_official_state_dict`` maps a flat AesMamba task checkpoint (V, M, F or P) onto
  ``AesMambaForAestheticAssessment``.
* ``convert_vmamba_state_dict`` maps a VMamba ImageNet checkpoint (old ``ln_1/self_attention`` or new
  ``norm/op`` names, ``{'model': ...}``-wrapped or flat) onto ``VMambaModel``; the classifier is dropped.

Conversion is strict: a key that maps nowhere, a missing key or a shape mismatch is an error listing them.
Files are read with ``torch.load(weights_only=True)`` only.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Optional, Union

import torch

from .configuration_aesmamba import AesMambaConfig
from .configuration_vmamba import VMambaConfig

# keys the original training never used and our model does not have
_ALWAYS_DROPPED = (re.compile(r"(^|\.)embeddings\.position_ids$"), re.compile(r"(^|\.)embeddings\.token_type_ids$"))

# VMamba encoder: (pattern, replacement) applied to the key after its prefix is removed
_VMAMBA_RULES = (
    (r"^patch_embed\.(proj|0)\.", "patch_embed.proj."),
    (r"^patch_embed\.(norm|2)\.", "patch_embed.norm."),
    (r"^(layers\.\d+\.blocks\.\d+)\.(ln_1|norm)\.", r"\1.norm."),
    (r"^(layers\.\d+\.blocks\.\d+)\.(self_attention|op)\.", r"\1.ss2d."),
    (r"^(layers\.\d+\.downsample\.(reduction|norm)\.)", r"\1"),
    (r"^(classifier\.)?norm\.", "norm."),
)
_VMAMBA_CLASSIFIER = re.compile(r"^(classifier\.)?head\.")

# one MBA head: official sub-module → ours
_HEAD_RULES = (
    (r"^adatper\.0\.", "adapter.down."),
    (r"^adatper\.2\.", "adapter.up."),
    (r"^heads\.0\.", "score.fc1."),
    (r"^heads\.2\.", "score.fc2."),
    (r"^classes_heads\.0\.", "scale_class.fc1."),
    (r"^classes_heads\.2\.", "scale_class.fc2."),
)

_FUSION_RULES = (
    (r"^cross_attention\.to_q\.", "to_q."),
    (r"^cross_attention\.to_kv\.", "to_kv."),
    (r"^cross_attention\.to_out\.0\.", "to_out."),
    (r"^norm_attn_img\.", "norm_image."),
    (r"^norm_attn_text\.", "norm_text."),
    (r"^ffn\.fc1\.", "ffn_in."),
    (r"^ffn\.fc2\.", "ffn_out."),
    (r"^norm_ffn\.", "norm_ffn."),
)


class CheckpointConversionError(ValueError):
    """Raised when an official checkpoint does not match the target configuration."""


def load_checkpoint_file(path: Union[str, os.PathLike]) -> dict[str, torch.Tensor]:
    """Read a ``.pth``/``.bin`` (``weights_only=True``) or ``.safetensors`` file into a flat state dict."""
    path = os.fspath(path)
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - re-raised with the file name
        raise CheckpointConversionError(f"{path}: cannot be read as a weights-only torch checkpoint: {err}") from err
    if isinstance(obj, Mapping) and "model" in obj and isinstance(obj["model"], Mapping):
        obj = obj["model"]
    if not isinstance(obj, Mapping):
        raise CheckpointConversionError(f"{path}: expected a state dict, got {type(obj).__name__}")
    return dict(obj)


def _apply_rules(key: str, rules) -> Optional[str]:
    for pattern, replacement in rules:
        new, n = re.subn(pattern, replacement, key, count=1)
        if n:
            return new
    return None


def _map_vmamba_key(key: str) -> Optional[str]:
    """Our name for an encoder key, "" for the dropped classifier, None for a key that maps nowhere."""
    if _VMAMBA_CLASSIFIER.match(key):
        return ""
    return _apply_rules(key, _VMAMBA_RULES)


def _check_against(model_state: Mapping[str, torch.Tensor], converted: dict[str, torch.Tensor],
                   unmapped: list[str], what: str) -> dict[str, torch.Tensor]:
    missing = sorted(set(model_state) - set(converted))
    unexpected = sorted(set(converted) - set(model_state)) + sorted(unmapped)
    mismatched = sorted(
        f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(model_state[k].shape)}"
        for k, v in converted.items() if k in model_state and tuple(v.shape) != tuple(model_state[k].shape)
    )
    if missing or unexpected or mismatched:
        lines = [f"{what}: the checkpoint does not match the configuration"]
        for title, keys in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", mismatched)):
            if keys:
                lines.append(f"  {title} ({len(keys)}): " + ", ".join(keys[:20]) + (" ..." if len(keys) > 20 else ""))
        raise CheckpointConversionError("\n".join(lines))
    return converted


def _expected_state(model_cls, config) -> dict[str, torch.Tensor]:
    with torch.device("meta"):
        return model_cls(config).state_dict()


def convert_vmamba_state_dict(state_dict: Mapping[str, torch.Tensor],
                              config: Optional[VMambaConfig] = None) -> dict[str, torch.Tensor]:
    """VMamba ImageNet checkpoint (either naming, wrapped or flat) → ``VMambaModel`` state dict."""
    from .modeling_vmamba import VMambaModel

    if "model" in state_dict and isinstance(state_dict["model"], Mapping):
        state_dict = state_dict["model"]
    converted, unmapped = {}, []
    for key, value in state_dict.items():
        if any(p.search(key) for p in _ALWAYS_DROPPED):
            continue
        mapped = _map_vmamba_key(key)
        if mapped is None:
            unmapped.append(key)
        elif mapped:
            converted[mapped] = value
    return _check_against(_expected_state(VMambaModel, config or VMambaConfig()), converted, unmapped, "VMamba")


def _official_layout(config: AesMambaConfig) -> tuple[str, str]:
    """(encoder prefix, head container prefix) of the released task checkpoints (spec §1, §11)."""
    if config.task in ("V", "M"):
        return "img_model.", "pred_head."
    return "img_feature.", "multi_attr_pred_head."


def convert_official_state_dict(state_dict: Mapping[str, torch.Tensor],
                                config: AesMambaConfig) -> dict[str, torch.Tensor]:
    """Flat AesMamba task checkpoint → ``AesMambaForAestheticAssessment`` state dict for ``config``.

    BERT's pooler is kept only when ``config.text_add_pooling_layer`` is set (it is never used).
    """
    from .modeling_aesmamba import AesMambaForAestheticAssessment

    if "model" in state_dict and isinstance(state_dict["model"], Mapping):
        state_dict = state_dict["model"]
    encoder_prefix, head_prefix = _official_layout(config)
    head_names = set(config.head_names)
    converted, unmapped = {}, []
    for key, value in state_dict.items():
        if any(p.search(key) for p in _ALWAYS_DROPPED):
            continue
        target = None
        if key.startswith(encoder_prefix):
            sub = _map_vmamba_key(key[len(encoder_prefix):])
            target = f"aesmamba.vision_model.{sub}" if sub else None
        elif key.startswith(head_prefix):
            match = re.match(r"^(\w+?)_head\.(.+)$", key[len(head_prefix):])
            if match and match.group(1) in head_names:
                sub = _apply_rules(match.group(2), _HEAD_RULES)
                target = f"heads.{match.group(1)}.{sub}" if sub else None
        elif key.startswith("text_backbone.bert_model."):
            sub = key[len("text_backbone.bert_model."):]
            if sub.startswith("pooler.") and not config.text_add_pooling_layer:
                continue
            target = f"aesmamba.text_model.{sub}"
        elif key.startswith("attrInject."):
            sub = _apply_rules(key[len("attrInject."):], _FUSION_RULES)
            target = f"aesmamba.fusion.{sub}" if sub else None
        if target is None:
            unmapped.append(key)
        else:
            converted[target] = value
    what = f"AesMamba-{config.task} ({config.dataset})"
    return _check_against(_expected_state(AesMambaForAestheticAssessment, config), converted, unmapped, what)


def load_official_checkpoint(path: Union[str, os.PathLike], config: AesMambaConfig):
    """Build ``AesMambaForAestheticAssessment(config)`` and load an official ``.pth`` into it strictly."""
    from .modeling_aesmamba import AesMambaForAestheticAssessment

    state = convert_official_state_dict(load_checkpoint_file(path), config)
    model = AesMambaForAestheticAssessment(config)
    model.load_state_dict(state, strict=True)
    return model.eval()


def load_vmamba_checkpoint(path: Union[str, os.PathLike], config: Optional[VMambaConfig] = None):
    """Build ``VMambaModel`` and load a VMamba ImageNet checkpoint (e.g. ``vssmtiny_dp01_ckpt_epoch_292.pth``)."""
    from .modeling_vmamba import VMambaModel

    config = config or VMambaConfig()
    state = convert_vmamba_state_dict(load_checkpoint_file(path), config)
    model = VMambaModel(config)
    model.load_state_dict(state, strict=True)
    return model.eval()


__all__ = [
    "CheckpointConversionError",
    "convert_official_state_dict",
    "convert_vmamba_state_dict",
    "load_checkpoint_file",
    "load_official_checkpoint",
    "load_vmamba_checkpoint",
]
