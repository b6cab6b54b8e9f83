"""Metrics against scipy and hand-computed values; Trainer compute_metrics; the evaluate module."""

from __future__ import annotations

import math
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
from scipy import stats

from aesmamba_hf.metrics import (
    binary_accuracy,
    compute_aesthetic_metrics,
    compute_grouped_metrics,
    emd,
    expected_score,
    mae,
    make_compute_metrics,
    plcc,
    rmse,
    srcc,
)

AVA_HEAD = {"name": "aesthetic", "kind": "distribution", "num_bins": 10,
            "bin_values": [float(i) for i in range(1, 11)], "binary_threshold": 5.0}


# Float64 references written from the definitions (metrics.py itself calls scipy.stats).
def ref_pearson(x, y) -> float:
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    xc, yc = x - x.mean(), y - y.mean()
    return float((xc * yc).sum() / math.sqrt((xc**2).sum() * (yc**2).sum()))


def ref_ranks(values) -> np.ndarray:
    """1-based ranks; tied values share the mean of the ranks they occupy."""
    values = np.asarray(values, np.float64)
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    start = 0
    while start < len(values):
        end = start
        while end + 1 < len(values) and values[order[end + 1]] == values[order[start]]:
            end += 1
        ranks[order[start : end + 1]] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def ref_spearman(x, y) -> float:
    return ref_pearson(ref_ranks(x), ref_ranks(y))


def test_correlations_by_hand():
    # x deviations -1 0 1, y deviations -4/3 -1/3 5/3: r = 3 / (sqrt(2) sqrt(42/9)) = 9 / sqrt(84)
    assert plcc([1.0, 2.0, 3.0], [1.0, 2.0, 4.0]) == pytest.approx(9 / math.sqrt(84), abs=1e-15)
    # ranks with a tie: [1, 2.5, 2.5, 4] vs [1, 3, 2, 4] -> 4.5 / sqrt(4.5 * 5) = 3 / sqrt(10)
    assert srcc([1.0, 2.0, 2.0, 3.0], [10.0, 30.0, 20.0, 40.0]) == pytest.approx(3 / math.sqrt(10), abs=1e-15)
    # a monotone but non-linear relation: SRCC is exactly 1, PLCC is not
    x = np.arange(1.0, 8.0)
    assert srcc(x, np.exp(x)) == pytest.approx(1.0, abs=1e-15) and plcc(x, np.exp(x)) < 0.9
    assert srcc(x, -x**3) == pytest.approx(-1.0, abs=1e-15)


def test_correlations_equal_float64_references_and_invariances():
    rng = np.random.default_rng(0)
    for n in (5, 50, 500):
        y = rng.normal(5, 1, n)
        p = y + rng.normal(0, 0.7, n)
        p[:3] = p[0]  # ties
        y[-3:] = y[-1]
        assert plcc(p, y) == pytest.approx(ref_pearson(p, y), abs=1e-12)
        assert srcc(p, y) == pytest.approx(ref_spearman(p, y), abs=1e-12)
        # PLCC: unchanged by a positive affine map, negated by a negative one; SRCC: by any increasing map
        assert plcc(3 * p + 7, y) == pytest.approx(plcc(p, y), abs=1e-12)
        assert plcc(-2 * p, y) == pytest.approx(-plcc(p, y), abs=1e-12)
        assert srcc(np.exp(p), y**3) == pytest.approx(srcc(p, y), abs=1e-12)
        assert srcc(p, y) == pytest.approx(srcc(y, p), abs=1e-12)


def test_constant_or_tiny_inputs_give_nan_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert math.isnan(plcc([5.0, 5.0, 5.0], [1.0, 2.0, 3.0]))
        assert math.isnan(srcc([1.0, 2.0, 3.0], [4.0, 4.0, 4.0]))
        assert math.isnan(plcc([1.0], [2.0]))
        out = compute_aesthetic_metrics(np.full(4, 5.0), [3.0, 4.0, 6.0, 7.0], thresholds=5.0)
    assert math.isnan(out["plcc"]) and math.isnan(out["srcc_aesthetic"])
    assert out["acc"] == 0.5 and out["mae"] == 1.5  # |5-3|,|5-4|,|5-6|,|5-7| -> 6/4
    assert math.isnan(plcc([1.0, float("nan"), 3.0], [1.0, 2.0, 3.0]))  # NaN is not masked


