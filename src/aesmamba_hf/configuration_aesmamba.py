"""Configuration of AesMamba: VMamba image encoder, optional BERT text encoder, fusion and MBA heads.

One config class covers the four tasks of the paper:

* V – image → generic score (distribution over bins or a scalar), one head.
* M – image + user comments → same heads as V, text fused by cross-attention.
* F – image → the 9 PARA attributes, one scalar head each (with scale-class branches).
* P – image + a prompt built from a user's characters → the 9 PARA attributes (no class branches).
"""

from __future__ import annotations

import copy
from typing import Any, Optional, Union

from transformers import CONFIG_MAPPING, BertConfig, PretrainedConfig

from .configuration_vmamba import VMambaConfig
from .dataset_specs import PARA_ATTRIBUTES, PARA_CLASS_COUNTS, DatasetSpec, get_dataset_spec
from .tasks import Task

TASKS = tuple(task.value for task in Task)  # ("V", "M", "F", "P")
CLASSIFICATION_LOSSES = ("balanced_softmax", "bce_as_released")
HEAD_KINDS = ("distribution", "scalar")
_HEAD_KEYS = {
    "name", "kind", "num_bins", "bin_values", "score_range", "higher_is_better", "num_scale_classes",
    "class_counts", "class_scale", "class_offset", "binary_threshold",
}


def head_from_dataset(name: str, spec: DatasetSpec, with_classes: bool = True,
                      class_counts: Optional[list[int]] = None) -> dict[str, Any]:
    """A prediction-head description for a benchmark (distribution head when it has vote bins)."""
    distribution = spec.num_bins > 1
    return {
        "name": name,
        "kind": "distribution" if distribution else "scalar",
        "num_bins": spec.num_bins if distribution else 1,
        "bin_values": list(spec.bin_values) if distribution else [],
        "score_range": list(spec.score_range),
        "higher_is_better": True,
        "num_scale_classes": spec.num_classes if with_classes else 0,
        "class_counts": list(class_counts if class_counts is not None else spec.class_counts) if with_classes else [],
        "class_scale": spec.class_scale,
        "class_offset": spec.class_offset,
        "binary_threshold": spec.binary_threshold,
    }


def default_heads(task: Union[str, Task], dataset: str) -> list[dict[str, Any]]:
    """The heads of the released variants: V/M one head; F/P the nine PARA attributes."""
    task = Task.parse(task)
    spec = get_dataset_spec(dataset)
    if not task.predicts_para_attributes:
        return [head_from_dataset("aesthetic", spec)]
    if spec.name != "PARA":
        raise ValueError(f"task {task} is defined on PARA attributes, not on {dataset!r}")
    return [
        head_from_dataset(name, spec, with_classes=task.has_scale_classes, class_counts=PARA_CLASS_COUNTS[name])
        for name, _, _ in PARA_ATTRIBUTES
    ]


def validate_heads(heads: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not heads:
        raise ValueError("AesMambaConfig.heads must list at least one prediction head")
    names, n_dist, class_sizes = set(), 0, set()
    for i, head in enumerate(heads):
        where = f"heads[{i}]"
        unknown = set(head) - _HEAD_KEYS
        if unknown:
            raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
        if head.get("name") in (None, "") or head["name"] in names:
            raise ValueError(f"{where}: every head needs a unique non-empty 'name'")
        names.add(head["name"])
        if head.get("kind") not in HEAD_KINDS:
            raise ValueError(f"{where} ({head['name']}): 'kind' must be one of {HEAD_KINDS}")
        if head["kind"] == "distribution":
            n_dist += 1
            if len(head.get("bin_values", [])) != head.get("num_bins", 0) or head["num_bins"] < 2:
                raise ValueError(f"{where} ({head['name']}): a distribution head needs num_bins >= 2 bin_values")
        n_cls = head.get("num_scale_classes", 0)
        counts = head.get("class_counts", [])
        if n_cls:
            class_sizes.add(n_cls)
            if counts and (len(counts) != n_cls or min(counts) < 0):
                raise ValueError(f"{where} ({head['name']}): class_counts must be {n_cls} non-negative counts")
        lo, hi = head.get("score_range", (None, None))
        if lo is None or hi is None or not lo < hi:
            raise ValueError(f"{where} ({head['name']}): score_range must be [low, high] with low < high")
        _check_inside_range(where, head, lo, hi)
    if n_dist > 1 or (n_dist == 1 and len(heads) > 1):
        raise ValueError("a distribution head must be the model's only head")
    if len(class_sizes) > 1:
        raise ValueError(f"all scale-class branches must share one class count, got {sorted(class_sizes)}")
    return heads


def _check_inside_range(where: str, head: dict[str, Any], low: float, high: float) -> None:
    """A head's threshold and bin values are scores, so they lie in its ``score_range`` (the one statement of
    the scale: bins, thresholds, the ``out_of_range`` flag and clamping all read it)."""
    threshold = head.get("binary_threshold")
    if threshold is not None and not low <= threshold <= high:
        raise ValueError(f"{where} ({head['name']}): binary_threshold {threshold} is outside its score_range "
                         f"[{low}, {high}]")
    outside = [v for v in head.get("bin_values", []) if not low <= v <= high]
    if outside:
        raise ValueError(f"{where} ({head['name']}): bin_values {outside} are outside its score_range [{low}, {high}]")


def validate_score_reference(reference: Optional[dict[str, Any]], head_names: list[str]) -> Optional[dict[str, Any]]:
    """Check a ``score_reference`` (see ``aesmamba_hf.evaluation.calibration``): known heads, sorted numbers."""
    if reference is None:
        return None
    if not isinstance(reference, dict) or not isinstance(reference.get("heads"), dict) or not reference["heads"]:
        raise ValueError("score_reference must be a dict with a non-empty 'heads' mapping (see "
                         "aesmamba_hf.evaluation.calibration.build_score_reference)")
    size = reference.get("size")
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"score_reference['size'] must be a positive int, got {size!r}")
    for name, table in reference["heads"].items():
        if name not in head_names:
            raise ValueError(f"score_reference names head {name!r}, which this model does not have ({head_names})")
        quantiles = table.get("quantiles") if isinstance(table, dict) else None
        if not quantiles or len(quantiles) < 2:
            raise ValueError(f"score_reference head {name!r} needs at least 2 'quantiles'")
        for key in ("quantiles", "sorted_scores"):
            values = table.get(key)
            if values is not None and any(b < a for a, b in zip(values, values[1:])):
                raise ValueError(f"score_reference head {name!r}: {key} must be sorted ascending")
        if table.get("sorted_scores") is not None and len(table["sorted_scores"]) != table.get("count", size):
            raise ValueError(f"score_reference head {name!r}: sorted_scores must hold all "
                             f"{table.get('count', size)} scores")
    return reference


