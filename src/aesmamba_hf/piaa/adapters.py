"""Per-user adapters with PEFT: a small set of weights trained from one user's ratings on top of a shared base.

An adapter is a PEFT folder (``adapter_config.json`` + ``adapter_model.safetensors``, plus the package's
``personalization.json`` with the user's prompt and how it was trained). It is loaded onto a base model in
milliseconds and users are swapped without reloading the base (:class:`AdapterBank`, PEFT's
``load_adapter``/``set_adapter``).

Kinds (:data:`ADAPTER_KINDS`; the module names come from
``AesMambaForAestheticAssessment.peft_target_modules``):

* ``"lora_heads"`` — LoRA on the Linear layers of the MBA heads (residual adapter + score branch);
* ``"lora_fusion_heads"`` — the same plus the cross-modal fusion block (M/P);
* ``"heads"`` — LoRA on the heads' residual adapters and a full per-user copy of each score branch
  (PEFT ``modules_to_save``);
* ``"taste"`` — LoRA of rank 1 on the model's ``taste`` layer: a taste direction fitted in closed form under
  the base's taste prior (:mod:`.taste`), not trained by gradient.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Optional, Union

from ..peft_utils import is_peft_model  # noqa: F401  (public here too)
from ..tuning_choices import ADAPTER_KINDS, DEFAULT_ADAPTER_KIND

PathLike = Union[str, os.PathLike]
PERSONALIZATION_FILE = "personalization.json"  # the package's metadata beside PEFT's files
ADAPTER_CONFIG_FILE = "adapter_config.json"


class AdapterError(ValueError):
    """An adapter folder that is missing, broken or made for another base model."""


def adapter_config(model: Any, kind: str = DEFAULT_ADAPTER_KIND, rank: int = 4, alpha: Optional[float] = None,
                   dropout: float = 0.0) -> Any:
    """The ``peft.LoraConfig`` of ``kind`` for ``model`` (``alpha`` default: ``2 * rank``)."""
    from peft import LoraConfig

    if kind not in ADAPTER_KINDS:
        raise ValueError(f"adapter kind must be one of {ADAPTER_KINDS}, got {kind!r}")
    names = type(model).peft_target_modules
    if kind == "taste":  # one factor: lora_B @ lora_A is the user's taste row in their head's row, scale 1
        return LoraConfig(r=1, lora_alpha=1, target_modules=names["taste"], lora_dropout=0.0, bias="none")
    parts = [names["heads"]]
    modules_to_save = None
    if kind == "lora_fusion_heads":
        if model.aesmamba.fusion is None:
            raise ValueError(f"adapter kind {kind!r} needs a model with text fusion (M/P); this is "
                             f"{model.config.task}: use 'lora_heads'")
        parts.append(names["fusion"])
    elif kind == "heads":
        parts = [r"heads\.[^.]+\.adapter\.(down|up)"]
        modules_to_save = ["score"]
    target = parts[0] if len(parts) == 1 else "(" + ")|(".join(parts) + ")"
    return LoraConfig(r=rank, lora_alpha=alpha if alpha is not None else 2 * rank, lora_dropout=dropout,
                      target_modules=target, modules_to_save=modules_to_save, bias="none")


def attach_adapter(model: Any, kind: str = DEFAULT_ADAPTER_KIND, rank: int = 4, **kwargs: Any) -> Any:
    """Wrap ``model`` in a fresh, trainable PEFT adapter (``peft.get_peft_model``); only the adapter trains."""
    from peft import get_peft_model

    return get_peft_model(model, adapter_config(model, kind, rank, **kwargs))


def _check_adapter_dir(path: PathLike) -> Path:
    folder = Path(path)
    if not folder.is_dir():
        raise AdapterError(f"adapter folder {folder} does not exist")
    if not (folder / ADAPTER_CONFIG_FILE).is_file():
        raise AdapterError(f"{folder} is not a PEFT adapter folder (no {ADAPTER_CONFIG_FILE}); make one with "
                           "`aesmamba personalize`")
    return folder


def read_personalization(path: PathLike) -> dict[str, Any]:
    """The package's metadata of an adapter folder (``{}`` for a plain PEFT adapter)."""
    meta = _check_adapter_dir(path) / PERSONALIZATION_FILE
    return json.loads(meta.read_text(encoding="utf-8")) if meta.is_file() else {}


