"""Export AesMamba models as complete Hub repositories and publish them.

``export_model(source, out_dir)`` writes a folder that works on its own:

* ``model.safetensors`` + ``config.json`` with ``auto_map`` (``AutoConfig``/``AutoModel``) and the modeling
  files copied flat, so ``AutoModel.from_pretrained(repo, trust_remote_code=True)`` works without this
  package; every copied file is checked: relative imports resolve inside the folder, no
  absolute ``aesmamba_hf`` import, ``transformers``' ``check_imports`` passes;
* the processor (``processor_config.json`` with its own ``auto_map``, tokenizer files for M/P);
* ``README.md``: a model card with YAML front matter, preprocessing, per-head score ranges, metrics when a
  metrics JSON is given (``aesmamba evaluate`` / ``aesmamba piaa`` output), license, citation and usage.

``source`` is a checkpoint folder, or a variant alias (``aesmamba-v-ava``…, see :mod:`aesmamba_hf.variants`).
A variant is taken from the local Hub cache when its weights were downloaded, from an official ``.pth``
given as ``weights=`` (converted strictly), and otherwise, only when asked (``allow_random=True``,
``--random-weights``), built from ``hub_configs/<variant>`` with **random weights**; such an export is marked
everywhere (``random_weights: true`` in ``config.json``, card banner, ``untrained`` tag).

``publish_folder(folder, repo_id)`` uploads an exported folder with ``huggingface_hub``
(``create_repo(exist_ok=True)`` + ``upload_folder``) and refuses clearly when offline or not logged in.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import re
import shutil
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import torch

from ..configuration_aesmamba import AesMambaConfig
from ..inference.loading import ModelLoadError, load_model, load_processor, load_processor_for_config
from ..io_utils import OutputLocationError, atomic_output_dir, atomic_write_text, check_new_output_dir
from ..modeling_aesmamba import AesMambaForAestheticAssessment
from ..registry import Variant, get_variant, is_variant_name, variant_config, variant_folder
from .model_card import DEFAULT_LICENSE, build_model_card

logger = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]


class ExportError(RuntimeError):
    """An export that cannot produce a complete, self-contained Hub folder."""


@dataclass
class ExportResult:
    """What :func:`export_model` wrote."""

    path: Path
    source: str
    variant: Optional[str]
    trained: bool
    weights_origin: str
    files: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------------------------------------
# resolving the source


def _cached_variant_snapshot(v: Variant) -> Optional[str]:
    """The local Hub-cache snapshot of a variant's repo, if its weights were downloaded (no network)."""
    try:
        from huggingface_hub import snapshot_download

        path = snapshot_download(v.repo_id, local_files_only=True)
    except Exception:  # not cached / cache unreadable: fall back to other sources
        return None
    return path if (Path(path) / "model.safetensors").is_file() else None


def _processor(folder: Optional[Path], config: AesMambaConfig) -> Any:
    """The loader's processor rule, as an :class:`ExportError` when it fails."""
    try:
        return load_processor(folder, config) if folder is not None else load_processor_for_config(config)
    except ModelLoadError as err:
        raise ExportError(str(err)) from err


def _random_variant(v: Variant, allow_random: bool) -> tuple[AesMambaForAestheticAssessment, dict[str, Any]]:
    if not allow_random:
        raise ExportError(
            f"no trained weights for {v.name} are available offline (the authors published none). Convert an "
            f"official checkpoint (--weights FILE.pth), export a model you trained (a folder), or pass "
            "--random-weights (allow_random=True) to export the architecture with RANDOM weights"
        )
    warnings.warn(f"exporting {v.name} with RANDOM weights (explicitly allowed)", UserWarning, stacklevel=3)
    config = variant_config(v.name)
    config.random_weights = True
    info = {"trained": False, "weights_origin": "random initialisation (no trained weights available offline)"}
    return AesMambaForAestheticAssessment(config), info


