"""``AestheticReward``: an AesMamba model as a reward for fine-tuning image generators.

    >>> reward = aesmamba_hf.load_reward("runs/my-v-model", value_range=(-1, 1))   # VAE-decoded images
    >>> rewards = reward(images)              # (B,) float32, differentiable w.r.t. images
    >>> (-rewards.mean()).backward()

The model is the user's own (trained or converted with this package) and comes through the one loader,
:func:`~aesmamba_hf.inference.loading.load_model`. Preprocessing follows its processor
(:class:`~aesmamba_hf.reward.preprocessing.PixelPreprocessor`); the model is frozen and stays in eval mode.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from typing import Any, Optional, Union

import torch
from torch import nn

from ..inference.frozen import FrozenJudge
from ..inference.loading import load_model
from ..inference.predictor import overall_head_index
from ..tasks import Task
from .preprocessing import PixelPreprocessor, check_pixels, parse_value_range, random_view

HeadSpec = Union[str, Mapping[str, float], None]
LOW_PRECISION = (torch.float16, torch.bfloat16)


def head_weights(config: Any, head: HeadSpec) -> dict[str, float]:
    """``head`` as {head name: weight}: ``None`` → the overall head; a name → that head; a mapping → a weighted
    sum (e.g. ``{"aesthetic": 1.0, "dof": -0.3}`` on an F model). Unknown names are an error listing the heads."""
    names = [h["name"] for h in config.heads]
    if head is None:
        weights = {names[overall_head_index(config)]: 1.0}
    elif isinstance(head, str):
        weights = {head: 1.0}
    elif isinstance(head, Mapping) and head:
        weights = {str(k): float(v) for k, v in head.items()}
    else:
        raise ValueError(f"head must be a head name or a non-empty {{name: weight}} mapping, got {head!r}")
    unknown = sorted(set(weights) - set(names))
    if unknown:
        raise ValueError(f"unknown head(s) {unknown}; this model has {names}")
    return weights


class AestheticReward(FrozenJudge):
    """A frozen AesMamba model that maps generator pixels to one reward per image.

    Args:
        model, processor: an ``AesMambaForAestheticAssessment`` and its ``AesMambaProcessor`` (what
            ``load_model`` returns). The model is frozen in place (``requires_grad=False``) and kept in eval mode.
        value_range: what the images hold, stated by the caller, never guessed: ``(0, 1)`` (pipelines with
            ``output_type="pt"``) or ``(-1, 1)`` (raw VAE decodes).
        head: the head to reward (default the overall ``aesthetic`` head), or {head: weight} for a weighted sum.
        differentiable: ``False`` scores under ``torch.no_grad()`` (policy-gradient methods such as DDPO only need
            the values); ``True`` keeps the graph from the images to the reward.
        autocast_dtype: run the model under ``torch.autocast`` in this dtype (``torch.bfloat16`` /
            ``torch.float16``); the selective scan and the preprocessing stay in float32, the reward is float32.
        unit_scale: rescale each head from its ``score_range`` to [0, 1] before weighting.
        out_of_range: ``"error"`` (default) or ``"clamp"`` for values beyond ``value_range``.
        views: average the reward over this many views (the full image, then random crops ≥ ``view_min_scale``
            of each side with random flips): a pattern fitted to one pixel grid earns less. 1 = the image only.
        comments: M models: comment(s) fused with the image (one string for all images or one per image);
            without, an M model scores the image alone (its image-only path).
        user: P models: the user whose personal score is the reward (a ``UserProfile``, dict or JSON path);
            required, because a P model's heads are defined for a user.
        generator: ``torch.Generator`` for the random views.
    """

    def __init__(self, model: nn.Module, processor: Any, *, value_range: Any, head: HeadSpec = None,
                 differentiable: bool = True, autocast_dtype: Optional[torch.dtype] = None, unit_scale: bool = False,
                 out_of_range: str = "error", views: int = 1, view_min_scale: float = 0.8, comments: Any = None,
                 user: Any = None, generator: Optional[torch.Generator] = None):
        super().__init__()
        config = model.config
        task = Task.parse(config.task)
        if task.reads_user_profile and user is None:
            raise ValueError("a P model scores images for one user: pass user= (a UserProfile, dict or JSON path); "
                             "for a generic reward use a V or F model")
        if comments is not None and not task.reads_comments:
            raise ValueError(f"comments= needs an M model; this is a task-{task} model")
        if user is not None and not task.reads_user_profile:
            raise ValueError(f"user= needs a P model; this is a task-{task} model")
        if autocast_dtype is not None and autocast_dtype not in LOW_PRECISION:
            raise ValueError(f"autocast_dtype must be torch.bfloat16 or torch.float16, got {autocast_dtype}")
        if int(views) < 1 or not 0.0 < view_min_scale <= 1.0:
            raise ValueError(f"views must be >= 1 and view_min_scale in (0, 1], got {views}, {view_min_scale}")
        self._hold_frozen(model)
        self.processor = processor
        self.preprocess = PixelPreprocessor.from_processor(processor)
        self.value_range = parse_value_range(value_range)
        self.weights = head_weights(config, head)
        self.differentiable = differentiable
        self.autocast_dtype = autocast_dtype
        self.unit_scale = unit_scale
        self.out_of_range = out_of_range
        self.views, self.view_min_scale, self.generator = int(views), float(view_min_scale), generator
        self._text = self._encode_text(comments, user)
        names = config.head_names
        ranges = [tuple(float(v) for v in config.heads[names.index(n)]["score_range"]) for n in self.weights]
        self.score_ranges = dict(zip(self.weights, ranges))
        self.register_buffer("_weight_vector", torch.tensor([self.weights.get(n, 0.0) for n in names]),
                             persistent=False)
        lows = torch.tensor([float(h["score_range"][0]) for h in config.heads])
        highs = torch.tensor([float(h["score_range"][1]) for h in config.heads])
        self.register_buffer("_low", lows, persistent=False)
        self.register_buffer("_span", highs - lows, persistent=False)

    # -- set-up helpers ------------------------------------------------------------------------------------

    def _encode_text(self, comments: Any, user: Any) -> dict[str, torch.Tensor]:
        if comments is None and user is None:
            return {}
        encoded = self.processor(images=None, comments=comments, users=None if user is None else [user],
                                 return_tensors="pt")
        return {k: v for k, v in encoded.items() if k in ("input_ids", "attention_mask", "token_type_ids")}

    @property
    def reward_range(self) -> tuple[float, float]:
        """The (low, high) a reward can take, from the heads' score ranges and the weights."""
        low = high = 0.0
        for name, weight in self.weights.items():
            lo, hi = (0.0, 1.0) if self.unit_scale else self.score_ranges[name]
            low += min(weight * lo, weight * hi)
            high += max(weight * lo, weight * hi)
        return low, high

    def metadata(self) -> dict[str, Any]:
        """What the reward is: heads and weights, score ranges, value range (returned by the trainer adapters)."""
        return {"heads": dict(self.weights), "score_ranges": dict(self.score_ranges),
                "reward_range": self.reward_range, "unit_scale": self.unit_scale, "value_range": self.value_range}

    # -- scoring -------------------------------------------------------------------------------------------

    def _text_for(self, batch: int) -> dict[str, torch.Tensor]:
        text = {k: v.to(self.device) for k, v in self._text.items()}
        if text and text["input_ids"].shape[0] == 1 and batch > 1:
            text = {k: v.expand(batch, -1) for k, v in text.items()}
        if text and text["input_ids"].shape[0] != batch:
            raise ValueError(f"{text['input_ids'].shape[0]} comments for {batch} images: give one per image or one "
                             "for all")
        return text

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def model_inputs(self, images: torch.Tensor) -> list[torch.Tensor]:
        """The checked images → the model's normalised input, one tensor per view (float32)."""
        check_pixels(images, self.value_range, self.out_of_range)
        unit = self.preprocess.to_unit(images.to(self.device), self.value_range, self.out_of_range == "clamp")
        views = [unit] + [random_view(unit, self.generator, self.view_min_scale) for _ in range(self.views - 1)]
        return [self.preprocess.normalize(self.preprocess.resize(view)) for view in views]

    def head_scores(self, images: torch.Tensor) -> torch.Tensor:
        """(B, num_heads) float32 scores of every head (mean over the views)."""
        grad = contextlib.nullcontext() if self.differentiable else torch.no_grad()
        param_dtype = next(self.model.parameters()).dtype
        with grad:
            inputs = self.model_inputs(images)
            text = self._text_for(images.shape[0])
            total = None
            for pixel_values in inputs:
                if self.autocast_dtype is None:
                    pixel_values = pixel_values.to(param_dtype)
                with self._autocast():
                    scores = self.model(pixel_values=pixel_values, **text).scores.float()
                total = scores if total is None else total + scores
            return total / len(inputs)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Rewards (B,) float32 for a batch of images (B, 3, H, W) in ``value_range``."""
        scores = self.head_scores(images)
        if self.unit_scale:
            scores = (scores - self._low) / self._span
        return scores @ self._weight_vector


def load_reward(
    name_or_path: Union[str, os.PathLike],
    *,
    value_range: Any,
    device: Union[str, torch.device, None] = None,
    dtype: torch.dtype = torch.float32,
    allow_random: bool = False,
    **reward_kwargs: Any,
) -> AestheticReward:
    """An :class:`AestheticReward` over a model folder, variant alias or Hub id (through ``load_model``).

    ``dtype`` loads the weights in that precision (e.g. ``torch.bfloat16`` on a GPU); ``reward_kwargs`` go to
    :class:`AestheticReward` (``head``, ``differentiable``, ``autocast_dtype``, ``views``, ``user``...).
    """
    loaded = load_model(name_or_path, device=device, dtype=dtype, allow_random=allow_random)
    return AestheticReward(loaded.model, loaded.processor, value_range=value_range, **reward_kwargs).to(
        loaded.model.device)


__all__ = ["AestheticReward", "head_weights", "load_reward"]
