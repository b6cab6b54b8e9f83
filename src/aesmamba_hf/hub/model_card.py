"""The model card of an export: a Markdown template (``model_card.md`` beside this module) filled from the
config, the saved processor and optional metrics, with ``huggingface_hub``'s card metadata."""

from __future__ import annotations

from pathlib import Path
from string import Template
from typing import Any, Optional

from ..configuration_aesmamba import AesMambaConfig
from ..dataset_specs import get_dataset_spec
from ..registry import HUB_NAMESPACE
from ..tasks import Task

TEMPLATE = Path(__file__).with_name("model_card.md")

DEFAULT_LICENSE = "apache-2.0"
# The Hub has no aesthetics/regression task; image-classification is the closest tag. The hosted widget is
# switched off (``inference: false``) because it would apply a classification post-processing.
PIPELINE_TAG = "image-classification"
BASE_TAGS = ("aesmamba", "image-aesthetic-assessment", "image-aesthetics", "vmamba", "mamba", "custom_code")
REQUIRED_FILES = ("config.json", "model.safetensors", "README.md")

CITATION = """@inproceedings{gao2024aesmamba,
  title     = {AesMamba: Universal Image Aesthetic Assessment with State Space Models},
  author    = {Gao, Fei and Lin, Yuhao and Shi, Jiaqi and Qiao, Maoying and Wang, Nannan},
  booktitle = {Proceedings of the 32nd ACM International Conference on Multimedia (MM '24)},
  year      = {2024},
  publisher = {ACM},
  doi       = {10.1145/3664647.3681011}
}"""

TASK_TEXT = {
    "V": ("visual (generic) image aesthetic assessment", "an image", "image only"),
    "M": ("multimodal image aesthetic assessment", "an image and its user comments", "image + comments"),
    "F": ("fine-grained (multi-attribute) image aesthetic assessment", "an image", "image only"),
    "P": ("personalized image aesthetic assessment", "an image and a user profile (Subject Multi-character "
          "Prompt built from Big-Five scores and art/photography experience)", "image + user profile"),
}

DATASET_TEXT = {
    "AVA": "AVA (Murray et al., CVPR 2012): ~255k photos with 1-10 vote histograms",
    "PhotoNet": "Photo.net: ~20k photos with 1-7 vote histograms",
    "PARA": "PARA (Yang et al., CVPR 2022): 31k photos, per-user ratings of 9 attributes (1-5) and user profiles",
    "AADB": "AADB (Kong et al., ECCV 2016): 10k photos, aesthetic score in [0, 1]",
    "TAD66K": "TAD66K (He et al., IJCAI 2022): 66k theme-aware photos, score 0-10",
}


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1000 else f"{value:.1f}"
    return str(value)


def _metrics_section(metrics: Optional[dict[str, Any]]) -> tuple[str, list[Any]]:
    """Markdown for a metrics JSON of ``aesmamba evaluate`` or ``aesmamba piaa``, plus ``EvalResult`` rows."""
    from huggingface_hub import EvalResult

    if not metrics:
        return ("No evaluation results are attached to this export. Evaluate it with "
                "`aesmamba evaluate MODEL DATASET ROOT --out DIR` and re-export with `--metrics DIR/metrics.json`."), []
    results = []
    if metrics.get("protocol") == "piaa":
        lines = ["PIAA protocol (`aesmamba piaa`): " + metrics.get("description", ""), "",
                 "| shots | attribute | PLCC | SRCC | users | repeats |", "|---|---|---|---|---|---|"]
        for k, block in metrics.get("summary", {}).items():
            for attr, values in block.items():
                plcc, srcc = values.get("plcc", {}), values.get("srcc", {})
                lines.append(f"| {k} | {attr} | {_fmt(plcc.get('mean'))} ± {_fmt(plcc.get('std_repeats'))} | "
                             f"{_fmt(srcc.get('mean'))} ± {_fmt(srcc.get('std_repeats'))} | "
                             f"{values.get('num_users', '')} | {values.get('num_repeats', '')} |")
        lines += ["", "± is the standard deviation over repeats of the mean over users."]
        return "\n".join(lines), results
    dataset = metrics.get("dataset", "")
    split = metrics.get("split", "test")
    heads = metrics.get("heads", {})
    names = sorted({key for values in heads.values() for key in values if isinstance(values.get(key), (int, float))})
    order = [n for n in ("plcc", "srcc", "accuracy", "mae", "rmse", "emd") if n in names]
    order += [n for n in names if n not in order]
    lines = [f"On **{dataset}** ({split} split, {metrics.get('num_images', '?')} images"
             + (f", {metrics['num_skipped']} unreadable images skipped" if metrics.get("num_skipped") else "")
             + "):", "", "| head | " + " | ".join(order) + " |", "|---" * (len(order) + 1) + "|"]
    for head, values in heads.items():
        lines.append(f"| {head} | " + " | ".join(_fmt(values.get(n, "")) for n in order) + " |")
        for metric in ("plcc", "srcc"):
            if isinstance(values.get(metric), (int, float)) and values[metric] == values[metric]:
                results.append(EvalResult(
                    task_type="image-classification", task_name="Image Aesthetic Assessment",
                    dataset_type=dataset or "custom", dataset_name=dataset or "custom", dataset_split=split,
                    metric_type=metric, metric_name=f"{head} {metric.upper()}", metric_value=float(values[metric]),
                ))
    return "\n".join(lines), results