def _check_base(base: Any, folder: Path) -> None:
    meta = read_personalization(folder)
    expected = meta.get("base_heads")
    if expected and list(expected) != list(base.config.head_names):
        raise AdapterError(f"adapter {folder} was trained for a base with heads {expected}; this base has "
                           f"{list(base.config.head_names)}")
    if meta.get("base_task") and meta["base_task"] != base.config.task:
        raise AdapterError(f"adapter {folder} was trained on a {meta['base_task']} model; this base is "
                           f"{base.config.task}")


def load_adapter(base: Any, adapter_dir: PathLike, name: str = "default") -> Any:
    """``base`` (a loaded AesMamba model) with the adapter of ``adapter_dir`` active, as a ``peft.PeftModel``
    in eval mode; the base's weights are shared, not copied."""
    from peft import PeftModel

    folder = _check_adapter_dir(adapter_dir)
    _check_base(base, folder)
    try:
        model = PeftModel.from_pretrained(base, folder, adapter_name=name, is_trainable=False)
    except (OSError, ValueError, RuntimeError, KeyError) as err:
        raise AdapterError(f"cannot load the adapter {folder}: {err}") from err
    return model.eval()


def merge_adapter(base: Any, adapter_dir: PathLike) -> Any:
    """A plain AesMamba model with the adapter's weights merged in (PEFT ``merge_and_unload``); ``base`` is
    modified in place (load a fresh one to keep it)."""
    return load_adapter(base, adapter_dir).merge_and_unload().eval()


class AdapterBank:
    """One shared base model and any number of users' adapters, switched without reloading the base.

    >>> bank = AdapterBank(load_model("aesmamba-p-para").model)
    >>> bank.add("alice", "adapters/alice"); bank.add("bob", "adapters/bob")
    >>> bank.use("alice")   # bank.model now scores as Alice; bank.use(None): the base alone
    """

    def __init__(self, base: Any):
        self.base = base
        self.model: Any = base
        self.prompts: dict[str, Optional[str]] = {}

    @property
    def users(self) -> list[str]:
        return list(self.prompts)

    def add(self, user: str, adapter_dir: PathLike) -> None:
        folder = _check_adapter_dir(adapter_dir)
        _check_base(self.base, folder)
        if user in self.prompts:
            raise ValueError(f"an adapter named {user!r} is already loaded")
        if self.model is self.base:
            self.model = load_adapter(self.base, folder, name=user)
        else:
            self.model.load_adapter(folder, adapter_name=user, is_trainable=False)
        self.prompts[user] = read_personalization(folder).get("prompt")
        self.model.eval()

    def use(self, user: Optional[str]) -> Any:
        """Activate ``user``'s adapter (``None``: every adapter off, the base alone); returns the model to score
        with (the same object each time once an adapter is loaded)."""
        if user is None:
            if self.model is not self.base:
                self.model.base_model.disable_adapter_layers()
            return self.model
        if user not in self.prompts:
            raise KeyError(f"no adapter named {user!r}; loaded: {self.users}")
        self.model.base_model.enable_adapter_layers()
        self.model.set_adapter(user)
        self.model.eval()
        return self.model

    def remove(self, user: str) -> None:
        if user not in self.prompts:
            raise KeyError(f"no adapter named {user!r}")
        self.model.delete_adapter(user)
        del self.prompts[user]


def adapter_size_bytes(adapter_dir: PathLike) -> int:
    """Bytes of the adapter's weight files."""
    return sum(p.stat().st_size for p in Path(adapter_dir).glob("adapter_model*") if p.is_file())


def model_size_bytes(folder: PathLike) -> int:
    return sum(p.stat().st_size for p in Path(folder).glob("*.safetensors") if p.is_file())


def trainable_parameter_names(model: Any) -> Iterable[str]:
    return (name for name, p in model.named_parameters() if p.requires_grad)


__all__ = ["ADAPTER_KINDS", "DEFAULT_ADAPTER_KIND", "AdapterBank", "AdapterError", "adapter_config",
           "adapter_size_bytes", "attach_adapter", "is_peft_model", "load_adapter", "merge_adapter",
           "model_size_bytes", "read_personalization"]
