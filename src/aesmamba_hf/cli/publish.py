"""``aesmamba publish OUT_DIR --repo-id ORG/NAME [--private] [--revision BRANCH]``: upload an exported folder.

Uses ``huggingface_hub`` (``create_repo(exist_ok=True)`` + ``upload_folder``) with the token from
``--token``, ``HF_TOKEN`` or ``hf auth login``. Refuses with a clear message when offline (``HF_HUB_OFFLINE=1``),
not logged in, or when OUT_DIR is not a folder made by ``aesmamba export``.
"""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "publish", help="upload an exported folder to the Hugging Face Hub",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("folder", metavar="OUT_DIR", help="folder written by `aesmamba export`")
    parser.add_argument("--repo-id", required=True, help="ORG_OR_USER/NAME")
    parser.add_argument("--private", action="store_true", help="create the repo as private")
    parser.add_argument("--revision", default=None, help="branch to upload to (created if needed)")
    parser.add_argument("--token", default=None, help="Hub token (default: HF_TOKEN / saved login)")
    parser.add_argument("--message", default=None, help="commit message")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..hub import PublishError, publish_folder

    try:
        url = publish_folder(args.folder, args.repo_id, private=args.private, revision=args.revision,
                             token=args.token, commit_message=args.message)
    except PublishError as err:
        print(f"aesmamba publish: error: {err}", file=sys.stderr)
        return 1
    print(f"published {args.folder} -> {url}")
    return 0
