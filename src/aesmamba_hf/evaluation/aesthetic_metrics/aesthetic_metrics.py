"""``evaluate`` module wrapping :mod:`aesmamba_hf.metrics` (works offline).

    import evaluate
    from aesmamba_hf.evaluation import load_aesthetic_metric
    metric = load_aesthetic_metric()          # == evaluate.load("<this folder>")
    metric.compute(predictions=[5.1, 6.0, 4.2], references=[5.0, 6.5, 4.0], threshold=5.0)
    # multi-head (PARA-F): lists per example, head_names=[...], threshold=[...] per head

Keyword arguments of ``compute``: ``threshold`` (float or one per head), ``head_names``, ``bin_values``
(references are then vote counts of a distribution head), ``dataset`` (fills threshold and bin_values
from the dataset spec when they are not given).
"""

from __future__ import annotations

import datasets
import evaluate

from aesmamba_hf.dataset_specs import get_dataset_spec
from aesmamba_hf.metrics import compute_aesthetic_metrics

_DESCRIPTION = "PLCC, SRCC, binary accuracy, MAE, RMSE (per head and averaged) of aesthetic scores."
_CITATION = """@inproceedings{gao2024aesmamba,
  title={AesMamba: Universal Image Aesthetic Assessment with State Space Models},
  author={Gao, Fei and Lin, Yuhao and Shi, Jiaqi and Qiao, Maoying and Wang, Nannan},
  booktitle={ACM Multimedia}, year={2024}, doi={10.1145/3664647.3681011}}"""
_KWARGS = "threshold, head_names, bin_values, dataset (see the module docstring)"


class AestheticMetrics(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        scalar = datasets.Features({"predictions": datasets.Value("float64"),
                                    "references": datasets.Value("float64")})
        per_head = datasets.Features({"predictions": datasets.Sequence(datasets.Value("float64")),
                                      "references": datasets.Sequence(datasets.Value("float64"))})
        return evaluate.MetricInfo(
            description=_DESCRIPTION, citation=_CITATION, inputs_description=_KWARGS,
            features=[scalar, per_head],
        )

    def _compute(self, predictions, references, threshold=None, head_names=None, bin_values=None,
                 dataset=None):
        if dataset is not None:
            spec = get_dataset_spec(dataset)
            threshold = spec.binary_threshold if threshold is None else threshold
            if bin_values is None and spec.num_bins > 1:
                bin_values = list(spec.bin_values)
        return compute_aesthetic_metrics(
            predictions, references, head_names=head_names, thresholds=threshold, bin_values=bin_values
        )
