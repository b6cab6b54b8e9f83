"""Which models the app serves, loaded once each through the package's one loader.

With ``--model`` the app serves those models; without it, the models ``aesmamba demo`` exported
(``aesmamba-demo-output/models/aesmamba-demo-{v,m,f,p}``), labelled on the page as demo models trained on
synthetic ratings. Random-weight models are refused by the loader unless ``allow_random`` is given; the page
then carries a banner.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

from ..inference.loading import LoadedModel, load_model
from ..inference.predictor import Predictor, overall_head_index
from ..tasks import Task

PathLike = Union[str, os.PathLike]

# Where `aesmamba demo` puts its exported models (its default --out, then models/<name>).
DEMO_OUTPUT_DIR = "aesmamba-demo-output"
DEMO_MODEL_NAMES = ("aesmamba-demo-v", "aesmamba-demo-m", "aesmamba-demo-f", "aesmamba-demo-p")
DEMO_NOTE = ("These are the demo models that `aesmamba demo` trained on **synthetic ratings** of controlled edits "
             "(blur, noise, exposure, ...): they show that the code works, not how good a photo is.")
NO_MODELS_MESSAGE = ("no models to serve: pass --model FOLDER (a trained or exported AesMamba model), or run "
                     "`aesmamba demo --quick` first (it writes {demo}/aesmamba-demo-{{v,m,f,p}}, which the app "
                     "serves by default)")


class AppSetupError(RuntimeError):
    """The app has nothing to serve, or a model cannot be served; the message says what to do."""


@dataclass
class ServedModel:
    """One loaded model as the app shows it: a unique name, the loader's result and its predictor."""

    name: str
    loaded: LoadedModel
    predictor: Predictor
    demo: bool = False

    @property
    def config(self) -> Any:
        return self.loaded.config

    @property
    def task(self) -> Task:
        return Task.parse(self.config.task)

    @property
    def random_weights(self) -> bool:
        return self.loaded.random_weights

    @property
    def overall_head(self) -> dict[str, Any]:
        return self.config.heads[overall_head_index(self.config)]

    def describe(self) -> str:
        """One Markdown line: what the model reads and predicts."""
        low, high = self.overall_head["score_range"]
        kind = "vote distribution" if self.config.distribution_head else "score"
        heads = len(self.config.heads)
        text = (f"**{self.name}** — task {self.task} ({self.task.description}); {kind} on {low:g}–{high:g}"
                + (f", {heads} attributes" if heads > 1 else "") + f"; `{self.loaded.source}`")
        if self.demo:
            text += " · demo model (synthetic ratings)"
        if self.random_weights:
            text += " · **RANDOM WEIGHTS: scores are meaningless**"
        return text


def demo_model_folders(demo_dir: Optional[PathLike] = None) -> list[Path]:
    """The exported demo models that exist under ``demo_dir`` (default ``./aesmamba-demo-output``)."""
    models = Path(demo_dir if demo_dir is not None else DEMO_OUTPUT_DIR) / "models"
    return [models / name for name in DEMO_MODEL_NAMES if (models / name / "config.json").is_file()]


def _unique_name(source: str, taken: set[str]) -> str:
    base = Path(source).name or source
    name, n = base, 2
    while name in taken:
        name, n = f"{base} ({n})", n + 1
    taken.add(name)
    return name


def load_served_models(sources: Optional[list[PathLike]] = None, *, allow_random: bool = False,
                       demo_dir: Optional[PathLike] = None, device: Optional[str] = None,
                       batch_size: int = 8) -> list[ServedModel]:
    """Load each model once (``load_model``); with no ``sources``, the demo's models.

    Raises:
        AppSetupError: no sources and no demo models.
        ModelLoadError / RandomWeightsError: from the loader, naming the model.
    """
    demo = not sources
    if demo:
        sources = list(demo_model_folders(demo_dir))
        if not sources:
            where = Path(demo_dir if demo_dir is not None else DEMO_OUTPUT_DIR) / "models"
            raise AppSetupError(NO_MODELS_MESSAGE.format(demo=where))
    served, taken = [], set()
    for source in sources:
        loaded = load_model(source, device=device, allow_random=allow_random)
        served.append(ServedModel(_unique_name(os.fspath(source), taken), loaded,
                                  loaded.predictor(batch_size=batch_size), demo=demo))
    return served


__all__ = ["AppSetupError", "DEMO_MODEL_NAMES", "DEMO_NOTE", "DEMO_OUTPUT_DIR", "ServedModel",
           "demo_model_folders", "load_served_models"]
