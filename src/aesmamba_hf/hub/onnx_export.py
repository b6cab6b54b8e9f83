"""Export an image-only AesMamba model (tasks V and F) to ONNX for onnxruntime, OpenVINO or Triton.

``export_onnx(source, out_dir)`` writes, atomically:

* ``model.onnx`` — one input ``pixel_values`` (batch, 3, H, W) float32 with a **dynamic batch axis** (H, W are
  the processor's size, fixed in the graph); outputs ``scores`` (batch, heads) in ``config.heads`` order,
  ``distribution`` (batch, bins) for a model with a distribution head, ``class_logits`` (batch, heads with a
  scale-class branch, classes) when it has those; the head names and score ranges are also in the graph's
  metadata (``aesmamba.heads``);
* ``config.json`` and the processor files (``processor_config.json``: resize and normalisation to apply
  before the graph);
* ``onnx_export.json`` — what the graph contains (inputs, outputs, heads, preprocessing, exporter, opset,
  scan formulation, the largest score difference from torch measured at export) and ``README.md``, the same
  in words.

Exporter: ``torch.onnx.export(..., dynamo=True)`` (torch.export + onnxscript), the default of torch ≥ 2.9;
the TorchScript exporter is deprecated there. The graph is tidied by :func:`_tidy_graph` (constant folding,
dead nodes, duplicates) instead of the exporter's optimizer, whose pattern rewriter takes more than 15 minutes
on the default-size model. The selective scan cannot go into ONNX as the fused CPU kernel
(numba) or a CUDA kernel, so the graph carries a pure-tensor formulation of it: by default
the scan backend ``"unrolled"`` of :mod:`aesmamba_hf.selective_scan` (chunks of √L steps scanned in parallel;
faster than the ``"chunked"`` backend and far smaller as a graph; what ``"auto"`` picks under ONNX export), or,
with ``scan="chunked"``, the ``"chunked"`` backend. The caller's model is left as it was (scan backend, weights, mode).

Tasks M and P read text (comments, a user profile turned into a prompt, through BERT and a tokenizer) and
score an example without text through another path of the model; they are refused here with that reason.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import platform
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch
from torch import nn

from ..modeling_aesmamba import AesMambaForAestheticAssessment
from ..tasks import Task
from .export import ExportError, check_export_dir, load_export_source

PathLike = Union[str, os.PathLike]
ONNX_FILE = "model.onnx"
NOTE_FILE = "onnx_export.json"
SCAN_FORMULATIONS = ("unrolled", "chunked")
DEFAULT_TOLERANCE = 1e-4  # largest |score| difference from torch accepted at export (float32 rounding)


@dataclass
class OnnxExportResult:
    """What :func:`export_onnx` wrote, and how close the graph's outputs came to torch's."""

    path: Path
    source: str
    variant: Optional[str]
    trained: bool
    weights_origin: str
    outputs: list[str]
    max_abs_diff: Optional[float]
    files: list[str] = field(default_factory=list)


class _ImageScorer(nn.Module):
    """The model as a function of ``pixel_values`` alone, with named tensor outputs (no ModelOutput)."""

    def __init__(self, model: AesMambaForAestheticAssessment, outputs: list[str]):
        super().__init__()
        self.model = model
        self.outputs = outputs

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, ...]:
        result = self.model(pixel_values=pixel_values)
        return tuple(getattr(result, name) for name in self.outputs)


def _output_names(model: AesMambaForAestheticAssessment, image_size: tuple[int, int]) -> list[str]:
    with torch.no_grad():
        probe = model(pixel_values=torch.zeros(1, 3, *image_size))
    return [name for name in ("scores", "distribution", "class_logits") if getattr(probe, name) is not None]


@contextlib.contextmanager
def _scan_for_export(model: AesMambaForAestheticAssessment, scan: str) -> Iterator[None]:
    """Route every SS2D of ``model`` through the pure-tensor scan backend ``scan`` while the exporter traces it;
    restore the caller's backend afterwards."""
    previous = model.get_scan_backend()
    model.set_scan_backend(scan)
    try:
        yield
    finally:
        model.set_scan_backend(previous)


