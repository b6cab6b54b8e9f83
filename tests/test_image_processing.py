"""AesMambaImageProcessor and load_image: the authors' transforms, every PIL mode, broken files."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile

from aesmamba_hf.dataset_specs import AADB_MEAN, AADB_STD, CLIP_MEAN, CLIP_STD
from aesmamba_hf.image_processing_aesmamba import AesMambaImageProcessor, ImageLoadError, load_image


@pytest.fixture(autouse=True)
def _strict_pil(monkeypatch):
    # Other code may have made PIL lenient globally; these tests need PIL's default behaviour.
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", False)


def _random_rgb(height=48, width=80, seed=0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def _manual(image: Image.Image, size: int, mean=CLIP_MEAN, std=CLIP_STD) -> np.ndarray:
    """The authors' eval transform written with plain PIL + NumPy: bicubic resize, /255, normalize."""
    resized = np.asarray(image.resize((size, size), Image.Resampling.BICUBIC), dtype=np.float32) / 255.0
    chw = resized.transpose(2, 0, 1)
    return (chw - np.asarray(mean, np.float32)[:, None, None]) / np.asarray(std, np.float32)[:, None, None]


def test_eval_transform_matches_bicubic_resize_and_clip_normalization():
    image = _random_rgb()
    out = AesMambaImageProcessor()(image, return_tensors="pt").pixel_values
    assert out.shape == (1, 3, 224, 224) and out.dtype == torch.float32
    np.testing.assert_allclose(out[0].numpy(), _manual(image, 224), atol=1e-5)


def test_numpy_and_pil_inputs_agree_and_pil_inputs_are_not_modified():
    image = _random_rgb(seed=5)
    processor = AesMambaImageProcessor()
    from_pil = processor(image, return_tensors="np").pixel_values
    from_array = processor(np.asarray(image), return_tensors="np").pixel_values
    np.testing.assert_allclose(from_array, from_pil, atol=1e-6)
    rgba = image.convert("RGBA")
    processor(rgba)
    assert rgba.mode == "RGBA" and rgba.size == image.size


def test_aadb_statistics_and_batch():
    image = _random_rgb(seed=1)
    processor = AesMambaImageProcessor.for_dataset("AADB")
    assert tuple(processor.image_mean) == AADB_MEAN and tuple(processor.image_std) == AADB_STD
    out = processor([image, image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)], return_tensors="pt").pixel_values
    assert out.shape == (2, 3, 224, 224)
    np.testing.assert_allclose(out[0].numpy(), _manual(image, 224, AADB_MEAN, AADB_STD), atol=1e-5)


def test_train_transform_resize_flip_crop_reproduces_torch_rng_draws():
    image = _random_rgb(seed=2)
    processor = AesMambaImageProcessor()
    outs = []
    for seed in range(6):
        out = processor(image, train=True, generator=torch.Generator().manual_seed(seed),
                        return_tensors="pt").pixel_values[0].numpy()
        # Same draws in the same order as torchvision RandomHorizontalFlip -> RandomCrop
        g = torch.Generator().manual_seed(seed)
        flip = torch.rand(1, generator=g).item() < 0.5
        top = int(torch.randint(0, 256 - 224 + 1, (1,), generator=g).item())
        left = int(torch.randint(0, 256 - 224 + 1, (1,), generator=g).item())
        full = _manual(image, 256)
        if flip:
            full = full[:, :, ::-1]
        expected = full[:, top : top + 224, left : left + 224]
        np.testing.assert_allclose(out, expected, atol=1e-5)
        outs.append((flip, top, left))
    assert len(set(outs)) > 1  # the draws actually vary with the seed
    # do_augment is the same switch; the default stays the eval transform
    a = processor(image, do_augment=True, generator=torch.Generator().manual_seed(3), return_tensors="np")
    b = processor(image, train=True, generator=torch.Generator().manual_seed(3), return_tensors="np")
    np.testing.assert_array_equal(a.pixel_values, b.pixel_values)
    assert processor.do_augment is False


