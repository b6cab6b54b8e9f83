"""``aesmamba evaluate MODEL DATASET_NAME DATASET_ROOT [--split test] --out DIR``: benchmark report.

Writes ``metrics.json`` (PLCC, SRCC, binary accuracy, MAE, RMSE, EMD per head; skipped unreadable images),
``predictions.csv``, ``scatter_<head>.png`` and ``metrics_bar.png`` to DIR (see
:mod:`aesmamba_hf.evaluation.report`). DATASET_NAME: AVA, PhotoNet, PARA, AADB or TAD66K, in the on-disk
layout of :mod:`aesmamba_hf.data`; the model's task selects comments (M), attributes (F) or user rows (P).
"""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="evaluate a model on a benchmark split: metrics JSON + plots",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", metavar="MODEL", help="model folder, alias or Hub repo id")
    parser.add_argument("dataset", metavar="DATASET_NAME", help="AVA, PhotoNet, PARA, AADB or TAD66K")
    parser.add_argument("root", metavar="DATASET_ROOT", help="dataset root folder")
    parser.add_argument("--split", default="test", choices=["train", "validation", "test"])
    parser.add_argument("--out", "-o", required=True, help="output folder")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default=None, help="cpu / cuda (default: cuda if available)")
    parser.add_argument("--max-images", type=int, default=None, help="evaluate the first N rows only")
    parser.add_argument("--users", nargs="+", default=None, help="PARA-P: only these user ids")
    parser.add_argument("--random-weights", action="store_true",
                        help="accept a model marked as holding random weights (its metrics are meaningless)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..evaluation.report import evaluate_model

    kwargs = {"users": args.users} if args.users else None
    try:
        result = evaluate_model(args.model, args.dataset, args.root, args.out, split=args.split,
                                batch_size=args.batch_size, device=args.device, max_images=args.max_images,
                                dataset_kwargs=kwargs, allow_random=args.random_weights)
    except (ValueError, OSError, KeyError) as err:
        print(f"aesmamba evaluate: error: {err}", file=sys.stderr)
        return 1
    metrics = result.metrics
    print(f"{metrics['dataset']} {metrics['split']}: {metrics['num_images']} images"
          + (f", {metrics['num_skipped']} rows skipped (unreadable image or unusable label)"
             if metrics["num_skipped"] else ""))
    for head, values in metrics["heads"].items():
        print(f"  {head}: " + ", ".join(f"{k} {v:.4f}" for k, v in values.items() if isinstance(v, float)))
    for bad in metrics["bad_images"][:10]:
        print(f"  skipped {bad['source']} ({bad['image']}): {bad['reason']}", file=sys.stderr)
    if len(metrics["bad_images"]) > 10:
        print(f"  ... {len(metrics['bad_images']) - 10} more in {result.files['metrics']}", file=sys.stderr)
    if "mean" in metrics:
        print("  mean over heads: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics["mean"].items()))
    print(f"metrics: {result.files['metrics']}")
    return 0
