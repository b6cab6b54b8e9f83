"""Upload an exported folder to the Hugging Face Hub, refusing clearly when that cannot work."""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Optional, Union

logger = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]
REQUIRED_FILES = ("config.json", "model.safetensors", "README.md")


class PublishError(RuntimeError):
    """An upload that cannot happen (offline, not logged in, incomplete folder, Hub error)."""


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
    if config.get("random_weights") or config.get("untrained"):
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


__all__ = ["PublishError", "REQUIRED_FILES", "publish_folder"]