REFERENCE_HEADING = "## Score reference"


def score_reference_section(reference: Optional[dict[str, Any]]) -> str:
    """The body of the card's "Score reference" section: what a score means on a stated set of images."""
    from ..evaluation.calibration import EXACT_LIMIT, NUM_QUANTILES, describe_reference

    if not reference:
        return ("No reference distribution is attached, so results carry no `percentile`. Compute one on your own "
                "validation images with `aesmamba calibrate MODEL IMAGES/` (see the package's docs/calibration.md); "
                "from then on every result also says which share of those images scored at or below it.")
    return "\n".join([
        "Results carry `percentile`: the share of the reference images, in percent, whose score is at or below "
        "the result's raw score (per head). It says where a score stands among images the model was calibrated "
        "on, not an absolute quality.", "",
        *describe_reference(reference), "",
        f"Stored in `config.json` (`score_reference`): {NUM_QUANTILES} quantiles per head, plus every sorted score "
        f"for sets of up to {EXACT_LIMIT:,} images (exact percentiles). Recompute it on your own images with "
        "`aesmamba calibrate`.",
    ])


def with_score_reference(card_text: str, reference: Optional[dict[str, Any]]) -> str:
    """``card_text`` with its "Score reference" section replaced (or added before "Evaluation"/"How to use")."""
    section = f"{REFERENCE_HEADING}\n\n{score_reference_section(reference)}\n"
    start = card_text.find(REFERENCE_HEADING + "\n")
    if start >= 0:
        end = card_text.find("\n## ", start + 1)
        return card_text[:start] + section + (card_text[end:] if end >= 0 else "")
    for heading in ("\n## Evaluation", "\n## How to use", "\n## License"):
        where = card_text.find(heading)
        if where >= 0:
            return card_text[: where + 1] + section + "\n" + card_text[where + 1 :]
    return card_text.rstrip("\n") + "\n\n" + section


