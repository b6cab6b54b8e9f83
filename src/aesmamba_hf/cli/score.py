"""``aesmamba score PATH... --model M --output out.csv|out.jsonl``: score image files and folders.

* folders are walked recursively (sorted, hidden entries skipped); only files with an image extension are
  taken from folders (``--all-files`` tries every file); files named on the command line are always tried;
* unreadable files (truncated, empty, not an image, decompression bombs, ...) are reported, written to the
  output with ``status=error`` and their reason, and listed at the end; the rest is scored;
* results are appended batch by batch, each batch as complete lines in one write followed by flush+fsync;
  a torn last line left by a crash is cut off on the next run;
* re-running with the same ``--output`` resumes: files already in the output are skipped (``--retry-errors``
  drops the error rows once, atomically, and tries those files again).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Optional

IMAGE_EXTENSIONS = frozenset(
    ".jpg .jpeg .jpe .jfif .png .apng .gif .bmp .dib .tif .tiff .webp .ppm .pgm .pbm .pnm .tga .ico .jp2 .j2k "
    ".avif .heic .heif .psd".split()
)
RANDOM_WEIGHTS_MARKER = "RANDOM_WEIGHTS.txt"


# -- file discovery -------------------------------------------------------------------------------------


def iter_image_files(paths: Sequence[str], all_files: bool = False) -> list[str]:
    """Absolute paths of the files to score, in a stable order, without duplicates."""
    found: list[str] = []
    seen: set[str] = set()

    def add(path: str) -> None:
        path = os.path.abspath(path)
        if path not in seen:
            seen.add(path)
            found.append(path)

    for given in paths:
        if os.path.isdir(given):
            for root, dirs, files in os.walk(given):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    if name.startswith("."):
                        continue
                    if all_files or os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS:
                        add(os.path.join(root, name))
        else:
            add(given)  # named explicitly: always tried (a missing file becomes an error row)
    return found


# -- output ---------------------------------------------------------------------------------------------


def _one_line(value: Any) -> Any:
    return " ".join(value.split()) if isinstance(value, str) else value


def output_format(path: str) -> str:
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    raise ValueError(f"--output must end in .csv or .jsonl, got {path!r}")


def csv_columns(config: Any) -> list[str]:
    columns = ["path", "status", "score", "scale_class"]
    if len(config.heads) > 1:
        for head in config.heads:
            columns.append(f"score_{head['name']}")
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

    def drop_errors(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Rewrite the file without its error rows (temp file + os.replace: atomic)."""
        kept = [row for row in rows if row.get("status") != "error"]
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
        return kept

    # writing --------------------------------------------------------------------------------------------

    def _csv_lines(self, records: list[dict[str, Any]], header: bool) -> str:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=self.columns, extrasaction="ignore", lineterminator="\n")
        if header:
            writer.writeheader()
        for record in records:
            writer.writerow({k: _one_line(v) for k, v in record.items()})
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
    if record["status"] == "ok":
        row["score"] = record["score"]
        row["scale_class"] = "" if record.get("scale_class") is None else record["scale_class"]
        for name, head in record.get("heads", {}).items():
            if f"score_{name}" in columns:
                row[f"score_{name}"] = head["score"]
            if f"class_{name}" in columns and head.get("scale_class") is not None:
                row[f"class_{name}"] = head["scale_class"]
        distribution = record.get("distribution")
        if distribution:
            for value, probability in zip(distribution["bins"], distribution["probabilities"]):
                row[f"p_{value:g}"] = probability
    return row


# -- comments -------------------------------------------------------------------------------------------


