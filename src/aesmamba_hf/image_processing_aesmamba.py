"""Image loading and preprocessing for AesMamba (the authors' transforms), PIL/NumPy backend (no torchvision).

* eval: resize to 224×224 (bicubic, aspect ratio not kept) → [0, 1] → normalize;
* train (``do_augment=True`` or ``train=True``): resize to 256×256 (bicubic) → random horizontal flip
  (p=0.5) → random 224×224 crop → [0, 1] → normalize. The random draws use torch's RNG in the same order
  as torchvision's ``RandomHorizontalFlip`` + ``RandomCrop``, so ``torch.manual_seed`` and DataLoader worker
  seeding behave as in the authors' pipeline;
* normalization: CLIP mean/std by default, AADB's own statistics via ``for_dataset("AADB")``.

Every image goes through :func:`load_image` semantics: EXIF orientation applied, first frame of animated
files, any PIL mode converted to RGB (alpha composited on white, 16-bit grey scaled rather than clipped).
Files that cannot be decoded raise :class:`ImageLoadError` naming the file.
"""

from __future__ import annotations

import errno
import io
import os
import stat
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from transformers.feature_extraction_utils import BatchFeature
from transformers.image_processing_backends import PilBackend
from transformers.image_utils import PILImageResampling, SizeDict
from transformers.processing_utils import ImagesKwargs
from transformers.utils import TensorType

from .dataset_specs import CLIP_MEAN, CLIP_STD, get_dataset_spec

PathLike = Union[str, os.PathLike]
ImageLike = Union[PathLike, Image.Image, np.ndarray, torch.Tensor]

_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")


class ImageLoadError(ValueError):
    """An image file could not be read; ``path`` names the file and ``reason`` says why."""

    def __init__(self, path: PathLike | None, reason: str):
        self.path = None if path is None else str(path)
        self.reason = reason
        where = f"image file {self.path!r}" if self.path is not None else "image"
        super().__init__(f"cannot load {where}: {reason}")


