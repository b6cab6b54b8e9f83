"""The one loader: a scoring-ready model and its processor from a folder, a variant alias or a Hub id.

Every entry point (pipeline, scorer, ``aesmamba score/evaluate/piaa/export/info``, training from a folder)
goes through :func:`load_model`, so they agree on three rules:

* **Processor.** The folder's own processor files; without them, the default preprocessing of the model's
  dataset, with a warning that names the folder (scores can move when the training preprocessing differed).
* **Tokenizer** (M and P read text). The folder's tokenizer files; without them, the BERT-base-uncased
  WordPiece vocabulary that the package ships (the released M/P models and MiniLM use it), but only when the
  text encoder's vocabulary has exactly its size; otherwise an error, because another vocabulary would feed
  the encoder wrong token ids.
* **Random weights.** A model whose config says ``random_weights`` (weights this package substituted for a
  pretrained variant on explicit request) is refused unless ``allow_random=True``, and loudly flagged when
  allowed. Folders marked the older ways (``RANDOM_WEIGHTS.txt``, ``untrained`` in the config) count too.
  A model you built or trained yourself is never marked.
"""

from __future__ import annotations

import json
import logging
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import torch

from ..configuration_aesmamba import AesMambaConfig, validate_score_reference
from ..image_processing_aesmamba import AesMambaImageProcessor
from ..modeling_aesmamba import AesMambaForAestheticAssessment
from ..processing_aesmamba import AesMambaProcessor
from ..registry import get_variant, resolve_model, variant_folder
from ..tasks import Task

logger = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]
# Written by versions before 0.2 next to random weights; read so that those folders stay flagged.
LEGACY_RANDOM_WEIGHTS_MARKER = "RANDOM_WEIGHTS.txt"
PROCESSOR_FILES = ("processor_config.json", "preprocessor_config.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt")
WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin")
# The vocabulary shipped with the M/P variant configs (BERT-base-uncased, 30,522 WordPiece tokens).
BUNDLED_TOKENIZER_VARIANT = "aesmamba-m-ava"


class ModelLoadError(OSError):
    """A model or its processor cannot be loaded; the message names the folder or file and what to do."""


class RandomWeightsError(ModelLoadError):
    """The model holds random weights and ``allow_random=True`` (``--random-weights``) was not given."""


class LoaderWarning(UserWarning):
    """A model loaded, but with a substitute for something its folder lacks (processor, tokenizer)."""


@dataclass
class LoadedModel:
    """What :func:`load_model` returns: the model (eval mode), its processor and how they were found."""

    model: AesMambaForAestheticAssessment
    processor: AesMambaProcessor
    source: str
    random_weights: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def config(self) -> AesMambaConfig:
        return self.model.config

    def predictor(self, batch_size: int = 8, **kwargs: Any) -> Any:
        """A :class:`~aesmamba_hf.inference.predictor.Predictor` over this model."""
        from .predictor import Predictor

        return Predictor(self.model, self.processor, batch_size=batch_size, **kwargs)

    def __iter__(self):  # ``model, processor = load_model(...)``
        return iter((self.model, self.processor))


def pick_device(requested: Union[str, torch.device, None] = None) -> torch.device:
    """``requested``, or CUDA when available, else CPU; asking for CUDA without it is an error."""
    if requested is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError("device 'cuda' was requested but CUDA is not available on this machine")
    return device


def has_weights(folder: PathLike) -> bool:
    return any(any(Path(folder).glob(pattern)) for pattern in WEIGHT_PATTERNS)


def has_random_weights(config: Any, folder: Optional[PathLike] = None) -> bool:
    """Whether the package marked these weights as random (config field, or an older marker)."""
    if getattr(config, "random_weights", False) or getattr(config, "untrained", False):
        return True
    return folder is not None and (Path(folder) / LEGACY_RANDOM_WEIGHTS_MARKER).is_file()


def random_weights_banner(source: str) -> str:
    line = "!" * 78
    return (f"{line}\n  WARNING: {source} holds RANDOM weights (explicitly allowed): its scores are "
            f"meaningless.\n  Convert an official checkpoint (aesmamba export ... --weights) or train one "
            f"(aesmamba train).\n{line}")


