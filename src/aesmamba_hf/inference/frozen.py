"""The base of the modules that wrap an AesMamba model as a frozen judge (the scorer and the reward)."""

from __future__ import annotations

import torch
from torch import nn


class FrozenJudge(nn.Module):
    """An ``nn.Module`` holding ``self.model`` frozen (no gradients to its weights) and always in eval mode.

    An enclosing ``.train()`` (a generator trained with the judge as its loss or reward) leaves the model in eval
    mode: no dropout, no drop-path, the same score for the same image.
    """

    model: nn.Module

    def _hold_frozen(self, model: nn.Module) -> None:
        """Keep ``model`` as ``self.model``, in eval mode and with ``requires_grad=False`` (in place)."""
        self.model = model.eval()
        self.model.requires_grad_(False)

    def train(self, mode: bool = True) -> FrozenJudge:
        super().train(mode)
        self.model.eval()
        return self

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device
