"""Shared test set-up."""

from __future__ import annotations

import pytest
from PIL import ImageFile


@pytest.fixture(autouse=True)
def _strict_pil(monkeypatch):
    """Truncated images must fail to decode in every test (PIL's default; some libraries switch it on)."""
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", False)