def _note(notes: list[str], message: str) -> None:
    notes.append(message)
    warnings.warn(message, LoaderWarning, stacklevel=3)


# -- processor and tokenizer ---------------------------------------------------------------------------


def bundled_tokenizer() -> Any:
    """BERT-base-uncased's WordPiece tokenizer from the vocabulary shipped in ``hub_configs`` (offline)."""
    from transformers import AutoTokenizer

    folder = variant_folder(BUNDLED_TOKENIZER_VARIANT)
    if folder is None or not (folder / "vocab.txt").is_file():
        raise ModelLoadError("the bundled BERT-uncased vocabulary (hub_configs/aesmamba-m-ava/vocab.txt) is "
                             "missing from this installation; reinstall aesmamba-hf")
    return AutoTokenizer.from_pretrained(str(folder))


def default_processor_for_config(config: Any, tokenizer: Any = None) -> AesMambaProcessor:
    """The processor of a model saved without preprocessing files: its dataset's normalization (AADB has its
    own statistics, a custom dataset gets CLIP's), comment cleaning for M."""
    try:
        image_processor = AesMambaImageProcessor.for_dataset(config.dataset)
    except KeyError:
        image_processor = AesMambaImageProcessor()
    return AesMambaProcessor(image_processor=image_processor, tokenizer=tokenizer,
                             clean_comments=Task.parse(config.task).reads_comments)


def _tokenizer_for(folder: Optional[Path], config: AesMambaConfig, source: str, notes: list[str]) -> Any:
    from transformers import AutoTokenizer

    if folder is not None and any((folder / name).is_file() for name in TOKENIZER_FILES):
        try:
            return AutoTokenizer.from_pretrained(str(folder))
        except (OSError, ValueError, TypeError) as err:
            raise ModelLoadError(f"{folder}: cannot load its tokenizer files ({err})") from err
    tokenizer = bundled_tokenizer()
    if config.text_config.vocab_size != len(tokenizer):
        raise ModelLoadError(
            f"{source}: the task-{config.task} model reads text, but its folder has no tokenizer files and its "
            f"text encoder has a {config.text_config.vocab_size}-token vocabulary, not the bundled "
            f"BERT-uncased one ({len(tokenizer)} tokens); save the tokenizer it was trained with next to it "
            "(tokenizer.save_pretrained(folder))"
        )
    _note(notes, f"{source}: no tokenizer files; using the bundled BERT-base-uncased vocabulary "
                 f"(the vocabulary of the released M/P models)")
    return tokenizer


def load_processor_for_config(config: AesMambaConfig, notes: Optional[list[str]] = None) -> AesMambaProcessor:
    """The processor of a model that has no files of its own (an in-memory or new model): the default
    preprocessing of its dataset and, for M/P, the default tokenizer by the rule above."""
    processor = default_processor_for_config(config)
    if config.uses_text:
        processor.tokenizer = _tokenizer_for(None, config, f"the task-{config.task} model",
                                             notes if notes is not None else [])
    return processor


def load_processor(source: PathLike, config: AesMambaConfig, notes: Optional[list[str]] = None) -> AesMambaProcessor:
    """The processor of a model folder (or Hub id) by the module's processor and tokenizer rules."""
    notes = notes if notes is not None else []
    text = os.fspath(source)
    folder = Path(text) if os.path.isdir(text) else None
    processor = None
    if folder is None or any((folder / name).is_file() for name in PROCESSOR_FILES):
        try:
            processor = AesMambaProcessor.from_pretrained(text)
        except (OSError, ValueError, TypeError, KeyError) as err:
            if folder is not None:  # a broken processor file must not be silently replaced
                raise ModelLoadError(f"{folder}: cannot load its processor files ({err})") from err
            logger.info("no processor files for %s (%s)", text, err)
    if processor is None:
        processor = default_processor_for_config(config)
        _note(notes, f"{text}: no processor files (processor_config.json); using the default preprocessing of "
                     f"{config.dataset} (224x224 bicubic, the dataset's normalization) — save the processor "
                     "the model was trained with to be sure of its scores")
    if config.uses_text and processor.tokenizer is None:
        processor.tokenizer = _tokenizer_for(folder, config, text, notes)
    return processor


