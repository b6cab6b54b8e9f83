"""Scoring image collections with Ray Data: one model per actor, results committed shard by shard.

Two pieces:

* :class:`BatchScorer`, a callable class for ``ray.data.Dataset.map_batches`` (one instance per actor: the
  model and processor are loaded once, through :func:`~aesmamba_hf.inference.loading.load_model`) that also
  serves ``datasets.Dataset.map(batched=True)`` on one machine. A batch of image cells (encoded bytes, paths,
  ``{"bytes", "path"}`` structs or PIL images) becomes rows ``key, status, error, score, ...``: the fields of
  :func:`~aesmamba_hf.inference.predictor.format_predictions`, flattened; an image that cannot be read is a
  row with ``status="error"`` and the reason, never a failed task.
* :func:`run_job`, the driver behind ``aesmamba score --engine ray``: it cuts the inputs into units
  (:mod:`aesmamba_hf.data.sources`), streams them through read tasks and an actor pool, and commits each
  unit's rows as one Parquet shard (:mod:`aesmamba_hf.inference.shards`) once all of them have arrived. A
  rerun skips committed shards; rows of a retried task are de-duplicated by their place in the unit, so every
  input is written exactly once even when a worker dies mid-job (Ray restarts the actor and retries the task).

Sizing (:func:`size_pool`): actors and their threads come from the CPUs/GPUs Ray reports, after setting
aside CPU for the read tasks: an actor pool that takes every CPU leaves the read tasks unscheduled and the
job stalls without an error.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

import numpy as np

from .predictor import Predictions, overall_head_index

KEY, STATUS, ERROR, KEEP = "key", "status", "error", "keep"
SHARD_COLUMN, ROW_COLUMN = "_shard", "_row"  # where a row belongs; dropped before a shard is written
MODEL_CONSTANTS = ("score_range", "higher_is_better")  # the same for every row: kept in _job.json, not per row
READ_CPUS_PER_TASK = 0.25


# -- rows ----------------------------------------------------------------------------------------------


def head_by_name(config: Any, name: Optional[str]) -> dict[str, Any]:
    """The head called ``name`` (default: the one reported as ``score``)."""
    if name is None:
        return config.heads[overall_head_index(config)]
    for head in config.heads:
        if head["name"] == name:
            return head
    raise ValueError(f"--head {name!r} is not a head of this model; its heads are {[h['name'] for h in config.heads]}")


def check_threshold(config: Any, head_name: Optional[str], min_score: float) -> dict[str, Any]:
    """The head a ``--min-score`` applies to; a threshold outside the head's score range is refused (it would
    keep or drop every image). The range is the head's ``score_range`` in the model config."""
    head = head_by_name(config, head_name)
    low, high = (float(v) for v in head["score_range"])
    if not (math.isfinite(min_score) and low <= min_score <= high):
        raise ValueError(f"--min-score {min_score:g} is outside the score range of head {head['name']!r}, "
                         f"[{low:g}, {high:g}]: it would keep or drop every image; pick a value in that range")
    return head


def keep_decision(record: Mapping[str, Any], head: Mapping[str, Any], min_score: float) -> bool:
    """Whether a result row passes the threshold (at least as good as ``min_score`` on ``head``)."""
    if record.get(STATUS) != "ok":
        return False
    score = record["heads"][head["name"]]["score"]
    return bool(score >= min_score if head.get("higher_is_better", True) else score <= min_score)


def flatten_record(config: Any, record: Mapping[str, Any], with_distribution: bool = False) -> dict[str, Any]:
    """One :func:`format_predictions` record as flat columns: every per-image scalar field at the top level,
    ``<field>_<head>`` for each head of a multi-head model (``score_<head>``), ``p_<bin>`` optionally.
    Fields added to ``format_predictions`` later flow through unchanged."""
    row: dict[str, Any] = {}
    for name, value in record.items():
        if name in ("heads", "distribution", STATUS, ERROR) or name in MODEL_CONSTANTS:
            continue
        if not isinstance(value, (list, dict)):
            row[name] = value
    if len(config.heads) > 1:
        for head_name, head in record.get("heads", {}).items():
            for name, value in head.items():
                if name not in MODEL_CONSTANTS and not isinstance(value, (list, dict)):
                    row[f"{name}_{head_name}"] = value
    distribution = record.get("distribution")
    if with_distribution and distribution:
        for value, probability in zip(distribution["bins"], distribution["probabilities"]):
            row[f"p_{value:g}"] = probability
    return row


