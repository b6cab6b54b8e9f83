"""Put a published variant into a local folder (`aesmamba download ALIAS [DIR]`, default `./ALIAS`).

From the Hub (``huggingface_hub.snapshot_download`` of ``aesmamba-hf/<variant>``). When the Hub cannot be reached
(offline, no network, no such repo) the command fails (exit 1), unless ``--random-weights`` is given: then the
folder is built from ``hub_configs/<variant>`` with RANDOM weights, marked ``random_weights: true`` in its
``config.json`` and announced loudly; every entry point refuses such a folder unless told to accept it
(``--random-weights`` / ``allow_random=True``). Afterwards ``AutoModel.from_pretrained("ALIAS")`` and
``aesmamba score --model ALIAS`` load the local folder.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Optional, Union

_BANNER = "!" * 78


def build_from_hub_config(variant_name: str, destination: Union[str, os.PathLike],
                          hub_configs: Optional[Union[str, os.PathLike]] = None) -> Path:
    """Write ``variant_name`` with randomly initialised weights, its config and preprocessing files."""
    from ..configuration_aesmamba import AesMambaConfig
    from ..modeling_aesmamba import AesMambaForAestheticAssessment
    from ..registry import get_variant, hub_configs_dir

    variant = get_variant(variant_name)
    root = Path(hub_configs) if hub_configs is not None else hub_configs_dir()
    if root is None or not (root / variant.hub_config_folder / "config.json").is_file():
        raise FileNotFoundError(
            f"no hub_configs/{variant.hub_config_folder}/config.json found (set AESMAMBA_HUB_CONFIGS to the "
            "hub_configs folder of an aesmamba-hf checkout)"
        )
    source = root / variant.hub_config_folder
    destination = Path(destination)
    config = AesMambaConfig.from_pretrained(source)
    config.random_weights = True  # the one mark: every loader refuses it without an explicit opt-in
    model = AesMambaForAestheticAssessment(config)
    model.save_pretrained(destination)
    for item in source.iterdir():  # processor_config.json, vocab.txt, tokenizer_config.json, ...
        if item.is_file() and item.name != "config.json":
            shutil.copy2(item, destination / item.name)
    return destination


class DownloadError(OSError):
    """The variant could not be downloaded and random weights were not asked for."""


def download(alias: str, destination: Optional[Union[str, os.PathLike]] = None, from_config: bool = False,
             force: bool = False, hub_configs: Optional[Union[str, os.PathLike]] = None,
             allow_random: bool = False) -> tuple[Path, bool]:
    """Download a variant; returns (folder, has_trained_weights).

    ``allow_random``: when the Hub cannot be reached, build the folder with random weights instead of raising
    :class:`DownloadError`. ``from_config``: skip the Hub and build with random weights (implies it).
    """
    from ..registry import get_variant

    variant = get_variant(alias)
    target = Path(destination) if destination is not None else Path(alias)
    if target.exists() and any(target.iterdir()) and not force:
        raise FileExistsError(f"{target} already exists and is not empty (use --force to overwrite)")
    if target.exists() and force:
        shutil.rmtree(target)
    reason = "--from-config was given"
    if not from_config:
        try:
            from huggingface_hub import snapshot_download

            snapshot_download(repo_id=variant.repo_id, local_dir=str(target))
            return target, True
        except Exception as err:  # offline, no network, no such repo, gated, ...
            reason = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
            if target.exists():
                shutil.rmtree(target)
            if not allow_random:
                raise DownloadError(
                    f"{variant.repo_id} could not be downloaded ({reason}). Check the network (HF_HUB_OFFLINE "
                    "must not be 1), or pass --random-weights to build it with RANDOM weights for a smoke test"
                ) from err
    build_from_hub_config(variant.name, target, hub_configs=hub_configs)
    print(
        f"{_BANNER}\n  WARNING: {variant.repo_id} could not be downloaded ({reason}).\n"
        f"  Built {target} from hub_configs/{variant.name} with RANDOM WEIGHTS — its scores are meaningless.\n"
        f"{_BANNER}",
        file=sys.stderr,
    )
    return target, False


__all__ = ["DownloadError", "build_from_hub_config", "download"]
