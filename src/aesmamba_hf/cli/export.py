"""``aesmamba export VARIANT_OR_CHECKPOINT OUT_DIR``: write a complete Hub repository folder.

Weights (safetensors), config with ``auto_map``, processor files, the modeling code for
``trust_remote_code=True`` (checked to be self-contained) and a model card README.md. A variant alias without
weights available offline is refused unless ``--random-weights`` is given (then it is exported with RANDOM
weights, marked as such everywhere); ``--weights`` converts the authors' ``.pth`` checkpoint instead. ``--metrics`` adds an ``aesmamba evaluate`` /
``aesmamba piaa`` JSON to the card.

``--format onnx`` writes ``model.onnx`` instead (tasks V and F: input ``pixel_values`` with a dynamic batch
axis, outputs ``scores`` and, where the model has them, ``distribution`` / ``class_logits``), with the processor
files, config.json and a note of what the graph holds; the graph is checked against torch in onnxruntime
before anything is written.
"""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export", help="write a Hub-ready folder (weights, config, processor, remote code, model card)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("source", metavar="VARIANT_OR_CHECKPOINT", help="variant alias or checkpoint folder")
    parser.add_argument("out_dir", metavar="OUT_DIR", help="folder to write")
    parser.add_argument("--weights", default=None, help="official AesMamba .pth checkpoint to convert")
    parser.add_argument("--metrics", default=None, help="metrics JSON (aesmamba evaluate / piaa) for the card")
    parser.add_argument("--repo-id", default=None, help="Hub id used in the card (default aesmamba-hf/<variant>)")
    parser.add_argument("--license", default=None, help="license identifier for the card (default apache-2.0)")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty OUT_DIR")
    parser.add_argument("--random-weights", action="store_true",
                        help="export RANDOM weights when no trained weights are available (marked as such)")
    parser.add_argument("--format", choices=["hub", "onnx"], default="hub",
                        help="hub: Hub repository folder (default); onnx: model.onnx for onnxruntime (V and F)")
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset (--format onnx; default: the exporter's)")
    parser.add_argument("--require-trained", action="store_true",
                        help="fail when no trained weights are available (the default now; kept for old scripts)")
    parser.add_argument("--space", metavar="SPACE_DIR", default=None,
                        help="also write a Hugging Face Space folder (app.py, requirements.txt, README.md, a copy "
                             "of the model) that runs `aesmamba app` for the exported model")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..hub import DEFAULT_LICENSE, ExportError, export_model

    if args.format == "onnx":
        if args.space:
            print("aesmamba export: error: --space applies to --format hub", file=sys.stderr)
            return 1
        return _run_onnx(args)
    if args.opset is not None:
        print("aesmamba export: error: --opset applies to --format onnx", file=sys.stderr)
        return 1
    if args.space and (problem := _space_problem(args)):
        print(f"aesmamba export: error: --space: {problem}", file=sys.stderr)
        return 1
    try:
        result = export_model(args.source, args.out_dir, weights=args.weights, metrics=args.metrics,
                              repo_id=args.repo_id, license=args.license or DEFAULT_LICENSE,
                              overwrite=args.overwrite,
                              allow_random=args.random_weights and not args.require_trained)
    except (ExportError, OSError, ValueError, KeyError) as err:
        print(f"aesmamba export: error: {err}", file=sys.stderr)
        return 1
    if not result.trained:
        banner = "!" * 78
        print(f"{banner}\n  WARNING: {result.path} holds an UNTRAINED model (random weights): "
              f"{result.weights_origin}\n{banner}", file=sys.stderr)
    print(f"exported {result.source} -> {result.path} ({len(result.files)} files; weights: {result.weights_origin})")
    for name in result.files:
        print(f"  {name}")
    if args.space:
        return _write_space(args, result.path)
    return 0


def _space_problem(args: argparse.Namespace) -> str:
    """Why the Space folder cannot be written, checked before exporting ('' when it can)."""
    from ..io_utils import OutputLocationError, check_new_output_dir

    try:
        check_new_output_dir(args.space, overwrite=args.overwrite, what="--space folder", how="pass --overwrite")
    except OutputLocationError as err:
        return str(err)
    return ""


def _write_space(args: argparse.Namespace, model_dir: object) -> int:
    from ..app.space import write_space

    try:
        path = write_space(model_dir, args.space, repo_id=args.repo_id, overwrite=args.overwrite)
    except (OSError, ValueError) as err:
        print(f"aesmamba export: error: --space: {err}", file=sys.stderr)
        return 1
    print(f"wrote a Space running the app for it -> {path}")
    return 0


def _run_onnx(args: argparse.Namespace) -> int:
    from ..hub import ExportError, export_onnx

    hub_only = [flag for flag, value in (("--metrics", args.metrics), ("--repo-id", args.repo_id),
                                         ("--license", args.license)) if value is not None]
    if hub_only:
        print(f"aesmamba export: error: {', '.join(hub_only)} apply to --format hub (the model card)", file=sys.stderr)
        return 1
    try:
        result = export_onnx(args.source, args.out_dir, weights=args.weights, overwrite=args.overwrite,
                             allow_random=args.random_weights and not args.require_trained, opset=args.opset)
    except (ExportError, OSError, ValueError, KeyError) as err:
        print(f"aesmamba export: error: {err}", file=sys.stderr)
        return 1
    if not result.trained:
        print(f"WARNING: {result.path} holds RANDOM weights: its scores are meaningless", file=sys.stderr)
    print(f"exported {result.source} -> {result.path}/model.onnx (outputs {', '.join(result.outputs)}; largest "
          f"difference from torch {result.max_abs_diff:.2g}; weights: {result.weights_origin})")
    for name in result.files:
        print(f"  {name}")
    return 0
