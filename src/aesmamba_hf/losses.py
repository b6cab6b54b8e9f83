"""Losses of AesMamba: EMD, MSE, and the balanced scale-class loss.

Each released defect has a switch that reproduces it; the defaults do what the paper describes
(see docs/authors-code.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import torch
import torch.nn.functional as F


def emd_loss(pred: torch.Tensor, target: torch.Tensor, r: float = 2.0) -> torch.Tensor:
    """Earth mover's distance between (B, K) distributions: mean_b (mean_k |CDF_p̂ − CDF_p|^r)^(1/r).

    r = 2 is the training loss; r = 1 is the reported metric, as in the authors' code.
    """
    cdf_diff = torch.cumsum(pred, dim=-1) - torch.cumsum(target, dim=-1)
    if r == 1:
        return cdf_diff.abs().mean(dim=-1).mean()
    # the epsilon keeps the gradient of sqrt finite when the two distributions coincide
    return (cdf_diff.abs().pow(r).mean(dim=-1) + 1e-12).pow(1.0 / r).mean()


def scalar_mse(pred: torch.Tensor, target: torch.Tensor, as_released: bool = False) -> torch.Tensor:
    """MSE of a (B,) prediction against (B,) targets.

    ``as_released`` reproduces the released V code, which compared a (B,) target with a (B, 1)
    prediction and so averaged all B×B pairwise squared differences.
    """
    if as_released:
        return ((pred[:, None] - target[None, :]) ** 2).mean()
    return F.mse_loss(pred, target)


def balanced_softmax_loss(
    logits: torch.Tensor, target: torch.Tensor, class_counts: Optional[Sequence[float]] = None, tau: float = 1.0
) -> torch.Tensor:
    """Logit-adjusted cross-entropy (Menon et al. 2020): CE(z + τ·log π, y), π = class priors.

    The prior shifts logits only inside the loss, so inference logits stay unadjusted; the authors'
    F code uses τ = 1. Without counts it is plain cross-entropy.
    """
    if class_counts is not None and len(class_counts) > 0:
        counts = torch.as_tensor(class_counts, dtype=logits.dtype, device=logits.device).clamp(min=1.0)
        logits = logits + tau * torch.log(counts / counts.sum())
    return F.cross_entropy(logits, target)


def bce_as_released(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """One-vs-rest BCE on one-hot targets, summed over classes (what released V/M optimise).

    Their balanced prior is never set (``'bal'`` vs ``'Bal'``; see docs/authors-code.md)."""
    one_hot = F.one_hot(target, num_classes=logits.shape[-1]).to(logits.dtype)
    return F.binary_cross_entropy_with_logits(logits, one_hot, reduction="sum") / logits.shape[0]


def scale_classes(scores: torch.Tensor, class_scale: float, class_offset: float, num_classes: int) -> torch.Tensor:
    """Vectorised ``dataset_specs.scale_class``: clip(floor(a·s + b), 0, C − 1) as int64."""
    return torch.floor(scores * class_scale + class_offset).clamp(0, num_classes - 1).long()


__all__ = ["emd_loss", "scalar_mse", "balanced_softmax_loss", "bce_as_released", "scale_classes"]
