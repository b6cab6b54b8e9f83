"""The one table of published AesMamba variants: short aliases → Hub repo ids and hub_configs folders.

Shared by the library (``load_scorer``, ``resolve_model``) and the CLI (``aesmamba download/score/info``).
(Written by the lead: extend this table, do not fork it.)
"""

from __future__ import annotations

from dataclasses import dataclass

HUB_NAMESPACE = "aesmamba-hf"


@dataclass(frozen=True)
class Variant:
    name: str  # canonical variant name = hub_configs folder = Hub repo name
    task: str  # V, M, F, P
    dataset: str
    description: str

    @property
    def repo_id(self) -> str:
        return f"{HUB_NAMESPACE}/{self.name}"


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("aesmamba-v-ava", "V", "AVA", "generic aesthetics, 10-bin AVA vote distribution"),
        Variant("aesmamba-v-photonet", "V", "PhotoNet", "generic aesthetics, 7-bin Photo.net distribution"),
        Variant("aesmamba-v-para", "V", "PARA", "generic aesthetic mean score on PARA (1-5)"),
        Variant("aesmamba-v-aadb", "V", "AADB", "generic aesthetic score on AADB (0-1)"),
        Variant("aesmamba-v-tad66k", "V", "TAD66K", "generic aesthetic score on TAD66K (0-10)"),
        Variant("aesmamba-m-ava", "M", "AVA", "image + comments, AVA-Captions distribution"),
        Variant("aesmamba-m-photonet", "M", "PhotoNet", "image + comments, Photo.net-Captions distribution"),
        Variant("aesmamba-f-para", "F", "PARA", "nine PARA attributes (fine-grained)"),
        Variant("aesmamba-p-para", "P", "PARA", "nine PARA attributes personalised by a user prompt (SMP)"),
    )
}

# short aliases users type; each resolves to a canonical variant name
ALIASES: dict[str, str] = {
    "aesmamba-v": "aesmamba-v-ava",
    "aesmamba-m": "aesmamba-m-ava",
    "aesmamba-f": "aesmamba-f-para",
    "aesmamba-p": "aesmamba-p-para",
    **{name: name for name in VARIANTS},
}


def get_variant(alias: str) -> Variant:
    """The variant behind an alias or canonical name (case-insensitive)."""
    key = alias.strip().lower()
    if key not in ALIASES:
        raise KeyError(f"unknown AesMamba variant {alias!r}; known aliases: {', '.join(sorted(ALIASES))}")
    return VARIANTS[ALIASES[key]]


__all__ = ["HUB_NAMESPACE", "Variant", "VARIANTS", "ALIASES", "get_variant"]