def _sample_record(config: Any) -> dict[str, Any]:
    """The record of one all-zero prediction: which fields this model's rows have, and their types."""
    dist = config.distribution_head
    class_heads = [h for h in config.heads if h.get("num_scale_classes", 0)]
    sample = Predictions(
        np.zeros((1, config.num_heads), np.float32),
        np.full((1, dist["num_bins"]), 1.0 / dist["num_bins"], np.float32) if dist else None,
        np.zeros((1, len(class_heads), class_heads[0]["num_scale_classes"]), np.float32) if class_heads else None,
    )
    return sample.records(config)[0]


def output_schema(config: Any, *, with_distribution: bool = False, with_keep: bool = False) -> Any:
    """The ``pyarrow`` schema of result rows: ``key, status, error``, the flattened record fields (a field
    that is ``None`` for this model, such as ``scale_class`` without a class branch, is left out) and ``keep``."""
    import pyarrow as pa

    types = {bool: pa.bool_(), int: pa.int64(), float: pa.float64(), str: pa.string()}
    fields = [pa.field(KEY, pa.string()), pa.field(STATUS, pa.string()), pa.field(ERROR, pa.string())]
    for name, value in flatten_record(config, _sample_record(config), with_distribution).items():
        if value is not None:
            fields.append(pa.field(name, types.get(type(value), pa.string())))
    if with_keep:
        fields.append(pa.field(KEEP, pa.bool_()))
    return pa.schema(fields)


# -- the per-actor callable ----------------------------------------------------------------------------


def _as_columns(batch: Any) -> dict[str, list]:
    """A batch from Ray (``pyarrow.Table``, dict of numpy arrays) or ``datasets`` (dict of lists) as lists."""
    if hasattr(batch, "to_pydict"):
        return batch.to_pydict()
    return {name: values.tolist() if isinstance(values, np.ndarray) else list(values) for name, values in batch.items()}


