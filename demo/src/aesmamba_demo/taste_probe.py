"""What ten ratings can teach on top of the demo's P model, measured with the benchmark's own truth.

The demo knows each held-out rater's own taste exactly (``benchmark.expected_scores``: a personal weight on each
of the edit factors, ``piaa_personal = personal_factors @ personal_weights.T``), so it can say why a few-shot
result is what it is, separately from how well any particular adapter trains:

* ``features_r2`` — how much of a rater's own taste the base model's features carry: a ridge regression from
  the feature the heads read (``Predictor.predict_examples(with_features=True)``, under the rater's prompt) to
  the noise-free own-taste term, fitted on up to ``pool_size`` of the rater's training images (ridge strength
  by 5-fold cross-validation there), R² on their test images. An adapter on the heads reads only these
  features, so what they do not carry it cannot learn, however many ratings it gets; ``factor_r2`` says the
  same per factor (which edits the base model sees at all).
* ``informed_srcc`` — a learner told everything but the rater's weights: which factors their own taste is
  about, the prior spread of the weights and the noise of their ratings. Given k of the rater's ratings it
  fits the weights by the exact Bayesian posterior mean on the residuals of the base's scores, and its SRCC
  on the test images is averaged over ``draws`` random k-shot sets. A learner that sees only the k ratings and
  the images can hardly expect more; one that also learned from other raters (a taste adapter's prior) can
  exceed it where the base's errors are shared across raters. It is a reference for the k-shot goals, not a
  strict bound.

Both use generator knowledge a real deployment never has; they describe the demo's data and base model, not
a method.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from aesmamba_hf.dataset_specs import PARA_ATTRIBUTE_NAMES

from .benchmark import PERSONAL_FACTORS, expected_scores

RIDGE_GRID = tuple(10.0 ** e for e in range(-2, 5))


def _standardize(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean, std = train.mean(axis=0), train.std(axis=0) + 1e-6
    return (train - mean) / std, (test - mean) / std


def _ridge(x: np.ndarray, y: np.ndarray, lam: float) -> tuple[np.ndarray, float]:
    """Ridge weights and intercept (the intercept not penalised)."""
    xm, ym = x.mean(axis=0), y.mean(axis=0)
    w = np.linalg.solve((x - xm).T @ (x - xm) + lam * np.eye(x.shape[1]), (x - xm).T @ (y - ym))
    return w, ym - xm @ w


def ridge_r2(x_fit: np.ndarray, y_fit: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, folds: int = 5,
             seed: int = 0) -> np.ndarray:
    """Test R² per target column of a ridge regression whose strength is chosen by k-fold CV on the fit set."""
    y_fit, y_test = y_fit.reshape(len(y_fit), -1), y_test.reshape(len(y_test), -1)
    x_fit, x_test = _standardize(x_fit, x_test)
    fold = np.random.default_rng(seed).permutation(len(x_fit)) % folds
    cv_error = []
    for lam in RIDGE_GRID:
        error = np.zeros(y_fit.shape[1])
        for f in range(folds):
            w, b = _ridge(x_fit[fold != f], y_fit[fold != f], lam)
            error += ((x_fit[fold == f] @ w + b - y_fit[fold == f]) ** 2).sum(axis=0)
        cv_error.append(error)
    best = np.asarray(RIDGE_GRID)[np.argmin(np.stack(cv_error), axis=0)]
    r2 = np.empty(y_fit.shape[1])
    for j, lam in enumerate(best):
        w, b = _ridge(x_fit, y_fit[:, j], lam)
        r2[j] = 1.0 - np.mean((x_test @ w + b - y_test[:, j]) ** 2) / max(np.var(y_test[:, j]), 1e-12)
    return r2


def informed_srcc(factors_pool: np.ndarray, residual_pool: np.ndarray, factors_test: np.ndarray,
                  base_test: np.ndarray, y_test: np.ndarray, prior_var: float, noise_var: float, k: int,
                  draws: int, seed: int) -> float:
    """Mean test SRCC of base + the Bayesian posterior-mean fit of the own-taste weights on k random shots
    (prior N(0, prior_var I) on the weights, Gaussian noise of noise_var; intercept free)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(draws):
        shots = rng.choice(len(residual_pool), k, replace=False)
        x, r = factors_pool[shots], residual_pool[shots]
        xm = x.mean(axis=0)
        w = np.linalg.solve((x - xm).T @ (x - xm) + (noise_var / prior_var) * np.eye(x.shape[1]),
                            (x - xm).T @ (r - r.mean()))
        out.append(spearmanr(base_test + (factors_test - xm) @ w, y_test)[0])
    return float(np.nanmean(out))


def probe_taste(model: Any, processor: Any, para_root: Path, bench_root: Path, users: Sequence[str],
                test_size: int, seed: int, shots: Sequence[int], pool_size: int = 400, draws: int = 200
                ) -> dict[str, Any]:
    """Per held-out user: ``features_r2``, ``factor_r2`` (per factor), ``informed_srcc`` {k: SRCC} and the
    ``zero_shot_srcc`` of the base on the same test rows (module docstring); ``factors``: the factor names."""
    from aesmamba_hf.inference.predictor import Predictor
    from aesmamba_hf.piaa import PIAAConfig, load_users

    exp = expected_scores(bench_root)
    index = {f"{s}/{n}": i for i, (s, n) in enumerate(zip(exp["sessions"], exp["image_names"]))}
    lazy, _ = load_users(para_root, PIAAConfig(users=list(users), shots=[1], seed=seed, test_size=test_size))
    predictor = Predictor(model, processor, batch_size=64)
    head = list(model.config.head_names).index("aesthetic")
    label = list(PARA_ATTRIBUTE_NAMES).index("aesthetic")  # PIAA rows carry the nine PARA labels in this order
    out: dict[str, Any] = {"factors": list(PERSONAL_FACTORS), "pool_size": pool_size, "draws": draws, "users": {}}
    for user_rows in lazy:
        rng = np.random.default_rng(seed)
        pick = rng.choice(len(user_rows.train_rows), min(pool_size, len(user_rows.train_rows)), replace=False)
        user_rows.train_rows = [user_rows.train_rows[i] for i in sorted(pick)]
        data = user_rows.decoded()
        j = exp["user_ids"].index(data.user)
        parts = {}
        for name, rows in (("pool", data.train_rows), ("test", data.test_rows)):
            pred = predictor.predict_examples(rows, with_features=True)
            idx = [index[r["image_id"]] for r in rows]
            parts[name] = {"features": pred.features, "base": pred.scores[:, head].astype(np.float64),
                           "y": np.asarray([r["labels"][label] for r in rows], dtype=np.float64),
                           "factors": exp["personal_factors"][idx], "own": exp["piaa_personal"][idx, j]}
        pool, test = parts["pool"], parts["test"]
        residual = pool["y"] - pool["base"]
        prior_var = float(exp["personal_prior_std"][j] ** 2)
        noise_var = float(np.var(residual - pool["own"]))
        out["users"][data.user] = {
            "features_r2": float(ridge_r2(pool["features"], pool["own"], test["features"], test["own"])[0]),
            "factor_r2": dict(zip(PERSONAL_FACTORS, ridge_r2(pool["features"], pool["factors"], test["features"],
                                                         test["factors"]).round(4).tolist())),
            "zero_shot_srcc": float(spearmanr(test["base"], test["y"])[0]),
            "informed_srcc": {str(k): informed_srcc(pool["factors"], residual, test["factors"], test["base"],
                                                    test["y"], prior_var, noise_var, k, draws, seed)
                              for k in shots if k <= len(residual)},
        }
    return out