def to_rgb(image: Image.Image, background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """Convert a PIL image of any mode to 8-bit RGB.

    Transparent pixels are composited on ``background`` (PIL's plain ``convert("RGB")`` would expose whatever
    colour hides under alpha=0); 16/32-bit grey images are scaled to 8 bits instead of clipped at 255.
    """
    mode = image.mode
    if mode == "RGB":
        return image
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        mode = image.mode
        if mode == "RGB":
            return image
    if mode in _ALPHA_MODES:
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (*background, 255))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    if mode in _SIXTEEN_BIT_MODES or mode in ("I", "F"):
        array = np.asarray(image, dtype=np.float64)
        if mode == "F" and array.size and np.nanmax(array) <= 1.0:
            array = array * 255.0  # float images are usually in [0, 1]
        elif mode in _SIXTEEN_BIT_MODES or (mode == "I" and array.size and array.max() > 255):
            array = array / 257.0  # 65535 -> 255
        grey = np.clip(np.nan_to_num(np.rint(array)), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")
    try:
        return image.convert("RGB")  # L, 1, CMYK, YCbCr, HSV, ...
    except (ValueError, OSError) as err:
        raise ValueError(f"cannot convert PIL mode {mode!r} to RGB: {err}") from err


def _has_orientation(image: Image.Image) -> bool:
    try:
        orientation = image.getexif().get(0x0112, 1)
    except Exception:  # unreadable EXIF block: nothing to transpose by
        orientation = 1
    return orientation not in (None, 1) or "XML:com.adobe.xmp" in image.info or "xmp" in image.info


def normalize_pil_image(image: Image.Image) -> Image.Image:
    """First frame, EXIF orientation applied, RGB (the input itself when it already is all of that)."""
    if getattr(image, "is_animated", False) and image.tell() != 0:
        image.seek(0)
    if _has_orientation(image):
        image = ImageOps.exif_transpose(image)  # a new image without the orientation tag
    return to_rgb(image)


def _check_image_file(text: str, path: Path) -> None:
    """Refuse what is not a readable regular file, saying what it is (opening a FIFO would block forever)."""
    if text.startswith(("http://", "https://", "ftp://")) and not path.exists():
        raise ImageLoadError(text, "URLs are not fetched (scoring works offline); download the image first")
    try:
        info = path.stat()
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise ImageLoadError(path, "symbolic link loop (the link points back to itself)") from err
        if path.is_symlink():
            raise ImageLoadError(path, f"broken symbolic link (its target {os.readlink(path)!r} does not exist)"
                                 ) from err
        if err.errno == errno.ENOENT:
            raise ImageLoadError(path, "no such file") from err
        raise ImageLoadError(path, f"cannot access the file ({err.strerror})") from err
    if stat.S_ISDIR(info.st_mode):
        raise ImageLoadError(path, "is a directory, not an image file")
    if stat.S_ISFIFO(info.st_mode):
        raise ImageLoadError(path, "is a named pipe (FIFO), not an image file")
    if not stat.S_ISREG(info.st_mode):
        raise ImageLoadError(path, "is not a regular file (a socket or device), not an image file")
    if info.st_size == 0:
        raise ImageLoadError(path, "empty file (0 bytes)")
    if not os.access(path, os.R_OK):
        raise ImageLoadError(path, "permission denied (the file is not readable)")


def load_image(image: ImageLike, max_pixels: Optional[int] = None) -> Image.Image:
    """Open an image file (or take a PIL image) and return an upright 8-bit RGB ``PIL.Image``.

    Args:
        image: a path, encoded image bytes (a Parquet/webdataset cell), or an already opened ``PIL.Image``
            (EXIF orientation and mode are normalized too).
        max_pixels: refuse images with more pixels than this. Defaults to PIL's decompression-bomb error
            threshold (``2 * PIL.Image.MAX_IMAGE_PIXELS``, ~179 MP).

    Raises:
        ImageLoadError: missing, empty, non-image, truncated/corrupt file, or a decompression bomb; the
            message names the file.
    """
    if isinstance(image, Image.Image):
        return normalize_pil_image(image)
    if isinstance(image, (bytes, bytearray, memoryview)):  # decoded by the same rules as a file
        path, source = None, io.BytesIO(bytes(image))
    elif isinstance(image, (str, os.PathLike)):
        path = source = Path(image)
        _check_image_file(os.fspath(image), path)
    else:
        raise TypeError(f"load_image expects a path, image bytes or a PIL image, got {type(image).__name__}")
    limit = max_pixels
    if limit is None and Image.MAX_IMAGE_PIXELS:
        limit = 2 * Image.MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings():
            # Between 1x and 2x MAX_IMAGE_PIXELS PIL only warns; the size check below decides instead.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(source) as opened:
                width, height = opened.size
                if limit is not None and width * height > limit:
                    raise ImageLoadError(
                        path, f"decompression bomb: {width}x{height} = {width * height} pixels exceeds the "
                        f"limit of {limit} pixels"
                    )
                if getattr(opened, "is_animated", False):
                    opened.seek(0)
                opened.load()
                result = normalize_pil_image(opened)
                return opened.copy() if result is opened else result  # `opened` is closed on return
    except ImageLoadError:
        raise
    except Image.DecompressionBombError as err:
        raise ImageLoadError(path, f"decompression bomb: {err}") from err
    except UnidentifiedImageError as err:
        raise ImageLoadError(path, "not an image file or an unsupported image format") from err
    except OSError as err:
        if "truncated" in str(err).lower():
            raise ImageLoadError(path, f"truncated image data ({err})") from err
        raise ImageLoadError(path, f"corrupt or unreadable image ({type(err).__name__}: {err})") from err
    except Exception as err:  # PIL plugins raise SyntaxError, ValueError, EOFError, struct.error, ...
        raise ImageLoadError(path, f"corrupt image ({type(err).__name__}: {err})") from err


def array_to_pil(array: Any) -> Image.Image:
    """An image array or tensor (H×W, H×W×C or C×H×W) → an 8-bit RGB ``PIL.Image``, by one stated rule.

    * integers: 0–255 (anything outside is refused);
    * floats: in [0, 1] they are taken as already scaled (×255, rounded), in [0, 255] as 8-bit values; NaN,
      infinities and other ranges are refused. (A float image whose values all lie in [0, 1] is therefore
      read as scaled, even if it was meant as a very dark 0–255 image.)

    Raises:
        ValueError: the shape or value range breaks the rule; the message states it.
    """
    values = array.detach().cpu().numpy() if isinstance(array, torch.Tensor) else np.asarray(array)
    if values.ndim == 3 and values.shape[0] in (1, 3, 4) and values.shape[-1] not in (1, 3, 4):
        values = np.moveaxis(values, 0, -1)  # channels first → last
    if values.ndim == 3 and values.shape[-1] == 1:
        values = values[..., 0]
    if values.ndim not in (2, 3) or (values.ndim == 3 and values.shape[-1] not in (3, 4)):
        raise ValueError(f"an image array must be H×W, H×W×3/4 or 3/4×H×W, got shape {tuple(values.shape)}")
    if values.dtype == bool or values.size == 0:
        raise ValueError(f"an image array must hold numbers, got dtype {values.dtype} and {values.size} values")
    if np.issubdtype(values.dtype, np.floating):
        if not np.isfinite(values).all():
            raise ValueError("an image array holds NaN or infinite values")
        low, high = float(values.min()), float(values.max())
        if low >= 0.0 and high <= 1.0:
            values = values * 255.0
        elif low < 0.0 or high > 255.0:
            raise ValueError(f"a float image must hold values in [0, 1] (scaled) or [0, 255], got [{low:g}, {high:g}]")
        values = np.rint(values)
    elif values.min() < 0 or values.max() > 255:
        raise ValueError(f"an integer image must hold values in 0-255, got {values.min()}-{values.max()}")
    return Image.fromarray(values.astype(np.uint8))


class AesMambaImageProcessorKwargs(ImagesKwargs, total=False):
    """Extra preprocessing options of :class:`AesMambaImageProcessor` (besides the standard ``ImagesKwargs``).

    do_augment: training transform (resize to ``train_size`` → random flip → random crop to ``crop_size``).
    train_size: resize target of the training transform (256×256).
    flip_probability: probability of the horizontal flip in the training transform (0.5).
    rotate90_probability: probability of a random 90/180/270° rotation after the crop (0; needs a square crop).
        Only for data whose ratings do not depend on orientation (the demo's synthetic benchmark): a real
        photo's composition does.
    generator: optional ``torch.Generator`` for the random flip/crop (default: torch's global RNG).
    max_pixels: decompression-bomb limit used when images are given as paths.
    """

    do_augment: Optional[bool]
    train_size: Union[int, list[int], tuple[int, ...], dict[str, int], None]
    flip_probability: Optional[float]
    rotate90_probability: Optional[float]
    generator: Optional[torch.Generator]
    max_pixels: Optional[int]


class AesMambaImageProcessor(PilBackend):
    r"""AesMamba image processor (PIL/NumPy backend; the authors' transforms).

    ``processor(images)`` gives the evaluation transform; ``processor(images, train=True)`` (or
    ``do_augment=True``) the training augmentation. ``images`` may be paths, PIL images, HWC uint8 arrays or
    a list of them. Returns a ``BatchFeature`` with ``pixel_values`` of shape (B, 3, 224, 224).
    """

    valid_kwargs = AesMambaImageProcessorKwargs
    model_input_names = ["pixel_values"]

    resample = PILImageResampling.BICUBIC
    image_mean = CLIP_MEAN
    image_std = CLIP_STD
    size = {"height": 224, "width": 224}
    train_size = {"height": 256, "width": 256}
    crop_size = {"height": 224, "width": 224}
    do_resize = True
    do_center_crop = False
    do_rescale = True
    do_normalize = True
    do_convert_rgb = True
    do_augment = False
    flip_probability = 0.5
    rotate90_probability = 0.0

    @classmethod
    def for_dataset(cls, dataset: str, **kwargs: Any) -> AesMambaImageProcessor:
        """The processor with the normalization statistics the authors used for ``dataset`` (AADB: its own)."""
        spec = get_dataset_spec(dataset)
        kwargs.setdefault("image_mean", list(spec.image_mean))
        kwargs.setdefault("image_std", list(spec.image_std))
        return cls(**kwargs)

    def __call__(self, images: Any, *args: Any, train: Optional[bool] = None, **kwargs: Any) -> BatchFeature:
        """Preprocess images; ``train=True`` is shorthand for ``do_augment=True``."""
        if train is not None:
            kwargs["do_augment"] = bool(train)
        return self.preprocess(images, *args, **kwargs)

    def _standardize_kwargs(self, train_size: Any = None, **kwargs: Any) -> dict:
        kwargs = super()._standardize_kwargs(**kwargs)
        if train_size is not None and not isinstance(train_size, SizeDict):
            if isinstance(train_size, int):
                train_size = {"height": train_size, "width": train_size}
            elif isinstance(train_size, (list, tuple)):
                train_size = {"height": train_size[0], "width": train_size[1]}
            train_size = SizeDict(**train_size)
        kwargs["train_size"] = train_size
        return kwargs

    # -- input handling ---------------------------------------------------------------------------------

    def fetch_images(self, image_url_or_urls: Any, max_pixels: Optional[int] = None) -> Any:
        """Paths are opened with :func:`load_image` (clear errors naming the file; no URL download)."""
        if isinstance(image_url_or_urls, (list, tuple)):
            return [self.fetch_images(item, max_pixels=max_pixels) for item in image_url_or_urls]
        if isinstance(image_url_or_urls, (str, os.PathLike)):
            return load_image(image_url_or_urls, max_pixels=max_pixels)
        return image_url_or_urls  # PIL images are normalized in process_image

    def _prepare_image_like_inputs(self, images: Any, *args: Any, expected_ndims: int = 3, **kwargs: Any) -> list:
        # open paths here, where the per-call max_pixels is known; the base class then sees PIL images
        images = self.fetch_images(images, max_pixels=kwargs.get("max_pixels"))
        return super()._prepare_image_like_inputs(images, *args, expected_ndims=expected_ndims, **kwargs)

    def process_image(self, image: Any, do_convert_rgb: Optional[bool] = None, **kwargs: Any) -> np.ndarray:
        if isinstance(image, (np.ndarray, torch.Tensor)):
            image = array_to_pil(image)  # one rule for value ranges; then the PIL path below
        if isinstance(image, Image.Image):
            array = np.asarray(normalize_pil_image(image), dtype=np.uint8)  # (H, W, 3)
            return np.ascontiguousarray(np.moveaxis(array, -1, 0))
        return super().process_image(image, do_convert_rgb=do_convert_rgb, **kwargs)

    # -- the transform ----------------------------------------------------------------------------------

    def _augment(
        self, image: np.ndarray, crop_size: SizeDict, flip_probability: float, generator: Optional[torch.Generator],
        rotate90_probability: float = 0.0,
    ) -> np.ndarray:
        """Random horizontal flip then random crop, drawing from torch's RNG like torchvision does; then, with
        ``rotate90_probability > 0``, a random quarter turn (no draw at all when it is 0)."""
        if torch.rand(1, generator=generator).item() < flip_probability:
            image = image[:, :, ::-1]
        height, width = image.shape[-2:]
        crop_h, crop_w = crop_size.height, crop_size.width
        if height < crop_h or width < crop_w:
            raise ValueError(f"crop size {crop_h}x{crop_w} is larger than the resized image {height}x{width}")
        top = int(torch.randint(0, height - crop_h + 1, size=(1,), generator=generator).item())
        left = int(torch.randint(0, width - crop_w + 1, size=(1,), generator=generator).item())
        image = image[:, top : top + crop_h, left : left + crop_w]
        if rotate90_probability > 0:
            if crop_h != crop_w:
                raise ValueError(f"rotate90_probability needs a square crop_size, got {crop_h}x{crop_w}")
            if torch.rand(1, generator=generator).item() < rotate90_probability:
                turns = int(torch.randint(1, 4, size=(1,), generator=generator).item())
                image = np.rot90(image, turns, axes=(1, 2))
        return np.ascontiguousarray(image)

    def _preprocess(
        self,
        images: list[np.ndarray],
        do_resize: bool,
        size: SizeDict,
        resample: Optional[PILImageResampling],
        do_center_crop: bool,
        crop_size: SizeDict,
        do_rescale: bool,
        rescale_factor: float,
        do_normalize: bool,
        image_mean: Union[float, Sequence[float], None],
        image_std: Union[float, Sequence[float], None],
        do_pad: Optional[bool],
        pad_size: Optional[SizeDict],
        return_tensors: Union[str, TensorType, None],
        do_augment: Optional[bool] = False,
        train_size: Optional[SizeDict] = None,
        flip_probability: Optional[float] = 0.5,
        rotate90_probability: Optional[float] = 0.0,
        generator: Optional[torch.Generator] = None,
        **kwargs: Any,
    ) -> BatchFeature:
        processed = []
        for image in images:
            if do_augment:
                image = self.resize(image=image, size=train_size, resample=resample)
                image = self._augment(image, crop_size, 0.5 if flip_probability is None else flip_probability,
                                      generator, rotate90_probability or 0.0)
            else:
                if do_resize:
                    image = self.resize(image=image, size=size, resample=resample)
                if do_center_crop:
                    image = self.center_crop(image, crop_size)
            if do_rescale:
                image = self.rescale(image, rescale_factor)
            if do_normalize:
                image = self.normalize(image, image_mean, image_std)
            processed.append(np.asarray(image, dtype=np.float32))
        if do_pad:
            processed = self.pad(processed, pad_size=pad_size)
        return BatchFeature(data={"pixel_values": processed}, tensor_type=return_tensors)

    def to_dict(self) -> dict[str, Any]:
        output = super().to_dict()
        output.pop("generator", None)  # runtime object, never serialized
        return output


__all__ = ["AesMambaImageProcessor", "ImageLoadError", "array_to_pil", "load_image", "normalize_pil_image",
           "to_rgb"]
