"""transformers' own common model tests (``ModelTesterMixin``, ``ConfigTester``), taken from its sdist.

The PyPI wheel of transformers has no tests. Its sdist has ``tests/test_modeling_common.py`` and
``tests/test_configuration_common.py`` (Apache-2.0, ~7,300 lines: too large to vendor), but not the helper
packages they import (``tests/utils``, ``tests/exporters``, ``tests/generation``). So:

* ``python tests/_transformers_common.py fetch`` (run by the install step, it needs PyPI) downloads the sdist
  of the *installed* transformers version with pip and keeps its top-level ``tests/*.py`` and ``LICENSE`` in
  ``<sys.prefix>/share/aesmamba-hf/transformers-<version>-tests`` (next to the environment it belongs to).
* ``load()`` imports them as the package ``_tf_common_tests``, with three small stand-ins for the missing
  helper modules registered in ``sys.modules`` first, so the files' relative imports resolve unchanged.

The tests that use them skip when nothing was fetched, and fail instead under CI (``CI=true``), where a
skip would hide a broken install step.
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import types
import unittest
from pathlib import Path

import transformers

PACKAGE = "_tf_common_tests"
ENV_DIR = "AESMAMBA_TRANSFORMERS_TESTS"  # overrides the folder holding test_modeling_common.py
FETCH_COMMAND = "python tests/_transformers_common.py fetch"


def tests_dir() -> Path:
    if os.environ.get(ENV_DIR):
        return Path(os.environ[ENV_DIR])
    return Path(sys.prefix) / "share" / "aesmamba-hf" / f"transformers-{transformers.__version__}-tests"


def fetch(target: Path | None = None) -> Path:
    """Download the sdist of the installed transformers and keep its top-level tests/*.py and LICENSE."""
    target = target or tests_dir()
    if (target / "test_modeling_common.py").exists():
        return target
    version = transformers.__version__
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
             f"transformers=={version}", "-d", tmp],
            check=True,
        )
        (sdist,) = Path(tmp).glob("transformers-*.tar.gz")
        staging = Path(tmp) / "tests"
        staging.mkdir()
        with tarfile.open(sdist) as archive:
            for member in archive.getmembers():
                parts = Path(member.name).parts  # transformers-X/tests/name.py or transformers-X/LICENSE
                wanted = (len(parts) == 3 and parts[1] == "tests" and parts[2].endswith(".py")) or parts[1:] == (
                    "LICENSE",
                )
                if member.isfile() and wanted:
                    (staging / parts[-1]).write_bytes(archive.extractfile(member).read())
        # the files' `direct_transformers_import(Path(__file__).parent)` executes the folder's __init__.py, which
        # the repository has (empty) and the sdist leaves out
        (staging / "__init__.py").write_text("")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(staging, target)
    return target


# --- stand-ins for the helper modules the sdist lacks --------------------------------------------------
class ExportTesterMixin:
    """Stand-in for ``tests/exporters/test_export.py``: its export tests need ``transformers.exporters``
    back ends (ONNX, ExecuTorch, ...) and export graphs this model does not support yet."""

    def test_torch_export(self):
        raise unittest.SkipTest("torch.export: tracked in the speed/export issue")


class GenerationTesterMixin:
    """Stand-in for ``tests/generation/test_utils.py``: only used in an ``issubclass`` check (no generate)."""


# ``tests/utils/test_configuration_utils.py`` of transformers 5.x: non-default values of PreTrainedConfig's
# own arguments, which ``ConfigTester.check_config_arguments_init`` passes and reads back.
CONFIG_COMMON_KWARGS = {
    "return_dict": False,
    "output_hidden_states": True,
    "output_attentions": True,
    "dtype": "float16",
    "chunk_size_feed_forward": 5,
    "architectures": ["BertModel"],
    "id2label": {0: "label"},
    "label2id": {"label": "0"},
    "problem_type": "regression",
}


def _register_stub(name: str, **attributes: object) -> None:
    parent, _, child = name.rpartition(".")
    if parent not in sys.modules:
        package = types.ModuleType(parent)
        package.__path__ = []
        sys.modules[parent] = package
    module = types.ModuleType(name)
    module.__dict__.update(attributes)
    sys.modules[name] = module
    setattr(sys.modules[parent], child, module)


def load(base_models: dict[str, str]) -> types.SimpleNamespace:
    """The common-test names this suite uses; raises ``unittest.SkipTest`` (or fails under CI) if unfetched.

    ``base_models``: model_type → base-model class name. The common tests tell base models (no loss, no
    training tests) from heads by ``MODEL_MAPPING_NAMES``, transformers' table of its *own* base models; these
    are added to the test module's view of it only (transformers' Auto mappings are left alone).
    """
    folder = tests_dir()
    if not (folder / "test_modeling_common.py").exists():
        message = f"transformers' common tests are not in {folder}; run `{FETCH_COMMAND}` (needs PyPI)"
        if os.environ.get("CI", "").lower() in ("1", "true"):
            raise RuntimeError(message)
        raise unittest.SkipTest(message)
    if PACKAGE not in sys.modules:
        package = types.ModuleType(PACKAGE)
        package.__path__ = [str(folder)]
        sys.modules[PACKAGE] = package
        _register_stub(f"{PACKAGE}.exporters.test_export", ExportTesterMixin=ExportTesterMixin)
        _register_stub(f"{PACKAGE}.generation.test_utils", GenerationTesterMixin=GenerationTesterMixin)
        _register_stub(f"{PACKAGE}.utils.test_configuration_utils", config_common_kwargs=CONFIG_COMMON_KWARGS)
    modeling = importlib.import_module(f"{PACKAGE}.test_modeling_common")
    modeling.MODEL_MAPPING_NAMES = type(modeling.MODEL_MAPPING_NAMES)({**modeling.MODEL_MAPPING_NAMES, **base_models})
    configuration = importlib.import_module(f"{PACKAGE}.test_configuration_common")
    return types.SimpleNamespace(
        ModelTesterMixin=modeling.ModelTesterMixin,
        ConfigTester=configuration.ConfigTester,
        floats_tensor=modeling.floats_tensor,
        ids_tensor=modeling.ids_tensor,
        random_attention_mask=modeling.random_attention_mask,
        _config_zero_init=modeling._config_zero_init,
    )


if __name__ == "__main__":
    if sys.argv[1:] != ["fetch"]:
        sys.exit(f"usage: {FETCH_COMMAND}")
    print(fetch())
