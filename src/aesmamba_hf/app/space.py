"""A Hugging Face Space folder that runs this app for one exported model.

``write_space(model_dir, space_dir)`` writes ``app.py`` (serves the model with :func:`aesmamba_hf.app.serve`),
``requirements.txt``, a Space ``README.md`` (the YAML header the Hub reads: ``sdk: gradio``, ``app_file``) and,
by default, a copy of the model under ``model/`` so the Space needs nothing else; without the copy the Space
loads the model by its Hub id. The folder is written atomically.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Optional, Union

from ..io_utils import atomic_output_dir

PathLike = Union[str, os.PathLike]

APP_TEMPLATE = '''"""A Hugging Face Space: the AesMamba web app for one model (written by `aesmamba export --space`)."""

import os
from pathlib import Path

from aesmamba_hf.app import serve

HERE = Path(__file__).resolve().parent
# The copy of the model next to this file, else its Hub repo; AESMAMBA_MODEL overrides both.
MODEL = os.environ.get("AESMAMBA_MODEL") or (
    str(HERE / "model") if (HERE / "model" / "config.json").is_file() else {repo_id!r}
)
ALLOW_RANDOM = {random_weights!r}  # an export with random weights: served with a banner on the page

if __name__ == "__main__":
    serve([MODEL], host=os.environ.get("GRADIO_SERVER_NAME", "0.0.0.0"),
          port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")), allow_random=ALLOW_RANDOM)
'''

README_TEMPLATE = """---
title: {title}
emoji: 📷
colorFrom: blue
colorTo: yellow
sdk: gradio
sdk_version: {gradio_version}
app_file: app.py
pinned: false
{models}---

# {title}

Drop photos to score their aesthetics with the AesMamba model `{model_ref}`, compare two photos, or rank them
for a user profile (P models). Written by `aesmamba export --space`; the same app runs locally with
`aesmamba app --model {model_ref}`. The `score` API endpoint takes one image and returns its overall score,
each head's score and its percentile (`None` without a score reference; `gradio_client`:
`score, heads, percentile = Client(URL).predict(handle_file("photo.jpg"), api_name="/score")`).
"""


# the floor of the package's ``app`` extra (pyproject.toml: gradio>=6): the Space's SDK when Gradio's own
# version cannot be read
GRADIO_FLOOR = "6.0.0"

REQUIREMENTS = """# The Space runs `aesmamba_hf.app`, so the aesmamba-hf package (with its [app] extra) must be installable
# here: from PyPI as below, or, if this version is not published there, replace that line with a Git URL
# ("aesmamba-hf[app] @ git+https://github.com/OWNER/REPO@TAG") or a wheel you upload into this folder
# ("aesmamba-hf[app] @ file:///home/user/app/aesmamba_hf-{version}-py3-none-any.whl").
torch
aesmamba-hf[app]>={version}
"""


def _gradio_version() -> str:
    try:
        from importlib.metadata import version

        return version("gradio")
    except Exception:  # noqa: BLE001 - any metadata problem: the oldest Gradio the app supports
        return GRADIO_FLOOR


def write_space(model_dir: PathLike, space_dir: PathLike, *, repo_id: Optional[str] = None,
                copy_model: bool = True, overwrite: bool = False) -> Path:
    """Write a Space folder serving the model in ``model_dir`` (an exported or saved model folder).

    Args:
        repo_id: the model's Hub id, loaded by the Space when it holds no copy (default: the folder's name).
        copy_model: copy the model into ``space_dir/model`` (a self-contained Space).
    """
    from .. import __version__
    from ..inference.loading import ModelLoadError, has_random_weights, has_weights, load_config

    model_dir = Path(model_dir)
    config = load_config(model_dir)  # a clear error before anything is written
    if not has_weights(model_dir):
        raise ModelLoadError(f"{model_dir}: no weights (model.safetensors); export the model first")
    random_weights = has_random_weights(config, model_dir)
    repo = repo_id or model_dir.resolve().name
    with atomic_output_dir(space_dir, overwrite=overwrite) as staging:
        (staging / "app.py").write_text(APP_TEMPLATE.format(repo_id=repo, random_weights=random_weights),
                                        encoding="utf-8")
        (staging / "requirements.txt").write_text(REQUIREMENTS.format(version=__version__), encoding="utf-8")
        models = f"models:\n- {repo}\n" if repo_id else ""
        (staging / "README.md").write_text(README_TEMPLATE.format(
            title=f"AesMamba: {model_dir.resolve().name}", gradio_version=_gradio_version(), models=models,
            model_ref=repo), encoding="utf-8")
        if copy_model:
            shutil.copytree(model_dir, staging / "model",
                            ignore=shutil.ignore_patterns(".*", "__pycache__", "app.py", "requirements.txt"))
    return Path(space_dir)


__all__ = ["write_space"]
