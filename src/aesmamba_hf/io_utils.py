"""Atomic outputs: a crash or Ctrl-C never leaves a half-written report, CSV, JSON, plot or model folder behind.

Files are written to a temporary file in the destination folder and moved into place with ``os.replace``
(atomic on POSIX and Windows for same-filesystem moves). Folders (:func:`atomic_output_dir`) are built under a
``.<name>.partial-<pid>`` sibling and renamed at the end; a run killed outright (SIGKILL, power loss) leaves that
sibling behind, and the next run removes it and says so (:func:`remove_stale_partials`).

Output locations are checked before any work (:func:`check_output_file`, :func:`check_output_dir`), so a
missing or read-only destination is reported before a model loads, not after an hour of scoring.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Union

PathLike = Union[str, os.PathLike]
logger = logging.getLogger(__name__)


class OutputLocationError(ValueError):
    """An output file or folder cannot be written; the message names it and says why."""


class OutputExistsError(OutputLocationError, FileExistsError):
    """An output folder that is not empty, without permission to replace it (also a ``FileExistsError``)."""


def _writable_dir(directory: Path, what: str) -> None:
    if not directory.is_dir():
        raise OutputLocationError(f"{what}: {directory} is not a folder")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise OutputLocationError(f"{what}: the folder {directory} is not writable")


def check_output_file(path: PathLike, what: str = "output") -> None:
    """Refuse an output file whose folder is missing or read-only, or that is a folder or read-only itself."""
    path = Path(path)
    directory = path.absolute().parent
    if not directory.exists():
        raise OutputLocationError(f"{what} {path}: its folder {directory} does not exist; create it first")
    _writable_dir(directory, f"{what} {path}")
    if path.is_dir():
        raise OutputLocationError(f"{what} {path} is a folder; give a file name")
    if path.exists() and not os.access(path, os.W_OK):
        raise OutputLocationError(f"{what} {path} exists and is not writable")


def check_output_dir(path: PathLike, what: str = "output folder") -> None:
    """Refuse an output folder that cannot be created or written: it is a file, or its nearest existing
    ancestor is a read-only folder (a missing parent is fine: it is created)."""
    path = Path(path).absolute()
    if path.exists():
        if not path.is_dir():
            raise OutputLocationError(f"{what} {path} exists and is a file, not a folder")
        _writable_dir(path, what)
        return
    ancestor = path.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise OutputLocationError(f"{what} {path} cannot be created: {ancestor} is a file")
    _writable_dir(ancestor, f"{what} {path} cannot be created")


def check_new_output_dir(path: PathLike, *, overwrite: bool = False, what: str = "output folder",
                         how: str = "overwrite it") -> Path:
    """The one "may I write this folder?" check, run before any work: refuse a file
    (:class:`OutputLocationError`), a non-empty folder unless ``overwrite`` (:class:`OutputExistsError`, whose
    message ends "choose another folder or ``how``", e.g. ``"pass --overwrite"``) and a folder that cannot be
    created or written (:func:`check_output_dir`). Returns ``path`` as a ``Path``."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise OutputLocationError(f"{what} {out} exists and is a file, not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise OutputExistsError(f"{what} {out} is not empty; choose another folder or {how}")
    check_output_dir(out, what)
    return out


@contextlib.contextmanager
def atomic_open(path: PathLike, mode: str = "w", encoding: str | None = "utf-8", newline: str | None = None
                ) -> Iterator[IO]:
    """Open a temporary sibling of ``path`` for writing; it replaces ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    binary = "b" in mode
    try:
        with os.fdopen(fd, mode, encoding=None if binary else encoding, newline=None if binary else newline) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: PathLike, text: str) -> Path:
    with atomic_open(path) as handle:
        handle.write(text)
    return Path(path)


def json_safe(value: Any) -> Any:
    """NaN/inf → None (valid JSON), tuples → lists, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def atomic_write_json(path: PathLike, obj: Any, indent: int = 2) -> Path:
    return atomic_write_text(path, json.dumps(json_safe(obj), indent=indent, default=str) + "\n")


def atomic_savefig(fig: Any, path: PathLike, **kwargs: Any) -> Path:
    """``fig.savefig`` through a temporary file (the format is taken from ``path``'s suffix)."""
    path = Path(path)
    kwargs.setdefault("format", path.suffix.lstrip(".") or "png")
    with atomic_open(path, "wb") as handle:
        fig.savefig(handle, **kwargs)
    return path


# -- folders ----------------------------------------------------------------------------------------------


def _partial_name(out: Path, kind: str, pid: int) -> Path:
    return out.parent / f".{out.name}.{kind}-{pid}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # someone else's live process
    return True


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def remove_stale_partials(out: PathLike, report: Any = None) -> list[Path]:
    """Remove the ``.<name>.partial-<pid>`` / ``.<name>.old-<pid>`` siblings of ``out`` left by killed runs (their
    process is gone), and say so: ``report`` (a print-like callable, default a logged warning) gets one line
    naming each folder and its size. Returns the removed folders."""
    out = Path(out).absolute()
    removed = []
    if not out.parent.is_dir():
        return removed
    for kind in ("partial", "old"):
        for leftover in sorted(out.parent.glob(f".{out.name}.{kind}-*")):
            pid = leftover.name.rsplit("-", 1)[-1]
            if not pid.isdigit() or (int(pid) != os.getpid() and _pid_alive(int(pid))):
                continue  # not ours to judge, or a run still in progress
            size = _size(leftover) if leftover.is_dir() else leftover.stat().st_size
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink()
            line = (f"removed {leftover} ({size / 1e6:.1f} MB), left by an interrupted run (process {pid}) "
                    f"writing {out}")
            (report or logger.warning)(line)
            removed.append(leftover)
    return removed


@contextlib.contextmanager
def atomic_output_dir(out: PathLike, *, overwrite: bool = False, report: Any = None) -> Iterator[Path]:
    """Build a folder under ``.<name>.partial-<pid>`` next to ``out`` and rename it to ``out`` when the block
    succeeds: ``out`` is either the complete new folder or (on an error, Ctrl-C or kill) what it was before.

    On entry, leftovers of killed runs are removed (:func:`remove_stale_partials`, reported via ``report``);
    an existing non-empty ``out`` is refused unless ``overwrite`` (then it is replaced only at the end). On an
    exception the staging folder is removed; only a hard kill leaves it, for the next run to clean.
    """
    out = check_new_output_dir(Path(out).absolute(), overwrite=overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(out, report)
    staging = _partial_name(out, "partial", os.getpid())
    staging.mkdir()
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    old = None
    if out.exists():
        old = _partial_name(out, "old", os.getpid())
        os.replace(out, old)
    os.replace(staging, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


__all__ = ["OutputExistsError", "OutputLocationError", "atomic_open", "atomic_output_dir", "atomic_savefig", "atomic_write_json",
           "atomic_write_text", "check_new_output_dir", "check_output_dir", "check_output_file", "json_safe", "remove_stale_partials"]
