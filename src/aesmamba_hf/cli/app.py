"""``aesmamba app [--model M ...] [--port P] [--host H]``: the web app (score, compare, personalise).

Without ``--model`` it serves the models ``aesmamba demo`` exported (``./aesmamba-demo-output/models``, or
``--demo-dir``), labelled as demo models trained on synthetic ratings. Random-weight models are refused unless
``--random-weights`` (then the page carries a banner). Uploads are limited to ``--max-file-mb``; everything
the app writes stays in a temporary folder removed on exit. ``--write-space DIR`` writes a Hugging Face Space
folder for the (one) ``--model`` instead of serving (``--repo-id``, ``--overwrite`` as for ``aesmamba export
--space``). Needs Gradio: ``pip install aesmamba-hf[app]``.
"""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("app", help="web app: score, compare and personalise in the browser (Gradio)",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", "-m", action="append", default=None, metavar="M",
                        help="model folder, alias or Hub id (repeat to serve several; default: the demo's models)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1, this "
                        "machine only; 0.0.0.0 serves the network)")
    parser.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    parser.add_argument("--demo-dir", default=None, help="the `aesmamba demo` output folder whose models are "
                        "served without --model (default ./aesmamba-demo-output)")
    parser.add_argument("--max-file-mb", type=float, default=20.0, help="upload size limit per file (default 20)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default=None, help="default: cuda if available")
    parser.add_argument("--random-weights", action="store_true",
                        help="serve models marked as holding random weights (with a banner: scores are meaningless)")
    parser.add_argument("--write-space", metavar="DIR", default=None,
                        help="write a Hugging Face Space folder (app.py, requirements.txt, README.md, model/) for "
                             "--model and exit (the same as `aesmamba export ... --space DIR`)")
    parser.add_argument("--repo-id", default=None, help="with --write-space: the model's Hub id, named in the "
                        "Space card and loaded when the Space holds no copy (default: the folder's name)")
    parser.add_argument("--overwrite", action="store_true", help="with --write-space: replace a non-empty DIR")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..inference.loading import ModelLoadError

    try:
        if args.write_space:
            return _write_space(args)
        from ..app import AppSetupError, serve
    except ModuleNotFoundError as err:
        if err.name != "gradio":
            raise
        print("aesmamba app: Gradio is not installed: pip install 'aesmamba-hf[app]'", file=sys.stderr)
        return 1
    if args.max_file_mb <= 0:
        print("aesmamba app: error: --max-file-mb must be positive", file=sys.stderr)
        return 2
    try:
        serve(args.model, host=args.host, port=args.port, allow_random=args.random_weights,
              demo_dir=args.demo_dir, device=args.device, max_file_mb=args.max_file_mb)
    except (AppSetupError, ModelLoadError) as err:
        print(f"aesmamba app: error: {err}", file=sys.stderr)
        return 1
    return 0


def _write_space(args: argparse.Namespace) -> int:
    from ..app import write_space
    from ..inference.loading import ModelLoadError

    if not args.model or len(args.model) != 1:
        print("aesmamba app: error: --write-space needs exactly one --model FOLDER", file=sys.stderr)
        return 2
    try:
        path = write_space(args.model[0], args.write_space, repo_id=args.repo_id, overwrite=args.overwrite)
    except (ModelLoadError, OSError, ValueError) as err:
        print(f"aesmamba app: error: {err}", file=sys.stderr)
        return 1
    print(f"wrote a Space for {args.model[0]} -> {path} (app.py, requirements.txt, README.md, model/)")
    return 0