class BatchScorer:
    """Score a batch of rows: ``{image_column: [...], key_column: [...]}`` → result columns.

    Args:
        model: a model folder, variant alias or Hub id (loaded here, once: one instance per Ray actor), or an
            already loaded :class:`~aesmamba_hf.inference.loading.LoadedModel`.
        batch_size: images per forward pass (a Ray/datasets batch may be larger; it is split).
        device: ``cpu``/``cuda`` (default: CUDA when available).
        decode_workers: threads decoding images inside this actor.
        threads: torch threads of this process (default: leave torch's setting).
        allow_random: accept a model marked as holding random weights (``--random-weights``).
        adapter: a per-user adapter folder merged into the model (``--adapter``; see ``load_model``).
        dtype: weights precision, ``float32`` (default) or ``bfloat16`` (``--dtype``).
        clamp: report a score outside its head's range at the nearest end of it (``--clamp``).
        image_column, key_column: input columns (a missing key column gives no ``key`` output).
        error_column: an input column holding a reason the image could not even be read (``None`` if fine).
        passthrough: input columns copied to the output unchanged.
        with_distribution: add ``p_<bin>`` columns for a distribution head.
        head, min_score: add ``keep`` (``status`` ok and at least as good as ``min_score`` on ``head``).
        as_arrow: return a ``pyarrow.Table`` typed by :func:`output_schema` (default; Ray and ``datasets`` both
            take it, and a first batch of only errors still has typed score columns) or a dict of lists.

    ``datasets`` on one machine: ``ds.map(BatchScorer("aesmamba-v-ava"), batched=True, batch_size=32)``; cast an
    ``Image`` column to ``Image(decode=False)`` first so that a broken file is an error row, not an exception
    inside ``datasets``' decoding. Pickling an instance (``num_proc`` > 1, ``datasets``' fingerprint) carries
    its arguments, not the model: each process loads its own copy.
    """

    def __init__(self, model: Any, *, batch_size: int = 32, device: Optional[str] = None, decode_workers: int = 2,
                 threads: Optional[int] = None, allow_random: bool = False, image_column: str = "image",
                 key_column: str = "key", error_column: Optional[str] = None, passthrough: Sequence[str] = (),
                 with_distribution: bool = False, head: Optional[str] = None, min_score: Optional[float] = None,
                 as_arrow: bool = True, adapter: Optional[str] = None, dtype: str = "float32",
                 clamp: bool = False):
        from .loading import LoadedModel, load_model

        self._arguments = dict(batch_size=batch_size, device=device, decode_workers=decode_workers, threads=threads,
                               allow_random=allow_random, adapter=adapter, dtype=dtype, clamp=clamp,
                               image_column=image_column, key_column=key_column,
                               error_column=error_column, passthrough=tuple(passthrough),
                               with_distribution=with_distribution, head=head, min_score=min_score, as_arrow=as_arrow)
        self._model_argument = model
        if threads:
            import torch

            torch.set_num_threads(int(threads))
        loaded = model if isinstance(model, LoadedModel) else load_model(
            model, device=device, allow_random=allow_random, adapter=adapter, dtype=dtype)
        self.clamp = clamp
        self.config = loaded.config
        self.predictor = loaded.predictor(batch_size=batch_size, decode_workers=decode_workers)
        self.image_column, self.key_column, self.error_column = image_column, key_column, error_column
        self.passthrough = tuple(passthrough)
        self.with_distribution = with_distribution
        self.head = check_threshold(self.config, head, min_score) if min_score is not None else None
        self.min_score = min_score
        self.schema = output_schema(self.config, with_distribution=with_distribution,
                                    with_keep=min_score is not None)

    def __reduce__(self):
        return (_rebuild_scorer, (type(self), self._model_argument, self._arguments))

    def _row(self, key: Any, record: Mapping[str, Any]) -> dict[str, Any]:
        row = {KEY: None if key is None else str(key), STATUS: record[STATUS], ERROR: record.get(ERROR)}
        if record[STATUS] == "ok":
            row.update(flatten_record(self.config, record, self.with_distribution))
        if self.head is not None:
            row[KEEP] = keep_decision(record, self.head, self.min_score)
        return row

    def __call__(self, batch: Any) -> Any:
        columns = _as_columns(batch)
        if self.image_column not in columns:
            raise KeyError(f"the batch has no image column {self.image_column!r} (columns: {sorted(columns)})")
        images = columns[self.image_column]
        keys = columns.get(self.key_column) or [None] * len(images)
        read_errors = columns.get(self.error_column, [None] * len(images)) if self.error_column else [None] * len(images)
        readable = [i for i, reason in enumerate(read_errors) if not reason]
        cells = [{"bytes": images[i]} if isinstance(images[i], (bytes, bytearray)) else images[i] for i in readable]
        records: list[Mapping[str, Any]] = [{STATUS: "error", ERROR: reason} for reason in read_errors]
        if cells:
            scored = self.predictor.predict_examples([{"image": cell} for cell in cells]).records(
                self.config, clamp=self.clamp)
            for i, record in zip(readable, scored):
                records[i] = record
        rows = [self._row(key, record) for key, record in zip(keys, records)]
        names = [n for n in self.schema.names if n != KEY or self.key_column in columns]
        out = {name: [row.get(name) for row in rows] for name in names}
        for name in self.passthrough:
            out[name] = columns[name]
        if not self.as_arrow:
            return out
        import pyarrow as pa

        table = pa.Table.from_pydict({n: out[n] for n in names}, schema=pa.schema([self.schema.field(n) for n in names]))
        for name in self.passthrough:
            table = table.append_column(name, pa.array(out[name]))
        return table

    @property
    def as_arrow(self) -> bool:
        return bool(self._arguments["as_arrow"])

    def close(self) -> None:
        self.predictor.close()


def _rebuild_scorer(cls: type, model: Any, arguments: dict[str, Any]) -> BatchScorer:
    return cls(model, **arguments)


# -- sizing --------------------------------------------------------------------------------------------


@dataclass
class PoolSize:
    """How a job uses the cluster: ``actors`` scorers of ``cpus_per_actor`` CPUs (``threads`` torch threads)
    and ``gpus_per_actor`` GPUs each, with ``read_cpus`` CPUs left to the read tasks."""

    actors: int
    cpus_per_actor: float
    threads: int
    gpus_per_actor: float
    read_cpus: float
    cpus: float
    gpus: float


