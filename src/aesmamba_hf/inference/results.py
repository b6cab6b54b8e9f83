"""Crash-tolerant, resumable result files of folder scoring (CSV or JSONL).

Rows are appended batch by batch, each batch as complete lines in one write followed by flush+fsync; a torn
last line left by a crash is cut off on the next run; values are written byte-exact (CSV quoting, never
rewriting: a path with two spaces, a tab or a newline comes back as it was, so a resume finds it).
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def output_format(path: str) -> str:
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    raise ValueError(f"--output must end in .csv or .jsonl, got {path!r}")


def csv_columns(config: Any, video: bool = False) -> list[str]:
    """The CSV header for ``config``'s results: ``percentile`` columns only for a model with a score reference,
    ``frame``/``time``/aggregate columns only when videos are scored (``video=True``)."""
    reference = (getattr(config, "score_reference", None) or {}).get("heads", {})
    columns = ["path", "status", "score", "scale_class"]
    if video:
        columns[1:1] = ["frame", "time"]
        columns += ["score_mean", "score_median", "score_trimmed_mean"]
    if reference:
        columns.append("percentile")
    if len(config.heads) > 1:
        for head in config.heads:
            columns.append(f"score_{head['name']}")
        columns += [f"percentile_{h['name']}" for h in config.heads if h["name"] in reference]
        if any(h.get("num_scale_classes", 0) for h in config.heads):
            columns += [f"class_{h['name']}" for h in config.heads if h.get("num_scale_classes", 0)]
    dist = next((h for h in config.heads if h["kind"] == "distribution"), None)
    if dist is not None:
        columns += [f"p_{value:g}" for value in dist["bin_values"]]
    return columns + ["error"]


class ResultWriter:
    """Append-only, crash-tolerant CSV/JSONL writer with resume support."""

    def __init__(self, path: str, columns: list[str]):
        self.path = path
        self.format = output_format(path)
        self.columns = columns
        self.repaired = False

    # reading what is there ------------------------------------------------------------------------------

    def _repair_tail(self) -> None:
        """Cut a torn last line (a crash during a write) so every remaining line is a complete row."""
        if not os.path.exists(self.path):
            return
        with open(self.path, "rb+") as handle:
            data = handle.read()
            if data and not data.endswith(b"\n"):
                handle.truncate(data.rfind(b"\n") + 1)
                self.repaired = True

    def read_existing(self) -> list[dict[str, Any]]:
        """Rows already written (after repairing a torn tail); checks the CSV header matches."""
        self._repair_tail()
        if not os.path.exists(self.path) or os.path.getsize(self.path) == 0:
            return []
        with open(self.path, encoding="utf-8", newline="") as handle:
            if self.format == "csv":
                reader = csv.DictReader(handle)
                if reader.fieldnames != self.columns:
                    raise ValueError(
                        f"{self.path} has columns {reader.fieldnames}, but this model writes {self.columns}; "
                        "use another --output (it was written by a different model)"
                    )
                return list(reader)
            rows = []
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as err:
                        raise ValueError(f"{self.path}:{number} is not valid JSON ({err})") from err
            return rows

    def header(self) -> list[str] | None:
        """The CSV header already in the file (``None``: no CSV, or nothing written yet)."""
        if self.format != "csv" or not os.path.exists(self.path) or os.path.getsize(self.path) == 0:
            return None
        with open(self.path, encoding="utf-8", newline="") as handle:
            return next(csv.reader(handle), None)

    def drop_errors(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Rewrite the file without its error rows (temp file + os.replace: atomic)."""
        kept = [row for row in rows if row.get("status") != "error"]
        self.rewrite(kept)
        return kept

    def rewrite(self, kept: list[dict[str, Any]]) -> None:
        """Replace the file by ``kept`` rows under the current columns (temp file + os.replace: atomic)."""
        directory = os.path.dirname(os.path.abspath(self.path))
        fd, tmp = tempfile.mkstemp(prefix=".aesmamba-score-", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
                if self.format == "csv":
                    handle.write(self._csv_lines([dict(row) for row in kept], header=True))
                else:
                    handle.write("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in kept))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    # writing --------------------------------------------------------------------------------------------

    def _csv_lines(self, records: list[dict[str, Any]], header: bool) -> str:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=self.columns, extrasaction="ignore", lineterminator="\n")
        if header:
            writer.writeheader()
        for record in records:
            writer.writerow(record)
        return buffer.getvalue()

    def append(self, records: list[dict[str, Any]]) -> None:
        """Append complete rows in one write, then flush and fsync."""
        if not records:
            return
        new_file = not os.path.exists(self.path) or os.path.getsize(self.path) == 0
        if self.format == "csv":
            text = self._csv_lines([flatten_record(r, self.columns) for r in records], header=new_file)
        else:
            text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        with open(self.path, "a", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())


def flatten_record(record: dict[str, Any], columns: list[str]) -> dict[str, Any]:
    """A JSON-style result record as one CSV row."""
    row = {"path": record["path"], "status": record["status"], "error": record.get("error", "")}
    for key in ("frame", "time"):  # a video's rows
        if key in columns and record.get(key) is not None:
            row[key] = record[key]
    if record["status"] == "ok":
        row["score"] = record["score"]
        row["scale_class"] = "" if record.get("scale_class") is None else record["scale_class"]
        if "percentile" in columns and record.get("percentile") is not None:
            row["percentile"] = record["percentile"]
        for statistic in ("mean", "median", "trimmed_mean"):  # a video's aggregate row
            if f"score_{statistic}" in columns and record.get(statistic) is not None:
                row[f"score_{statistic}"] = record[statistic]
        for name, head in record.get("heads", {}).items():
            if f"score_{name}" in columns:
                row[f"score_{name}"] = head["score"]
            if f"percentile_{name}" in columns and head.get("percentile") is not None:
                row[f"percentile_{name}"] = head["percentile"]
            if f"class_{name}" in columns and head.get("scale_class") is not None:
                row[f"class_{name}"] = head["scale_class"]
        distribution = record.get("distribution")
        if distribution:
            for value, probability in zip(distribution["bins"], distribution["probabilities"]):
                row[f"p_{value:g}"] = probability
    return row


__all__ = ["ResultWriter", "csv_columns", "flatten_record", "output_format"]
