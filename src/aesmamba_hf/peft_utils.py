"""What training, inference and :mod:`aesmamba_hf.piaa` all need to know about PEFT-wrapped models, in a module
that imports none of them (so ``training`` does not import ``piaa``, which imports ``training``)."""

from __future__ import annotations

from typing import Any

from torch import nn


def is_peft_model(model: Any) -> bool:
    """Whether ``model`` is a ``peft.PeftModel`` (a base with adapters)."""
    try:
        from peft import PeftModel
    except ImportError:  # pragma: no cover - peft is a core dependency
        return False
    return isinstance(model, PeftModel)


def adapter_modules(model: Any) -> list[nn.Module]:
    """The adapter layers of a PEFT model: LoRA layers (with their dropout) and ``modules_to_save`` copies."""
    from peft.tuners.tuners_utils import BaseTunerLayer
    from peft.utils import ModulesToSaveWrapper

    return [m for m in model.modules() if isinstance(m, (BaseTunerLayer, ModulesToSaveWrapper))]


__all__ = ["adapter_modules", "is_peft_model"]