def size_pool(resources: Mapping[str, float], actors: Optional[int] = None, use_gpu: bool = True) -> PoolSize:
    """Actors and their share of the CPUs/GPUs Ray reports (``ray.available_resources()``).

    An eighth of the CPUs (at least half a CPU) is left to the read tasks. Without GPUs there is one actor per
    remaining whole CPU (one torch thread each: the per-core rate is what scales); with GPUs, one actor per GPU
    unless ``actors`` asks for more (each then gets a fraction, like NeMo Curator's 0.25 GPU per actor).
    """
    cpus = float(resources.get("CPU", 0.0))
    gpus = float(resources.get("GPU", 0.0)) if use_gpu else 0.0
    if cpus < 1:
        raise ValueError(f"the Ray cluster reports {cpus:g} free CPUs; scoring needs at least 1")
    if actors is not None and actors < 1:
        raise ValueError(f"--actors must be >= 1, got {actors}")
    read_cpus = max(0.5, cpus / 8)
    free = cpus - read_cpus
    if actors is None:
        actors = max(1, int(gpus)) if gpus >= 1 else max(1, int(free))
    cpus_per_actor = free / actors
    if cpus_per_actor < 0.1:
        raise ValueError(f"--actors {actors} leaves {cpus_per_actor:.2f} CPU per actor on a cluster with {cpus:g} "
                         f"free CPUs; use at most {int(free / 0.1)} actors")
    gpus_per_actor = gpus / actors if gpus >= 1 else 0.0
    return PoolSize(actors, round(cpus_per_actor, 3), max(1, int(cpus_per_actor)), round(gpus_per_actor, 3),
                    read_cpus, cpus, gpus)


# -- the job -------------------------------------------------------------------------------------------


@dataclass
class JobOptions:
    """Everything that defines a scoring job (stored in ``_job.json``: a rerun must match it)."""

    inputs: list[str]
    model: str
    output: str
    input_format: str = "auto"
    image_column: str = "image"
    key_column: str = "key"
    split: Optional[str] = None
    shard_size: int = 1000
    batch_size: int = 32
    head: Optional[str] = None
    min_score: Optional[float] = None
    kept_only: bool = False
    with_distribution: bool = False
    all_files: bool = False
    adapter: Optional[str] = None
    dtype: str = "float32"
    clamp: bool = False
    # how, not what: not part of the job's identity
    actors: Optional[int] = None
    address: Optional[str] = None
    device: Optional[str] = None
    decode_workers: int = 2
    allow_random: bool = False

    HOW = ("actors", "address", "device", "decode_workers", "allow_random")
    ADDED_LATER = {"adapter": None, "dtype": "float32", "clamp": False}

    def identity(self, model_source: str) -> dict[str, Any]:
        settings = {k: v for k, v in asdict(self).items() if k not in self.HOW and k != "output"}
        settings["inputs"] = [os.path.abspath(p) if os.path.exists(p) else p for p in self.inputs]
        settings["model"] = model_source
        if self.adapter is not None:
            settings["adapter"] = os.path.abspath(self.adapter)
        for name, default in self.ADDED_LATER.items():  # absent from older jobs' _job.json: they still resume
            if settings[name] == default:
                del settings[name]
        return settings


@dataclass
class JobSummary:
    output: str
    shards: int
    skipped_shards: int
    committed_shards: int
    inputs: int
    ok: int = 0
    errors: int = 0
    kept: int = 0
    seconds: float = 0.0
    pool: Optional[PoolSize] = None
    notes: list[str] = field(default_factory=list)
    error_examples: list[tuple[str, str]] = field(default_factory=list)


def start_ray(address: Optional[str] = None) -> bool:
    """Connect to ``address`` or start a local cluster (offline: no dashboard, no usage reporting). Returns
    whether this call started the connection (and so should end it)."""
    import ray

    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(address=address or "local", include_dashboard=False, logging_level=logging.WARNING,
             log_to_driver=True, configure_logging=True)
    return True


def _read_units(batch: Any, image_column: str, key_column: str, split: Optional[str]) -> Any:
    """Ray read task: units (one JSON per row) → rows with their shard and place in it."""
    import pyarrow as pa

    from ..data.sources import InputUnit, read_unit

    tables = []
    for text in _as_columns(batch)["unit"]:
        unit = InputUnit.from_dict(json.loads(text))
        columns = read_unit(unit, image_column=image_column, key_column=key_column, split=split)
        n = len(columns["key"])
        tables.append(pa.table({SHARD_COLUMN: pa.array([unit.shard] * n, pa.int64()),
                                ROW_COLUMN: pa.array(range(n), pa.int64()), "key": pa.array(columns["key"], pa.string()),
                                "image": pa.array(columns["image"], pa.binary()),
                                "read_error": pa.array(columns["read_error"], pa.string())}))
    return pa.concat_tables(tables)


