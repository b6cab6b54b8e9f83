"""The call signatures of the diffusion fine-tuning trainers, over an :class:`AestheticReward`.

Both are the ``reward_function(images, prompts, prompt_metadata) -> (rewards, reward_metadata)`` contract that
TRL's ``DDPOTrainer`` and ``AlignPropTrainer`` took (removed from TRL in September 2025; the reference
implementations ``kvablack/ddpo-pytorch`` and ``mihirp1998/AlignProp`` use the same one; see docs/reward.md):

* :func:`ddpo_reward_fn` — policy-gradient methods (DDPO, and GRPO-style methods that only need values):
  no gradients, detached float32 rewards.
* :func:`differentiable_reward_fn` — reward-backpropagation methods (AlignProp, ReFL, DRaFT): the rewards keep
  the graph back to the images, so ``loss = -rewards.mean()`` trains the generator.

The generation prompts are not read: an aesthetic score judges the image alone. An M model's comments and a
P model's user are fixed when the reward is built.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from .reward import AestheticReward

RewardFn = Callable[[torch.Tensor, Sequence[str], Sequence[Any]], tuple[torch.Tensor, dict[str, Any]]]


def _check_batch(images: Any, prompts: Sequence[str]) -> None:
    if prompts is not None and isinstance(images, torch.Tensor) and images.ndim == 4 and len(prompts) != len(images):
        raise ValueError(f"{len(prompts)} prompts for {len(images)} images")


def ddpo_reward_fn(reward: AestheticReward) -> RewardFn:
    """``(images, prompts, prompt_metadata) -> (rewards (B,), metadata)`` without gradients (DDPO)."""

    def reward_fn(images: torch.Tensor, prompts: Sequence[str] = (), prompt_metadata: Sequence[Any] = ()
                  ) -> tuple[torch.Tensor, dict[str, Any]]:
        _check_batch(images, prompts)
        with torch.no_grad():
            rewards = reward(images)
        return rewards.detach(), reward.metadata()

    return reward_fn


def differentiable_reward_fn(reward: AestheticReward) -> RewardFn:
    """``(images, prompts, prompt_metadata) -> (rewards (B,), metadata)`` with the graph kept (AlignProp, ReFL)."""
    if not reward.differentiable:
        raise ValueError("this reward was built with differentiable=False; build it with differentiable=True for "
                         "reward-backpropagation training")

    def reward_fn(images: torch.Tensor, prompts: Sequence[str] = (), prompt_metadata: Sequence[Any] = ()
                  ) -> tuple[torch.Tensor, dict[str, Any]]:
        _check_batch(images, prompts)
        with torch.enable_grad():
            rewards = reward(images)
        return rewards, reward.metadata()

    return reward_fn


__all__ = ["RewardFn", "ddpo_reward_fn", "differentiable_reward_fn"]