def load_export_source(
    source: PathLike, weights: Optional[PathLike] = None, allow_random: bool = False
) -> tuple[AesMambaForAestheticAssessment, Any, dict[str, Any]]:
    """Model, processor and provenance for :func:`export_model` (see the module docstring for the order)."""
    from .conversion import load_official_checkpoint

    path = Path(source)
    info: dict[str, Any] = {"source": os.fspath(source), "variant": None, "trained": True}
    if path.is_dir() and weights is not None:
        if not (path / "config.json").is_file():
            raise ExportError(f"{path}: not a checkpoint folder (no config.json)")
        config = AesMambaConfig.from_pretrained(path)
        model = load_official_checkpoint(weights, config)
        info.update(variant=config.variant, weights_origin=f"official checkpoint {weights}")
        return model.eval(), _processor(path, model.config), info
    if path.is_dir():
        try:  # a marked folder is exported only when asked, and stays marked
            loaded = load_model(path, device="cpu", allow_random=allow_random)
        except ModelLoadError as err:
            raise ExportError(str(err)) from err
        info.update(variant=loaded.config.variant, trained=not loaded.random_weights,
                    weights_origin=f"checkpoint folder {path}" if not loaded.random_weights
                    else f"random initialisation (checkpoint folder {path} is marked as random weights)")
        return loaded.model, loaded.processor, info
    if not is_variant_name(os.fspath(source)):
        raise ExportError(
            f"{os.fspath(source)!r} is neither a checkpoint folder nor a known variant alias; see `aesmamba info`"
        )
    v = get_variant(os.fspath(source))
    info["variant"] = v.name
    if weights is not None:
        model = load_official_checkpoint(weights, variant_config(v.name))
        info["weights_origin"] = f"official checkpoint {weights}"
        return model.eval(), _processor(variant_folder(v.name), model.config), info
    snapshot = _cached_variant_snapshot(v)
    if snapshot is not None:
        model, processor, cached = load_export_source(snapshot, allow_random=allow_random)
        cached.update(source=info["source"], weights_origin=f"Hub cache {v.repo_id} ({snapshot})")
        return model, processor, cached
    model, random_info = _random_variant(v, allow_random)
    info.update(random_info)
    return model.eval(), _processor(variant_folder(v.name), model.config), info


# ----------------------------------------------------------------------------------------------------------
# remote code


@contextlib.contextmanager
def _processor_auto_classes() -> Iterator[None]:
    """Register the processor classes for auto class while the export saves them (so their code is copied
    and ``auto_map`` written), then restore the previous state: other saves in the process stay unchanged."""
    from ..image_processing_aesmamba import AesMambaImageProcessor
    from ..processing_aesmamba import AesMambaProcessor

    previous = {cls: cls.__dict__.get("_auto_class") for cls in (AesMambaImageProcessor, AesMambaProcessor)}
    AesMambaImageProcessor.register_for_auto_class("AutoImageProcessor")
    AesMambaProcessor.register_for_auto_class("AutoProcessor")
    try:
        yield
    finally:
        for cls, value in previous.items():
            if value is None:
                if "_auto_class" in cls.__dict__:
                    delattr(cls, "_auto_class")
            else:
                cls._auto_class = value


_RELATIVE_IMPORT = re.compile(r"^\s*from\s+\.([\w.]*)\s+import|^\s*import\s+\.(\w+)", re.MULTILINE)
_PACKAGE_IMPORT = re.compile(r"^\s*(?:from|import)\s+aesmamba_hf\b", re.MULTILINE)


