"""``aesmamba info MODEL``: variant, heads, score ranges, parameter count and preprocessing of a model."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any


def describe_model(name: str) -> dict[str, Any]:
    """Everything ``aesmamba info`` prints, as a dict (no weights are loaded)."""
    import torch
    from transformers.image_utils import PILImageResampling

    from ..inference.loading import (
        ModelLoadError,
        check_weights,
        has_random_weights,
        has_weights,
        load_config,
        load_processor,
    )
    from ..modeling_aesmamba import AesMambaForAestheticAssessment
    from ..registry import resolve_model
    from ..tasks import Task

    try:
        path = resolve_model(name)
    except ValueError as err:
        raise ModelLoadError(str(err)) from err
    config = load_config(path)
    if os.path.isdir(path) and has_weights(path):
        check_weights(Path(path), config)  # headers only: a truncated file or another variant's weights
    with torch.device("meta"):  # count parameters without allocating or loading them
        model = AesMambaForAestheticAssessment(config)
    total = sum(p.numel() for p in model.parameters())
    vision = sum(p.numel() for p in model.aesmamba.vision_model.parameters())
    text = sum(p.numel() for p in model.aesmamba.text_model.parameters()) if model.aesmamba.text_model else 0
    fusion = sum(p.numel() for p in model.aesmamba.fusion.parameters()) if model.aesmamba.fusion else 0
    taste = model.taste.weight.numel() if model.taste is not None else 0  # per-user layer, zero in a base
    notes: list[str] = []
    processor = load_processor(path, config, notes)
    processor_source = "; ".join(notes) if notes else "saved with the model"
    ip = processor.image_processor
    resample = PILImageResampling(int(ip.resample)).name.lower()  # an int after a JSON round trip
    weights = "unknown (Hub repo)"
    if has_random_weights(config, path if os.path.isdir(path) else None):
        weights = "RANDOM (substituted by aesmamba-hf; scores are meaningless)"
    elif os.path.isdir(path):
        if has_weights(path):
            weights = "present"
        else:
            weights = "none (configuration only)"
    text_input = None
    if config.uses_text:
        tokenizer = processor.tokenizer
        text_input = {
            "kind": {"comment": "comments", "user": "user profile prompt (SMP)"}[Task.parse(config.task).text_input],
            "tokenizer": None if tokenizer is None else type(tokenizer).__name__,
            "vocab_size": None if tokenizer is None else len(tokenizer),
            "clean_comments": processor.clean_comments,
            "max_comment_words": processor.max_comment_words,
            "prompt_characters": processor.prompt_characters or "released SMP (Big-Five, art, photo)",
            "fix_prompt_spacing": processor.fix_prompt_spacing,
            "mask_text_padding": getattr(config, "mask_text_padding", None),
        }
    return {
        "model": path,
        "variant": getattr(config, "variant", None),
        "task": config.task,
        "task_description": Task.parse(config.task).description,
        "dataset": config.dataset,
        "weights": weights,
        "parameters": {"total": total, "vision": vision, "text": text, "fusion": fusion,
                       "heads": total - vision - text - fusion - taste, "taste": taste},
        "heads": [
            {
                "name": h["name"],
                "kind": h["kind"],
                "bins": h.get("bin_values") or None,
                "score_range": h["score_range"],
                "higher_is_better": h.get("higher_is_better", True),
                "scale_classes": h.get("num_scale_classes", 0),
            }
            for h in config.heads
        ],
        "score_reference": _reference_summary(getattr(config, "score_reference", None)),
        "preprocessing": {
            "source": processor_source,
            "eval": f"resize {ip.size.height}x{ip.size.width} ({resample}), scale 1/255, "
                    "normalize",
            "train": f"resize {ip.train_size.height}x{ip.train_size.width} ({resample}) -> "
                     f"random horizontal flip p={ip.flip_probability} -> random crop "
                     f"{ip.crop_size.height}x{ip.crop_size.width}",
            "image_mean": list(ip.image_mean),
            "image_std": list(ip.image_std),
            "text": text_input,
        },
    }


def _reference_summary(reference: Any) -> Any:
    """Where the model's percentiles come from (``None``: no reference, no percentiles)."""
    if not reference:
        return None
    return {"source": reference.get("source"), "size": reference["size"], "method": reference.get("method"),
            "median": {name: t["quantiles"][len(t["quantiles"]) // 2] for name, t in reference["heads"].items()}}


def format_description(info: dict[str, Any]) -> str:
    p = info["parameters"]
    lines = [
        f"model:         {info['model']}",
        f"variant:       {info['variant'] or '(custom)'}  — task {info['task']}: {info['task_description']}",
        f"dataset:       {info['dataset']}",
        f"weights:       {info['weights']}",
        f"parameters:    {p['total']:,} (vision {p['vision']:,}, text {p['text']:,}, fusion {p['fusion']:,}, "
        f"heads {p['heads']:,}, per-user taste layer {p['taste']:,})",
        "heads:",
    ]
    for h in info["heads"]:
        lo, hi = h["score_range"]
        kind = f"distribution over {len(h['bins'])} bins" if h["kind"] == "distribution" else "scalar"
        better = "higher is better" if h["higher_is_better"] else "lower is better"
        classes = f", {h['scale_classes']} scale classes" if h["scale_classes"] else ""
        lines.append(f"  {h['name']:<18} {kind:<26} range {lo:g}-{hi:g}, {better}{classes}")
    reference = info.get("score_reference")
    if reference is None:
        lines.append("score reference: none (no percentiles; `aesmamba calibrate MODEL IMAGES` adds one)")
    else:
        medians = ", ".join(f"{name} {value:g}" for name, value in reference["median"].items())
        lines.append(f"score reference: {reference['source']}, {reference['size']} images ({reference['method']}); "
                     f"median {medians}")
    pre = info["preprocessing"]
    mean = ", ".join(f"{v:.4f}" for v in pre["image_mean"])
    std = ", ".join(f"{v:.4f}" for v in pre["image_std"])
    lines += [
        f"preprocessing: ({pre['source']})",
        f"  eval:  {pre['eval']} mean=({mean}) std=({std})",
        f"  train: {pre['train']}",
    ]
    text = pre["text"]
    if text is None:
        lines.append("  text:  none")
    else:
        lines.append(f"  text:  {text['kind']}; tokenizer {text['tokenizer']} (vocab {text['vocab_size']}), "
                     "padding=True, truncation=True")
        if info["task"] == "M":
            lines.append(f"         comment cleaning {'on' if text['clean_comments'] else 'off'} "
                         f"(max {text['max_comment_words']} words)")
        if info["task"] == "P":
            spacing = "fixed" if text["fix_prompt_spacing"] else "as released (no space after the Big-Five sentence)"
            lines.append(f"         prompt characters: {text['prompt_characters']}; spacing {spacing}")
    return "\n".join(lines)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("info", help="describe a model: variant, heads, score ranges, parameters, "
                                   "preprocessing", description=__doc__)
    parser.add_argument("model", metavar="MODEL", help="model folder, alias or Hub repo id")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        info = describe_model(args.model)
    except (OSError, ValueError) as err:
        from ..registry import is_variant_name

        print(f"error: cannot describe {args.model!r}: {err}", file=sys.stderr)
        if is_variant_name(args.model) and not os.path.isdir(args.model):
            print(f"hint: `aesmamba download {args.model}` puts it into ./{args.model}", file=sys.stderr)
        return 2
    print(json.dumps(info, indent=2) if args.json else format_description(info))
    return 0


__all__ = ["describe_model", "format_description", "register", "run"]
