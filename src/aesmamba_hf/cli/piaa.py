"""``aesmamba piaa MODEL PARA_ROOT --out DIR``: the PIAA few-shot protocol (see :mod:`aesmamba_hf.piaa`).

Per user, k shots and repeat: fine-tune a copy of the generic model on k of the user's PIAA training rows
(seeded, recorded), evaluate on the user's fixed test rows; plus the zero-shot baseline. Writes
``per_user.csv``, ``runs.jsonl``, ``summary.json``, ``summary.md`` and ``boxplot.png`` to DIR. Model selection
never uses the test rows (fixed epochs, ``--selection validation`` on a carve-out of the shots, or
``--selection folds`` with ``--adapter``: personalize's own choice on folds of the shots).
"""

from __future__ import annotations

import argparse
import sys

from ..tuning_choices import ADAPTER_KINDS, SELECTION_CHOICES, TUNE_CHOICES


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "piaa", help="per-user few-shot PIAA protocol on PARA (fine-tune, evaluate, summarize)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", metavar="MODEL", help="generic checkpoint with the 9 PARA heads (folder, alias, Hub id)")
    parser.add_argument("para_root", metavar="PARA_ROOT", help="PARA root (annotation/, imgs/)")
    parser.add_argument("--out", "-o", required=True, help="output folder")
    parser.add_argument("--users", nargs="+", metavar="USER", help="user ids (default: --num-users drawn with --seed)")
    parser.add_argument("--num-users", type=int, default=40, help="users to draw when --users is not given "
                        "(default 40; 0 = every eligible user)")
    parser.add_argument("--shots", type=int, nargs="+", default=[10, 100], help="k values (default 10 100)")
    parser.add_argument("--repeats", type=int, default=10, help="random k-shot draws per user and k (default 10)")
    parser.add_argument("--seed", type=int, default=42, help="base seed (default 42)")
    parser.add_argument("--test-size", type=int, default=None, help="cap each user's test set (paper: 50)")
    parser.add_argument("--min-test-rows", type=int, default=5, help="users with fewer test rows are not drawn")
    parser.add_argument("--tune", choices=TUNE_CHOICES, default="all",
                        help="parameters fine-tuned (default all, as the authors)")
    parser.add_argument("--epochs", type=int, default=50, help="fine-tuning epochs per user (default 50)")
    parser.add_argument("--batch-size", type=int, default=20)
    parser.add_argument("--lr", type=float, default=4e-5, help="AdamW learning rate (default 4e-5)")
    parser.add_argument("--weight-decay", type=float, default=1e-3)
    parser.add_argument("--cosine-period", type=float, default=None,
                        help="cosine T_max in epochs (default: the run length; the released script uses 5)")
    parser.add_argument("--no-augment", action="store_true", help="no flip/crop augmentation on the shots")
    parser.add_argument("--selection", choices=SELECTION_CHOICES, default="last",
                        help="'last': fixed epochs; 'validation': best epoch on a carve-out of the shots; "
                             "'folds' (with --adapter): epochs chosen on folds of the shots as `aesmamba "
                             "personalize` does (0 = keep the base among the candidates)")
    parser.add_argument("--validation-fraction", type=float, default=0.2)
    parser.add_argument("--min-shots-for-validation", type=int, default=50)
    parser.add_argument("--no-zero-shot", action="store_true", help="skip the zero-shot baseline")
    parser.add_argument("--eval-batch-size", type=int, default=32)
    parser.add_argument("--device", default=None, help="cpu / cuda (default: cuda if available)")
    parser.add_argument("--scan-backend", default=None, help="selective-scan backend override")
    parser.add_argument("--adapter", choices=ADAPTER_KINDS, default=None,
                        help="train a per-user PEFT adapter of this kind (as `aesmamba personalize`) instead of "
                        "fine-tuning a copy of the model; run once with and once without to compare both")
    parser.add_argument("--adapter-rank", type=int, default=4, help="LoRA rank of --adapter (default 4)")
    parser.add_argument("--taste-prior", metavar="FILE", default=None,
                        help="--adapter taste: the model's taste prior (default: taste_prior.safetensors in MODEL)")
    parser.add_argument("--quiet", action="store_true", help="no per-run progress lines")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..piaa import PIAAConfig, run_piaa

    try:
        config = PIAAConfig(
            users=args.users, num_users=args.num_users or None, shots=args.shots, repeats=args.repeats,
            seed=args.seed, test_size=args.test_size, min_test_rows=args.min_test_rows, tune=args.tune,
            epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr, weight_decay=args.weight_decay,
            cosine_period_epochs=args.cosine_period, augment=not args.no_augment, selection=args.selection,
            validation_fraction=args.validation_fraction, min_shots_for_validation=args.min_shots_for_validation,
            zero_shot=not args.no_zero_shot, eval_batch_size=args.eval_batch_size, device=args.device,
            scan_backend=args.scan_backend, adapter=args.adapter, adapter_rank=args.adapter_rank,
            taste_prior=args.taste_prior,
        )
        result = run_piaa(args.model, args.para_root, args.out, config,
                          progress=None if args.quiet else (lambda line: print(line, flush=True)))
    except (ValueError, OSError, KeyError) as err:
        print(f"aesmamba piaa: error: {err}", file=sys.stderr)
        return 1
    print((result.out_dir / "summary.md").read_text(encoding="utf-8"))
    for name, path in result.files.items():
        print(f"{name}: {path}")
    return 0