class _ShardCollector:
    """Rows arriving in any order, grouped per shard; a shard is handed over once all its rows are in."""

    def __init__(self, sizes: Mapping[int, int]):
        self.sizes = dict(sizes)
        self.parts: dict[int, list] = {}
        self.seen: dict[int, set[int]] = {}

    def add(self, table: Any) -> tuple[int, list[tuple[int, Any]]]:
        """Add a result table; returns (new unique rows, [(shard, table of its rows in order)] completed)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        new, done = 0, []
        for shard in pc.unique(table.column(SHARD_COLUMN)).to_pylist():
            part = table.filter(pc.equal(table.column(SHARD_COLUMN), shard))
            seen = self.seen.setdefault(shard, set())
            keep = []
            for index, row in enumerate(part.column(ROW_COLUMN).to_pylist()):
                if row not in seen:  # a retried task can deliver a row twice: the first copy wins
                    seen.add(row)
                    keep.append(index)
            new += len(keep)
            self.parts.setdefault(shard, []).append(part.take(keep))
            if len(seen) == self.sizes.get(shard, -1):
                whole = pa.concat_tables(self.parts.pop(shard)).sort_by(ROW_COLUMN)
                done.append((shard, whole.drop_columns([SHARD_COLUMN, ROW_COLUMN])))
                del self.seen[shard]
        return new, done


def check_model(model: str, allow_random: bool = False) -> tuple[str, Any, list[str]]:
    """The driver's look at the model before any work: ``(source, config, notes)``. Its config, random-weights
    mark and weight files are checked; the weights are not loaded (each actor loads its own copy)."""
    from .loading import inspect_model, random_weights_banner

    source, folder, config, random_weights = inspect_model(model, allow_random=allow_random)
    notes = [random_weights_banner(source)] if random_weights else []
    if folder is not None:
        source = os.path.abspath(source)
    return source, config, notes


def run_job(options: JobOptions, *, progress: bool = True,
            on_commit: Optional[Callable[[dict[str, Any]], None]] = None) -> JobSummary:
    """Score ``options.inputs`` into the Parquet folder ``options.output`` (resumable; see the module docstring)."""
    from ..data.sources import plan_units
    from .precision import resolve_dtype
    from .shards import ShardStore

    started = time.perf_counter()
    if options.batch_size < 1 or options.shard_size < 1:
        raise ValueError("--batch-size and --shard-size must be >= 1")
    if options.kept_only and options.min_score is None:
        raise ValueError("--kept-only needs --min-score")
    if options.adapter is not None and not os.path.isdir(options.adapter):
        raise ValueError(f"--adapter {options.adapter} is not a folder (an adapter saved by aesmamba personalize)")
    resolve_dtype(options.dtype)  # a bad name fails here, not in every actor
    model_source, config, notes = check_model(options.model, options.allow_random)
    if options.min_score is not None:
        check_threshold(config, options.head, options.min_score)
    elif options.head is not None:
        head_by_name(config, options.head)
    store = ShardStore(options.output)
    plan = [u.to_dict() for u in plan_units(options.inputs, kind=options.input_format, shard_size=options.shard_size,
                                            image_column=options.image_column, split=options.split,
                                            all_files=options.all_files, exclude=options.output)]
    identity = options.identity(model_source)
    identity["score_ranges"] = {h["name"]: list(h["score_range"]) for h in config.heads}
    reference = getattr(config, "score_reference", None)
    if reference:  # percentiles come from it: a recalibrated model is another job
        identity["score_reference"] = hashlib.sha256(json.dumps(reference, sort_keys=True).encode()).hexdigest()[:16]
    plan = store.open(identity, plan)
    notes += store.notes
    todo = [u for u in plan if u["shard"] not in store.committed]
    summary = JobSummary(options.output, len(plan), len(plan) - len(todo), 0,
                         sum(_unit_size(u) for u in todo), notes=notes)
    if todo:
        _run_units(options, model_source, todo, store, summary, progress, on_commit)
    summary.seconds = time.perf_counter() - started
    return summary


def _unit_size(unit: Mapping[str, Any]) -> int:
    return len(unit["files"]) if unit["kind"] == "images" else unit["stop"] - unit["start"]


def _run_units(options: JobOptions, model_source: str, todo: list[dict[str, Any]], store: Any, summary: JobSummary, progress: bool,
               on_commit: Optional[Callable[[dict[str, Any]], None]]) -> None:
    import ray
    from tqdm.auto import tqdm

    started_here = start_ray(options.address)
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # block-level INFO lines would bury the progress bar
    try:
        ray.data.DataContext.get_current().enable_progress_bars = False  # ours below counts rows, not blocks
        use_gpu = options.device != "cpu"
        pool = size_pool(ray.available_resources() or ray.cluster_resources(), options.actors, use_gpu)
        summary.pool = pool
        device = "cuda" if pool.gpus_per_actor > 0 else "cpu"
        units = ray.data.from_items([{"unit": json.dumps(u)} for u in todo], override_num_blocks=len(todo))
        rows = units.map_batches(_read_units, batch_size=1, batch_format="pyarrow", num_cpus=READ_CPUS_PER_TASK,
                                 fn_kwargs=dict(image_column=options.image_column, key_column=options.key_column,
                                                split=options.split))
        scored = rows.map_batches(
            BatchScorer, batch_size=options.batch_size, batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=pool.actors), num_cpus=pool.cpus_per_actor,
            num_gpus=pool.gpus_per_actor or None,
            fn_constructor_args=(model_source,),
            fn_constructor_kwargs=dict(batch_size=options.batch_size, device=device,
                                       decode_workers=options.decode_workers, threads=pool.threads,
                                       allow_random=options.allow_random, error_column="read_error",
                                       passthrough=(SHARD_COLUMN, ROW_COLUMN), with_distribution=options.with_distribution,
                                       head=options.head, min_score=options.min_score, as_arrow=True,
                                       adapter=options.adapter and os.path.abspath(options.adapter),
                                       dtype=options.dtype, clamp=options.clamp))
        collector = _ShardCollector({u["shard"]: _unit_size(u) for u in todo})
        bar = tqdm(total=summary.inputs, unit="img", desc=f"scoring ({pool.actors} actors)", file=sys.stderr,
                   disable=not progress)
        try:
            for table in scored.iter_batches(batch_size=None, batch_format="pyarrow"):
                new, completed = collector.add(table)
                bar.update(new)
                for shard, whole in completed:
                    _commit(store, shard, whole, options, summary, on_commit)
                    _pause_for_crash_tests(summary.committed_shards)
                    bar.set_postfix(shards=f"{summary.committed_shards + summary.skipped_shards}/{summary.shards}")
        finally:
            bar.close()
        missing = sorted(collector.sizes.keys() - store.committed.keys())
        if missing:
            raise RuntimeError(f"{len(missing)} shard(s) did not receive all their rows (first: {missing[:5]}); "
                               "rerun the same command to finish them")
    finally:
        if started_here:
            ray.shutdown()


PAUSE_ENV = "AESMAMBA_RAY_PAUSE_AFTER_COMMITS"


def _pause_for_crash_tests(committed: int) -> None:
    """With ``AESMAMBA_RAY_PAUSE_AFTER_COMMITS=N`` the driver stops for good after its N-th commit, so that a
    test can kill it at a known point (a timed kill races the job on a loaded machine)."""
    pause_after = os.environ.get(PAUSE_ENV)
    if pause_after and committed == int(pause_after):
        while True:
            time.sleep(3600)


def _commit(store: Any, shard: int, table: Any, options: JobOptions, summary: JobSummary,
            on_commit: Optional[Callable[[dict[str, Any]], None]]) -> None:
    import pyarrow.compute as pc

    inputs = table.num_rows
    ok = int(pc.sum(pc.equal(table.column(STATUS), "ok")).as_py() or 0)
    kept = int(pc.sum(table.column(KEEP)).as_py() or 0) if KEEP in table.column_names else None
    if ok < inputs and len(summary.error_examples) < 20:
        errors = table.filter(pc.equal(table.column(STATUS), "error"))
        summary.error_examples += list(zip(errors.column(KEY).to_pylist(), errors.column(ERROR).to_pylist()))
        del summary.error_examples[20:]
    if options.kept_only:
        table = table.filter(table.column(KEEP))
    entry = store.commit(shard, table, inputs, ok=ok, errors=inputs - ok, kept=kept)
    summary.committed_shards += 1
    summary.ok += ok
    summary.errors += inputs - ok
    summary.kept += kept or 0
    if on_commit is not None:
        on_commit(entry)


__all__ = ["BatchScorer", "JobOptions", "JobSummary", "PoolSize", "check_model", "check_threshold", "flatten_record",
           "head_by_name", "keep_decision", "output_schema", "run_job", "size_pool", "start_ray"]
