"""``aesmamba download ALIAS [DIR]``: put a variant into ``./ALIAS`` (or DIR); see :mod:`aesmamba_hf.hub.download`."""

from __future__ import annotations

import argparse
import sys

from ..hub.download import DownloadError, build_from_hub_config, download
from ..hub.download import __doc__ as _DESCRIPTION


def register(subparsers: argparse._SubParsersAction) -> None:
    from ..registry import list_aliases

    parser = subparsers.add_parser(
        "download", help="put a variant into ./ALIAS (Hub download, or random weights from hub_configs)",
        description=_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("alias", metavar="ALIAS", help=f"one of: {', '.join(list_aliases())}")
    parser.add_argument("directory", metavar="DIR", nargs="?", help="target folder (default: ./ALIAS)")
    parser.add_argument("--random-weights", action="store_true",
                        help="if the Hub cannot be reached, build the folder with RANDOM weights (marked as such)")
    parser.add_argument("--from-config", action="store_true",
                        help="do not try the Hub; build from hub_configs with RANDOM weights (implies "
                             "--random-weights)")
    parser.add_argument("--force", action="store_true", help="overwrite a non-empty target folder")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        target, trained = download(args.alias, args.directory, from_config=args.from_config, force=args.force,
                                   allow_random=args.random_weights)
    except DownloadError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except (KeyError, FileExistsError, FileNotFoundError) as err:
        print(f"error: {err.args[0] if err.args else err}", file=sys.stderr)
        return 2
    origin = "downloaded from the Hub" if trained else "RANDOM weights: pass --random-weights to use it"
    print(f"{target} ready ({origin}); use it as --model {target} or AutoModel.from_pretrained({str(target)!r})")
    return 0


__all__ = ["DownloadError", "build_from_hub_config", "download", "register", "run"]
