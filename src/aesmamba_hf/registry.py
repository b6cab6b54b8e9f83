"""The published AesMamba variants: one table of names, aliases, tasks, datasets, Hub repos and configs.

Like timm's registry or pyiqa's model table, every entry point (loader, CLI, export, training recipes) reads
this table; extend it, do not fork it. A variant is a configuration, not a class: its heads (score range,
bins, direction), preprocessing and tokenizer live in ``hub_configs/<variant>/`` and come back through
:func:`variant_config` and :func:`variant_folder`.

Hub repos live under the ``aesmamba-hf`` namespace (a bare ``aesmamba-p`` cannot exist on the Hub), so a short
name resolves, in order, to an existing local folder of that name (what ``aesmamba download aesmamba-p``
creates), else the Hub repo ``aesmamba-hf/<variant>``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

from .configuration_aesmamba import AesMambaConfig
from .configuration_vmamba import VMambaConfig
from .tasks import Task

HUB_NAMESPACE = "aesmamba-hf"
# The released M and P models read text with BERT-base-uncased; its WordPiece vocabulary ships in hub_configs.
DEFAULT_TOKENIZER = "google-bert/bert-base-uncased"


@dataclass(frozen=True)
class Variant:
    """One released configuration. ``name`` is also its ``hub_configs/`` folder and Hub repo name."""

    name: str
    task: Task
    dataset: str
    description: str
    aliases: tuple[str, ...] = ()
    # the image encoder (a VMambaConfig preset): what a fresh model of this variant gets without hub_configs/
    vision_preset: str = "vmamba-t-v0"
    # the paper's published figures for this variant (not measured by this package): metric -> value, "source"
    paper_results: tuple[tuple[str, Any], ...] = ()

    @property
    def repo_id(self) -> str:
        return f"{HUB_NAMESPACE}/{self.name}"

    @property
    def hub_config_folder(self) -> str:
        return self.name

    @property
    def tokenizer(self) -> Optional[str]:
        """The tokenizer the variant's text encoder was trained with (``None`` for image-only tasks)."""
        return DEFAULT_TOKENIZER if self.task.uses_text else None

    def config(self, **overrides: Any) -> AesMambaConfig:
        return variant_config(self.name, **overrides)

    def score_metadata(self) -> list[dict[str, Any]]:
        """Per head: name, kind, score range, direction, bins (the pyiqa-style metadata table)."""
        return [
            {"name": h["name"], "kind": h["kind"], "score_range": tuple(h["score_range"]),
             "higher_is_better": bool(h.get("higher_is_better", True)), "bins": h.get("bin_values") or None,
             **({"paper_results": dict(self.paper_results)} if self.paper_results and i == 0 else {})}
            for i, h in enumerate(self.config().heads)
        ]


def _variant(name: str, task: str, dataset: str, description: str, *aliases: str, **fields: Any) -> Variant:
    return Variant(name, Task.parse(task), dataset, description, tuple(aliases), **fields)


_TABLE_1B = "Gao et al., AesMamba (ACM MM 2024), Table 1(b): the paper's figures, not reproduced by this package"


# The one table. The first variant of each task is what the bare task alias (aesmamba-v, ...) means.
VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        _variant("aesmamba-v-ava", "V", "AVA", "generic aesthetics, 10-bin AVA vote distribution", "aesmamba-v"),
        _variant("aesmamba-v-photonet", "V", "PhotoNet", "generic aesthetics, 7-bin Photo.net distribution"),
        _variant("aesmamba-v-para", "V", "PARA", "generic aesthetic mean score on PARA (1-5)"),
        _variant("aesmamba-v-aadb", "V", "AADB", "generic aesthetic score on AADB (0-1)"),
        _variant("aesmamba-v-tad66k", "V", "TAD66K", "generic aesthetic score on TAD66K (0-10)",
                 paper_results=(("accuracy", 67.3), ("plcc", 0.503), ("srcc", 0.475), ("source", _TABLE_1B))),
        _variant("aesmamba-v-dagger-tad66k", "V", "TAD66K",
                 "AesMamba-V†: Vanilla-VMamba-B image encoder, generic aesthetic score on TAD66K (0-10)",
                 "aesmamba-v-dagger", "aesmamba-v-b-tad66k", vision_preset="vmamba-b-v0",
                 paper_results=(("accuracy", 72.0), ("plcc", 0.511), ("srcc", 0.483), ("source", _TABLE_1B))),
        _variant("aesmamba-m-ava", "M", "AVA", "image + comments, AVA-Captions distribution", "aesmamba-m"),
        _variant("aesmamba-m-photonet", "M", "PhotoNet", "image + comments, Photo.net-Captions distribution"),
        _variant("aesmamba-f-para", "F", "PARA", "nine PARA attributes (fine-grained)", "aesmamba-f"),
        _variant("aesmamba-p-para", "P", "PARA", "nine PARA attributes personalised by a user prompt (SMP)",
                 "aesmamba-p"),
    )
}

