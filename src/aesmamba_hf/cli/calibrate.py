"""``aesmamba calibrate MODEL DATA... [--output DIR]``: give a model its reference distribution of scores.

DATA are your own validation images, in the forms ``aesmamba score`` takes (image files and folders, walked
recursively), or a CSV/TSV/JSONL list with an image column (``path``, ``image``, ``file``, ...; relative to the
list's folder) and, for M models, an optional ``comment`` column. The model scores them; the distribution of
the scores (101 quantiles per head, and every sorted score for up to 2,000 images) is written into the model
folder's ``config.json`` (``score_reference``, replaced atomically) and its model card. From then on the
pipeline, ``aesmamba score`` and Ray scoring return ``percentile`` beside ``score``.

Without ``--output`` MODEL must be a local folder, updated in place; ``--output DIR`` writes a calibrated copy
instead (any model source; the folder appears complete or not at all). Unreadable images are reported and
left out of the reference. Videos in DATA are skipped (the reference is of image scores).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import warnings
from pathlib import Path
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "calibrate", help="compute a model's reference distribution of scores (percentiles) on your images",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", metavar="MODEL", help="model folder (or alias / Hub id with --output)")
    parser.add_argument("data", nargs="+", metavar="DATA", help="image files, folders, or a CSV/TSV/JSONL image list")
    parser.add_argument("--output", "-o", metavar="DIR", help="write a calibrated copy of the model here instead of "
                        "updating MODEL in place")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty --output folder")
    parser.add_argument("--source", help="how the card names the reference set (default: the DATA paths)")
    parser.add_argument("--exact-limit", type=int, default=None, metavar="N",
                        help="keep every sorted score (exact percentiles) for up to N images (default 2000)")
    parser.add_argument("--user", metavar="PROFILE.json", help="user profile for personalized (P) models")
    parser.add_argument("--comments", metavar="FILE", help="comments for M models (as in aesmamba score)")
    parser.add_argument("--batch-size", type=int, default=8, help="images per model call (default 8)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default=None, help="default: cuda if available")
    parser.add_argument("--workers", type=int, default=2, help="threads decoding images (default 2, 0 = none)")
    parser.add_argument("--all-files", action="store_true", help="in folders, try every file")
    parser.add_argument("--random-weights", action="store_true", help="accept a model marked as holding random "
                        "weights (its reference is meaningless)")
    parser.set_defaults(func=run)


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def reference_examples(data: list[str], all_files: bool = False) -> tuple[list[dict[str, Any]], int]:
    """Examples ``{"image": path[, "comment"]}`` of DATA (files, folders, image lists) and how many videos
    were skipped."""
    from ..inference.files import TABLE_EXTENSIONS, is_video_path, iter_image_files, load_image_table

    examples: list[dict[str, Any]] = []
    plain = []
    for item in data:
        if os.path.isfile(item) and Path(item).suffix.lower() in TABLE_EXTENSIONS:
            examples += load_image_table(item)
        else:
            plain.append(item)
    files = iter_image_files(plain, all_files=all_files) if plain else []
    videos = sum(map(is_video_path, files))
    examples += [{"image": path} for path in files if not is_video_path(path)]
    return examples, videos


def _check_target(args: argparse.Namespace) -> None:
    from ..io_utils import check_new_output_dir

    if args.output:
        check_new_output_dir(args.output, overwrite=args.overwrite, what="--output", how="pass --overwrite")
    elif not os.path.isfile(os.path.join(args.model, "config.json")):
        raise ValueError(f"{args.model} is not a local model folder: give --output DIR to write a calibrated copy")


def _write_copy(loaded: Any, output: str, reference: dict[str, Any], overwrite: bool) -> None:
    """A calibrated copy of the model in ``output`` (built aside, renamed into place)."""
    from ..evaluation.calibration import write_score_reference
    from ..io_utils import atomic_output_dir

    with atomic_output_dir(output, overwrite=overwrite) as staging:
        if os.path.isdir(loaded.source):
            shutil.copytree(loaded.source, staging, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns(".*"))
        else:
            loaded.model.save_pretrained(staging)
            loaded.processor.save_pretrained(staging)
        write_score_reference(staging, reference)


def run(args: argparse.Namespace) -> int:
    from ..evaluation.calibration import (
        EXACT_LIMIT,
        compute_score_reference,
        describe_reference,
        write_score_reference,
    )
    from ..inference.files import find_comment, text_inputs
    from ..inference.loading import LoaderWarning, ModelLoadError, load_model

    if args.batch_size < 1:
        return _fail("--batch-size must be >= 1")
    try:
        _check_target(args)
        examples, videos = reference_examples(args.data, args.all_files)
        if not examples:
            return _fail(f"no images found in {' '.join(args.data)}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LoaderWarning)
            loaded = load_model(args.model, device=args.device, allow_random=args.random_weights)
        for note in loaded.notes:
            print(f"WARNING: {note}", file=sys.stderr)
        user, comments, notes = text_inputs(loaded.config, loaded.processor, args.user, args.comments,
                                            model_name=args.model)
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
    except (ValueError, ModelLoadError, OSError) as err:
        return _fail(str(err))
    if videos:
        print(f"note: {videos} video file(s) skipped: the reference is of image scores", file=sys.stderr)
    for example in examples:
        if user is not None:
            example["user"] = user
        if comments and "comment" not in example:
            example["comment"] = find_comment(comments, example["image"], args.data)
    print(f"scoring {len(examples)} reference image(s) with {loaded.source}", file=sys.stderr)
    predictor = loaded.predictor(batch_size=args.batch_size, decode_workers=args.workers)
    failures: dict[int, str] = {}
    try:
        reference = compute_score_reference(
            predictor, examples, source=args.source or ", ".join(args.data),
            exact_limit=EXACT_LIMIT if args.exact_limit is None else args.exact_limit, failures=failures,
            progress=lambda done: print(f"  {done}/{len(examples)}", file=sys.stderr))
    except ValueError as err:
        return _fail(str(err))
    finally:
        predictor.close()
    if failures:
        print(f"{len(failures)} unreadable image(s), left out of the reference:", file=sys.stderr)
        for index, reason in sorted(failures.items()):
            print(f"  {examples[index]['image']}: {reason}", file=sys.stderr)
    try:
        if args.output:
            _write_copy(loaded, args.output, reference, args.overwrite)
        else:
            write_score_reference(args.model, reference)
    except (ValueError, OSError) as err:
        return _fail(str(err))
    print("\n".join(describe_reference(reference)))
    print(f"score reference written to {os.path.join(args.output or args.model, 'config.json')}", file=sys.stderr)
    return 0


__all__ = ["reference_examples", "register", "run"]