def test_random_quarter_turns_follow_the_flip_and_crop_draws():
    image = _random_rgb(seed=4)
    sizes = dict(size=64, crop_size=64, train_size=64)
    plain = AesMambaImageProcessor(**sizes)
    turning = AesMambaImageProcessor(**sizes, rotate90_probability=0.75)
    seen = set()
    for seed in range(12):
        out = turning(image, train=True, generator=torch.Generator().manual_seed(seed),
                      return_tensors="pt").pixel_values[0].numpy()
        # flip and crop draw first, as without the option; then the turn decision and the number of turns
        base = plain(image, train=True, generator=torch.Generator().manual_seed(seed),
                     return_tensors="pt").pixel_values[0].numpy()
        g = torch.Generator().manual_seed(seed)
        torch.rand(1, generator=g)  # flip
        torch.randint(0, 1, (1,), generator=g)  # crop top (resize = crop size: one choice)
        torch.randint(0, 1, (1,), generator=g)  # crop left
        turns = int(torch.randint(1, 4, (1,), generator=g).item()) if torch.rand(1, generator=g).item() < 0.75 else 0
        np.testing.assert_allclose(out, np.rot90(base, turns, axes=(1, 2)), atol=1e-6)
        seen.add(turns)
    assert seen == {0, 1, 2, 3}
    with pytest.raises(ValueError, match="square"):
        AesMambaImageProcessor(size=64, crop_size={"height": 64, "width": 48}, train_size=64,
                               rotate90_probability=0.5)(image, train=True)


def _mode_image(mode: str) -> tuple[Image.Image, tuple[int, int, int]]:
    """A 16x16 image of ``mode`` whose every pixel should become the returned RGB colour."""
    if mode == "L":
        return Image.new("L", (16, 16), 100), (100, 100, 100)
    if mode == "LA":
        return Image.new("LA", (16, 16), (30, 0)), (255, 255, 255)  # fully transparent -> white background
    if mode == "P":
        image = Image.new("P", (16, 16), 1)
        image.putpalette([0, 0, 0, 10, 200, 30] + [0] * (256 * 3 - 6))
        return image, (10, 200, 30)
    if mode == "RGBA":
        return Image.new("RGBA", (16, 16), (200, 0, 0, 128)), (228, 127, 127)  # 50 % red over white
    if mode == "CMYK":
        return Image.new("CMYK", (16, 16), (0, 255, 255, 0)), (255, 0, 0)
    if mode == "I;16":
        image = Image.fromarray(np.full((16, 16), 65535, dtype=np.uint16))
        assert image.mode == "I;16"
        return image, (255, 255, 255)  # scaled, not clipped
    if mode == "1":
        return Image.new("1", (16, 16), 1), (255, 255, 255)
    raise AssertionError(mode)


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "CMYK", "I;16", "1"])
def test_every_mode_becomes_rgb_from_file_and_from_pil(tmp_path, mode):
    image, expected = _mode_image(mode)
    path = tmp_path / ("img.tiff" if mode == "CMYK" else "img.png")
    image.save(path)
    with Image.open(path) as reopened:
        assert reopened.mode == mode
    loaded = load_image(path)
    assert loaded.mode == "RGB" and loaded.size == (16, 16)
    np.testing.assert_allclose(np.asarray(loaded)[0, 0], expected, atol=1)
    # A PIL image handed to the processor goes through the same conversion
    processor = AesMambaImageProcessor(do_normalize=False, do_resize=False)
    pixels = processor(image, return_tensors="np").pixel_values[0]
    assert pixels.shape == (3, 16, 16)
    np.testing.assert_allclose(pixels[:, 0, 0] * 255, expected, atol=1.01)
    full = AesMambaImageProcessor()([path, image], return_tensors="pt").pixel_values
    assert full.shape == (2, 3, 224, 224)
    torch.testing.assert_close(full[0], full[1])  # the lossless file and the PIL image give one tensor
    # a flat colour stays flat through the bicubic resize: every pixel is (colour / 255 - mean) / std
    want = (torch.tensor(expected) / 255.0 - torch.tensor(CLIP_MEAN)) / torch.tensor(CLIP_STD)
    torch.testing.assert_close(full[0], want[:, None, None].expand(3, 224, 224), atol=1.01 / 255 / min(CLIP_STD),
                               rtol=0)


def test_sixteen_bit_grey_keeps_its_gradations(tmp_path):
    ramp = np.linspace(0, 65535, 16 * 16).astype(np.uint16).reshape(16, 16)
    Image.fromarray(ramp).save(tmp_path / "ramp.png")
    grey = np.asarray(load_image(tmp_path / "ramp.png"))[..., 0].astype(int)
    np.testing.assert_allclose(grey, np.rint(ramp / 257.0), atol=1)
    assert len(np.unique(grey)) > 200  # PIL's own convert() would clip nearly everything to 255


