"""``aesmamba score PATH... --model M --output out.csv|out.jsonl``: score image files and folders.

* folders are walked recursively (sorted, hidden entries skipped); only files with an image extension are
  taken from folders (``--all-files`` tries every file); files named on the command line are always tried;
* unreadable files (truncated, empty, not an image, decompression bombs, ...) are reported, written to the
  output with ``status=error`` and their reason, and listed at the end; the rest is scored;
* results are appended batch by batch, each batch as complete lines in one write followed by flush+fsync;
  a torn last line left by a crash is cut off on the next run;
* re-running with the same ``--output`` resumes: files already in the output are skipped (``--retry-errors``
  drops the error rows once, atomically, and tries those files again); the model and settings (--adapter,
  --dtype, --clamp, video sampling) are recorded in ``<output>.settings.json`` and a rerun with others is refused;
* videos (.mp4, .mov, .mkv, .webm, ...; needs PyAV) are scored on sampled frames (``--frames N``, default 8, or
  ``--every-seconds S``): one row per frame (``frame``, ``time``) and an aggregate row (``frame=aggregate``,
  ``--aggregate`` picks its ``score``); an unreadable video is an error row;
* a model carrying a score reference (``aesmamba calibrate``) adds ``percentile`` columns.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from typing import Any

from ..inference.files import (
    IMAGE_EXTENSIONS,
    find_comment,
    is_video_path,
    iter_image_files,
    load_comments,
    text_inputs,
)
from ..inference.loading import LEGACY_RANDOM_WEIGHTS_MARKER as RANDOM_WEIGHTS_MARKER
from ..inference.precision import CLI_DTYPES
from ..inference.results import ResultWriter, csv_columns, flatten_record, output_format
from ..io_utils import check_output_file
from .score_ray import add_ray_arguments, engine_flag_defaults, misplaced_flags, misplaced_message, run_ray

# -- command --------------------------------------------------------------------------------------------


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "score",
        help="score image files and folders into a CSV/JSONL file (resumable)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="image files and/or folders (walked recursively)")
    parser.add_argument("--model", "-m", required=True,
                        help="model folder, alias (aesmamba-v-ava, aesmamba-p, ...) or Hub repo id")
    parser.add_argument("--output", "-o", required=True, help="results file, .csv or .jsonl (appended, resumable)")
    parser.add_argument("--user", metavar="PROFILE.json", help="user profile for personalized (P) models")
    parser.add_argument("--comments", metavar="FILE",
                        help="comments for M models: CSV/TSV/JSON/JSONL mapping image (path, name or stem) to text")
    parser.add_argument("--batch-size", type=int, default=8, help="images per model call (default 8)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default=None, help="default: cuda if available")
    parser.add_argument("--dtype", choices=CLI_DTYPES, default=None,
                        help="weights precision (default float32; bfloat16 is faster only on CPUs with bf16 "
                        "instructions; the scan stays float32)")
    parser.add_argument("--workers", type=int, default=2, help="threads decoding images (default 2, 0 = none)")
    parser.add_argument("--all-files", action="store_true", help="in folders, try every file, not only image "
                        "extensions")
    parser.add_argument("--retry-errors", action="store_true", help="retry files recorded as errors")
    parser.add_argument("--random-weights", action="store_true",
                        help="accept a model marked as holding random weights (its scores are meaningless)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    _add_media_arguments(parser)
    add_ray_arguments(parser)
    parser.add_argument("--adapter", metavar="DIR", help="a per-user adapter (aesmamba personalize) applied to "
                        "--model; a P model then takes the adapter's profile.json unless --user is given")
    parser.set_defaults(func=run, flag_defaults=engine_flag_defaults(parser))


def _add_media_arguments(parser: argparse.ArgumentParser) -> None:
    """Videos (frames sampled and aggregated, see docs/video.md) and the score range (clamping)."""
    from ..inference.video import AGGREGATES

    group = parser.add_argument_group("videos and score ranges")
    sampling = group.add_mutually_exclusive_group()
    sampling.add_argument("--frames", type=int, metavar="N",
                          help="videos: score N frames spread uniformly over the video (default 8)")
    sampling.add_argument("--every-seconds", type=float, metavar="S", help="videos: score a frame every S seconds")
    group.add_argument("--aggregate", choices=AGGREGATES, default=None,
                       help="videos: the statistic of the frame scores in the aggregate row's score (default mean; "
                       "all three get their own columns)")
    group.add_argument("--clamp", action="store_true", help="report a score outside its head's score range at the "
                       "nearest end of the range (still flagged out_of_range)")


def _frame_sampling(args: argparse.Namespace) -> Any:
    from ..inference.video import FrameSampling

    return FrameSampling(frames=args.frames, every_seconds=args.every_seconds, aggregate=args.aggregate or "mean")


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _check_output(path: str) -> None:
    """Refuse an output that cannot be written before any model is loaded."""
    output_format(path)
    check_output_file(path, "--output")


def _text_inputs(args: argparse.Namespace, config: Any, processor: Any) -> tuple[Any, dict[str, str]]:
    """The ``--user``/``--comments`` of the command line, validated against the model (notes printed)."""
    user, comments, notes = text_inputs(config, processor, args.user, args.comments, model_name=args.model)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    return user, comments


def _summarise(args: argparse.Namespace, scored: int, failures: list, existing: list, comments: dict,
               matched: int) -> None:
    print(f"scored {scored} image(s), {len(failures)} unreadable; results in {args.output}", file=sys.stderr)
    if failures:
        print("unreadable files (recorded with status=error):", file=sys.stderr)
        for path, reason in failures:
            print(f"  {path}: {reason}", file=sys.stderr)
    attempted = scored + len(failures)
    if comments and attempted and matched == 0:
        print(f"WARNING: no image matched an entry of {args.comments}: every image was scored from the image "
              "alone (comments are matched by absolute path, path relative to a given folder, file name or stem)",
              file=sys.stderr)
    elif comments and matched < attempted:
        print(f"note: {matched} of {attempted} image(s) matched a comment in {args.comments}; the other "
              f"{attempted - matched} were scored from the image alone", file=sys.stderr)
    previous_errors = [row["path"] for row in existing if row.get("status") == "error"]
    if previous_errors:
        print(f"{len(previous_errors)} file(s) were already recorded as unreadable (--retry-errors to retry)",
              file=sys.stderr)


def _dtype_note(loaded: Any) -> None:
    from ..inference.precision import bf16_cpu_note

    note = bf16_cpu_note(loaded.model.dtype, loaded.model.device)
    if note:
        print(f"note: {note}", file=sys.stderr)


# -- resuming: the CSV columns and the settings of the rows already written ------------------------------


def _open_results(path: str, config: Any, videos: bool) -> tuple[ResultWriter, list[dict[str, Any]]]:
    """The writer and the rows already there. A CSV started with the video columns keeps them; one started
    without them gets them (rewritten atomically) when this run adds a video."""
    writer = ResultWriter(path, csv_columns(config, video=videos))
    header = writer.header()
    upgrade = videos and header == csv_columns(config, video=False)
    if header == csv_columns(config, video=True) or upgrade:
        writer.columns = csv_columns(config, video=not upgrade)
    existing = writer.read_existing()
    if writer.repaired:
        print(f"note: removed a partial last line from {path} (interrupted write)", file=sys.stderr)
    if upgrade:
        writer.columns = csv_columns(config, video=True)
        writer.rewrite(existing)
        print(f"note: added the video columns (frame, time, score_mean, ...) to {path}", file=sys.stderr)
    return writer, existing


def settings_path(output: str) -> str:
    return f"{output}.settings.json"


def _run_settings(args: argparse.Namespace, loaded: Any) -> dict[str, Any]:
    """What changes the rows of a run: two runs into one output must agree on it."""
    sampling = _frame_sampling(args)
    return {"model": os.path.abspath(loaded.source) if os.path.isdir(loaded.source) else str(loaded.source),
            "adapter": args.adapter and os.path.abspath(args.adapter), "dtype": args.dtype or "float32",
            "clamp": bool(args.clamp), "frames": sampling.frames, "every_seconds": sampling.every_seconds,
            "aggregate": sampling.aggregate}


def check_settings(output: str, settings: dict[str, Any]) -> None:
    """Refuse to append to ``output`` rows made with other settings (recorded in ``<output>.settings.json``,
    written with a new output). An output from before the sidecar existed resumes unchecked."""
    from ..io_utils import atomic_write_json

    sidecar = settings_path(output)
    has_rows = os.path.exists(output) and os.path.getsize(output) > 0
    if has_rows and os.path.isfile(sidecar):
        try:
            with open(sidecar, encoding="utf-8") as handle:
                stored = json.load(handle)
        except (OSError, ValueError) as err:
            raise ValueError(f"{sidecar} is unreadable ({err}); remove it to resume unchecked") from err
        different = [k for k in sorted(set(stored) | set(settings)) if stored.get(k) != settings.get(k)]
        if different:
            detail = "; ".join(f"{k}: {stored.get(k)!r} there, {settings.get(k)!r} now" for k in different)
            what = "a different model" if "model" in different else "other settings"
            raise ValueError(f"{output} holds rows scored with {what} ({detail}); rerun with the same model and "
                             "settings to resume, or use another --output")
    elif not has_rows:
        atomic_write_json(sidecar, settings)


def run(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from ..inference.loading import LoaderWarning, ModelLoadError, load_model
    from ..inference.predictor import Predictor
    from ..inference.video import media_rows, predict_media

    if args.batch_size < 1:
        return _fail("--batch-size must be >= 1")
    if misplaced_flags(args):
        return _fail(misplaced_message(args))
    if args.engine == "ray":
        return run_ray(args)
    try:
        sampling = _frame_sampling(args)
        _check_output(args.output)
        with warnings.catch_warnings():  # the notes are printed once, below, not also as Python warnings
            warnings.simplefilter("ignore", LoaderWarning)
            loaded = load_model(args.model, device=args.device, allow_random=args.random_weights,
                                adapter=args.adapter, dtype=args.dtype or "float32")
        if args.adapter and args.user is None and os.path.isfile(os.path.join(args.adapter, "profile.json")):
            args.user = os.path.join(args.adapter, "profile.json")
    except (ValueError, ModelLoadError) as err:
        return _fail(str(err))
    _dtype_note(loaded)
    for note in loaded.notes:
        print(f"WARNING: {note}", file=sys.stderr)
    config = loaded.config
    try:
        user, comments = _text_inputs(args, config, loaded.processor)
    except (ValueError, TypeError, OSError) as err:
        return _fail(str(err))

    output_path = os.path.abspath(args.output)
    files = [f for f in iter_image_files(args.paths, all_files=args.all_files) if f != output_path]
    try:
        check_settings(args.output, _run_settings(args, loaded))
        writer, existing = _open_results(args.output, config, any(map(is_video_path, files)))
    except ValueError as err:
        return _fail(str(err))
    if args.retry_errors and any(row.get("status") == "error" for row in existing):
        existing = writer.drop_errors(existing)
    done = {row["path"] for row in existing}
    todo = [f for f in files if f not in done]
    print(f"{len(files)} file(s) found; {len(files) - len(todo)} already in {args.output}; {len(todo)} to score "
          f"with {loaded.source} (task {config.task}, {config.dataset}) on {loaded.model.device}", file=sys.stderr)

    predictor = Predictor(loaded.model, loaded.processor, batch_size=args.batch_size, decode_workers=args.workers)
    failures: list[tuple[str, str]] = []
    scored = matched = 0
    progress = tqdm(total=len(todo), unit="img", desc="scoring", disable=True if args.no_progress else None,
                    file=sys.stderr)
    try:
        for start in range(0, len(todo), args.batch_size):
            batch = todo[start : start + args.batch_size]
            examples = [{"image": path, "user": user,
                         "comment": find_comment(comments, path, args.paths) if comments else None} for path in batch]
            matched += sum(e["comment"] is not None for e in examples)
            records = []
            for path, record in zip(batch, predict_media(predictor, examples, sampling, clamp=args.clamp)):
                records += media_rows(path, record)  # a video: one row per frame + its aggregate row
                if record["status"] == "error":
                    failures.append((path, record["error"]))
                    progress.write(f"unreadable: {path}: {record['error']}", file=sys.stderr)
                else:
                    scored += 1
            writer.append(records)  # complete rows of the whole batch, one write + fsync
            progress.update(len(batch))
    finally:
        progress.close()
        predictor.close()
    _summarise(args, scored, failures, existing, comments, matched)
    return 0


__all__ = ["IMAGE_EXTENSIONS", "RANDOM_WEIGHTS_MARKER", "ResultWriter", "csv_columns", "find_comment",
           "flatten_record", "iter_image_files", "load_comments", "output_format", "register", "run"]
