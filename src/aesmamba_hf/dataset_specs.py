"""Facts about the IAA benchmarks that the heads, the data builders and the metrics share.

Kept free of package-absolute imports so remote-code checkpoints can carry it flat.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
AADB_MEAN = (0.4370215, 0.42606467, 0.39389639)
AADB_STD = (0.27421089, 0.27006779, 0.28525595)

# The nine PARA heads in the authors' order: head name, GIAA mean column, PIAA per-user column (their
# head "willingToShare" reads the CSV column "willingnessToShare").
PARA_ATTRIBUTES = (
    ("aesthetic", "aestheticScore_mean", "aestheticScore"),
    ("quality", "qualityScore_mean", "qualityScore"),
    ("composition", "compositionScore_mean", "compositionScore"),
    ("color", "colorScore_mean", "colorScore"),
    ("dof", "dofScore_mean", "dofScore"),
    ("light", "lightScore_mean", "lightScore"),
    ("content", "contentScore_mean", "contentScore"),
    ("contentPreference", "contentPreference_mean", "contentPreference"),
    ("willingToShare", "willingnessToShare_mean", "willingnessToShare"),
)
PARA_ATTRIBUTE_NAMES = tuple(a[0] for a in PARA_ATTRIBUTES)

# Training-split class counts hard-coded in the authors' models; the n_c of the balanced loss.
PARA_CLASS_COUNTS = {
    "aesthetic": [1438, 7216, 18974, 592],
    "quality": [1238, 4379, 21138, 1465],
    "composition": [432, 5559, 21215, 1014],
    "color": [1118, 11925, 14857, 320],
    "dof": [893, 7586, 19006, 735],
    "light": [1452, 8790, 17472, 506],
    "content": [1076, 10131, 16897, 116],
    "contentPreference": [718, 7262, 19075, 1165],
    "willingToShare": [1214, 9503, 16510, 993],
}


@dataclass(frozen=True)
class DatasetSpec:
    """Score scale, scale-class rule and evaluation threshold of one benchmark.

    The scale class of a score s is ``clip(floor(class_scale * s + class_offset), 0, num_classes - 1)``,
    which covers every dataset's rule (PARA clip(floor(mean) − 1, 0, 3), Photo.net floor(score) − 3, AVA
    clip(floor(mean) − 1, 0, 6), AADB min(floor(5·score), 4), TAD66K min(floor(score / 2), 4)).
    """

    name: str
    score_range: tuple[float, float]
    num_bins: int  # 1 = scalar target; >1 = vote histogram over bin_values
    bin_values: tuple[float, ...]
    num_classes: int
    class_scale: float
    class_offset: float
    class_counts: tuple[int, ...]
    binary_threshold: float
    image_mean: tuple[float, float, float] = CLIP_MEAN
    image_std: tuple[float, float, float] = CLIP_STD
    notes: str = field(default="", compare=False)

    def scale_class(self, score: float) -> int:
        return scale_class(score, self.class_scale, self.class_offset, self.num_classes)


def scale_class(score: float, class_scale: float, class_offset: float, num_classes: int) -> int:
    """Scale category of a score (the rule of :class:`DatasetSpec`); NaN is an error, not class 0."""
    if score != score:  # NaN
        raise ValueError("cannot compute the scale class of a NaN score")
    return int(min(max(math.floor(class_scale * score + class_offset), 0), num_classes - 1))


DATASET_SPECS: dict[str, DatasetSpec] = {
    "AVA": DatasetSpec(
        "AVA", (1.0, 10.0), 10, tuple(float(i) for i in range(1, 11)), 7, 1.0, -1.0,
        # floor(mean)-1 histogram of the authors' 204,424-image training split, the 48 images with
        # mean >= 8 merged into class 6: the released 8-entry list does not fit their 7-way head
        # (see docs/authors-code.md)
        (5, 424, 5961, 52925, 104960, 37517, 2593 + 39), 5.0,
        notes="class = clip(floor(mean) - 1, 0, 6)",
    ),
    "PhotoNet": DatasetSpec(
        "PhotoNet", (1.0, 7.0), 7, tuple(float(i) for i in range(1, 8)), 4, 1.0, -3.0,
        (158, 3148, 6855, 1088), 5.0, notes="class = floor(score) - 3",
    ),
    "PARA": DatasetSpec(
        "PARA", (1.0, 5.0), 1, (), 4, 1.0, -1.0, tuple(PARA_CLASS_COUNTS["aesthetic"]), 3.0,
        notes="class = clip(floor(mean) - 1, 0, 3)",
    ),
    "AADB": DatasetSpec(
        "AADB", (0.0, 1.0), 1, (), 5, 5.0, 0.0, (325, 1651, 3342, 2500, 640), 0.5,
        image_mean=AADB_MEAN, image_std=AADB_STD, notes="class = min(floor(5 * score), 4)",
    ),
    "TAD66K": DatasetSpec(
        "TAD66K", (0.0, 10.0), 1, (), 5, 0.5, 0.0, (158, 9143, 23279, 18279, 1389), 5.0,
        notes="class = min(floor(score / 2), 4)",
    ),
}


def get_dataset_spec(name: str) -> DatasetSpec:
    aliases = {"PH": "PhotoNet", "PHOTONET": "PhotoNet", "PHOTO.NET": "PhotoNet", "TAD": "TAD66K"}
    key = aliases.get(name.upper(), name)
    for spec_name, spec in DATASET_SPECS.items():
        if spec_name.upper() == key.upper():
            return spec
    raise KeyError(f"unknown dataset {name!r}; known: {sorted(DATASET_SPECS)}")
