"""The embedded demo: bundled photographs, a deterministic rated benchmark built from them, and a
non-deep baseline (see ``benchmark.py`` and ``baseline.py``)."""

from .benchmark import PHOTOS_DIR, SIZES, BenchmarkPaths, generate_benchmark, load_photo_manifest

__all__ = ["PHOTOS_DIR", "SIZES", "BenchmarkPaths", "generate_benchmark", "load_photo_manifest"]