def load_comments(path: str) -> dict[str, str]:
    """Comments per image from CSV/TSV (an image column + a comment column), JSON (object) or JSONL."""
    suffix = Path(path).suffix.lower()
    key_names = ("path", "image", "file", "filename", "image_id", "imageName", "index", "id")
    text_names = ("comment", "comments", "text", "caption")
    try:
        if suffix == ".json":
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
            if not isinstance(data, dict):
                raise ValueError("a .json comments file must hold an object {image: comment}")
            return {str(k): v if isinstance(v, str) else str(v) for k, v in data.items()}
        if suffix in (".jsonl", ".ndjson"):
            records = []
            with open(path, encoding="utf-8") as handle:
                for line in handle:
                    if line.strip():
                        records.append(json.loads(line))
        elif suffix in (".csv", ".tsv", ".txt"):
            with open(path, encoding="utf-8", newline="") as handle:
                records = list(csv.DictReader(handle, delimiter="\t" if suffix == ".tsv" else ","))
        else:
            raise ValueError("use a .csv, .tsv, .json or .jsonl file")
    except (OSError, json.JSONDecodeError, csv.Error) as err:
        raise ValueError(f"cannot read comments file {path}: {err}") from err
    except ValueError as err:
        raise ValueError(f"comments file {path}: {err}") from err
    if not records:
        return {}
    keys = [k for k in key_names if k in records[0]]
    texts = [k for k in text_names if k in records[0]]
    if not keys or not texts:
        raise ValueError(
            f"comments file {path} needs an image column (one of {key_names}) and a text column "
            f"(one of {text_names}); found {sorted(records[0])}"
        )
    return {str(r[keys[0]]): str(r[texts[0]]) for r in records if r.get(texts[0]) not in (None, "")}


def find_comment(comments: dict[str, str], path: str, roots: Sequence[str]) -> Optional[str]:
    """Match an image to a comment by absolute path, path relative to a given root, file name, or stem."""
    candidates = [path]
    for root in roots:
        root = os.path.abspath(root)
        if os.path.isdir(root) and path.startswith(root + os.sep):
            candidates.append(os.path.relpath(path, root))
    candidates += [os.path.basename(path), os.path.splitext(os.path.basename(path))[0]]
    for candidate in candidates:
        if candidate in comments:
            return comments[candidate]
    return None


# -- model ----------------------------------------------------------------------------------------------


def load_model_and_processor(name: str, device: str) -> tuple[Any, Any, str]:
    """(model, processor, resolved path) with a clear error when the model is not available."""
    from transformers import AutoModel, AutoProcessor

    from ..pipeline import default_processor_for_config
    from ..variants import resolve_model

    try:
        path = resolve_model(name)
    except ValueError as err:
        raise SystemExit(f"error: {err}") from err
    try:
        model = AutoModel.from_pretrained(path)
    except OSError as err:
        raise SystemExit(
            f"error: cannot load model {name!r} ({path}): {err}\n"
            f"hint: `aesmamba download {name}` puts a variant into ./{name}"
        ) from err
    try:
        processor = AutoProcessor.from_pretrained(path)
    except (OSError, ValueError, TypeError):
        processor = default_processor_for_config(model.config)
    if os.path.isdir(path) and os.path.exists(os.path.join(path, RANDOM_WEIGHTS_MARKER)):
        print(f"WARNING: {path} holds RANDOM weights (see {RANDOM_WEIGHTS_MARKER}); the scores are meaningless",
              file=sys.stderr)
    return model.to(device).eval(), processor, path


def pick_device(requested: Optional[str]) -> str:
    import torch

    if requested == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda requested but CUDA is not available")
    return requested or ("cuda" if torch.cuda.is_available() else "cpu")


def _load(path: str) -> tuple[str, Any]:
    from ..image_processing_aesmamba import ImageLoadError, load_image

    try:
        return path, load_image(path)
    except ImageLoadError as err:
        return path, err.reason
    except Exception as err:  # never let one file stop the run
        return path, f"{type(err).__name__}: {err}"


