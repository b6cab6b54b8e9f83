"""A non-deep baseline for the demo: hand-crafted pixel statistics + ridge regression (numpy only).

The features look at the pixels only (never at the benchmark's ground-truth edit strengths): sharpness
(Laplacian variance, high-frequency energy), a noise estimate, brightness statistics and clipping,
saturation and colourfulness, the mean chroma (colour cast), edge density, JPEG blockiness, how
axis-aligned the edges are (tilt) and where the detail sits (off-centre framing). The ridge is solved in
closed form on standardised features; with several ``alphas`` the one with the lowest leave-one-out error
(exact for ridge, from the SVD) is kept.

    model = fit_baseline(train_paths, train_scores)          # targets (N,) or (N, K)
    pred = model.predict(test_paths)                         # (N,) or (N, K)
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

FEATURE_NAMES = (
    "log_laplacian_var", "highfreq_ratio", "mean_gradient", "noise_sigma", "chroma_noise",
    "brightness_mean", "brightness_std", "brightness_p05", "brightness_p95", "clipped_high", "clipped_low",
    "brightness_dev2", "saturation_mean", "saturation_std", "saturation_mean2", "colourfulness",
    "mean_rg", "mean_yb", "cast_magnitude", "edge_density", "blockiness_h", "blockiness_v",
    "axis_alignment", "detail_offset_x", "detail_offset_y", "detail_centre_share",
)

ImageLike = str | os.PathLike | Image.Image | np.ndarray


def _load(image: ImageLike) -> np.ndarray:
    if isinstance(image, np.ndarray):
        arr = image.astype(np.float32)
        return arr / 255.0 if arr.max() > 1.0 else arr
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    with Image.open(image) as im:
        return np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0


def _conv3(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    """'valid' 3x3 correlation of a 2-D array with a 3x3 kernel (small, so nine shifted adds are fastest)."""
    h, w = x.shape
    out = np.zeros((h - 2, w - 2), dtype=np.float32)
    for i in range(3):
        for j in range(3):
            if k[i, j]:
                out += k[i, j] * x[i:i + h - 2, j:j + w - 2]
    return out


_LAPLACE = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=np.float32)
_IMMERKAER = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float32)
_BOX = np.full((3, 3), 1 / 9, dtype=np.float32)


def _blockiness(gray: np.ndarray, axis: int) -> float:
    """Mean jump across 8-px block borders over the mean jump elsewhere (1 = no blocking)."""
    d = np.abs(np.diff(gray, axis=axis)).mean(axis=1 - axis)  # d[k] = jump between k and k+1
    idx = np.arange(d.shape[0])
    border = d[idx % 8 == 7]
    inner = d[idx % 8 != 7]
    return float(np.log((border.mean() + 1e-4) / (inner.mean() + 1e-4)))


def image_features(image: ImageLike) -> np.ndarray:
    """The ``FEATURE_NAMES`` statistics of one image (path, PIL image or HxWx3 array)."""
    x = _load(image)
    r, g, b = (np.ascontiguousarray(x[..., c]) for c in range(3))  # planar: strided reductions are slow
    gray = 0.299 * r + 0.587 * g + 0.114 * b
    h, w = gray.shape

    lap = _conv3(gray, _LAPLACE)
    smooth = _conv3(gray, _BOX)
    highfreq = gray[1:-1, 1:-1] - smooth
    gx = gray[1:-1, 2:] - gray[1:-1, :-2]
    gy = gray[2:, 1:-1] - gray[:-2, 1:-1]
    mag = np.hypot(gx, gy)
    # Immerkaer (1996) fast noise estimate; chroma noise from the high-pass of the R-G plane.
    noise = float(np.sqrt(np.pi / 2) * np.abs(_conv3(gray, _IMMERKAER)).mean() / 6)
    rg_plane = r - g
    chroma_noise = float(np.abs(_conv3(rg_plane, _IMMERKAER)).mean() / 6)

    mx, mn = np.maximum(np.maximum(r, g), b), np.minimum(np.minimum(r, g), b)  # faster than axis=2
    sat = np.where(mx > 1e-3, (mx - mn) / np.maximum(mx, 1e-3), 0.0)
    rg, yb = r - g, 0.5 * (r + g) - b
    colourfulness = float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))

    # Edge orientation: cos(4*theta) is 1 for horizontal/vertical edges, lower once the frame is tilted.
    strong = mag > np.quantile(mag, 0.9)
    theta = np.arctan2(gy[strong], gx[strong])
    axis_alignment = float(np.average(np.cos(4 * theta), weights=mag[strong])) if strong.any() else 0.0
    # Where the detail is: the gradient-energy centroid relative to the frame centre.
    energy = mag / (mag.sum() + 1e-8)
    cx = float(energy.sum(0) @ np.arange(w - 2) / (w - 3) - 0.5)
    cy = float(energy.sum(1) @ np.arange(h - 2) / (h - 3) - 0.5)
    centre = energy[(h - 2) // 3: 2 * (h - 2) // 3, (w - 2) // 3: 2 * (w - 2) // 3].sum()

    p05, p95 = np.quantile(gray, [0.05, 0.95])
    feats = [
        np.log(lap.var() + 1e-6), highfreq.var() / (gray.var() + 1e-6), mag.mean(), noise, chroma_noise,
        gray.mean(), gray.std(), p05, p95, (gray > 0.97).mean(), (gray < 0.03).mean(), (gray.mean() - 0.5) ** 2,
        sat.mean(), sat.std(), sat.mean() ** 2, colourfulness,
        rg.mean(), yb.mean(), np.hypot(rg.mean(), yb.mean()), (mag > 0.1).mean(),
        _blockiness(gray, 1), _blockiness(gray, 0),
        axis_alignment, abs(cx), abs(cy), centre,
    ]
    return np.asarray(feats, dtype=np.float64)


def extract_features(images: Sequence[ImageLike]) -> np.ndarray:
    """(N, len(FEATURE_NAMES)) features of ``images``."""
    if len(images) == 0:
        return np.zeros((0, len(FEATURE_NAMES)))
    return np.stack([image_features(im) for im in images])


@dataclass
class BaselineModel:
    """Standardisation + ridge weights; ``predict`` accepts images or precomputed features."""

    feature_mean: np.ndarray
    feature_scale: np.ndarray
    coef: np.ndarray  # (F, K)
    intercept: np.ndarray  # (K,)
    alpha: float
    squeeze: bool  # targets were 1-D
    feature_names: tuple[str, ...] = FEATURE_NAMES
    loo_rmse: dict[float, float] = field(default_factory=dict)

    def predict_features(self, features: np.ndarray) -> np.ndarray:
        z = (np.asarray(features, dtype=np.float64) - self.feature_mean) / self.feature_scale
        out = z @ self.coef + self.intercept
        return out[:, 0] if self.squeeze else out

    def predict(self, images: Sequence[ImageLike]) -> np.ndarray:
        return self.predict_features(extract_features(images))

    def save(self, path: str | os.PathLike) -> None:
        data = {
            "feature_names": list(self.feature_names), "feature_mean": self.feature_mean.tolist(),
            "feature_scale": self.feature_scale.tolist(), "coef": self.coef.tolist(),
            "intercept": self.intercept.tolist(), "alpha": self.alpha, "squeeze": self.squeeze,
            "loo_rmse": {str(k): v for k, v in self.loo_rmse.items()},
        }
        with open(path, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1)

    @classmethod
    def load(cls, path: str | os.PathLike) -> BaselineModel:
        with open(path, encoding="utf-8") as f:
            d = json.load(f)
        if tuple(d["feature_names"]) != FEATURE_NAMES:
            raise ValueError(f"{path}: saved with features {d['feature_names']}, this version has {FEATURE_NAMES}")
        return cls(np.array(d["feature_mean"]), np.array(d["feature_scale"]), np.array(d["coef"]),
                   np.array(d["intercept"]), float(d["alpha"]), bool(d["squeeze"]),
                   loo_rmse={float(k): v for k, v in d.get("loo_rmse", {}).items()})


def fit_ridge(
    features: np.ndarray, targets: np.ndarray, alphas: float | Sequence[float] = (0.1, 1.0, 10.0, 100.0)
) -> BaselineModel:
    """Ridge on standardised features with an unpenalised intercept; picks ``alpha`` by exact LOO error."""
    X = np.asarray(features, dtype=np.float64)
    Y = np.asarray(targets, dtype=np.float64)
    squeeze = Y.ndim == 1
    Y = Y[:, None] if squeeze else Y
    if X.ndim != 2 or X.shape[0] != Y.shape[0]:
        raise ValueError(f"features {X.shape} and targets {Y.shape} disagree on the number of samples")
    if X.shape[0] < 2:
        raise ValueError("need at least 2 samples to fit the baseline")
    if not np.isfinite(X).all() or not np.isfinite(Y).all():
        raise ValueError("features/targets contain NaN or inf")
    mean = X.mean(0)
    scale = X.std(0)
    scale[scale < 1e-12] = 1.0  # constant feature: left at zero after centring
    Z = (X - mean) / scale
    y_mean = Y.mean(0)
    Yc = Y - y_mean
    U, s, Vt = np.linalg.svd(Z, full_matrices=False)
    UtY = U.T @ Yc
    alpha_list = [float(alphas)] if np.isscalar(alphas) else [float(a) for a in alphas]
    loo = {}
    best = None
    for a in alpha_list:
        d = s / (s ** 2 + a)
        coef = Vt.T @ (d[:, None] * UtY)
        # Exact LOO residuals for ridge with a centred intercept: r_i / (1 - h_ii - 1/n).
        h = (U ** 2) @ (s ** 2 / (s ** 2 + a)) + 1.0 / len(Z)
        resid = (Yc - Z @ coef) / np.maximum(1.0 - h, 1e-6)[:, None]
        loo[a] = float(np.sqrt((resid ** 2).mean()))
        if best is None or loo[a] < loo[best[0]]:
            best = (a, coef)
    alpha, coef = best
    return BaselineModel(mean, scale, coef, y_mean, alpha, squeeze, loo_rmse=loo)


def fit_baseline(
    image_paths: Sequence[ImageLike],
    targets: Sequence[float] | np.ndarray,
    alphas: float | Sequence[float] = (0.1, 1.0, 10.0, 100.0),
    features: np.ndarray | None = None,
) -> BaselineModel:
    """Fit the baseline on images (or on their precomputed ``features``) and targets (N,) or (N, K)."""
    X = extract_features(image_paths) if features is None else np.asarray(features)
    if len(X) != len(image_paths):
        raise ValueError(f"{len(image_paths)} images but {len(X)} feature rows")
    return fit_ridge(X, np.asarray(targets), alphas)


def predict(model: BaselineModel, image_paths: Sequence[ImageLike]) -> np.ndarray:
    """Predictions of a fitted baseline for ``image_paths``."""
    return model.predict(image_paths)
