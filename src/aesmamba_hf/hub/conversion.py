"""Load the authors' checkpoints into this package's classes.

* ``convert_official_state_dict`` maps a flat AesMamba task checkpoint (V, M, F or P) onto
  ``AesMambaForAestheticAssessment``.
* ``convert_vmamba_state_dict`` maps a VMamba ImageNet checkpoint (old ``ln_1/self_attention`` or new
  ``norm/op`` names, ``{'model': ...}``-wrapped or flat) onto ``VMambaModel``; the classifier is dropped.

Conversion is strict: a key that maps nowhere, a missing key or a shape mismatch is an error listing them.
BERT's pooler (in the M/P checkpoints, never used by the model) is checked like every other key and then
dropped unless the configuration keeps it. Files are read with ``torch.load(weights_only=True)`` only: a
checkpoint that pickles Python objects besides tensors is refused with an explanation, never unpickled.
"""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Mapping
from typing import Optional, Union

import torch

from ..configuration_aesmamba import AesMambaConfig
from ..configuration_vmamba import VMambaConfig

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


StateDict = Mapping[str, torch.Tensor]
Checkpoint = Union[str, os.PathLike, StateDict]

# torch's weights_only error names the class it refused (or the pickle opcode it cannot run); only that
# part is repeated, since the rest of its message suggests weights_only=False.
_UNSUPPORTED_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")
_UNPICKLER_DETAIL = re.compile(r"WeightsUnpickler error:\s*([^\n]+)")


def _weights_only_message(path: str, err: Exception) -> str:
    text = str(err)
    found = _UNSUPPORTED_GLOBAL.search(text)
    if found:
        problem = f"stores pickled Python objects besides tensors (it contains {found.group(1)})"
    else:
        detail = _UNPICKLER_DETAIL.search(text)
        problem = "is not a plain state dict of tensors" + (f" ({detail.group(1).strip()})" if detail else "")
    return (
        f"{path}: the checkpoint {problem}. Checkpoints are read with torch.load(weights_only=True) only, "
        "because unpickling other objects can run arbitrary code. If you trust the file, re-save its tensors "
        "as a plain state dict from a script of your own (torch.save(state_dict, 'weights.pth') or "
        "safetensors.torch.save_file(state_dict, 'weights.safetensors')) and pass that file, or pass the "
        "state dict itself."
    )