def test_exif_rotated_jpeg_gives_the_same_tensor_as_its_upright_twin(tmp_path):
    # 8x8-block-aligned flat colours at quality 100 / 4:4:4 survive JPEG (almost) exactly, rotated or not.
    rng = np.random.default_rng(0)
    blocks = rng.integers(0, 256, (6, 10, 3), dtype=np.uint8)
    upright = Image.fromarray(np.kron(blocks, np.ones((8, 8, 1), dtype=np.uint8)))  # 48 x 80 (h x w)
    upright.save(tmp_path / "upright.jpg", quality=100, subsampling=0)
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # what a camera held sideways writes
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to display
    stored.save(tmp_path / "rotated.jpg", quality=100, subsampling=0, exif=exif)

    with Image.open(tmp_path / "rotated.jpg") as raw:
        assert raw.size == (48, 80)  # stored sideways
    assert load_image(tmp_path / "rotated.jpg").size == (80, 48)

    processor = AesMambaImageProcessor()
    a = processor(tmp_path / "upright.jpg", return_tensors="pt").pixel_values
    b = processor(str(tmp_path / "rotated.jpg"), return_tensors="pt").pixel_values
    with Image.open(tmp_path / "rotated.jpg") as opened:  # PIL input is transposed as well
        c = processor(opened, return_tensors="pt").pixel_values
    torch.testing.assert_close(a, b, atol=2e-2, rtol=0)  # < 1/255 / std: JPEG rounding only
    torch.testing.assert_close(b, c, atol=0, rtol=0)
    # without the EXIF rotation the picture would differ grossly
    assert (a - processor(stored.resize((80, 48)), return_tensors="pt").pixel_values).abs().max() > 0.5


def test_animated_gif_uses_the_first_frame(tmp_path):
    frames = [Image.new("RGB", (20, 20), colour) for colour in ((255, 0, 0), (0, 0, 255), (0, 255, 0))]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=50, loop=0)
    with Image.open(tmp_path / "anim.gif") as opened:
        assert opened.n_frames == 3
        opened.seek(2)  # even when a later frame is current
        from_pil = np.asarray(load_image(opened))
    from_file = np.asarray(load_image(tmp_path / "anim.gif"))
    for array in (from_file, from_pil):
        np.testing.assert_array_equal(array[0, 0], (255, 0, 0))


def _png_bomb(path, width=100_000, height=100_000):
    """A tiny PNG whose header declares 10^10 pixels (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit grey
    data = zlib.compress(b"\x00" * 1000)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b""))
    return path


def test_broken_files_raise_clear_errors_naming_the_file(tmp_path):
    good = tmp_path / "good.jpg"
    _random_rgb(64, 64).save(good, quality=90)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    text = tmp_path / "notes.jpg"
    text.write_text("this is not an image\n")
    bomb = _png_bomb(tmp_path / "bomb.png")

    cases = {
        truncated: "truncated",
        empty: "empty file",
        text: "not an image",
        bomb: "decompression bomb",
        tmp_path / "missing.png": "no such file",
    }
    for path, reason in cases.items():
        with pytest.raises(ImageLoadError) as info:
            load_image(path)
        assert str(path) in str(info.value) and reason in str(info.value)
        assert info.value.path == str(path)
        with pytest.raises(ImageLoadError, match=reason):  # the processor reports the same
            AesMambaImageProcessor()([good, path])
    # an explicit pixel limit applies to ordinary images too
    with pytest.raises(ImageLoadError, match="decompression bomb"):
        load_image(good, max_pixels=64 * 64 - 1)
    assert load_image(good, max_pixels=64 * 64).size == (64, 64)


def test_save_load_round_trip_and_auto_class(tmp_path):
    from transformers import AutoImageProcessor

    processor = AesMambaImageProcessor.for_dataset("AADB", train_size=288, flip_probability=0.25)
    processor.save_pretrained(tmp_path)
    for loaded in (AesMambaImageProcessor.from_pretrained(tmp_path), AutoImageProcessor.from_pretrained(tmp_path)):
        assert type(loaded) is AesMambaImageProcessor
        assert tuple(loaded.image_mean) == AADB_MEAN
        assert (loaded.train_size.height, loaded.train_size.width) == (288, 288)
        assert loaded.flip_probability == 0.25 and loaded.resample == Image.Resampling.BICUBIC
    image = _random_rgb(seed=4)
    torch.testing.assert_close(processor(image, return_tensors="pt").pixel_values,
                               AutoImageProcessor.from_pretrained(tmp_path)(image, return_tensors="pt").pixel_values)