# -- the loader ----------------------------------------------------------------------------------------


def _check_folder(folder: Path) -> None:
    if not (folder / "config.json").is_file():
        raise ModelLoadError(f"{folder} is not a model folder: it has no config.json")
    if not has_weights(folder):
        raise ModelLoadError(f"{folder}: config.json but no weights (model.safetensors); save the model with "
                             "save_pretrained or export it with `aesmamba export`")


def _check_config_file(path: Path) -> None:
    """The fields that decide what gets built, checked before transformers reads the file (its errors name
    neither the file nor the field, and an unknown model type with remote code in the folder would prompt)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        raise ModelLoadError(f"cannot read {path}: {err}") from err
    except json.JSONDecodeError as err:
        raise ModelLoadError(f"{path}:{err.lineno}: not valid JSON ({err.msg}); re-save the model") from err
    if not isinstance(data, dict):
        raise ModelLoadError(f"{path}: a config must be a JSON object, got {type(data).__name__}")
    model_type = data.get("model_type")
    if model_type != AesMambaConfig.model_type:
        raise ModelLoadError(f"{path}: model_type is {model_type!r}, not {AesMambaConfig.model_type!r}: "
                             "this folder does not hold an AesMamba model")
    try:
        Task.parse(data.get("task", "V"))
    except ValueError as err:
        raise ModelLoadError(f"{path}: field 'task' is {data.get('task')!r}; it must be one of V, M, F, P "
                             "(the variant the weights were trained for)") from err


def check_weights(folder: Path, config: AesMambaConfig) -> None:
    """Every safetensors file is complete and its tensors are exactly the ones ``config`` builds.

    A truncated file, or weights of another variant (other heads, other sizes), is refused here with the file
    named; transformers would otherwise fail without naming it, or silently re-initialise what does not fit.
    """
    from safetensors import SafetensorError, safe_open

    from ..modeling_aesmamba import AesMambaForAestheticAssessment as Model

    files = sorted(folder.glob("*.safetensors"))
    if not files:
        return  # only pytorch_model*.bin: transformers checks those itself
    found: dict[str, tuple[int, ...]] = {}
    for file in files:
        try:
            with safe_open(str(file), framework="pt") as handle:
                found.update({key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()})
        except (SafetensorError, OSError) as err:
            raise ModelLoadError(f"{file} is corrupt or truncated ({err}); re-download or re-export the model"
                                 ) from err
    with torch.device("meta"):  # shapes only, nothing allocated
        expected = {key: tuple(t.shape) for key, t in Model(config).state_dict().items()}
    tied = set(getattr(Model, "_tied_weights_keys", None) or ())
    optional = [re.compile(p) for p in Model._keys_to_ignore_on_load_missing or ()]  # e.g. zero taste directions
    missing = sorted(k for k in expected if k not in found and k not in tied and not any(p.search(k) for p in optional))
    wrong = sorted(k for k in expected if k in found and found[k] != expected[k])
    extra_heads = sorted(k for k in found if k not in expected and k.startswith("heads."))
    if not (missing or wrong or extra_heads):
        return

    def heads_of(keys: Any) -> list[str]:
        return sorted({k.split(".")[1] for k in keys if k.startswith("heads.")})

    detail = (f"{wrong[0]} is {list(found[wrong[0]])} in the weights but {list(expected[wrong[0]])} for the "
              "config" if wrong else f"{len(missing)} tensors of the config are missing (e.g. "
              f"{(missing or extra_heads)[0]})")
    raise ModelLoadError(
        f"{folder}: the weights do not fit config.json (task {config.task}, {config.dataset}, heads "
        f"{heads_of(expected)}): the weights have heads {heads_of(found)}; {detail}. They belong to another "
        "variant: keep the config.json they were saved with"
    )


def load_config(source: PathLike) -> AesMambaConfig:
    """The AesMamba config of a folder or Hub id, with a clear error for anything else."""
    from transformers import AutoConfig

    if os.path.isfile(os.path.join(os.fspath(source), "config.json")):
        _check_config_file(Path(os.fspath(source)) / "config.json")
    try:  # never run a folder's code, never prompt: the AesMamba classes are registered by this package
        config = AutoConfig.from_pretrained(os.fspath(source), trust_remote_code=False)
    except (OSError, ValueError, KeyError) as err:
        where = os.fspath(source)
        if not os.path.isdir(where):  # a typo in a local path reads as an owner/name Hub id
            where = f"{where} (no local folder of that name, so it was looked up as a Hub repo id)"
        raise ModelLoadError(f"cannot read the config of {where}: {err}") from err
    if not isinstance(config, AesMambaConfig):
        raise ModelLoadError(f"{os.fspath(source)} is a {getattr(config, 'model_type', '?')!r} model, not an "
                             "AesMamba model (model_type 'aesmamba')")
    return config


def inspect_model(name_or_path: PathLike, *, allow_random: bool = False
                  ) -> tuple[str, Optional[Path], AesMambaConfig, bool]:
    """Every check of a model short of loading its weights: ``(source, folder or None, config,
    random_weights)``. The loader runs it first; the Ray driver runs it alone (each actor loads its own copy).

    Raises:
        ModelLoadError: the folder/repo is missing, not an AesMamba model, or its weight files are broken.
        RandomWeightsError: the model holds random weights and ``allow_random`` is False.
    """
    try:
        source = resolve_model(name_or_path)
    except ValueError as err:
        raise ModelLoadError(str(err)) from err
    folder = Path(source) if os.path.isdir(source) else None
    if folder is not None:
        _check_folder(folder)
    config = load_config(source)
    random_weights = has_random_weights(config, folder)
    if random_weights and not allow_random:
        raise RandomWeightsError(
            f"{source} holds RANDOM weights (built without trained weights); its scores are meaningless. Convert "
            "an official checkpoint (aesmamba export VARIANT DIR --weights FILE.pth) or train one (aesmamba "
            "train), or pass allow_random=True / --random-weights to use it anyway (e.g. for a smoke test)"
        )
    if folder is not None:
        check_weights(folder, config)
    return str(source), folder, config, random_weights


def load_model(
    name_or_path: PathLike,
    *,
    device: Union[str, torch.device, None] = None,
    dtype: Union[str, torch.dtype] = torch.float32,
    allow_random: bool = False,
    adapter: Optional[PathLike] = None,
    **from_pretrained_kwargs: Any,
) -> LoadedModel:
    """A model ready to score (eval mode, ``dtype``, on ``device``) and its processor.

    Args:
        name_or_path: a model folder, a variant alias (``aesmamba-v-ava``: a local folder of that name, else its
            Hub repo) or a Hub repo id.
        device: default CUDA when available, else CPU.
        dtype: ``float32`` (default) or ``bfloat16`` weights (a torch dtype or its name); the scan computes in
            float32 either way, scores come out float32 (see :mod:`aesmamba_hf.inference.precision`).
        allow_random: accept a model marked as holding random weights (flagged loudly); refused otherwise.
        adapter: a per-user PEFT adapter folder (``aesmamba personalize``) merged into the loaded weights
            (:func:`with_adapter`); to switch users on one base use :class:`aesmamba_hf.piaa.AdapterBank`.

    Raises:
        ModelLoadError: the folder/repo is missing, not an AesMamba model, or its files are broken.
        RandomWeightsError: the model holds random weights and ``allow_random`` is False.
    """
    from .precision import resolve_dtype

    try:
        dtype = resolve_dtype(dtype)
    except ValueError as err:
        raise ModelLoadError(str(err)) from err
    source, folder, config, random_weights = inspect_model(name_or_path, allow_random=allow_random)
    notes: list[str] = []
    processor = load_processor(source, config, notes)  # before the weights: a missing tokenizer fails fast
    try:
        # an adapter merges into float32 weights, cast afterwards: its small deltas would round away in bf16
        load_dtype = torch.float32 if adapter is not None else dtype
        model = AesMambaForAestheticAssessment.from_pretrained(source, config=config, dtype=load_dtype,
                                                               **from_pretrained_kwargs)
    except (OSError, ValueError, RuntimeError) as err:
        hint = ""
        if folder is None:
            hint = f"; offline, a variant must be a local folder: `aesmamba download {name_or_path}`"
        raise ModelLoadError(f"cannot load the weights of {source}: {err}{hint}") from err
    if random_weights:
        notes.append(random_weights_banner(source))
        warnings.warn(random_weights_banner(source), LoaderWarning, stacklevel=2)
    model = model.to(pick_device(device)).eval()
    if adapter is not None:
        model = with_adapter(model, adapter, notes).to(dtype)
    return LoadedModel(model=model, processor=processor, source=source, random_weights=random_weights, notes=notes)


def with_adapter(model: AesMambaForAestheticAssessment, adapter: PathLike,
                 notes: Optional[list[str]] = None) -> AesMambaForAestheticAssessment:
    """``model`` with a per-user PEFT adapter merged in (a plain AesMamba model again, in ``model``'s dtype;
    ``model`` itself is changed). The merge runs in float32 (a bf16 model is upcast for it): small LoRA deltas
    would otherwise round away. ``notes`` gets a line naming the adapter (folder, kind, user). Raises
    :class:`ModelLoadError` naming the adapter folder when it cannot be applied."""
    from ..piaa.adapters import AdapterError, merge_adapter, read_personalization

    dtype = next(model.parameters()).dtype
    try:
        meta = read_personalization(adapter)
        merged = merge_adapter(model.float(), adapter).to(dtype)
    except AdapterError as err:
        raise ModelLoadError(str(err)) from err
    # the base's score reference describes the base, not this user's scorer: percentiles only from the
    # adapter's own reference (personalization.json "score_reference"), else none
    base_reference = getattr(merged.config, "score_reference", None)
    try:
        merged.config.score_reference = validate_score_reference(meta.get("score_reference"),
                                                                 list(merged.config.head_names))
    except ValueError as err:
        raise ModelLoadError(f"adapter {os.fspath(adapter)}: {err}") from err
    if notes is not None:
        notes.append(adapter_note(adapter, meta))
        if base_reference and not merged.config.score_reference:
            notes.append(f"no percentiles: the base's score reference does not describe the adapted model and "
                         f"the adapter {os.fspath(adapter)} carries none")
    return merged


def adapter_note(adapter: PathLike, meta: dict[str, Any]) -> str:
    """One line naming a personal adapter: its folder, kind, user and prompt (as far as its metadata says)."""
    kind = (meta.get("config") or {}).get("kind", "PEFT")
    profile = meta.get("profile") or {}
    user = profile.get("user_id") or Path(adapter).name
    prompt = meta.get("prompt")
    return (f"personal adapter {os.fspath(adapter)} (kind {kind}, user {user})"
            + (f"; prompt: {prompt!r}" if prompt else ""))


def variant_processor(name: str) -> AesMambaProcessor:
    """The processor a published variant ships with (its ``hub_configs`` folder), for building new models."""
    variant = get_variant(name)
    folder = variant_folder(variant.name)
    config = variant.config()
    if folder is None:
        tokenizer = bundled_tokenizer() if config.uses_text else None
        return default_processor_for_config(config, tokenizer)
    return load_processor(folder, config)


__all__ = [
    "LEGACY_RANDOM_WEIGHTS_MARKER",
    "LoadedModel",
    "LoaderWarning",
    "ModelLoadError",
    "with_adapter",
    "inspect_model",
    "RandomWeightsError",
    "adapter_note",
    "bundled_tokenizer",
    "check_weights",
    "default_processor_for_config",
    "has_random_weights",
    "has_weights",
    "load_config",
    "load_model",
    "load_processor",
    "load_processor_for_config",
    "pick_device",
    "random_weights_banner",
    "variant_processor",
]
