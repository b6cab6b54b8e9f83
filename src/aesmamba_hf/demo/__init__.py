"""Deprecated alias of :mod:`aesmamba_demo`, the demo's own package (``aesmamba-demo``, ``demo/`` in the repository).

``aesmamba_hf.demo`` and its submodules ``run``, ``benchmark``, ``baseline`` and ``cli`` are the
``aesmamba_demo`` modules themselves (same objects), with a :class:`DeprecationWarning`; without
``aesmamba-demo`` installed the import fails with how to install it. Import ``aesmamba_demo`` instead.
"""

import importlib
import sys
import warnings

from ..cli.demo import NOT_INSTALLED

warnings.warn("aesmamba_hf.demo is deprecated: the demo is its own package now; import aesmamba_demo instead",
              DeprecationWarning, stacklevel=2)

try:
    import aesmamba_demo
except ModuleNotFoundError as err:
    if err.name != "aesmamba_demo":
        raise
    raise ModuleNotFoundError(f"aesmamba_hf.demo: {NOT_INSTALLED}", name="aesmamba_demo") from None

for _name in ("baseline", "benchmark", "run", "cli"):  # `import aesmamba_hf.demo.run` finds these first
    sys.modules[f"{__name__}.{_name}"] = globals()[_name] = importlib.import_module(f"aesmamba_demo.{_name}")

__all__ = list(aesmamba_demo.__all__)
globals().update({_name: getattr(aesmamba_demo, _name) for _name in __all__})
