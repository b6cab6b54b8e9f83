"""aesmamba-demo: the offline end-to-end demo of aesmamba-hf (``aesmamba demo``, ``aesmamba-demo``).

Bundled photographs (``photos/``, sources and licences in its MANIFEST.json), a deterministic rated benchmark
built from them (:mod:`.benchmark`), a non-deep baseline (:mod:`.baseline`) and the run itself
(:mod:`.run`: train, evaluate, publish and score on CPU). A separate package from the library, which it uses
through its public API only; the library never imports it.
"""

from .benchmark import PHOTOS_DIR, SIZES, BenchmarkPaths, generate_benchmark, load_photo_manifest

__version__ = "0.1.0"

__all__ = ["PHOTOS_DIR", "SIZES", "BenchmarkPaths", "generate_benchmark", "load_photo_manifest"]