def _check_no_custom_op(path: Path) -> None:
    """The graph must hold standard ONNX ops only: an ``aesmamba::`` node (the fused CPU op) runs nowhere else."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    nodes = [*proto.graph.node, *(node for function in proto.functions for node in function.node)]
    custom = sorted({f"{n.domain}::{n.op_type}" for n in nodes if "aesmamba" in f"{n.domain}::{n.op_type}".lower()})
    if custom:
        raise ExportError(f"the ONNX graph contains the package's custom op(s) {custom}, which ONNX runtimes "
                          "cannot run (the model's scan dispatch changed); update aesmamba_hf/hub/onnx_export.py")


def _image_size(processor: Any) -> tuple[int, int]:
    size = getattr(getattr(processor, "image_processor", processor), "size", None) or {}
    height, width = size.get("height"), size.get("width")
    if not height or not width:
        raise ExportError(f"the processor gives no fixed image size (size={size!r}); ONNX export needs one")
    return int(height), int(width)


def _check_task(model: AesMambaForAestheticAssessment) -> None:
    task = Task.parse(model.config.task)
    if task.uses_text:
        raise ExportError(
            f"ONNX export covers the image-only tasks V and F; this is a task-{task.value} model, which reads "
            f"{'comments' if task.reads_comments else 'a user profile'} through BERT and its tokenizer and "
            "scores examples without text through another path. Serve it with torch (aesmamba score, the "
            "pipeline) or export its image encoder as a V/F model"
        )


def _session(path: Path, threads: Optional[int] = None) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def compare_with_torch(onnx_path: PathLike, model: AesMambaForAestheticAssessment, pixel_values: torch.Tensor
                       ) -> float:
    """Largest absolute difference between the ONNX graph's outputs and the torch model's (with its own scan
    backend) on ``pixel_values``."""
    session = _session(Path(onnx_path))
    names = [o.name for o in session.get_outputs()]
    got = dict(zip(names, session.run(None, {"pixel_values": pixel_values.float().numpy()})))
    with torch.no_grad():
        expected = model(pixel_values=pixel_values.to(next(model.parameters()).dtype))
    return max(float(np.abs(got[name] - getattr(expected, name).float().numpy()).max()) for name in names)


def _note(model: AesMambaForAestheticAssessment, processor: Any, outputs: list[str], image_size: tuple[int, int],
          info: dict[str, Any], scan: str, opset: Optional[int], max_diff: Optional[float]) -> dict[str, Any]:
    config = model.config
    image_processor = getattr(processor, "image_processor", processor)
    shapes = {"scores": ["batch", config.num_heads]}
    if config.distribution_head:
        shapes["distribution"] = ["batch", config.distribution_head["num_bins"]]
    return {
        "format": "onnx", "file": ONNX_FILE, "task": config.task, "dataset": config.dataset,
        "variant": info.get("variant"), "trained": info["trained"], "weights_origin": info.get("weights_origin"),
        "inputs": {"pixel_values": ["batch", 3, *image_size]},
        "outputs": {name: shapes.get(name, ["batch", "..."]) for name in outputs},
        "heads": [{"name": h["name"], "kind": h["kind"], "score_range": list(h["score_range"]),
                   "higher_is_better": bool(h.get("higher_is_better", True)),
                   **({"bin_values": list(h["bin_values"])} if h["kind"] == "distribution" else {})}
                  for h in config.heads],
        "preprocessing": {"resize": list(image_size), "resample": "bicubic", "rescale": 1 / 255,
                          "image_mean": list(image_processor.image_mean),
                          "image_std": list(image_processor.image_std)},
        "exporter": f"torch.onnx.export(dynamo=True), torch {torch.__version__}", "opset": opset,
        "scan": scan, "max_abs_diff_vs_torch": max_diff, "python": platform.python_version(),
    }


def _readme(note: dict[str, Any]) -> str:
    heads = ", ".join(h["name"] for h in note["heads"])
    lines = [
        f"# AesMamba task {note['task']} ({note['dataset']}) as ONNX",
        "",
        "**RANDOM WEIGHTS: scores are meaningless.**" if not note["trained"] else
        f"Weights: {note['weights_origin']}.",
        "",
        f"- input `pixel_values`: float32 {note['inputs']['pixel_values']} (dynamic batch), the image resized "
        f"to {note['preprocessing']['resize']} (bicubic), scaled to [0, 1] and normalised with mean "
        f"{note['preprocessing']['image_mean']} and std {note['preprocessing']['image_std']} "
        "(`processor_config.json`; `AesMambaProcessor` does it);",
        "- outputs: " + "; ".join(f"`{k}` {v}" for k, v in note["outputs"].items())
        + f". Columns of `scores`: {heads} (ranges in `onnx_export.json`);",
        f"- the selective scan is a pure-tensor formulation (`{note['scan']}`); largest score difference from "
        f"the torch model at export: {note['max_abs_diff_vs_torch']}.",
        "",
        "```python",
        "import onnxruntime as ort",
        "from aesmamba_hf import AesMambaProcessor  # or apply the preprocessing above yourself",
        "session = ort.InferenceSession('model.onnx')",
        "pixels = AesMambaProcessor.from_pretrained('.')(images=['photo.jpg'], return_tensors='np')['pixel_values']",
        "scores = session.run(['scores'], {'pixel_values': pixels})[0]",
        "```",
        "",
    ]
    return "\n".join(lines)


def export_onnx(
    source: Union[PathLike, AesMambaForAestheticAssessment],
    out_dir: PathLike,
    *,
    processor: Any = None,
    weights: Optional[PathLike] = None,
    overwrite: bool = False,
    allow_random: bool = False,
    opset: Optional[int] = None,
    scan: str = "unrolled",
    check: bool = True,
    tolerance: float = DEFAULT_TOLERANCE,
) -> OnnxExportResult:
    """Write ``model.onnx`` with its processor files, config and a note (see the module docstring).

    Args:
        source: a checkpoint folder, a variant alias, or an in-memory model (sources resolve as for
            :func:`~aesmamba_hf.hub.export.export_model`, random weights refused unless ``allow_random``).
        out_dir: the folder to write (empty or absent unless ``overwrite``); written atomically.
        processor: the processor of an in-memory model (default: its dataset's default preprocessing).
        weights: an official ``.pth`` checkpoint to convert into the variant / folder config.
        opset: ONNX opset (default: the exporter's).
        scan: the pure-PyTorch scan backend traced: ``"unrolled"`` (default) or ``"chunked"`` (slower).
        check: run the graph in onnxruntime on batches of 1 and 2 random images and compare with torch;
            a difference above ``tolerance`` is an :class:`ExportError` (nothing written).
    """
    if scan not in SCAN_FORMULATIONS:
        raise ExportError(f"scan must be one of {SCAN_FORMULATIONS}, got {scan!r}")
    out = check_export_dir(out_dir, overwrite)
    if isinstance(source, AesMambaForAestheticAssessment):
        from ..inference.loading import load_processor_for_config

        model = source
        trained = not getattr(model.config, "random_weights", False)
        if not trained and not allow_random:
            raise ExportError("the model is marked as holding RANDOM weights; pass allow_random=True "
                              "(--random-weights) to export it anyway")
        info = {"source": "in-memory model", "variant": model.config.variant, "trained": trained,
                "weights_origin": "in-memory model"}
        _check_task(model)
        processor = processor if processor is not None else load_processor_for_config(model.config)
    else:
        model, loaded_processor, info = load_export_source(source, weights=weights, allow_random=allow_random)
        _check_task(model)
        processor = processor if processor is not None else loaded_processor
    image_size = _image_size(processor)
    # export an fp32 copy in eval mode: the caller's model keeps its dtype, mode and backend
    model = copy.deepcopy(model).float().eval()
    outputs = _output_names(model, image_size)

    from ..io_utils import atomic_output_dir

    with atomic_output_dir(out, overwrite=True) as staging:
        onnx_path = staging / ONNX_FILE
        with _scan_for_export(model, scan), torch.no_grad():
            _trace(model, outputs, image_size, onnx_path, opset)
        _check_no_custom_op(onnx_path)
        max_diff = None
        if check:
            generator = torch.Generator().manual_seed(0)
            max_diff = max(compare_with_torch(onnx_path, model, torch.rand(n, 3, *image_size, generator=generator))
                           for n in (1, 2))
            if not max_diff <= tolerance:
                raise ExportError(f"the ONNX graph's outputs differ from torch's by {max_diff:.3g} "
                                  f"(> {tolerance:g}); nothing was written")
        _write_files(model, processor, staging, _note(model, processor, outputs, image_size, info, scan,
                                                      _opset_of(onnx_path), max_diff))
    files = sorted(p.name for p in out.iterdir() if p.is_file())
    return OnnxExportResult(path=out, source=info["source"], variant=info.get("variant"), trained=info["trained"],
                            weights_origin=info.get("weights_origin", ""), outputs=outputs, max_abs_diff=max_diff,
                            files=files)


def _trace(model: AesMambaForAestheticAssessment, outputs: list[str], image_size: tuple[int, int], path: Path,
           opset: Optional[int]) -> None:
    import warnings

    example = torch.rand(2, 3, *image_size)
    batch = torch.export.Dim("batch", min=1)
    with warnings.catch_warnings():  # the exporter's own deprecation chatter is no news to the caller
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            _ImageScorer(model, outputs).eval(), (example,), dynamo=True, input_names=["pixel_values"],
            output_names=outputs, dynamic_shapes={"pixel_values": {0: batch}}, opset_version=opset,
            external_data=False, verbose=False, optimize=False,
        )
    if program is None:
        raise ExportError("torch.onnx.export returned no program")
    _tidy_graph(program.model)
    heads = [{"name": h["name"], "score_range": list(h["score_range"])} for h in model.config.heads]
    program.model.metadata_props["aesmamba.heads"] = json.dumps(heads)
    program.model.metadata_props["aesmamba.task"] = model.config.task
    program.save(str(path), external_data=False)


def _tidy_graph(model: Any) -> None:
    """Constant folding, dead-node and duplicate removal on the exported ``onnx_ir`` model, in place.

    The exporter's own ``optimize=True`` adds onnxscript's pattern rewriter to these passes; on the default-size
    V graph (25,798 nodes before, the scan unrolled in ~2·√L steps per block) the rewriter ran for more than 15
    minutes, while these passes take ~12 s and leave 10,352 nodes. onnxruntime fuses and folds again when it
    loads the graph (its session took 1.9 s), so the rewriter's tidying is not needed to run it.
    """
    import onnx_ir as ir
    import onnx_ir.passes.common as passes
    from onnxscript.optimizer import fold_constants

    ir.passes.Sequential(passes.InlinePass(), passes.RemoveUnusedFunctionsPass())(model)
    fold_constants(model, onnx_shape_inference=True)
    ir.passes.Sequential(
        passes.RemoveUnusedNodesPass(), passes.RemoveUnusedOpsetsPass(),
        passes.LiftConstantsToInitializersPass(lift_all_constants=True, size_limit=0),
        passes.LiftSubgraphInitializersToMainGraphPass(), passes.DeduplicateInitializersPass(),
        passes.CommonSubexpressionEliminationPass(),
        passes.RemoveUnusedNodesPass(), passes.OutputFixPass(), passes.NameFixPass(),
    )(model)


def _opset_of(path: Path) -> Optional[int]:
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    return next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)


def _write_files(model: AesMambaForAestheticAssessment, processor: Any, staging: Path, note: dict[str, Any]) -> None:
    from ..io_utils import atomic_write_text

    config = model.config
    saved_mark = getattr(config, "random_weights", False)
    config.random_weights = not note["trained"]
    try:
        config.save_pretrained(staging)
    finally:
        config.random_weights = saved_mark
    processor.save_pretrained(staging)
    atomic_write_text(staging / NOTE_FILE, json.dumps(note, indent=2) + "\n")
    atomic_write_text(staging / "README.md", _readme(note))


__all__ = ["ONNX_FILE", "OnnxExportResult", "SCAN_FORMULATIONS", "compare_with_torch", "export_onnx"]
