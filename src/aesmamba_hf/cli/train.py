"""``aesmamba train CONFIG [overrides]``: train or fine-tune AesMamba with ``transformers.Trainer``.

CONFIG is a JSON training config (see ``aesmamba_hf.training.TrainConfig``) or the name of a shipped recipe
(``aesmamba train --list-recipes``): the authors' set-ups for V, M, F and P. Command-line options override it.

* Resume: by default a run continues from the newest complete ``checkpoint-*`` in the output folder (model,
  optimizer, scheduler, RNG and step); ``--no-resume`` starts over, ``--resume`` fails if there is none,
  ``--resume PATH`` continues from that checkpoint.
* The best epoch is chosen on a validation split carved from the training data; ``--evaluate-test`` only
  reports the test metrics of the final model.
* The output folder holds the selected model and its processor (``AutoModel``/``AutoProcessor`` load it),
  ``train_config.json``, ``train_result.json`` and ``bad_rows.json``.
* Several processes: ``torchrun --nproc_per_node N -m aesmamba_hf train CONFIG`` or ``accelerate launch
  --multi_gpu --num_processes N -m aesmamba_hf train CONFIG`` (on CPU add ``--num_machines 1 --mixed_precision
  no --dynamo_backend no``; ``accelerate launch --cpu`` starts only one process).

Examples::

    aesmamba train v-ava --data-root /data/AVA --vision-checkpoint vssmtiny_dp01_ckpt_epoch_292.pth
    aesmamba train my_run.json --epochs 5 --output-dir runs/try --set dataset_kwargs='{"users": ["A0c1"]}'
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

# option name -> (TrainConfig field, type, help)
_OVERRIDES: dict[str, tuple[str, Any, str]] = {
    "--data-root": ("data_root", str, "dataset root folder"),
    "--output-dir": ("output_dir", str, "run folder (checkpoints and the final model)"),
    "--model": ("model", str, "variant name (fresh weights) or checkpoint folder / Hub id (fine-tune)"),
    "--vision-checkpoint": ("vision_checkpoint", str, "VMamba ImageNet .pth for the image encoder"),
    "--text-model": ("text_model", str, "BERT weights for the M/P text encoder"),
    "--tokenizer": ("tokenizer", str, "tokenizer for M/P"),
    "--epochs": ("epochs", float, "number of epochs"),
    "--max-steps": ("max_steps", int, "stop after this many optimizer steps (overrides epochs)"),
    "--batch-size": ("batch_size", int, "global batch size"),
    "--learning-rate": ("learning_rate", float, "peak learning rate"),
    "--validation-fraction": ("validation_fraction", float, "share of train carved into validation"),
    "--seed": ("seed", int, "random seed (also of the validation carve)"),
    "--workers": ("dataloader_num_workers", int, "DataLoader worker processes"),
    "--scan-backend": ("scan_backend", str, "selective-scan backend (auto, fused, unrolled, chunked, reference, triton, mamba_ssm)"),
    "--metric": ("metric_for_best_model", str, "validation metric selecting the best checkpoint"),
}


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_set(items: list[str]) -> dict[str, Any]:
    """``["epochs=3", "dataset_kwargs={\\"users\\": [\\"A0c1\\"]}"]`` → field values (JSON, else strings)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        out[key.strip()] = _parse_value(value)
    return out


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train / fine-tune a model from a JSON config or a shipped recipe (resumable)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("config", nargs="?", metavar="CONFIG", help="training config JSON or recipe name")
    resume = parser.add_mutually_exclusive_group()
    resume.add_argument("--resume", nargs="?", const=True, default=None, metavar="CHECKPOINT",
                        help="require resuming (from the newest checkpoint, or from CHECKPOINT)")
    resume.add_argument("--no-resume", dest="resume", action="store_false", default=None,
                        help="start from scratch even if the output folder has checkpoints")
    for option, (_, kind, text) in _OVERRIDES.items():
        parser.add_argument(option, type=kind, default=None, help=text)
    parser.add_argument("--evaluate-test", action="store_true", default=None,
                        help="also report the final model's test metrics (never used for selection)")
    parser.add_argument("--cpu", dest="use_cpu", action="store_true", default=None, help="train on CPU")
    parser.add_argument("--set", dest="set_values", action="append", default=[], metavar="KEY=VALUE",
                        help="any other TrainConfig field (JSON value), repeatable")
    parser.add_argument("--list-recipes", action="store_true", help="list the shipped recipes and exit")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    parser.set_defaults(func=run)


def resolve_config(args: argparse.Namespace):
    from ..training import load_recipe

    overrides = {field: getattr(args, option.lstrip("-").replace("-", "_"))
                 for option, (field, _, _) in _OVERRIDES.items()}
    overrides.update(evaluate_test=args.evaluate_test, use_cpu=args.use_cpu)
    if args.resume is not None:
        overrides["resume"] = args.resume
    overrides.update(parse_set(args.set_values))
    return load_recipe(args.config, **overrides)


def run(args: argparse.Namespace) -> int:
    from ..training import list_recipes, load_recipe, train

    if args.list_recipes:
        for name in list_recipes():
            recipe = load_recipe(name)
            print(f"{name:16s} task {recipe.task}  {recipe.dataset:9s} batch {recipe.batch_size:3d}  "
                  f"lr {recipe.learning_rate:g}  epochs {recipe.epochs:g}")
        return 0
    if not args.config:
        print("error: CONFIG is required (a JSON file or a recipe name; see --list-recipes)", file=sys.stderr)
        return 2
    try:
        config = resolve_config(args)
    except (KeyError, ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.print_config:
        print(config.to_json())
        return 0
    try:
        result = train(config)
    except (ValueError, FileNotFoundError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if int(os.environ.get("RANK", "0")) != 0:
        return 0  # multi-process launch: rank 0 reports
    summary = {
        "output_dir": result.output_dir,
        "global_step": result.global_step,
        result.metric_for_best_model: result.best_metric,
        "best_checkpoint": result.best_checkpoint,
        "resumed_from": result.resumed_from,
        "validation": result.validation_metrics,
        "test": result.test_metrics,
    }
    print(json.dumps(summary, indent=2, default=str))
    return 0


__all__ = ["register", "run", "resolve_config", "parse_set"]
