"""``aesmamba app``: a Gradio web app to score, compare and personalise, on the package's one loader and predictor.

* :mod:`.models` — which models are served (``--model``, else the demo's), loaded once each;
* :mod:`.scoring` — uploads → records through each model's ``Predictor``; size and empty-file checks;
* :mod:`.charts`, :mod:`.render` — the vote histogram, attribute bars, tables and messages;
* :mod:`.personal` — the profile form, its SMP prompt, and the per-user adapter (``piaa.personalize``);
* :mod:`.ui` — the Blocks page and the ``score`` API endpoint; :mod:`.server` — launching it offline;
* :mod:`.space` — ``app.py`` + ``requirements.txt`` that run the same app as a Hugging Face Space.

Gradio is an optional dependency (``pip install aesmamba-hf[app]``); it is imported only when the app is built.
"""

from .models import AppSetupError, ServedModel, demo_model_folders, load_served_models
from .scoring import AppScorer, PhotoResult
from .server import RunningApp, create_app, launch, serve
from .space import write_space

__all__ = ["AppScorer", "AppSetupError", "PhotoResult", "RunningApp", "ServedModel", "create_app",
           "demo_model_folders", "launch", "load_served_models", "serve", "write_space"]