def test_binary_accuracy_mae_rmse_by_hand():
    pred = [4.9, 5.0, 5.1, 7.0]
    target = [5.0, 5.2, 6.0, 4.0]
    # <= 5 is low: pred low, low, high, high; target low, high, high, low -> 2 of 4 agree
    assert binary_accuracy(pred, target, 5.0) == 0.5
    assert mae(pred, target) == pytest.approx((0.1 + 0.2 + 0.9 + 3.0) / 4)
    assert rmse(pred, target) == pytest.approx(math.sqrt((0.01 + 0.04 + 0.81 + 9.0) / 4))
    with pytest.raises(ValueError, match="differ in length"):
        mae([1.0], [1.0, 2.0])


def test_emd_and_expected_score_by_hand():
    # CDFs [1, 1] and [0, 1]: mean |diff| = 0.5 (r=1), sqrt(mean diff^2) = sqrt(0.5) (r=2)
    assert emd([[1.0, 0.0]], [[0.0, 1.0]]) == pytest.approx(0.5)
    assert emd([[1.0, 0.0]], [[0.0, 1.0]], r=2) == pytest.approx(math.sqrt(0.5))
    # vote counts are normalised: [2, 2] == [0.5, 0.5]; CDFs [.5, 1] vs [1, 1] -> 0.25
    assert emd([[2.0, 2.0], [1.0, 0.0]], [[1.0, 0.0], [3.0, 0.0]]) == pytest.approx((0.25 + 0.0) / 2)
    assert expected_score([[0, 0, 0, 0, 2, 2, 0, 0, 0, 0]], range(1, 11)).tolist() == [5.5]


def test_compute_metrics_distribution_head_from_trainer_tuple():
    rng = np.random.default_rng(1)
    votes = rng.integers(0, 20, (40, 10)).astype(float)
    bins = np.arange(1.0, 11.0)
    target = votes @ bins / votes.sum(1)  # mean opinion score
    logits = rng.normal(size=(40, 10))
    dist = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    scores = (dist @ bins)[:, None]
    class_logits = rng.normal(size=(40, 1, 7))
    fn = make_compute_metrics(SimpleNamespace(heads=[AVA_HEAD]))
    # Trainer: predictions = (scores, distribution, class_logits), label_ids = (labels, class_labels)
    out = fn(SimpleNamespace(predictions=(scores, dist, class_logits),
                             label_ids=(votes, np.zeros((40, 1), dtype=int))))
    assert out["plcc_aesthetic"] == pytest.approx(ref_pearson(scores[:, 0], target))
    assert out["srcc"] == pytest.approx(ref_spearman(scores[:, 0], target))
    assert out["acc"] == pytest.approx(np.mean((scores[:, 0] > 5) == (target > 5)))
    # EMD (r = 1) over K = 10 unit-spaced bins = the 1-D Wasserstein distance / K, computed by scipy from samples
    w1 = [stats.wasserstein_distance(bins, bins, dist[i], votes[i]) for i in range(40)]
    assert out["emd"] == out["emd_aesthetic"] == pytest.approx(np.mean(w1) / 10)
    assert set(out) == {f"{m}{s}" for m in ("plcc", "srcc", "mae", "rmse", "acc", "emd")
                        for s in ("", "_aesthetic")}
    # scores alone: no EMD; scalar labels (B,) also accepted
    only = fn(SimpleNamespace(predictions=scores, label_ids=target))
    assert "emd" not in only and only["plcc"] == pytest.approx(out["plcc"])


def test_compute_metrics_nine_scalar_heads():
    names = ["aesthetic", "quality", "composition", "color", "dof", "light", "content",
             "contentPreference", "willingToShare"]
    heads = [{"name": n, "kind": "scalar", "num_bins": 1, "bin_values": [], "binary_threshold": 3.0}
             for n in names]
    rng = np.random.default_rng(2)
    labels = rng.uniform(1, 5, (30, 9))
    preds = labels + rng.normal(0, 0.5, (30, 9))
    preds[:, 4] = 3.3  # a constant head: NaN, no crash; the mean over heads is NaN too
    out = make_compute_metrics({"heads": heads})(SimpleNamespace(predictions=preds, label_ids=labels))
    for h, n in enumerate(names):
        if h != 4:
            assert out[f"srcc_{n}"] == pytest.approx(ref_spearman(preds[:, h], labels[:, h]))
    assert math.isnan(out["plcc_dof"]) and math.isnan(out["plcc"])
    assert out["mae"] == pytest.approx(np.mean(np.abs(preds - labels).mean(0)))
    assert out["acc_quality"] == pytest.approx(np.mean((preds[:, 1] > 3) == (labels[:, 1] > 3)))
    with pytest.raises(ValueError, match="do not match"):
        make_compute_metrics({"heads": heads})(SimpleNamespace(predictions=preds[:, :3], label_ids=labels))


