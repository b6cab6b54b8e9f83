"""``aesmamba personalize --model BASE --ratings RATINGS.csv [--profile USER.json] --output DIR``.

Trains one user's adapter (PEFT) on top of a shared base model from the user's own ratings and writes it to
DIR (``adapter_config.json``, ``adapter_model.safetensors``, ``personalization.json``, ``profile.json``).
RATINGS.csv: columns ``image`` (path, relative to the CSV) and ``score`` (the overall rating), optionally one
column per other head (PARA: quality, composition, color, dof, light, content, contentPreference,
willingToShare). The number of epochs is chosen on a split of these ratings (never on a test set).
``--kind taste`` trains nothing: the user's taste is fitted in closed form under the base's taste prior (what
many raters taught; the demo's P model carries one), the kind that learns from ten ratings (docs/piaa.md).
Score with it: ``aesmamba score PHOTOS --model BASE --adapter DIR -o scores.csv``.
"""

from __future__ import annotations

import argparse
import sys

from ..tuning_choices import ADAPTER_KINDS, DEFAULT_ADAPTER_KIND


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "personalize", help="train a per-user adapter from a user's ratings (PEFT)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", "-m", required=True, help="base model: folder, variant alias or Hub id")
    parser.add_argument("--ratings", "-r", required=True, metavar="RATINGS.csv", help="the user's ratings")
    parser.add_argument("--profile", metavar="USER.json", help="the user's profile (required for P models)")
    parser.add_argument("--output", "-o", required=True, metavar="DIR", help="adapter folder to write")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing adapter folder")
    parser.add_argument("--kind", choices=ADAPTER_KINDS, default=DEFAULT_ADAPTER_KIND,
                        help=f"adapter kind (default {DEFAULT_ADAPTER_KIND}; see docs/piaa.md)")
    parser.add_argument("--rank", type=int, default=4, help="LoRA rank (default 4)")
    parser.add_argument("--taste-prior", metavar="FILE", default=None,
                        help="--kind taste: the base's taste prior (default: taste_prior.safetensors in the base "
                        "folder)")
    parser.add_argument("--lr", type=float, default=None, help="AdamW learning rate of the adapter")
    parser.add_argument("--max-epochs", type=int, default=None, help="longest run compared on the split")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", choices=["cpu", "cuda"], default=None, help="default: cuda if available")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from ..inference.loading import ModelLoadError
    from ..piaa.personalize import PersonalizeConfig, personalize

    config = PersonalizeConfig(kind=args.kind, rank=args.rank, seed=args.seed, device=args.device,
                               taste_prior=args.taste_prior)
    if args.lr is not None:
        config.learning_rate = args.lr
    if args.max_epochs is not None:
        if args.max_epochs < 1:
            print("aesmamba personalize: error: --max-epochs must be >= 1", file=sys.stderr)
            return 2
        candidates = sorted({0, *[e for e in config.epoch_candidates if e < args.max_epochs], args.max_epochs})
        config = dataclasses.replace(config, epoch_candidates=tuple(candidates))
    try:
        result = personalize(args.model, args.ratings, args.profile, args.output, config=config,
                             overwrite=args.overwrite,
                             progress=None if args.quiet else (lambda line: print(line, flush=True)))
    except (ValueError, OSError, ModelLoadError) as err:
        print(f"aesmamba personalize: error: {err}", file=sys.stderr)
        return 1
    print(f"adapter: {result.adapter_dir} ({result.adapter_bytes} bytes, {result.num_ratings} ratings, "
          f"{result.epochs} epochs, {result.seconds:.1f} s)")
    return 0
