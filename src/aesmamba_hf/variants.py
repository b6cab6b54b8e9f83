"""The published AesMamba variants: one table of names, short aliases, Hub repos and config folders.

Shared by the library (``resolve_model``, ``load_scorer``) and the CLI (``aesmamba download/score/info``).
Extend this table, do not fork it.
Hub repos live under the ``aesmamba-hf`` namespace (a bare ``aesmamba-p`` cannot exist on the Hub and a local
folder of that name would shadow it anyway, hf-conventions §1), so a short alias is resolved like this:

1. an existing local folder with that name (what ``aesmamba download aesmamba-p`` creates) — so
   ``AutoModel.from_pretrained("aesmamba-p")`` works as users write it;
2. otherwise the Hub repo ``aesmamba-hf/<variant>``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

HUB_NAMESPACE = "aesmamba-hf"


@dataclass(frozen=True)
class Variant:
    """One released configuration. ``name`` is also its ``hub_configs/`` folder and Hub repo name."""

    name: str
    task: str  # V | M | F | P
    dataset: str
    description: str
    aliases: tuple[str, ...] = ()

    @property
    def repo_id(self) -> str:
        return f"{HUB_NAMESPACE}/{self.name}"

    @property
    def hub_config_folder(self) -> str:
        return self.name


# The one table. The first variant of each task is what the bare task alias (aesmamba-v, ...) means.
VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("aesmamba-v-ava", "V", "AVA", "generic aesthetics, 10-bin AVA vote distribution",
                ("aesmamba-v",)),
        Variant("aesmamba-v-photonet", "V", "PhotoNet", "generic aesthetics, 7-bin Photo.net distribution"),
        Variant("aesmamba-v-para", "V", "PARA", "generic aesthetic mean score on PARA (1-5)"),
        Variant("aesmamba-v-aadb", "V", "AADB", "generic aesthetic score on AADB (0-1)"),
        Variant("aesmamba-v-tad66k", "V", "TAD66K", "generic aesthetic score on TAD66K (0-10)"),
        Variant("aesmamba-m-ava", "M", "AVA", "image + comments, AVA-Captions distribution", ("aesmamba-m",)),
        Variant("aesmamba-m-photonet", "M", "PhotoNet", "image + comments, Photo.net-Captions distribution"),
        Variant("aesmamba-f-para", "F", "PARA", "nine PARA attributes (fine-grained)", ("aesmamba-f",)),
        Variant("aesmamba-p-para", "P", "PARA", "nine PARA attributes personalised by a user prompt (SMP)",
                ("aesmamba-p",)),
    )
}

ALIASES: dict[str, str] = {alias: v.name for v in VARIANTS.values() for alias in (v.name, *v.aliases)}


def list_aliases() -> list[str]:
    """Every accepted short name (aliases and full variant names)."""
    return sorted(ALIASES)


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


def resolve_model(name_or_path: Union[str, os.PathLike]) -> str:
    """What to pass to ``from_pretrained`` for a user-supplied model name.

    * an existing local directory (including ``./aesmamba-p`` made by ``aesmamba download``) → that path;
    * a known alias / variant name → its Hub repo id (``aesmamba-hf/aesmamba-p-para``);
    * anything containing ``/`` → taken as a Hub repo id as is.

    Raises:
        ValueError: a bare name that is neither a folder nor a known alias.
    """
    text = os.fspath(name_or_path)
    if os.path.isdir(text):
        return text
    if is_variant_name(text):
        return get_variant(text).repo_id
    if "/" in text and not os.path.isabs(text) and not text.startswith("."):
        return text
    raise ValueError(
        f"{text!r} is neither a model folder nor a known AesMamba alias ({', '.join(list_aliases())}) "
        "nor a Hub repo id (owner/name)"
    )


__all__ = [
    "ALIASES",
    "HUB_NAMESPACE",
    "VARIANTS",
    "Variant",
    "get_variant",
    "hub_configs_dir",
    "is_variant_name",
    "list_aliases",
    "resolve_model",
]
