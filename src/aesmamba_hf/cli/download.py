"""``aesmamba download ALIAS [DIR]``: put a variant into ``./ALIAS`` (or DIR).

From the Hub (``huggingface_hub.snapshot_download`` of ``aesmamba-hf/<variant>``); when the Hub is unreachable,
offline, or the repo does not exist, the folder is built from ``hub_configs/<variant>`` with RANDOM weights,
marked by a ``RANDOM_WEIGHTS.txt`` file and a loud warning. Afterwards ``AutoModel.from_pretrained("ALIAS")``
and ``aesmamba score --model ALIAS`` load the local folder.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path
from typing import Optional, Union

from .score import RANDOM_WEIGHTS_MARKER

_BANNER = "!" * 78


def build_from_hub_config(variant_name: str, destination: Union[str, os.PathLike],
                          hub_configs: Optional[Union[str, os.PathLike]] = None) -> Path:
    """Write ``variant_name`` with randomly initialised weights, its config and preprocessing files."""
    from ..configuration_aesmamba import AesMambaConfig
    from ..modeling_aesmamba import AesMambaForAestheticAssessment
    from ..variants import get_variant, hub_configs_dir

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
    model = AesMambaForAestheticAssessment(config)
    model.save_pretrained(destination)
    for item in source.iterdir():  # processor_config.json, vocab.txt, tokenizer_config.json, ...
        if item.is_file() and item.name != "config.json":
            shutil.copy2(item, destination / item.name)
    (destination / RANDOM_WEIGHTS_MARKER).write_text(
        f"The weights in this folder are RANDOM: it was built from hub_configs/{variant.name} because the Hub "
        f"repo {variant.repo_id} could not be downloaded.\nScores from it are meaningless. Convert the "
        "official checkpoint or train one, or run `aesmamba download` again with network access.\n",
        encoding="utf-8",
    )
    return destination


def download(alias: str, destination: Optional[Union[str, os.PathLike]] = None, from_config: bool = False,
             force: bool = False, hub_configs: Optional[Union[str, os.PathLike]] = None) -> tuple[Path, bool]:
    """Download (or build) a variant; returns (folder, has_trained_weights)."""
    from ..variants import get_variant

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
    build_from_hub_config(variant.name, target, hub_configs=hub_configs)
    print(
        f"{_BANNER}\n  WARNING: {variant.repo_id} could not be downloaded ({reason}).\n"
        f"  Built {target} from hub_configs/{variant.name} with RANDOM WEIGHTS — its scores are meaningless.\n"
        f"{_BANNER}",
        file=sys.stderr,
    )
    return target, False


def register(subparsers: argparse._SubParsersAction) -> None:
    from ..variants import list_aliases

    parser = subparsers.add_parser(
        "download", help="put a variant into ./ALIAS (Hub download, or random weights from hub_configs)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("alias", metavar="ALIAS", help=f"one of: {', '.join(list_aliases())}")
    parser.add_argument("directory", metavar="DIR", nargs="?", help="target folder (default: ./ALIAS)")
    parser.add_argument("--from-config", action="store_true",
                        help="do not try the Hub; build from hub_configs with random weights")
    parser.add_argument("--force", action="store_true", help="overwrite a non-empty target folder")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        target, trained = download(args.alias, args.directory, from_config=args.from_config, force=args.force)
    except (KeyError, FileExistsError, FileNotFoundError) as err:
        print(f"error: {err.args[0] if err.args else err}", file=sys.stderr)
        return 2
    origin = "downloaded from the Hub" if trained else "RANDOM weights"
    print(f"{target} ready ({origin}); use it as --model {target} or AutoModel.from_pretrained({str(target)!r})")
    return 0


__all__ = ["build_from_hub_config", "download", "register", "run"]
