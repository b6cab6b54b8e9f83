"""``aesmamba demo [--quick] [--out DIR]``: the whole package on a built-in benchmark, offline, on CPU.

Generates a small rated benchmark from the bundled photographs (synthetic ratings of controlled edits, written
in the AVA and PARA layouts), trains small V, M, F and P models with the Trainer, runs the PIAA few-shot
protocol, evaluates on held-out photos against a non-deep baseline, exports Hub-ready model folders and scores
sample photos with ``pipeline("image-aesthetics")``. Writes ``report.md`` / ``report.json`` and plots to DIR.
No network, no GPU, no downloads. ``--quick`` is a ~2-minute smoke run (tiny models, numbers meaningless).
"""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo", help="train, evaluate and publish small models on the built-in benchmark (offline, CPU)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", "-o", default="aesmamba-demo-output",
                        help="output folder (default ./aesmamba-demo-output; replaced atomically on a re-run)")
    parser.add_argument("--quick", action="store_true", help="~2-minute smoke run with tiny models")
    parser.add_argument("--seed", type=int, default=0, help="benchmark and training seed (default 0)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace --out even if it holds files that `aesmamba demo` did not write")
    parser.add_argument("--quiet", action="store_true", help="no progress lines (the final summary is printed)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..demo.run import DemoConfig, run_demo

    preset = "quick" if args.quick else "default"
    config = DemoConfig.preset(preset, seed=args.seed, num_threads=args.threads)
    printer = None if args.quiet else (lambda line: print(line, flush=True))
    try:
        report = run_demo(args.out, config, preset=preset, overwrite=args.overwrite, printer=printer)
    except FileExistsError as err:
        print(f"aesmamba demo: {err}", file=sys.stderr)
        return 2
    if args.quiet:
        print(f"report: {report['out_dir']}/report.md ({report['total_seconds']:.0f} s)")
    return 0
