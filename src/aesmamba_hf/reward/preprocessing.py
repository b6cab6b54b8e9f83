"""Differentiable preprocessing: a generator's pixel tensor → the model's input, with the processor's settings.

The image processor works on PIL images (8-bit, no gradients). A reward must instead take the float tensor a
generator produces and keep the graph, so the same three steps are redone with torch ops: map the declared
value range to [0, 1], resize to the processor's ``size`` with its resampling filter, normalise with its
``image_mean`` / ``image_std``. Every setting is read from the processor, none is restated here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import nn

# PIL filters that torch can run differentiably (PILImageResampling values: NEAREST 0, BILINEAR 2, BICUBIC 3).
# LANCZOS (1), BOX (4) and HAMMING (5) have no torch counterpart.
_TORCH_MODES = {0: "nearest-exact", 2: "bilinear", 3: "bicubic"}
SUPPORTED_RANGES = ((0.0, 1.0), (-1.0, 1.0))
OUT_OF_RANGE_CHOICES = ("error", "clamp")


class PixelInputError(ValueError):
    """A pixel tensor that breaks the declared contract (shape, dtype, value range, NaN)."""


def parse_value_range(value_range: Any) -> tuple[float, float]:
    """``(0, 1)``, ``(-1, 1)`` or the strings ``"0,1"`` / ``"-1,1"`` → a (low, high) tuple of floats."""
    if isinstance(value_range, str):
        value_range = value_range.strip("[]() ").split(",")
    try:
        low, high = (float(v) for v in value_range)
    except (TypeError, ValueError):
        raise ValueError(f"value_range must be (0, 1) or (-1, 1), got {value_range!r}") from None
    if (low, high) not in SUPPORTED_RANGES:
        raise ValueError(f"value_range must be (0, 1) or (-1, 1) (the ranges generators emit), got ({low:g}, "
                         f"{high:g})")
    return low, high


def check_pixels(images: Any, value_range: tuple[float, float], out_of_range: str = "error",
                 tolerance: float = 1e-3) -> None:
    """Refuse what is not an RGB float batch (B, 3, H, W) in ``value_range``, saying what is wrong.

    Values beyond the range by more than ``tolerance`` are an error unless ``out_of_range="clamp"``; NaN and
    infinities are always an error (they would turn every gradient into NaN).
    """
    if not isinstance(images, torch.Tensor):
        raise PixelInputError(f"images must be a torch.Tensor (B, 3, H, W), got {type(images).__name__}; score "
                              "files or PIL images with aesmamba_hf.load_scorer instead")
    shape = tuple(images.shape)
    if images.ndim != 4:
        hint = " (one image: add the batch axis, images[None])" if images.ndim == 3 else ""
        raise PixelInputError(f"images must be 4-D (B, 3, H, W), got shape {shape}{hint}")
    if images.shape[1] != 3:
        hint = ("; it looks channels-last (B, H, W, 3): use images.permute(0, 3, 1, 2)"
                if images.shape[-1] == 3 else "")
        raise PixelInputError(f"images must have 3 (RGB) channels on axis 1, got shape {shape}{hint}")
    if min(shape) == 0:
        raise PixelInputError(f"images must not be empty, got shape {shape}")
    if not images.is_floating_point():
        raise PixelInputError(f"images must be a float tensor in {list(value_range)}, got dtype {images.dtype} "
                              "(8-bit images: images.float() / 255 with value_range=(0, 1))")
    values = images.detach()
    finite = torch.isfinite(values)
    if not bool(finite.all()):
        bad = (~finite).flatten(1).any(dim=1).nonzero().flatten().tolist()
        raise PixelInputError(f"images {bad[:10]} of the batch hold NaN or infinite values "
                              f"({int((~finite).sum())} values)")
    if out_of_range not in OUT_OF_RANGE_CHOICES:
        raise ValueError(f"out_of_range must be one of {OUT_OF_RANGE_CHOICES}, got {out_of_range!r}")
    low, high = value_range
    per_image_min = values.flatten(1).amin(dim=1)
    per_image_max = values.flatten(1).amax(dim=1)
    outside = ((per_image_min < low - tolerance) | (per_image_max > high + tolerance)).nonzero().flatten().tolist()
    if outside and out_of_range == "error":
        i = outside[0]
        raise PixelInputError(
            f"images {outside[:10]} of the batch leave the declared value_range {list(value_range)} (image {i}: "
            f"min {float(per_image_min[i]):.4g}, max {float(per_image_max[i]):.4g}); declare the range the "
            "generator emits, or pass out_of_range='clamp' to clip the overshoot"
        )


class PixelPreprocessor(nn.Module):
    """[low, high] float RGB (B, 3, H, W), any size → normalised model input, differentiably.

    Built from an ``AesMambaImageProcessor`` (:meth:`from_processor`): ``size``, ``resample``, ``image_mean``,
    ``image_std``, ``do_resize`` and ``do_normalize`` come from it. Runs in float32 whatever the input dtype
    (a bf16 resize loses about 3 significant digits); the caller casts the result for the model.
    """

    def __init__(self, size: Optional[tuple[int, int]], mode: str, mean: Optional[Sequence[float]],
                 std: Optional[Sequence[float]]):
        super().__init__()
        self.size = None if size is None else (int(size[0]), int(size[1]))
        self.mode = mode
        shape = (1, 3, 1, 1)
        self.register_buffer("mean", None if mean is None else torch.tensor(mean, dtype=torch.float32).view(shape),
                             persistent=False)
        self.register_buffer("std", None if std is None else torch.tensor(std, dtype=torch.float32).view(shape),
                             persistent=False)

    @classmethod
    def from_processor(cls, processor: Any) -> PixelPreprocessor:
        """The settings of an ``AesMambaProcessor`` (or of its ``image_processor``)."""
        image_processor = getattr(processor, "image_processor", processor)
        resample = int(getattr(image_processor, "resample", 3))
        if resample not in _TORCH_MODES:
            raise ValueError(f"the processor resizes with PIL filter {resample}, which has no differentiable "
                             f"torch counterpart (supported: nearest 0, bilinear 2, bicubic 3)")
        size = None
        if getattr(image_processor, "do_resize", True):
            size_dict = image_processor.size
            height = size_dict["height"] if isinstance(size_dict, dict) else size_dict.height
            width = size_dict["width"] if isinstance(size_dict, dict) else size_dict.width
            size = (height, width)
        mean = std = None
        if getattr(image_processor, "do_normalize", True):
            mean, std = list(image_processor.image_mean), list(image_processor.image_std)
        return cls(size, _TORCH_MODES[resample], mean, std)

    def extra_repr(self) -> str:
        return f"size={self.size}, mode={self.mode!r}"

    def resize(self, unit_images: torch.Tensor) -> torch.Tensor:
        """[0, 1] images → the processor's size (no-op when already there or when it does not resize)."""
        if self.size is None or tuple(unit_images.shape[-2:]) == self.size:
            return unit_images
        smooth = self.mode in ("bilinear", "bicubic")
        resized = F.interpolate(unit_images, size=self.size, mode=self.mode,
                                **({"align_corners": False, "antialias": True} if smooth else {}))
        # PIL saturates the bicubic overshoot at 0 and 255; so does the reference path
        return resized.clamp(0.0, 1.0) if self.mode == "bicubic" else resized

    def normalize(self, unit_images: torch.Tensor) -> torch.Tensor:
        if self.mean is None:
            return unit_images
        return (unit_images - self.mean) / self.std

    def to_unit(self, images: torch.Tensor, value_range: tuple[float, float], clamp: bool) -> torch.Tensor:
        low, high = value_range
        unit = (images.float() - low) / (high - low)
        return unit.clamp(0.0, 1.0) if clamp else unit

    def forward(self, images: torch.Tensor, value_range: tuple[float, float], clamp: bool = False) -> torch.Tensor:
        """Images already checked by :func:`check_pixels` → normalised float32 input (B, 3, h, w)."""
        return self.normalize(self.resize(self.to_unit(images, value_range, clamp)))


def random_view(unit_images: torch.Tensor, generator: Optional[torch.Generator], min_scale: float) -> torch.Tensor:
    """A random crop (each side ≥ ``min_scale`` of the image, one crop per batch) and a random horizontal flip,
    by slicing, so gradients still reach every kept pixel. The reward averages such views (expectation over
    transformations) so that a pattern fitted to one exact pixel grid earns less."""
    height, width = unit_images.shape[-2:]
    draw = torch.rand(4, generator=generator).tolist()
    crop_h = max(1, round(height * (min_scale + (1 - min_scale) * draw[0])))
    crop_w = max(1, round(width * (min_scale + (1 - min_scale) * draw[1])))
    top = int(draw[2] * (height - crop_h + 1))
    left = int(draw[3] * (width - crop_w + 1))
    view = unit_images[..., top : top + crop_h, left : left + crop_w]
    if bool(torch.rand(1, generator=generator) < 0.5):
        view = view.flip(-1)
    return view


__all__ = ["OUT_OF_RANGE_CHOICES", "PixelInputError", "PixelPreprocessor", "SUPPORTED_RANGES", "check_pixels",
           "parse_value_range", "random_view"]
