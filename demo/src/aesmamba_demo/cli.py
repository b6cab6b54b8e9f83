"""Command line of the demo: ``aesmamba demo`` (the library's subcommand) and ``aesmamba-demo`` both run here.

The options are the library's (:func:`aesmamba_hf.cli.demo.add_arguments`), so the two commands accept the
same arguments and ``aesmamba demo --help`` works even where this package is not installed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Optional


def run(args: argparse.Namespace) -> int:
    """Run the demo for parsed ``aesmamba demo`` arguments; 0 on success, 2 if ``--out`` is a foreign folder."""
    from .run import DemoConfig, run_demo

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


def build_parser(prog: str = "aesmamba-demo") -> argparse.ArgumentParser:
    from aesmamba_hf.cli.demo import DESCRIPTION, add_arguments

    parser = argparse.ArgumentParser(prog=prog, description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``aesmamba-demo [--quick] [--out DIR] ...``: the same as ``aesmamba demo ...``."""
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
