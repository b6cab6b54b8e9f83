"""Old import path of :func:`load_scorer`; it lives in :mod:`aesmamba_hf.inference.scorer`."""

from .inference.scorer import AestheticScorer, load_scorer

__all__ = ["AestheticScorer", "load_scorer"]
