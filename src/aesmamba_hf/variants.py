"""Deprecated location of the variant table: use :mod:`aesmamba_hf.registry` (same names)."""

from .registry import (  # noqa: F401  (re-exported for old imports)
    ALIASES,
    HUB_NAMESPACE,
    VARIANTS,
    Variant,
    get_variant,
    hub_configs_dir,
    is_variant_name,
    list_aliases,
    resolve_model,
)

__all__ = ["ALIASES", "HUB_NAMESPACE", "VARIANTS", "Variant", "get_variant", "hub_configs_dir",
           "is_variant_name", "list_aliases", "resolve_model"]