def build_model_card(
    config: AesMambaConfig,
    processor: Any = None,
    *,
    repo_id: Optional[str] = None,
    trained: bool = True,
    weights_origin: str = "",
    metrics: Optional[dict[str, Any]] = None,
    license: str = DEFAULT_LICENSE,
) -> Any:
    """The model card (``huggingface_hub.ModelCard``) of an export; ``str(card)`` is the README text."""
    from huggingface_hub import ModelCard, ModelCardData

    name = config.variant or f"aesmamba-{config.task.lower()}-{str(config.dataset).lower()}"
    repo_id = repo_id or f"{HUB_NAMESPACE}/{name}"
    task_long, task_input, _ = TASK_TEXT[config.task]
    metrics_md, eval_results = _metrics_section(metrics if trained else None)
    tags = list(BASE_TAGS) + [f"aesmamba-{config.task.lower()}", str(config.dataset).lower()]
    task = Task.parse(config.task)
    if task.reads_user_profile:
        tags.append("personalized-aesthetics")
    if not trained:
        tags.append("untrained")
    data = ModelCardData(
        library_name="transformers",
        pipeline_tag=PIPELINE_TAG,
        tags=tags,
        license=license,
        datasets=[str(config.dataset)],
        model_name=name if eval_results else None,
        eval_results=eval_results or None,
        inference=False,
    )

    banner = ""
    if not trained:
        banner = (
            "> [!WARNING]\n> **UNTRAINED MODEL — RANDOM WEIGHTS.** This repository holds the architecture, "
            "configuration, preprocessing and code of this variant, but its weights are a random "
            "initialisation: no trained weights were available when it was exported. Its scores are "
            "meaningless. Fine-tune it (`aesmamba train`) or convert the authors' checkpoint "
            "(`aesmamba export VARIANT OUT --weights official.pth`) before use.\n\n"
        )

    # preprocessing, read from the processor actually saved
    ip = getattr(processor, "image_processor", None)
    if ip is not None:
        size, train_size, crop = ip.size, getattr(ip, "train_size", None), getattr(ip, "crop_size", None)
        hw = lambda s: f"{s['height']}×{s['width']}" if isinstance(s, dict) else f"{s.height}×{s.width}"  # noqa: E731
        preprocessing = (
            f"- evaluation: resize to {hw(size)} (bicubic, aspect ratio not kept, no crop) → scale to [0, 1] → "
            f"normalize with mean {list(ip.image_mean)} and std {list(ip.image_std)};\n"
            + (f"- training augmentation: resize to {hw(train_size)} → random horizontal flip (p=0.5) → random "
               f"{hw(crop)} crop → same normalization;\n" if train_size is not None and crop is not None else "")
            + "- any input mode is converted to RGB (EXIF orientation applied, alpha composited on white)."
        )
    else:
        spec = get_dataset_spec(config.dataset) if config.dataset in ("AVA", "PhotoNet", "PARA", "AADB", "TAD66K") \
            else None
        preprocessing = ("- resize to 224×224 (bicubic) → [0, 1] → normalize"
                         + (f" with mean {list(spec.image_mean)} / std {list(spec.image_std)}" if spec else ""))
    if task.reads_comments:
        preprocessing += ("\n- comments: the authors' cleaning (each of `[ ] ( ) ' \" * # : ~` and a literal `\\n` "
                          "become a space, whitespace runs collapse to one space, the first 200 words are kept); "
                          "the uncased BERT tokenizer lower-cases.")
    if task.reads_user_profile:
        preprocessing += ("\n- user profile → Subject Multi-character Prompt (Big-Five O/C/E/A/N scores, artistic "
                          "and photographic experience), tokenized with the BERT-uncased tokenizer.")

    rows = ["| head | output | score range | higher is better | binary threshold |", "|---|---|---|---|---|"]
    for head in config.heads:
        kind = (f"{head['num_bins']}-bin distribution → expected score" if head["kind"] == "distribution"
                else "scalar score")
        low, high = head["score_range"]
        rows.append(f"| `{head['name']}` | {kind} | {low:g} – {high:g} | "
                    f"{'yes' if head.get('higher_is_better', True) else 'no'} | {head.get('binary_threshold', '')} |")

    text_arg = {"M": ', comment="a stunning composition, great light"',
                "P": ', user={"personality-O": 7, "personality-C": 6, "personality-E": 4, "personality-A": 6, '
                     '"personality-N": 3, "artExperience": "proficient", "photographyExperience": "beginner"}'}.get(
        config.task, "")
    proc_arg = {"M": ', comments=["a stunning composition"]', "P": ', users=["profile.json"]'}.get(config.task, "")
    cli_arg = {"M": " --comments comments.csv", "P": " --user profile.json"}.get(config.task, "")
    dataset_line = DATASET_TEXT.get(str(config.dataset), str(config.dataset))

    content = Template(TEMPLATE.read_text(encoding="utf-8")).substitute(
        front_matter=data.to_yaml().strip(), name=name, banner=banner, task=config.task, task_long=task_long,
        task_input=task_input,
        text_encoder_clause="and a BERT text encoder fused by cross-attention " if config.uses_text else "",
        weights=weights_origin or ("trained" if trained else "random initialisation"),
        input_kind=TASK_TEXT[config.task][2], dataset_line=dataset_line, preprocessing=preprocessing,
        num_heads=config.num_heads, heads_table="\n".join(rows),
        distribution_note="`outputs.distribution` holds the predicted vote distribution over the bins."
        if config.distribution_head else "",
        score_reference=score_reference_section(getattr(config, "score_reference", None)),
        metrics=metrics_md, repo_id=repo_id, text_arg=text_arg, proc_arg=proc_arg, cli_arg=cli_arg,
        head_names=", ".join(config.head_names), license=license, dataset=config.dataset, citation=CITATION,
    )
    return ModelCard(content)


__all__ = ["BASE_TAGS", "CITATION", "DEFAULT_LICENSE", "PIPELINE_TAG", "build_model_card", "score_reference_section",
           "with_score_reference"]