def check_remote_code(folder: PathLike) -> list[str]:
    """Check that the ``.py`` files of an exported folder form a self-contained remote-code module.

    Every ``auto_map`` entry (config and processor) must name a file in the folder; every relative import
    (also those inside functions, e.g. ``selective_scan_cpu``) must resolve to a file in the folder; no file
    may import ``aesmamba_hf``; ``transformers.dynamic_module_utils.check_imports`` must pass.

    Returns:
        the sorted names of the Python files. Raises :class:`ExportError` listing every problem.
    """
    from transformers.dynamic_module_utils import check_imports

    folder = Path(folder)
    problems: list[str] = []
    referenced: set[str] = set()
    for json_name in ("config.json", "processor_config.json", "preprocessor_config.json", "tokenizer_config.json"):
        path = folder / json_name
        if not path.is_file():
            continue
        data = json.loads(path.read_text(encoding="utf-8"))
        maps = [data.get("auto_map") or {}]
        if isinstance(data.get("image_processor"), dict):
            maps.append(data["image_processor"].get("auto_map") or {})
        for auto_map in maps:
            for value in auto_map.values():
                for ref in value if isinstance(value, (list, tuple)) else [value]:
                    if ref:
                        referenced.add(ref.split("--")[-1].rsplit(".", 1)[0] + ".py")
    for name in sorted(referenced):
        if not (folder / name).is_file():
            problems.append(f"auto_map names {name}, which is not in {folder}")
    py_files = sorted(p.name for p in folder.glob("*.py"))
    for name in py_files:
        text = (folder / name).read_text(encoding="utf-8")
        if _PACKAGE_IMPORT.search(text):
            problems.append(f"{name} imports aesmamba_hf (remote code must use same-folder relative imports)")
        for match in _RELATIVE_IMPORT.finditer(text):
            module = (match.group(1) or match.group(2) or "").split(".")[0]
            if module and not (folder / f"{module}.py").is_file():
                problems.append(f"{name} imports .{module}, but {module}.py is not in the folder")
        try:
            check_imports(folder / name)
        except ImportError as err:
            problems.append(f"{name}: {err}")
    if not referenced:
        problems.append("config.json has no auto_map: the model cannot load with trust_remote_code=True")
    if problems:
        raise ExportError(f"{folder}: incomplete remote code:\n  - " + "\n  - ".join(problems))
    return py_files


def _copy_missing_modules(folder: Path) -> None:
    """Copy package modules that copied files import relatively but ``save_pretrained`` left out."""
    package_dir = Path(__file__).resolve().parent.parent
    changed = True
    while changed:
        changed = False
        for path in list(folder.glob("*.py")):
            for match in _RELATIVE_IMPORT.finditer(path.read_text(encoding="utf-8")):
                module = (match.group(1) or match.group(2) or "").split(".")[0]
                src = package_dir / f"{module}.py"
                if module and not (folder / f"{module}.py").is_file() and src.is_file():
                    shutil.copy(src, folder / src.name)
                    changed = True


def _save_processor(processor: Any, folder: Path) -> None:
    """Save the processor with its remote code (image-only processors bypass ``ProcessorMixin`` saving)."""
    from transformers.dynamic_module_utils import custom_object_save

    with _processor_auto_classes():
        processor.save_pretrained(folder)
        config_path = folder / "processor_config.json"
        if config_path.is_file():
            data = json.loads(config_path.read_text(encoding="utf-8"))
            if "auto_map" not in data:  # image-only processors are saved without ProcessorMixin's code copy
                custom_object_save(processor, folder, config=data)
                custom_object_save(processor.image_processor, folder)
            # the nested image-processor entry names its class too: without the package installed, nothing
            # else registers AesMambaImageProcessor with AutoImageProcessor
            if isinstance(data.get("image_processor"), dict):
                module = type(processor.image_processor).__module__.rsplit(".", 1)[-1]
                data["image_processor"]["auto_map"] = {
                    "AutoImageProcessor": f"{module}.{type(processor.image_processor).__name__}"}
            atomic_write_text(config_path, json.dumps(data, indent=2, sort_keys=True) + "\n")


# ----------------------------------------------------------------------------------------------------------
# export


def _read_metrics(metrics: Union[None, PathLike, dict[str, Any]]) -> Optional[dict[str, Any]]:
    if metrics is None or isinstance(metrics, dict):
        return metrics
    path = Path(metrics)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ExportError(f"cannot read metrics JSON {path}: {err}") from err


def check_export_dir(out_dir: PathLike, overwrite: bool) -> Path:
    """The export folder, refused before any work when it is a file, not empty (unless ``overwrite``) or not
    writable (every export format checks it the same way)."""
    try:
        return check_new_output_dir(out_dir, overwrite=overwrite, what="export folder",
                                    how="pass overwrite=True (--overwrite) to replace it")
    except OutputLocationError as err:
        raise ExportError(str(err)) from err


