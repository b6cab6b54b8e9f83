"""Taste adapters: one user's taste fitted in closed form from a few ratings, with what many raters taught.

Ten ratings cannot train a network, but they can place a user within the ways raters are known to differ. A
:class:`TastePrior` holds those ways for one base model and one head: how raters' errors against the base
(rating − base score) depend on the feature the heads read, as a low-rank covariance of per-rater taste
directions, plus the noise of a single rating. It is learned once from many raters' ratings of images the base
did not train on (:func:`estimate_taste_prior`; the demo uses its P model's training raters on validation photos)
and saved beside the base (``taste_prior.safetensors``).

For a new user, :func:`fit_taste` takes the posterior mean of their direction under that prior (Bayesian linear
regression: with ``Σ = LᵀL`` of rank r, ``z = (GᵀG + σ²I)⁻¹ Gᵀ r`` with ``G = Z Lᵀ``, direction ``Lᵀz``) — so
a few ratings move the scores only along directions in which raters really differ, and only as far as the
ratings' noise allows. :func:`taste_adapter` stores it as a PEFT LoRA adapter of rank 1 on the model's
``taste`` layer (``TasteDirections``: zero in a base), which reproduces it exactly and merges exactly.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch

PathLike = Union[str, os.PathLike]
TASTE_PRIOR_FILE = "taste_prior.safetensors"
DEFAULT_RANK = 8
# per-rater ridge strength per rating (standardised features) when the prior is estimated: the same shrinkage for
# raters with few and with many ratings; 2.0 was best among 0.7-7 by leave-one-rater-out on the demo's P model
DEFAULT_RIDGE_PER_RATING = 2.0
MIN_RATINGS_PER_RATER = 20
PRIOR_FORMAT = "aesmamba-taste-prior-1"


class TastePriorError(ValueError):
    """A base model without a taste prior, or a prior made for another model or head."""


@dataclass
class TastePrior:
    """How raters differ from a base model on one head (module docstring).

    ``factor`` (r, D + 1): Σ = factorᵀ·factor over standardised features plus a constant (the rater's offset);
    ``feature_mean``/``feature_scale`` (D,): the standardisation; ``noise_var``: one rating's variance around
    the rater's own taste; ``head``: the head; ``raters``/``ratings``: what it was learned from.
    """

    factor: np.ndarray
    feature_mean: np.ndarray
    feature_scale: np.ndarray
    noise_var: float
    head: str
    raters: int
    ratings: int

    def design(self, features: np.ndarray) -> np.ndarray:
        """(N, D + 1): standardised features and a constant column."""
        z = (np.asarray(features, dtype=np.float64) - self.feature_mean) / self.feature_scale
        return np.concatenate([z, np.ones((len(z), 1))], axis=1)

    def save(self, path: PathLike) -> Path:
        """Write the prior atomically to ``path``: an existing folder (a model folder: ``taste_prior.safetensors``
        in it) or a file name."""
        from safetensors.numpy import save_file

        path = Path(path)
        path = path / TASTE_PRIOR_FILE if path.is_dir() else path
        meta = {"head": self.head, "noise_var": str(float(self.noise_var)), "raters": str(int(self.raters)),
                "ratings": str(int(self.ratings)), "format": PRIOR_FORMAT}
        tmp = path.with_name(path.name + ".tmp")
        try:
            save_file({"factor": self.factor.astype(np.float32), "feature_mean": self.feature_mean.astype(np.float32),
                       "feature_scale": self.feature_scale.astype(np.float32)}, str(tmp), metadata=meta)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return path

    @classmethod
    def load(cls, path: PathLike) -> TastePrior:
        """Read a prior file, or a model folder's ``taste_prior.safetensors``."""
        from safetensors import safe_open

        path = Path(path)
        path = path / TASTE_PRIOR_FILE if path.is_dir() else path
        if not path.is_file():
            raise TastePriorError(f"no taste prior at {path}: estimate one for this base with "
                                  "aesmamba_hf.piaa.estimate_taste_prior (the demo's P model carries one)")
        try:
            with safe_open(str(path), framework="np") as handle:
                meta = handle.metadata() or {}
                arrays = {k: handle.get_tensor(k).astype(np.float64) for k in handle.keys()}
            if meta.get("format") != PRIOR_FORMAT:
                raise ValueError(f"format {meta.get('format')!r}, expected {PRIOR_FORMAT!r}")
            prior = cls(arrays["factor"], arrays["feature_mean"], arrays["feature_scale"],
                        float(meta["noise_var"]), meta["head"], int(meta["raters"]), int(meta["ratings"]))
        except Exception as err:  # safetensors' own error is a bare Exception subclass
            raise TastePriorError(f"{path} is not a readable taste prior ({type(err).__name__}: {err})") from err
        dim = prior.factor.shape[1] - 1 if prior.factor.ndim == 2 else -1
        if (dim < 1 or prior.feature_mean.shape != (dim,) or prior.feature_scale.shape != (dim,)
                or not np.isfinite(prior.factor).all() or not (np.isfinite(prior.noise_var) and prior.noise_var > 0)):
            raise TastePriorError(f"{path} is not a valid taste prior (factor {prior.factor.shape}, mean "
                                  f"{prior.feature_mean.shape}, noise variance {prior.noise_var})")
        return prior

    def check_model(self, model: Any) -> None:
        taste_row(model, self.head)
        taste = model.taste
        if taste.in_features != self.factor.shape[1]:
            raise TastePriorError(f"the taste prior is for features of size {self.factor.shape[1] - 1}; this "
                                  f"model's heads read {taste.in_features - 1}: it belongs to another base")


def taste_row(model: Any, head: str) -> int:
    """The row of ``model.taste`` that adds to ``head``'s score; an error for a model without a taste layer, an
    unknown head or a distribution head."""
    names = list(model.config.head_names)
    if head not in names:
        raise TastePriorError(f"the taste prior is for head {head!r}; this model has {names}")
    if getattr(model, "taste", None) is None or names.index(head) not in model.taste_columns:
        raise TastePriorError(f"head {head!r} is a distribution head (or the model has no taste layer): taste "
                              "adapters fit scalar heads; use a LoRA adapter kind")
    return model.taste_columns.index(names.index(head))


def features_and_residuals(model: Any, processor: Any, rows: Sequence[Mapping[str, Any]], head: str,
                           batch_size: int = 32, predictions: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """The heads' input feature (N, D) and the residual rating − base score (N,) on ``head`` for rows in the
    training schema (``image``, ``labels`` in head order, optional ``user``/``comment``). ``predictions``: the
    base's ``Predictions`` of these rows with features, when the caller already has them (not computed again)."""
    from ..inference.predictor import Predictor

    column = list(model.config.head_names).index(head)
    result = predictions
    if result is None:
        examples = [{k: r[k] for k in ("image", "user", "comment") if k in r} for r in rows]
        result = Predictor(model, processor, batch_size=batch_size).predict_examples(examples, with_features=True)
    if result.errors:
        index, reason = next(iter(result.errors.items()))
        raise ValueError(f"row {rows[index].get('source') or index}: {reason}")
    labels = np.asarray([r["labels"][column] for r in rows], dtype=np.float64)
    return result.features.astype(np.float64), labels - result.scores[:, column].astype(np.float64)


def estimate_taste_prior(model: Any, processor: Any, rows_by_rater: Mapping[str, Sequence[Mapping[str, Any]]],
                         head: Optional[str] = None, rank: int = DEFAULT_RANK,
                         ridge_per_rating: float = DEFAULT_RIDGE_PER_RATING,
                         min_ratings: int = MIN_RATINGS_PER_RATER, batch_size: int = 32) -> TastePrior:
    """Learn a :class:`TastePrior` from many raters' ratings of images ``model`` did not train on.

    Per rater with at least ``min_ratings`` rows: a ridge fit of their residuals on the standardised features
    (strength ``ridge_per_rating`` × their number of ratings; their offset, i.e. leniency, unpenalised); the
    prior's covariance is the mean outer product of those directions, kept to its ``rank`` largest components;
    ``noise_var`` the mean residual variance left after each fit.
    """
    from ..inference.predictor import overall_head_index

    head = head or model.config.head_names[overall_head_index(model.config)]
    taste_row(model, head)
    kept = {rater: rows for rater, rows in rows_by_rater.items() if len(rows) >= min_ratings}
    if len(kept) < 2:
        raise ValueError(f"a taste prior needs at least 2 raters with >= {min_ratings} ratings each; "
                         f"{len(kept)} of {len(rows_by_rater)} have that many")
    per_rater = {rater: features_and_residuals(model, processor, rows, head, batch_size)
                 for rater, rows in kept.items()}
    return taste_prior_from_residuals(per_rater, head, rank, ridge_per_rating)


def taste_prior_from_residuals(per_rater: Mapping[str, tuple[np.ndarray, np.ndarray]], head: str,
                               rank: int = DEFAULT_RANK,
                               ridge_per_rating: float = DEFAULT_RIDGE_PER_RATING) -> TastePrior:
    """The prior of :func:`estimate_taste_prior` from each rater's (features (n, D), residuals (n,))."""
    if len(per_rater) < 2:
        raise ValueError(f"a taste prior needs the ratings of at least 2 raters; got {len(per_rater)}")
    features = np.concatenate([f for f, _ in per_rater.values()])
    prior = TastePrior(np.zeros((0, features.shape[1] + 1)), features.mean(axis=0), features.std(axis=0) + 1e-6,
                       0.0, head, len(per_rater), len(features))
    directions, noise = [], []
    for f, r in per_rater.values():
        x = prior.design(f)
        penalty = ridge_per_rating * len(r) * np.eye(x.shape[1])
        penalty[-1, -1] = 0.0  # the rater's offset (leniency) is not shrunk
        beta = np.linalg.solve(x.T @ x + penalty, x.T @ r)
        directions.append(beta)
        noise.append(float(np.mean((r - x @ beta) ** 2)))
    stacked = np.stack(directions)
    values, vectors = np.linalg.eigh(stacked.T @ stacked / len(stacked))
    top = np.argsort(values)[::-1][: max(1, rank)]
    prior.factor = (vectors[:, top] * np.sqrt(np.clip(values[top], 0.0, None))).T
    prior.noise_var = float(np.mean(noise))
    return prior


def fit_taste(prior: TastePrior, features: np.ndarray, residuals: np.ndarray) -> np.ndarray:
    """One user's taste row for the model's ``taste`` layer ((D + 1,): weights on the raw feature, then the
    offset) — the posterior mean under ``prior`` given their ratings' residuals against the base."""
    x = prior.design(features)
    g = x @ prior.factor.T
    z = np.linalg.solve(g.T @ g + prior.noise_var * np.eye(len(prior.factor)), g.T @ np.asarray(residuals, float))
    beta = prior.factor.T @ z  # over standardised features + constant
    weights = beta[:-1] / prior.feature_scale
    return np.concatenate([weights, [beta[-1] - weights @ prior.feature_mean]])


def taste_adapter(base: Any, head: str, row: np.ndarray) -> Any:
    """A ``peft.PeftModel`` on a copy of ``base`` whose LoRA adapter of rank 1 on ``taste`` adds
    ``row · [feature, 1]`` to ``head``'s score: exactly, also when merged (``base`` itself is left as it is)."""
    from peft import get_peft_model

    from .adapters import adapter_config

    row_index = taste_row(base, head)
    with torch.random.fork_rng(devices=[]):  # PEFT's random init of lora_A (overwritten) leaves callers' seeds alone
        model = get_peft_model(copy.deepcopy(base), adapter_config(base, "taste"))
    layer = model.base_model.model.taste
    with torch.no_grad():
        layer.lora_A["default"].weight.copy_(torch.as_tensor(row, dtype=torch.float32)[None, :])
        b = torch.zeros_like(layer.lora_B["default"].weight)
        b[row_index, 0] = 1.0
        layer.lora_B["default"].weight.copy_(b)
    model.requires_grad_(False)
    return model.eval()


def fit_taste_adapter(base: Any, processor: Any, rows: Sequence[Mapping[str, Any]], prior: TastePrior,
                      batch_size: int = 32, predictions: Any = None) -> Any:
    """One user's taste adapter from their rows (training schema): the base's features and residuals on the
    prior's head (``predictions``: see :func:`features_and_residuals`), the posterior-mean row, as a PEFT model on
    a copy of ``base`` (``personalize`` and the PIAA protocol both make it here)."""
    features, residuals = features_and_residuals(base, processor, rows, prior.head, batch_size, predictions)
    return taste_adapter(base, prior.head, fit_taste(prior, features, residuals))


def taste_summary(prior: TastePrior) -> dict[str, Any]:
    """What ``personalization.json`` records of the prior used."""
    return {"head": prior.head, "rank": int(len(prior.factor)), "noise_var": prior.noise_var,
            "raters": prior.raters, "ratings": prior.ratings}


def prior_for(base: Any, given: Optional[PathLike] = None) -> TastePrior:
    """The prior to personalise ``base`` with: the file ``given``, else ``taste_prior.safetensors`` in the folder
    the base was loaded from (a Hub model's downloaded snapshot included); checked against ``base``."""
    source = getattr(base, "name_or_path", None)
    if given is not None:
        prior = TastePrior.load(given)
    elif source and Path(source).is_dir():
        prior = TastePrior.load(source)
    else:
        raise TastePriorError("the 'taste' adapter needs the base's taste prior: pass taste_prior= / --taste-prior "
                              "(a file), or a base loaded from a folder that holds taste_prior.safetensors")
    prior.check_model(base)
    return prior


__all__ = ["TASTE_PRIOR_FILE", "TastePrior", "TastePriorError", "estimate_taste_prior", "features_and_residuals",
           "fit_taste", "fit_taste_adapter", "prior_for", "taste_adapter", "taste_prior_from_residuals",
           "taste_row", "taste_summary"]
