"""The packaged ``evaluate`` metric module (offline-loadable by path)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

AESTHETIC_METRICS_PATH = str(Path(__file__).resolve().parent / "aesthetic_metrics")


def load_aesthetic_metric(**kwargs: Any):
    """``evaluate.load`` of the packaged aesthetic metric module (no network needed)."""
    import evaluate  # optional at import time of the package: evaluate is maintenance-only upstream

    return evaluate.load(AESTHETIC_METRICS_PATH, **kwargs)


__all__ = ["AESTHETIC_METRICS_PATH", "load_aesthetic_metric"]
