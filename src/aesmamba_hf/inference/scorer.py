"""``load_scorer``: an AesMamba model as a metric / reward / loss, in the spirit of ``pyiqa.create_metric``.

    >>> scorer = aesmamba_hf.load_scorer("aesmamba-demo-output/models/aesmamba-demo-v")
    >>> scorer(["a.jpg", "b.png"])            # tensor of 2 scores
    >>> scorer.score_range, scorer.lower_better  # ((1.0, 10.0), False)

    >>> loss_fn = aesmamba_hf.load_scorer("aesmamba-demo-output/models/aesmamba-demo-v", as_loss=True)
    >>> images = generator(z)                  # (B, 3, H, W) in [0, 1]
    >>> loss = loss_fn.loss(images)            # -mean score (minimise to raise aesthetics); differentiable

Input handling:

* paths / PIL images / lists of them: the :class:`~aesmamba_hf.inference.predictor.Predictor` (no gradients;
  an unreadable image raises :class:`~aesmamba_hf.image_processing_aesmamba.ImageLoadError` naming it);
* a tensor with ``as_loss=False``: an already normalized batch (B, 3, 224, 224) fed to the model as is;
* a tensor with ``as_loss=True``: RGB in [0, 1], any size; resized (bicubic, antialiased) and normalized with
  torch ops so gradients reach the input.
"""

from __future__ import annotations

import os
from typing import Any, Optional, Union

import torch
from torch import nn

from ..image_processing_aesmamba import ImageLoadError
from ..reward.preprocessing import PixelPreprocessor
from .frozen import FrozenJudge
from .loading import load_model
from .predictor import Predictor, examples_from, overall_head_index


class AestheticScorer(FrozenJudge):
    """A frozen AesMamba model returning one score per image (see the module docstring). The wrapped model is
    frozen in place (``requires_grad=False``, eval mode): pass a copy to keep training the original.

    Attributes:
        score_range: (low, high) of the selected head, from the config.
        lower_better: ``False`` for every AesMamba head (higher is better); kept for pyiqa compatibility.
        head: name of the scored head (``"all"``: every head, output (B, num_heads)).
    """

    def __init__(self, model: nn.Module, processor: Any, head: Optional[str] = None, as_loss: bool = False):
        super().__init__()
        self._hold_frozen(model)
        self.processor = processor
        self.as_loss = as_loss
        config = model.config
        names = [h["name"] for h in config.heads]
        if head is None:
            head = names[overall_head_index(config)]
        if head != "all" and head not in names:
            raise ValueError(f"unknown head {head!r}; this model has {names} (or 'all')")
        self.head = head
        self._head_index = None if head == "all" else names.index(head)
        chosen = config.heads[self._head_index or 0]
        self.score_range = tuple(float(v) for v in chosen["score_range"])
        self.higher_is_better = bool(chosen.get("higher_is_better", True))
        self.lower_better = not self.higher_is_better
        # the one differentiable preprocessing (shared with AestheticReward), from the processor's settings
        self.pixels = PixelPreprocessor.from_processor(processor)
        self.input_size = self.pixels.size
        self.predictor = Predictor(self.model, processor)

    def preprocess_tensor(self, images: torch.Tensor) -> torch.Tensor:
        """[0, 1] RGB (B, 3, H, W) → normalized model input, differentiably.

        The antialiased bicubic of torch uses PIL's kernel (a = -0.5); PIL additionally rounds to 8 bits between
        its two passes, so the two paths differ by about 1/255 on average on photographs.
        """
        if images.ndim == 3:
            images = images.unsqueeze(0)
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected an RGB batch (B, 3, H, W) in [0, 1], got shape {tuple(images.shape)}")
        return self.pixels(images.to(self.device, torch.float32), (0.0, 1.0))

    def _text_inputs(self, comments: Any, users: Any, n: int) -> dict[str, torch.Tensor]:
        if comments is None and users is None:
            return {}
        encoded = self.processor(images=None, comments=comments, users=users, return_tensors="pt")
        encoded = {k: v.to(self.device) for k, v in encoded.items()}
        if encoded["input_ids"].shape[0] == 1 and n > 1:
            encoded = {k: v.expand(n, -1) for k, v in encoded.items()}
        return encoded

    def forward(self, images: Any, comments: Any = None, users: Any = None) -> torch.Tensor:
        """Scores (B,) of the selected head ((B, num_heads) for ``head="all"``)."""
        if isinstance(images, torch.Tensor):
            pixel_values = self.preprocess_tensor(images) if self.as_loss else images.to(self.device)
            if pixel_values.ndim == 3:
                pixel_values = pixel_values.unsqueeze(0)
            pixel_values = pixel_values.to(next(self.model.parameters()).dtype)
            text = self._text_inputs(comments, users, pixel_values.shape[0])
            with torch.enable_grad() if self.as_loss else torch.no_grad():
                scores = self.model(pixel_values=pixel_values, **text).scores
        else:
            images = list(images) if isinstance(images, (list, tuple)) else [images]
            result = self.predictor.predict_examples(examples_from(images, comments, users))
            if result.errors:
                index, reason = next(iter(result.errors.items()))
                raise ImageLoadError(images[index] if isinstance(images[index], (str, os.PathLike)) else None,
                                     reason)
            scores = torch.from_numpy(result.scores).to(self.device)
        return scores if self._head_index is None else scores[:, self._head_index]

    def loss(self, images: Any, comments: Any = None, users: Any = None) -> torch.Tensor:
        """A scalar to minimise: the mean score, negated for higher-is-better heads."""
        scores = self(images, comments=comments, users=users)
        return scores.mean() if self.lower_better else -scores.mean()


def load_scorer(
    name_or_path: Union[str, os.PathLike],
    device: Union[str, torch.device, None] = None,
    as_loss: bool = False,
    head: Optional[str] = None,
    allow_random: bool = False,
    **from_pretrained_kwargs: Any,
) -> AestheticScorer:
    """Load an AesMamba variant (alias, folder or Hub id) as a callable scorer.

    Args:
        name_or_path: ``"aesmamba-v-ava"``-style alias, a local folder, or a Hub repo id.
        device: ``"cpu"``, ``"cuda"``...; default CUDA when available.
        as_loss: tensor inputs are [0, 1] images and the output is differentiable w.r.t. them.
        head: which head to score (default: ``aesthetic``/the first head; ``"all"`` for every head).
        allow_random: accept a model marked as holding random weights (see :func:`load_model`).
    """
    loaded = load_model(name_or_path, device=device, allow_random=allow_random, **from_pretrained_kwargs)
    scorer = AestheticScorer(loaded.model, loaded.processor, head=head, as_loss=as_loss)
    device = loaded.model.device
    return scorer.to(device)


__all__ = ["AestheticScorer", "load_scorer"]