class AesMambaConfig(PretrainedConfig):
    r"""
    Args:
        vision_config: the VMamba encoder (``VMambaConfig`` or dict); VMamba-T v0 by default.
        text_config: the text encoder (``BertConfig`` or dict) for M and P; ``None`` for V and F.
        task: ``"V"``, ``"M"``, ``"F"`` or ``"P"``.
        dataset: benchmark the heads are defined on (``AVA``, ``PhotoNet``, ``PARA``, ``AADB``, ``TAD66K``
            or a custom name when ``heads`` is given).
        heads: prediction heads in output order (see ``head_from_dataset``); defaults from task/dataset.
        fusion_num_heads, fusion_head_dim, fusion_ffn_dim: cross-modal fusion block sizes (12 × 64, 3072);
            independent of the feature width, as in the released code.
        adapter_reduction: MBA adapter bottleneck ratio (D → D/4 → D).
        head_hidden_size: hidden width of the score and class branches (256).
        distribution_mse_weight: γ on the MSE of distribution heads (10, AVA/Photo.Net).
        scalar_mse_weight: weight on the MSE of scalar heads (1).
        emd_weight, emd_r: EMD term on distribution heads (weight 1, r = 2 in training).
        cls_weight: λ on the scale-class loss (0.001).
        classification_loss: ``"balanced_softmax"`` (logit-adjusted CE with the class counts, the paper's
            intent) or ``"bce_as_released"`` (one-vs-rest BCE × C: what released V/M optimise,
            their balanced prior being never set; see docs/authors-code.md).
        mask_text_padding: mask padded text tokens in the fusion attention (True). ``False`` reproduces the
            released code, whose predictions depend on the other texts of the batch
            (padding is attended).
        mse_as_released: reproduce the released V code's (B,)×(B,1) broadcast in the scalar MSE
            (all B×B pairwise squared differences averaged).
        text_add_pooling_layer: keep BERT's pooler; it is never used, so it is dropped by default (the
            released checkpoints carry it: 590,592 parameters).
        variant: published variant name, e.g. ``"aesmamba-v-ava"``.
        random_weights: True only when this package substituted random weights for a pretrained variant the
            user asked for (explicit opt-in); training or saving a model you built leaves it False.
        score_reference: the distribution of this model's scores on a reference set (``None``: none), what
            ``percentile`` is computed from: ``{"source", "size", "heads": {name: {"quantiles" (101, at
            0, 1, ..., 100 %), "sorted_scores" (every score, for sets up to 2,000), "count", "mean", "std",
            "out_of_range"}}, ...}``. Built by ``aesmamba calibrate`` / ``aesmamba_hf.evaluation.calibration``.

    ``return_dict``, ``output_hidden_states`` and ``output_attentions`` (transformers' own fields) are the
    defaults of the models' ``forward`` arguments, read at call time, as is ``mask_text_padding``.
    """

    model_type = "aesmamba"
    sub_configs = {"vision_config": VMambaConfig, "text_config": BertConfig}
    keys_to_ignore_at_inference = ["integrated_features"]

    def __init__(
        self,
        vision_config: Optional[Union[dict, VMambaConfig]] = None,
        text_config: Optional[Union[dict, PretrainedConfig]] = None,
        task: str = "V",
        dataset: str = "AVA",
        heads: Optional[list[dict[str, Any]]] = None,
        fusion_num_heads: int = 12,
        fusion_head_dim: int = 64,
        fusion_ffn_dim: int = 3072,
        fusion_layer_norm_eps: float = 1e-5,
        adapter_reduction: int = 4,
        head_hidden_size: int = 256,
        distribution_mse_weight: float = 10.0,
        scalar_mse_weight: float = 1.0,
        emd_weight: float = 1.0,
        emd_r: float = 2.0,
        cls_weight: float = 0.001,
        classification_loss: str = "balanced_softmax",
        mask_text_padding: bool = True,
        mse_as_released: bool = False,
        text_add_pooling_layer: bool = False,
        initializer_range: float = 0.02,
        variant: Optional[str] = None,
        random_weights: bool = False,
        score_reference: Optional[dict[str, Any]] = None,
        **kwargs,
    ):
        try:
            task = Task.parse(task).value  # a plain "V"/"M"/"F"/"P" string in config.json
        except ValueError:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}") from None
        if classification_loss not in CLASSIFICATION_LOSSES:
            raise ValueError(f"classification_loss must be one of {CLASSIFICATION_LOSSES}, got {classification_loss!r}")
        if isinstance(vision_config, dict):
            vision_config = VMambaConfig(**{k: v for k, v in vision_config.items() if k != "model_type"})
        self.vision_config = vision_config if vision_config is not None else VMambaConfig()
        if isinstance(text_config, dict):
            text_config = dict(text_config)
            text_config = CONFIG_MAPPING[text_config.pop("model_type", "bert")](**text_config)
        if text_config is None and Task(task).uses_text:
            text_config = BertConfig()  # bert-base-uncased
        self.text_config = text_config
        self.task = task
        self.dataset = dataset
        self.heads = validate_heads(copy.deepcopy(heads) if heads is not None else default_heads(task, dataset))
        self.fusion_num_heads = fusion_num_heads
        self.fusion_head_dim = fusion_head_dim
        self.fusion_ffn_dim = fusion_ffn_dim
        self.fusion_layer_norm_eps = fusion_layer_norm_eps
        self.adapter_reduction = adapter_reduction
        self.head_hidden_size = head_hidden_size
        self.distribution_mse_weight = distribution_mse_weight
        self.scalar_mse_weight = scalar_mse_weight
        self.emd_weight = emd_weight
        self.emd_r = emd_r
        self.cls_weight = cls_weight
        self.classification_loss = classification_loss
        self.mask_text_padding = mask_text_padding
        self.mse_as_released = mse_as_released
        self.text_add_pooling_layer = text_add_pooling_layer
        self.initializer_range = initializer_range
        self.variant = variant
        self.random_weights = random_weights
        self.score_reference = validate_score_reference(copy.deepcopy(score_reference), self.head_names)
        super().__init__(**kwargs)

    # --- derived views -------------------------------------------------------------------------
    @property
    def task_type(self) -> Task:
        """``config.task`` as a ``Task`` (what the model reads and predicts)."""
        return Task(self.task)

    @property
    def uses_text(self) -> bool:
        """Whether a text encoder is configured (M and P by default)."""
        return self.text_config is not None

    @property
    def head_names(self) -> list[str]:
        return [h["name"] for h in self.heads]

    @property
    def num_heads(self) -> int:
        return len(self.heads)

    @property
    def distribution_head(self) -> Optional[dict[str, Any]]:
        return next((h for h in self.heads if h["kind"] == "distribution"), None)

    @property
    def num_scale_classes(self) -> int:
        return max((h.get("num_scale_classes", 0) for h in self.heads), default=0)

    @property
    def score_ranges(self) -> dict[str, tuple[float, float]]:
        return {h["name"]: tuple(h["score_range"]) for h in self.heads}

    def to_dict(self) -> dict[str, Any]:
        output = super().to_dict()
        for key in ("vision_config", "text_config"):
            value = getattr(self, key)
            output[key] = value.to_dict() if isinstance(value, PretrainedConfig) else value
        return output

    @classmethod
    def tiny(cls, task: Union[str, Task] = "V", dataset: Optional[str] = None, **kwargs) -> AesMambaConfig:
        """A few-thousand-parameter config for tests and smoke runs (real 30,522-token BERT vocab)."""
        task = Task.parse(task)
        dataset = dataset or ("PARA" if task.predicts_para_attributes else "AVA")
        vision = VMambaConfig(embed_dim=8, depths=[1, 1], d_state=4)
        text = None
        if task.uses_text:
            text = BertConfig(
                vocab_size=30522, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                intermediate_size=32, max_position_embeddings=512,
            )
        defaults = dict(
            vision_config=vision, text_config=text, task=task.value, dataset=dataset, fusion_num_heads=2,
            fusion_head_dim=8, fusion_ffn_dim=32, head_hidden_size=16,
        )
        defaults.update(kwargs)
        return cls(**defaults)


__all__ = ["AesMambaConfig", "default_heads", "head_from_dataset", "validate_heads", "validate_score_reference",
           "TASKS"]