def score_batch(model: Any, processor: Any, images: list[Any], texts: list[Optional[str]], user: Any,
                device: str) -> list[dict[str, Any]]:
    """Predictions for loaded images; images with and without a comment go through separate forwards."""
    import torch

    from ..pipeline import format_predictions

    results: list[Optional[dict[str, Any]]] = [None] * len(images)
    groups: dict[bool, list[int]] = {}
    for index, text in enumerate(texts):
        groups.setdefault(text is not None, []).append(index)
    for has_text, indices in groups.items():
        kwargs: dict[str, Any] = {}
        if has_text:
            kwargs["comments"] = [texts[i] for i in indices]  # cleaned per the processor (M)
        elif user is not None:
            kwargs["users"] = user
        encoded = processor(images=[images[i] for i in indices], return_tensors="pt", **kwargs)
        encoded = {k: v.to(device) for k, v in encoded.items()}
        with torch.no_grad():
            outputs = model(**encoded)
        predictions = format_predictions(model.config, outputs.scores, outputs.distribution, outputs.class_logits)
        for index, prediction in zip(indices, predictions):
            results[index] = prediction
    return results  # type: ignore[return-value]


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
    parser.add_argument("--workers", type=int, default=2, help="threads decoding images (default 2, 0 = none)")
    parser.add_argument("--all-files", action="store_true", help="in folders, try every file, not only image "
                        "extensions")
    parser.add_argument("--retry-errors", action="store_true", help="retry files recorded as errors")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from ..processing_aesmamba import as_user_profile

    if args.batch_size < 1:
        print("error: --batch-size must be >= 1", file=sys.stderr)
        return 2
    try:
        output_format(args.output)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    missing = [p for p in args.paths if not os.path.exists(p)]
    if missing:
        print(f"error: no such file or folder: {', '.join(missing)}", file=sys.stderr)
        return 2

    device = pick_device(args.device)
    model, processor, model_path = load_model_and_processor(args.model, device)
    config = model.config
    user = None
    if args.user:
        if not config.uses_text:
            print(f"error: --user needs a personalized (P) model; {args.model} is task {config.task}",
                  file=sys.stderr)
            return 2
        try:
            user = as_user_profile(args.user)
            processor.build_prompt(user)  # fail now, not at the first batch
        except (ValueError, TypeError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    comments: dict[str, str] = {}
    if args.comments:
        if not config.uses_text:
            print(f"error: --comments needs a model with a text encoder; {args.model} is task {config.task}",
                  file=sys.stderr)
            return 2
        try:
            comments = load_comments(args.comments)
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    if config.task == "P" and user is None:
        print("note: no --user given; the personalized model scores from the image alone", file=sys.stderr)
    if config.task == "M" and not comments:
        print("note: no --comments given; the comment model scores from the image alone", file=sys.stderr)

    output_path = os.path.abspath(args.output)
    files = [f for f in iter_image_files(args.paths, all_files=args.all_files) if f != output_path]
    writer = ResultWriter(args.output, csv_columns(config))
    try:
        existing = writer.read_existing()
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if writer.repaired:
        print(f"note: removed a partial last line from {args.output} (interrupted write)", file=sys.stderr)
    if args.retry_errors and any(row.get("status") == "error" for row in existing):
        existing = writer.drop_errors(existing)
    done = {row["path"] for row in existing}
    todo = [f for f in files if f not in done]
    print(f"{len(files)} file(s) found; {len(files) - len(todo)} already in {args.output}; {len(todo)} to score "
          f"with {model_path} (task {config.task}, {config.dataset}) on {device}", file=sys.stderr)

    failures: list[tuple[str, str]] = []
    scored = 0
    pool = ThreadPoolExecutor(max_workers=args.workers) if args.workers > 0 else None
    progress = tqdm(total=len(todo), unit="img", desc="scoring", disable=True if args.no_progress else None,
                    file=sys.stderr)
    try:
        for start in range(0, len(todo), args.batch_size):
            batch = todo[start : start + args.batch_size]
            loaded = list(pool.map(_load, batch)) if pool is not None else [_load(p) for p in batch]
            good = [(p, img) for p, img in loaded if not isinstance(img, str)]
            predictions = {}
            if good:
                texts = [find_comment(comments, p, args.paths) if comments else None for p, _ in good]
                results = score_batch(model, processor, [img for _, img in good], texts, user, device)
                predictions = {p: r for (p, _), r in zip(good, results)}
            records = []
            for path, image in loaded:
                if isinstance(image, str):
                    records.append({"path": path, "status": "error", "error": image})
                    failures.append((path, image))
                    progress.write(f"unreadable: {path}: {image}", file=sys.stderr)
                else:
                    records.append({"path": path, "status": "ok", **predictions[path]})
                    scored += 1
            writer.append(records)  # complete rows of the whole batch, one write + fsync
            progress.update(len(batch))
    finally:
        progress.close()
        if pool is not None:
            pool.shutdown(wait=True)

    previous_errors = [row["path"] for row in existing if row.get("status") == "error"]
    print(f"scored {scored} image(s), {len(failures)} unreadable; results in {args.output}", file=sys.stderr)
    if failures:
        print("unreadable files (recorded with status=error):", file=sys.stderr)
        for path, reason in failures:
            print(f"  {path}: {reason}", file=sys.stderr)
    if previous_errors:
        print(f"{len(previous_errors)} file(s) were already recorded as unreadable (--retry-errors to retry)",
              file=sys.stderr)
    return 0


__all__ = ["IMAGE_EXTENSIONS", "RANDOM_WEIGHTS_MARKER", "ResultWriter", "iter_image_files", "load_comments",
           "register", "run"]
