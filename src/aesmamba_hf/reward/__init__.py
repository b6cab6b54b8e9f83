"""AesMamba as a reward for fine-tuning image generators (DDPO, AlignProp, ReFL). See docs/reward.md."""

from .preprocessing import PixelInputError, PixelPreprocessor, check_pixels, parse_value_range
from .reward import AestheticReward, head_weights, load_reward
from .trainers import ddpo_reward_fn, differentiable_reward_fn

__all__ = [
    "AestheticReward",
    "PixelInputError",
    "PixelPreprocessor",
    "check_pixels",
    "ddpo_reward_fn",
    "differentiable_reward_fn",
    "head_weights",
    "load_reward",
    "parse_value_range",
]