def export_model(
    source: Union[PathLike, AesMambaForAestheticAssessment],
    out_dir: PathLike,
    *,
    processor: Any = None,
    weights: Optional[PathLike] = None,
    metrics: Union[None, PathLike, dict[str, Any]] = None,
    repo_id: Optional[str] = None,
    license: str = DEFAULT_LICENSE,
    overwrite: bool = False,
    allow_random: bool = False,
    allow_untrained: Optional[bool] = None,
) -> ExportResult:
    """Write a complete Hub repository folder for a model (see the module docstring).

    Args:
        source: checkpoint folder, variant alias, or an in-memory ``AesMambaForAestheticAssessment``.
        out_dir: the folder to write (must be empty or absent unless ``overwrite``).
        processor: processor to save with an in-memory model (default: the variant's default processor).
        weights: an official ``.pth`` checkpoint to convert into the variant / folder config.
        metrics: a metrics JSON (path or dict) written by ``aesmamba evaluate`` or ``aesmamba piaa``.
        repo_id: the Hub id used in the card's usage snippets (default ``aesmamba-hf/<variant>``).
        license: the card's license identifier.
        overwrite: replace an existing non-empty ``out_dir``.
        allow_random: export a variant without trained weights with RANDOM weights (marked as such), and
            accept a folder marked as random; refused otherwise.
        allow_untrained: deprecated name of ``allow_random``.
    """
    if allow_untrained is not None:
        warnings.warn("export_model(allow_untrained=) is deprecated; use allow_random=", DeprecationWarning,
                      stacklevel=2)
        allow_random = allow_untrained
    out = check_export_dir(out_dir, overwrite)
    if isinstance(source, AesMambaForAestheticAssessment):
        model, info = source, {"source": "in-memory model", "variant": source.config.variant, "trained": True,
                               "weights_origin": "in-memory model"}
        info["trained"] = not (getattr(source.config, "random_weights", False)
                               or getattr(source.config, "untrained", False))
        if processor is None:
            processor = _processor(None, model.config)
    else:
        model, loaded_processor, info = load_export_source(source, weights=weights, allow_random=allow_random)
        processor = processor if processor is not None else loaded_processor

    if any(p.dtype != torch.float32 for p in model.parameters()):
        # publish fp32 (from_pretrained's default dtype "auto" would keep a saved bf16/fp16); leave the
        # caller's model alone
        model = copy.deepcopy(model).to(torch.float32)
    config = model.config
    card_metrics = _read_metrics(metrics)  # before writing anything
    # the saved config carries the one mark of substituted random weights (and drops the older `untrained`);
    # the caller's in-memory config is set back afterwards
    saved_mark, legacy = getattr(config, "random_weights", False), config.__dict__.pop("untrained", None)
    config.random_weights = not info["trained"]
    # built under a .partial-* sibling and renamed at the end: a failure or kill midway leaves no half folder
    try:
        with atomic_output_dir(out, overwrite=True) as staging:
            _write_export(model, processor, staging, config, info, repo_id, card_metrics, license)
    finally:
        config.random_weights = saved_mark
        if legacy is not None:
            config.untrained = legacy
    files = sorted(p.name for p in out.iterdir() if p.is_file())
    return ExportResult(path=out, source=info["source"], variant=info["variant"], trained=info["trained"],
                        weights_origin=info.get("weights_origin", ""), files=files)


def _write_export(model: Any, processor: Any, staging: Path, config: AesMambaConfig, info: dict[str, Any],
                  repo_id: Optional[str], card_metrics: Optional[dict[str, Any]], license: str) -> None:
    """Weights, remote code, processor and card into the staging folder of :func:`export_model`."""
    model.save_pretrained(staging)
    _copy_missing_modules(staging)
    _save_processor(processor, staging)
    _copy_missing_modules(staging)
    check_remote_code(staging)
    card = build_model_card(config, processor, repo_id=repo_id, trained=info["trained"],
                            weights_origin=info.get("weights_origin", ""), metrics=card_metrics,
                            license=license)
    atomic_write_text(staging / "README.md", str(card))


__all__ = ["ExportError", "ExportResult", "check_export_dir", "check_remote_code", "export_model", "load_export_source"]
