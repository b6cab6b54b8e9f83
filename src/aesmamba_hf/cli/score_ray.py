"""``aesmamba score --engine ray``: the arguments and the run of the Ray Data engine (not a subcommand of its
own: ``score`` registers these arguments and hands over when ``--engine ray`` is given)."""

from __future__ import annotations

import argparse
import sys

from ..data.sources import INPUT_KINDS

# flags of one engine only: given with the other engine they are refused (their defaults come from the parser)
RAY_ONLY = ("actors", "address", "input_format", "image_column", "key_column", "split", "shard_size", "min_score",
            "head", "kept_only", "with_distribution")
LOCAL_ONLY = ("user", "comments", "retry_errors", "frames", "every_seconds", "aggregate")  # videos: local only


def engine_flag_defaults(parser: argparse.ArgumentParser) -> dict[str, object]:
    """The parser's defaults of the engine-specific flags (stored in the parsed args as ``flag_defaults``)."""
    return {name: parser.get_default(name) for name in (*RAY_ONLY, *LOCAL_ONLY)}


def add_ray_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "scaling out (--engine ray)",
        "Ray Data engine: Parquet/webdataset/datasets inputs too, an actor pool on a local or existing cluster, "
        "--output is a folder of Parquet shards committed one by one (a rerun resumes; every input once). "
        "See docs/scaling.md.")
    group.add_argument("--engine", choices=["local", "ray"], default="local",
                       help="local: one process, CSV/JSONL output (default); ray: Ray Data, Parquet folder output")
    group.add_argument("--actors", type=int, help="scoring actors (default: sized from the CPUs/GPUs Ray reports)")
    group.add_argument("--address", help="an existing Ray cluster (default: start a local one for this command)")
    group.add_argument("--input-format", choices=("auto", *INPUT_KINDS), default="auto",
                       help="images, parquet, webdataset (.tar) or hf (datasets save_to_disk folder / Hub id); "
                       "default: detected per path")
    group.add_argument("--image-column", default="image", help="Parquet/datasets column with the image (bytes, a "
                       "path or {bytes, path}; default image; img2dataset Parquet: jpg)")
    group.add_argument("--key-column", default="key", help="Parquet/datasets column written as the output's key "
                       "(default key; without one, the row's place)")
    group.add_argument("--split", help="split of a datasets DatasetDict / Hub dataset")
    group.add_argument("--shard-size", type=int, default=1000, help="inputs per committed output shard (default 1000)")
    group.add_argument("--min-score", type=float, metavar="X", help="add keep = score of --head at least as good as X "
                       "(X must lie in the head's score range)")
    group.add_argument("--head", help="head for --min-score (default: the overall score's head)")
    group.add_argument("--kept-only", action="store_true", help="write only the rows kept by --min-score")
    group.add_argument("--with-distribution", action="store_true", help="add p_<bin> columns (distribution heads)")


def misplaced_flags(args: argparse.Namespace) -> list[str]:
    """Flags given that the chosen engine does not use."""
    other = RAY_ONLY if args.engine == "local" else LOCAL_ONLY
    defaults = getattr(args, "flag_defaults", {})
    return [f"--{name.replace('_', '-')}" for name in other
            if getattr(args, name, None) not in (defaults.get(name), False, None)]


def misplaced_message(args: argparse.Namespace) -> str:
    flags = misplaced_flags(args)
    video = {"--frames", "--every-seconds", "--aggregate"} & set(flags)
    return (f"{', '.join(flags)} cannot be used with --engine {args.engine}"
            + ("; videos are scored by the local engine (leave out --engine ray)" if video else ""))


def _ray_errors() -> tuple[type[BaseException], ...]:
    try:
        from ray.exceptions import RayError
    except ImportError:  # no Ray: run_job says so itself
        return ()
    return (RayError,)


def _last_line(err: BaseException) -> str:
    """A Ray task error carries the remote traceback; its last line is the error itself."""
    lines = [line for line in str(err).splitlines() if line.strip()]
    return lines[-1].strip() if lines else type(err).__name__


def run_ray(args: argparse.Namespace) -> int:
    from ..inference.loading import ModelLoadError
    from ..inference.ray_engine import JobOptions, run_job
    from ..inference.shards import ShardStoreError

    options = JobOptions(
        inputs=list(args.paths), model=args.model, output=args.output, input_format=args.input_format,
        image_column=args.image_column, key_column=args.key_column, split=args.split, shard_size=args.shard_size,
        batch_size=args.batch_size, head=args.head, min_score=args.min_score, kept_only=args.kept_only,
        with_distribution=args.with_distribution, all_files=args.all_files, actors=args.actors,
        address=args.address, device=args.device, decode_workers=args.workers, allow_random=args.random_weights,
        adapter=args.adapter, dtype=args.dtype or "float32", clamp=args.clamp)
    try:
        summary = run_job(options, progress=not args.no_progress)
    except _ray_errors() as err:  # first: a task error also subclasses the error it wraps (with a traceback)
        print(f"error: the Ray job failed: {_last_line(err)}\nrerun the same command to resume it "
              f"(committed shards in {args.output} are kept)", file=sys.stderr)
        return 1
    except (ValueError, ModelLoadError, ShardStoreError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except RuntimeError as err:  # the job ran but did not finish (e.g. shards missing rows)
        print(f"error: {err}", file=sys.stderr)
        return 1
    for note in summary.notes:
        print(f"note: {note}", file=sys.stderr)
    pool = summary.pool
    if pool is not None:
        print(f"pool: {pool.actors} actor(s) x {pool.cpus_per_actor:g} CPU ({pool.threads} thread(s))"
              + (f" x {pool.gpus_per_actor:g} GPU" if pool.gpus_per_actor else "")
              + f", {pool.read_cpus:g} CPU left to reads, on {pool.cpus:g} CPUs", file=sys.stderr)
    print(f"{summary.shards} shard(s): {summary.skipped_shards} already committed, {summary.committed_shards} "
          f"committed now ({summary.inputs} input(s): {summary.ok} scored, {summary.errors} unreadable"
          + (f", {summary.kept} kept" if args.min_score is not None else "")
          + f") in {summary.seconds:.1f} s; results in {args.output}", file=sys.stderr)
    for key, reason in summary.error_examples:
        print(f"  unreadable: {key}: {reason}", file=sys.stderr)
    return 0