ALIASES: dict[str, str] = {alias: v.name for v in VARIANTS.values() for alias in (v.name, *v.aliases)}


def list_aliases() -> list[str]:
    """Every accepted short name (aliases and full variant names)."""
    return sorted(ALIASES)


def list_variants(task: Union[str, Task, None] = None) -> list[Variant]:
    """The variants, optionally of one task."""
    wanted = None if task is None else Task.parse(task)
    return [v for v in VARIANTS.values() if wanted is None or v.task is wanted]


def get_variant(name: str) -> Variant:
    """The variant for an alias, a variant name or its Hub repo id (case-insensitive)."""
    key = name.strip().lower()
    if key.startswith(f"{HUB_NAMESPACE}/"):
        key = key.split("/", 1)[1]
    if key in ALIASES:
        return VARIANTS[ALIASES[key]]
    raise KeyError(f"unknown AesMamba variant {name!r}; known: {', '.join(list_aliases())}")


def is_variant_name(name: str) -> bool:
    try:
        get_variant(name)
    except KeyError:
        return False
    return True


def hub_configs_dir() -> Optional[Path]:
    """The folder holding ``hub_configs/<variant>/`` (config + preprocessing files), if available.

    Looked up in ``$AESMAMBA_HUB_CONFIGS``, inside the installed package, then in the source checkout.
    """
    candidates = []
    if os.environ.get("AESMAMBA_HUB_CONFIGS"):
        candidates.append(Path(os.environ["AESMAMBA_HUB_CONFIGS"]))
    here = Path(__file__).resolve().parent
    candidates += [here / "hub_configs", here.parent.parent / "hub_configs"]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    return None


def variant_folder(name: str) -> Optional[Path]:
    """``hub_configs/<variant>/`` (config, processor and tokenizer files of the variant), if shipped."""
    root = hub_configs_dir()
    folder = root / get_variant(name).hub_config_folder if root is not None else None
    return folder if folder is not None and (folder / "config.json").is_file() else None


def variant_config(name: str, **overrides: Any) -> AesMambaConfig:
    """The config of a published variant (alias accepted), from ``hub_configs/`` when present.

    ``overrides`` go through the config constructor, so what is derived from them is rebuilt: overriding
    ``dataset`` or ``task`` gives the heads of the new dataset/task unless ``heads`` is also given.
    """
    variant = get_variant(name)
    folder = variant_folder(variant.name)
    if folder is not None:
        data = AesMambaConfig.from_pretrained(folder).to_dict()
    else:  # installed without hub_configs/: the same numbers from the task/dataset defaults
        data = {"task": variant.task.value, "dataset": variant.dataset, "variant": variant.name,
                "architectures": ["AesMambaForAestheticAssessment"],
                "vision_config": VMambaConfig.from_preset(variant.vision_preset).to_dict()}
    unknown = [key for key in overrides if key not in data and not hasattr(AesMambaConfig(), key)]
    if unknown:
        raise ValueError(f"AesMambaConfig has no field(s) {unknown}")
    if ("dataset" in overrides or "task" in overrides) and "heads" not in overrides:
        data.pop("heads", None)  # derived from task + dataset: rebuilt by the constructor
    data.update(overrides)
    return AesMambaConfig.from_dict(data)


def resolve_model(name_or_path: Union[str, os.PathLike]) -> str:
    """What to pass to ``from_pretrained`` for a user-supplied model name.

    * an existing local directory (including ``./aesmamba-p`` made by ``aesmamba download``) → that path;
    * a known alias / variant name → its Hub repo id (``aesmamba-hf/aesmamba-p-para``);
    * ``owner/name`` that is not a local path → taken as a Hub repo id.

    Raises:
        ValueError: a name that is none of these (a missing folder is named as such).
    """
    text = os.fspath(name_or_path)
    if os.path.isdir(text):
        return text
    if is_variant_name(text):
        return get_variant(text).repo_id
    looks_local = os.path.isabs(text) or text.startswith((".", "~")) or text.count("/") != 1
    if os.path.exists(text):
        raise ValueError(f"{text} is a file, not a model folder (a folder with config.json and weights)")
    if looks_local or "\\" in text:
        raise ValueError(f"no model folder {text!r}: it does not exist, and it is no known AesMamba alias "
                         f"({', '.join(list_aliases())}) nor a Hub repo id (owner/name)")
    return text


__all__ = [
    "ALIASES",
    "DEFAULT_TOKENIZER",
    "HUB_NAMESPACE",
    "VARIANTS",
    "Variant",
    "get_variant",
    "hub_configs_dir",
    "is_variant_name",
    "list_aliases",
    "list_variants",
    "resolve_model",
    "variant_config",
    "variant_folder",
]
