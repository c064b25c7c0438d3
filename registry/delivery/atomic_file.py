"""Atomic file replacement: a reader sees the old file or the new one, never a mix.

``write_atomic`` writes a temporary file in the target's directory, fsyncs
it, renames it over the target and fsyncs the directory, so after a crash
(even ``kill -9`` or power loss) the path holds either the previous complete
file or the new complete file (SPEC §7).

Temporary files are named ``.<name>.<pid>.<random>.tmp``. A writer that dies
between creating and renaming leaves one behind; the next write to the same
path removes those whose process is gone. This module must never write the
target path in place, and never delete a temporary file of a live process.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from pathlib import Path
from typing import Any

from registry.delivery.safe_open import open_for_writing

__all__ = [
    "fsync_directory",
    "json_bytes",
    "stage_atomic",
    "temp_files_for",
    "temporary_path",
    "write_atomic",
    "write_json_atomic",
]


def _tmp_prefix(path: Path) -> str:
    return f".{path.name}."


def temp_files_for(path: str | os.PathLike[str]) -> list[Path]:
    """Temporary files of :func:`write_atomic` for ``path`` currently on disk."""
    target = Path(path)
    prefix = _tmp_prefix(target)
    try:
        names = os.listdir(target.parent)
    except FileNotFoundError:
        return []
    return [target.parent / n for n in names if n.startswith(prefix) and n.endswith(".tmp")]


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists (ours or another user's)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _remove_stale_temp_files(path: Path) -> None:
    prefix = _tmp_prefix(path)
    for tmp in temp_files_for(path):
        pid_text = tmp.name[len(prefix) :].split(".", 1)[0]
        if not pid_text.isdigit():
            continue
        pid = int(pid_text)
        if pid == os.getpid() or pid_alive(pid):
            continue
        # Already gone, or not ours to remove: the write itself is unaffected.
        with contextlib.suppress(OSError):
            tmp.unlink()


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_directory(directory: str | os.PathLike[str]) -> None:
    """fsync ``directory`` so a rename inside it survives a crash."""
    _fsync_directory(Path(directory))


def temporary_path(path: str | os.PathLike[str]) -> Path:
    """A fresh temporary name beside ``path`` for a writer that renames into place itself
    (stale temporaries of dead processes are removed first, as :func:`write_atomic` does)."""
    target = Path(path)
    _remove_stale_temp_files(target)
    return target.parent / f"{_tmp_prefix(target)}{os.getpid()}.{secrets.token_hex(4)}.tmp"


def stage_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """The first half of :func:`write_atomic`: ``data`` in a new temporary file beside
    ``path``, fsynced, not yet renamed; returns its name. Whoever writes several files
    as one result stages them all, then renames them (and removes the temporaries of
    a failure). Raises :class:`OSError` with no temporary file left."""
    target = Path(path)
    tmp = temporary_path(target)
    fd = open_for_writing(tmp, exclusive=True)  # a new file: never through a link
    try:
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        with contextlib.suppress(OSError):  # never mask the original error
            tmp.unlink()
        raise
    return tmp


def write_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Replace ``path`` with ``data``: tmp file -> fsync -> rename -> fsync(directory).

    Raises :class:`OSError` when the directory is missing or not writable; the
    target is then untouched and no temporary file is left.
    """
    target = Path(path)
    tmp = stage_atomic(target, data)
    try:
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):  # never mask the original error
            tmp.unlink()
        raise
    _fsync_directory(target.parent)


def json_bytes(obj: Any, *, indent: int | None = 2) -> bytes:
    """``obj`` as strict JSON (UTF-8, trailing newline): what :func:`write_json_atomic`
    writes. NaN and infinities raise :class:`ValueError`."""
    text = json.dumps(obj, allow_nan=False, indent=indent, ensure_ascii=False)
    return (text + "\n").encode("utf-8")


def write_json_atomic(path: str | os.PathLike[str], obj: Any, *, indent: int | None = 2) -> None:
    """:func:`write_atomic` of ``obj`` as strict JSON (UTF-8, trailing newline).

    Strict: NaN and infinities raise :class:`ValueError` before anything is
    written (convert them to ``None`` first, as the snapshot dict form does).
    """
    write_atomic(path, json_bytes(obj, indent=indent))
