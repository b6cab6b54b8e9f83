"""An output folder of Parquet shards, committed one at a time, that a rerun resumes without duplicates.

Layout of ``OUT/``::

    _job.json              what the job is: its settings and its frozen plan of input units (written once)
    _manifest.jsonl        one line per committed shard (appended, fsynced)
    part-000000.parquet    the rows of unit 0, and so on

A shard is written to a hidden temporary name in ``OUT/``, fsynced, renamed to ``part-NNNNNN.parquet`` and
then recorded in the manifest. A committed shard is never written again. A crash can leave: a temporary
file (removed by the next run), or a renamed shard the manifest does not list yet (its rows are checked
against the plan and it is recorded, not rewritten). ``pyarrow.dataset`` and ``datasets.load_dataset
("parquet", data_dir=OUT)`` skip the ``_``/``.`` files, so ``OUT`` reads as one table.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..io_utils import atomic_open, check_output_dir

JOB_FILE = "_job.json"
MANIFEST_FILE = "_manifest.jsonl"
TEMP_PREFIX = ".part-"


class ShardStoreError(ValueError):
    """The output folder belongs to another job, or its files are inconsistent; the message says which."""


def shard_name(shard: int) -> str:
    return f"part-{shard:06d}.parquet"


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # not possible on every platform; the rename is still atomic
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ShardStore:
    """The committed state of one output folder (see the module docstring)."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        self.committed: dict[int, dict[str, Any]] = {}
        self.notes: list[str] = []

    # -- the job ---------------------------------------------------------------------------------------

    def open(self, settings: Mapping[str, Any], plan: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Start or resume the job; returns the plan to follow (the stored one when resuming).

        A folder started by a job with other settings (model, inputs, columns, head, shard size...) is
        refused: mixing two jobs' rows in one table is what this store exists to prevent.
        """
        check_output_dir(self.directory, "--output")
        self.directory.mkdir(parents=True, exist_ok=True)
        job_path = self.directory / JOB_FILE
        if job_path.exists():
            try:
                stored = json.loads(job_path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as err:
                raise ShardStoreError(f"{job_path} is unreadable ({err}); use another --output") from err
            different = sorted(k for k in set(settings) | set(stored["settings"])
                               if settings.get(k) != stored["settings"].get(k))
            if different:
                detail = "; ".join(f"{k}: {stored['settings'].get(k)!r} there, {settings.get(k)!r} now"
                                   for k in different)
                raise ShardStoreError(f"{self.directory} holds results of another job ({detail}); rerun with the "
                                      "same inputs and options to resume it, or use another --output")
            plan = stored["plan"]
        else:
            if any(self.directory.glob("part-*.parquet")):
                raise ShardStoreError(f"{self.directory} holds Parquet shards but no {JOB_FILE}; use another --output")
            with atomic_open(job_path) as handle:
                json.dump({"settings": dict(settings), "plan": plan}, handle)
        self._load_manifest()
        self._clean_and_recover({unit["shard"]: unit for unit in plan})
        return plan

    # -- the manifest ----------------------------------------------------------------------------------

    def _load_manifest(self) -> None:
        path = self.directory / MANIFEST_FILE
        self.committed = {}
        if not path.exists():
            return
        data = path.read_bytes()
        if data and not data.endswith(b"\n"):  # a torn last line: that commit is recovered from its file
            with open(path, "rb+") as handle:
                handle.truncate(data.rfind(b"\n") + 1)
            data = data[: data.rfind(b"\n") + 1]
        for number, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                self.committed[int(entry["shard"])] = entry
            except (ValueError, KeyError, TypeError) as err:
                raise ShardStoreError(f"{path}:{number}: not a manifest entry ({err}); remove that line and rerun "
                                      "(a shard file it recorded is then checked and recorded again)") from err

    def _append_manifest(self, entry: dict[str, Any]) -> None:
        with open(self.directory / MANIFEST_FILE, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        self.committed[int(entry["shard"])] = entry

    def _clean_and_recover(self, plan: Mapping[int, Mapping[str, Any]]) -> None:
        import pyarrow.parquet as pq

        for temp in self.directory.glob(f"{TEMP_PREFIX}*"):
            temp.unlink()
            self.notes.append(f"removed {temp.name}, a shard left half-written by an interrupted run")
        for path in sorted(self.directory.glob("part-*.parquet")):
            try:
                shard = int(path.name[len("part-") : -len(".parquet")])
            except ValueError:
                continue
            if shard in self.committed:
                continue
            if shard not in plan:
                raise ShardStoreError(f"{path} is not part of this job's plan; use another --output")
            try:
                metadata = pq.ParquetFile(path).metadata.to_dict()
            except (OSError, ValueError) as err:  # renamed only after an fsync: not expected; say so
                raise ShardStoreError(f"{path} is unreadable ({err}); remove it and rerun") from err
            user = {k.decode(): v.decode() for k, v in (pq.read_schema(path).metadata or {}).items()}
            self._append_manifest({"shard": shard, "file": path.name, "inputs": int(user.get("aesmamba_inputs", -1)),
                                   "rows": metadata["num_rows"], "recovered": True})
            self.notes.append(f"recorded {path.name}, committed by an interrupted run just before it stopped")

    # -- committing ------------------------------------------------------------------------------------

    def commit(self, shard: int, table: Any, inputs: int, **extra: Any) -> dict[str, Any]:
        """Write one shard (a ``pyarrow.Table``) atomically and record it; a committed shard is refused."""
        import pyarrow.parquet as pq

        if shard in self.committed:
            raise ShardStoreError(f"shard {shard} is already committed in {self.directory}")
        name = shard_name(shard)
        temp = self.directory / f"{TEMP_PREFIX}{shard:06d}-{os.getpid()}.tmp"
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), b"aesmamba_inputs": str(inputs)})
        try:
            pq.write_table(table, temp)
            with open(temp, "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(temp, self.directory / name)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        _fsync_dir(self.directory)
        entry = {"shard": shard, "file": name, "inputs": inputs, "rows": table.num_rows, **extra}
        self._append_manifest(entry)
        return entry


__all__ = ["JOB_FILE", "MANIFEST_FILE", "ShardStore", "ShardStoreError", "shard_name"]