def test_compute_metrics_from_dataset_name_and_real_config():
    fn = make_compute_metrics("AADB")  # no head list: one scalar head from the dataset spec
    out = fn(SimpleNamespace(predictions=np.array([[0.2], [0.6], [0.9]]), label_ids=np.array([0.1, 0.7, 0.4])))
    assert out["acc"] == pytest.approx(2 / 3)  # threshold 0.5: low/high/high vs low/high/low
    aesmamba = pytest.importorskip("aesmamba_hf")
    config = aesmamba.AesMambaConfig.tiny(task="V", dataset="AVA")
    fn = make_compute_metrics(config)
    votes = np.eye(10)[[3, 4, 5, 6, 7]] * 5  # all votes on 4..8
    scores = np.array([[4.2], [4.9], [6.1], [6.8], [8.3]])
    out = fn(SimpleNamespace(predictions=scores, label_ids=votes))
    # targets 4..8: |errors| .2 .1 .1 .2 .3 -> MAE 0.18
    assert out["srcc_aesthetic"] == pytest.approx(1.0) and out["mae"] == pytest.approx(0.18)
    assert out["acc"] == 1.0  # threshold 5: 4.2|4, 4.9|5 low; 6.1|6, 6.8|7, 8.3|8 high


def test_grouped_metrics_average_per_user():
    scores = [1.0, 2.0, 3.0, 3.0, 2.0, 1.0]
    labels = [1.0, 2.0, 4.0, 1.0, 2.0, 3.0]
    out = compute_grouped_metrics(scores, labels, ["u1"] * 3 + ["u2"] * 3)
    expected = (9 / math.sqrt(84) + -1.0) / 2  # u1: see test_correlations_by_hand; u2: exactly reversed
    assert out["plcc"] == pytest.approx(expected) and out["num_groups"] == 2.0
    # a user who rated everything the same has no ranking: left out of the mean, not turning it into NaN
    flat = compute_grouped_metrics(np.r_[scores, [1.0, 2.0]], np.r_[labels, [3.0, 3.0]],
                                   ["u1"] * 3 + ["u2"] * 3 + ["u3"] * 2)
    assert flat["plcc"] == pytest.approx(expected) and flat["num_groups"] == 3.0
    assert np.isnan(compute_grouped_metrics([1.0, 2.0], [3.0, 3.0], ["u"] * 2)["srcc"])
    # two heads, one user constant on the second: the first head keeps that user, the headline is their mean
    two = compute_grouped_metrics([[1, 1], [2, 2], [3, 3], [3, 3], [2, 2], [1, 1]],
                                  [[1, 1], [2, 2], [3, 3], [1, 5], [2, 5], [3, 5]], ["a"] * 3 + ["b"] * 3,
                                  head_names=["x", "y"])
    assert two["srcc_x"] == pytest.approx(0.0) and two["srcc_y"] == pytest.approx(1.0)  # x: a +1, b -1
    assert two["srcc"] == pytest.approx(0.5)  # not 1.0, which dropping user b from the headline would give


def test_evaluate_module_loads_offline_and_matches():
    pytest.importorskip("evaluate")
    from aesmamba_hf.evaluation import load_aesthetic_metric

    metric = load_aesthetic_metric()
    rng = np.random.default_rng(3)
    y = rng.normal(5, 1, 25)
    p = y + rng.normal(0, 1, 25)
    out = metric.compute(predictions=p.tolist(), references=y.tolist(), dataset="AVA")
    direct = compute_aesthetic_metrics(p, y, thresholds=5.0)
    assert out == pytest.approx(direct)
    multi = metric.compute(predictions=np.c_[p, y].tolist(), references=np.c_[y, p].tolist(),
                           head_names=["a", "b"], threshold=[5.0, 4.0])
    assert multi["plcc_a"] == pytest.approx(ref_pearson(p, y))
    assert multi["acc_b"] == pytest.approx(np.mean((y > 4.0) == (p > 4.0)))  # head b's own threshold
    assert multi["mae"] == pytest.approx(np.mean(np.abs(p - y)))