def load_checkpoint_file(path: Union[str, os.PathLike]) -> dict[str, torch.Tensor]:
    """Read a ``.pth``/``.bin`` (``weights_only=True``) or ``.safetensors`` file into a flat state dict.

    A ``{"model": state_dict, ...}`` wrapper (VMamba's releases) is unwrapped.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such checkpoint file")
    if path.endswith(".safetensors"):
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(path)
        except SafetensorError as err:
            raise CheckpointConversionError(f"{path}: not a readable safetensors file ({err})") from err
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:  # what weights_only raises for anything beyond tensors and containers
        raise CheckpointConversionError(_weights_only_message(path, err)) from err
    except Exception as err:  # noqa: BLE001 - torch raises anything from KeyError to RuntimeError here
        raise CheckpointConversionError(
            f"{path}: not a readable torch checkpoint ({type(err).__name__}: {err}); expected a file written "
            "by torch.save or a .safetensors file"
        ) from err
    if not isinstance(obj, Mapping):
        raise CheckpointConversionError(f"{path}: expected a state dict, got {type(obj).__name__}")
    return _unwrap(obj)


def _read_checkpoint(checkpoint: Checkpoint) -> dict[str, torch.Tensor]:
    """A flat state dict from a file path or an in-memory mapping (``{"model": ...}`` unwrapped)."""
    if isinstance(checkpoint, (str, os.PathLike)):
        state = load_checkpoint_file(checkpoint)
        where = os.fspath(checkpoint)
    elif isinstance(checkpoint, Mapping):
        state = _unwrap(checkpoint)
        where = "the state dict"
    else:
        raise TypeError(
            f"expected a checkpoint path or a state dict (a mapping of tensors), got {type(checkpoint).__name__}"
        )
    not_tensors = sorted(str(k) for k, v in state.items() if not isinstance(v, torch.Tensor))
    if not_tensors:
        raise TypeError(
            f"{where}: a state dict maps names to tensors; not tensors: " + ", ".join(not_tensors[:10])
            + (" ..." if len(not_tensors) > 10 else "")
        )
    return state


def _unwrap(state_dict: Mapping) -> dict:
    """VMamba-style training checkpoints keep the weights under ``"model"``."""
    if "model" in state_dict and isinstance(state_dict["model"], Mapping):
        state_dict = state_dict["model"]
    return dict(state_dict)


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
                   unmapped: list[str], what: str,
                   optional: Optional[Mapping[str, tuple[int, ...]]] = None) -> dict[str, torch.Tensor]:
    """``converted`` if it fits ``model_state`` exactly, else an error naming every offending key.

    ``optional``: keys (with their shapes) the checkpoint may carry but the model does not hold, such as an
    unused pooler. They are checked like the others (all or none of them, right shapes) and then dropped.
    """
    optional = {k: v for k, v in (optional or {}).items() if k not in model_state}
    present_optional = set(converted) & set(optional)
    expected_shapes = {k: tuple(v.shape) for k, v in model_state.items()}
    expected_shapes.update({k: tuple(optional[k]) for k in present_optional})
    missing = sorted(set(model_state) - set(converted))
    if present_optional:  # half a module is a damaged checkpoint, even where the model would not use it
        missing += sorted(f"{k} (not used by this configuration)" for k in set(optional) - present_optional)
    unexpected = sorted(set(converted) - set(expected_shapes)) + sorted(unmapped)
    mismatched = sorted(
        f"{k}: checkpoint {tuple(v.shape)} vs model {expected_shapes[k]}"
        for k, v in converted.items() if k in expected_shapes and tuple(v.shape) != expected_shapes[k]
    )
    if missing or unexpected or mismatched:
        lines = [f"{what}: the checkpoint does not match the configuration"]
        for title, keys in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", mismatched)):
            if keys:
                lines.append(f"  {title} ({len(keys)}): " + ", ".join(keys[:20]) + (" ..." if len(keys) > 20 else ""))
        raise CheckpointConversionError("\n".join(lines))
    return {k: v for k, v in converted.items() if k in model_state}


def _expected_state(model_cls, config) -> dict[str, torch.Tensor]:
    with torch.device("meta"):
        return model_cls(config).state_dict()


def convert_vmamba_state_dict(state_dict: Mapping[str, torch.Tensor],
                              config: Optional[VMambaConfig] = None) -> dict[str, torch.Tensor]:
    """VMamba ImageNet checkpoint (either naming, wrapped or flat) → ``VMambaModel`` state dict."""
    from ..modeling_vmamba import VMambaModel

    state_dict = _unwrap(state_dict)
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
    """(encoder prefix, head container prefix) of the released task checkpoints (flat state dicts)."""
    if config.task in ("V", "M"):
        return "img_model.", "pred_head."
    return "img_feature.", "multi_attr_pred_head."


def convert_official_state_dict(state_dict: Mapping[str, torch.Tensor],
                                config: AesMambaConfig) -> dict[str, torch.Tensor]:
    """Flat AesMamba task checkpoint → ``AesMambaForAestheticAssessment`` state dict for ``config``.

    BERT's pooler (``text_backbone.bert_model.pooler.dense.*``, in every released M/P checkpoint) is kept
    when ``config.text_add_pooling_layer`` is set, and then required. Otherwise it is optional: when present
    it must be complete and of the right shapes, and is dropped (the model never uses it).
    """
    from ..modeling_aesmamba import AesMambaForAestheticAssessment

    state_dict = _unwrap(state_dict)
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
            target = f"aesmamba.text_model.{key[len('text_backbone.bert_model.'):]}"
        elif key.startswith("attrInject."):
            sub = _apply_rules(key[len("attrInject."):], _FUSION_RULES)
            target = f"aesmamba.fusion.{sub}" if sub else None
        if target is None:
            unmapped.append(key)
        else:
            converted[target] = value
    what = f"AesMamba-{config.task} ({config.dataset})"
    optional = {}
    if config.uses_text and not config.text_add_pooling_layer:
        hidden = config.text_config.hidden_size  # BertPooler: Linear(hidden, hidden)
        optional = {"aesmamba.text_model.pooler.dense.weight": (hidden, hidden),
                    "aesmamba.text_model.pooler.dense.bias": (hidden,)}
    expected = _expected_state(AesMambaForAestheticAssessment, config)
    if "taste.weight" in expected:  # the authors' model has no per-user taste directions: zero, no effect
        converted["taste.weight"] = torch.zeros(expected["taste.weight"].shape)
    return _check_against(expected, converted, unmapped, what, optional)


def load_official_checkpoint(checkpoint: Checkpoint, config: AesMambaConfig):
    """Build ``AesMambaForAestheticAssessment(config)`` and load an official checkpoint into it strictly.

    ``checkpoint``: a ``.pth``/``.bin``/``.safetensors`` path or an official state dict already in memory.
    """
    from ..modeling_aesmamba import AesMambaForAestheticAssessment

    state = convert_official_state_dict(_read_checkpoint(checkpoint), config)
    model = AesMambaForAestheticAssessment(config)
    model.load_state_dict(state, strict=True)
    return model.eval()


def load_vmamba_checkpoint(checkpoint: Checkpoint, config: Optional[VMambaConfig] = None):
    """Build ``VMambaModel`` and load a VMamba ImageNet checkpoint (e.g. ``vssmtiny_dp01_ckpt_epoch_292.pth``).

    ``checkpoint``: a path or a state dict in memory, flat or ``{"model": ...}``-wrapped.
    """
    from ..modeling_vmamba import VMambaModel

    config = config or VMambaConfig()
    state = convert_vmamba_state_dict(_read_checkpoint(checkpoint), config)
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
