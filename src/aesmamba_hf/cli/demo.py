"""``aesmamba demo [--quick] [--out DIR]``: the whole package on a built-in benchmark, offline, on CPU.

The demo is its own package, ``aesmamba-demo`` (``demo/`` in the repository; ``bash scripts/demo.sh`` installs
it on first use). This module only defines the subcommand's options and imports ``aesmamba_demo`` when the
subcommand runs; the library never imports the demo otherwise.
"""

from __future__ import annotations

import argparse
import sys

DESCRIPTION = """\
Generates a small rated benchmark from the bundled photographs (synthetic ratings of controlled edits, written
in the AVA and PARA layouts), trains small V, M, F and P models with the Trainer, runs the PIAA few-shot
protocol, evaluates on held-out photos against a non-deep baseline, exports Hub-ready model folders and scores
sample photos with pipeline("image-aesthetics"). Writes report.md / report.json and plots to --out.
No network, no GPU, no downloads. The full run takes about 15 (AVX-512) to 95 (older AVX2) minutes on 2 CPU
cores; --quick is a smoke run (tiny models, numbers meaningless) of about 160 CPU-seconds: under 3 minutes on
2 free cores.
Needs the aesmamba-demo package: `pip install -e demo` in the repository, or `bash scripts/demo.sh`."""

NOT_INSTALLED = ("the demo is a separate package, aesmamba-demo, which is not installed: install it from the "
                 "repository with `pip install -e demo`, or run `bash scripts/demo.sh` there")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``aesmamba demo`` (also those of the demo package's own ``aesmamba-demo`` command)."""
    parser.add_argument("--out", "-o", default="aesmamba-demo-output",
                        help="output folder (default ./aesmamba-demo-output; replaced atomically on a re-run)")
    parser.add_argument("--quick", action="store_true", help="smoke run with tiny models (~160 CPU-seconds: under 3 minutes on 2 cores)")
    parser.add_argument("--seed", type=int, default=0, help="benchmark and training seed (default 0)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace --out even if it holds files that `aesmamba demo` did not write")
    parser.add_argument("--quiet", action="store_true", help="no progress lines (the final summary is printed)")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo", help="train, evaluate and publish small models on the built-in benchmark (offline, CPU)",
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        from aesmamba_demo.cli import run as run_demo
    except ModuleNotFoundError as err:
        if err.name != "aesmamba_demo":
            raise  # the demo is installed but something it needs is not: show the real error
        print(f"aesmamba demo: {NOT_INSTALLED}.", file=sys.stderr)
        return 1
    return run_demo(args)
