"""The command line's side of the output-directory lock (:mod:`registry.delivery.run_lock`).

``aggregate`` and ``demo`` call :func:`lock_output_dir` before they write
anything in ``--output-dir``, then :func:`clear_output_dir`; a directory held
by another run, one where the lock file cannot be created, or one whose earlier
run's files cannot be removed becomes a one-line :class:`UsageError` (exit 2).
This module only translates errors; the lock itself is the registry's, as are
the files it protects.
"""

from __future__ import annotations

from pathlib import Path

from exporter.cli.errors import UsageError
from registry.delivery.run_lock import DirectoryLocked, RunLock

__all__ = ["clear_output_dir", "lock_output_dir"]


def lock_output_dir(directory: Path, run_id: str | None) -> RunLock:
    """The held lock of ``directory`` for ``run_id`` (``UsageError`` naming the holder)."""
    lock = RunLock(directory, run_id)
    try:
        return lock.acquire()
    except DirectoryLocked as exc:
        raise UsageError(f"--output-dir {exc}") from None
    except OSError as exc:
        raise UsageError(
            f"--output-dir {directory}: cannot create the lock file: {exc.strerror or exc}"
        ) from None


def clear_output_dir(directory: Path, lock: RunLock) -> None:
    """An earlier run's files out of ``directory`` (held by ``lock``), else a one-line
    :class:`UsageError` naming the file that stays (the lock is released then)."""
    # here, not at the top: it knows the store's file names, which import pyarrow
    from registry.delivery.previous_run import clear_previous_run

    try:
        clear_previous_run(directory)
    except OSError as exc:
        lock.release()
        raise UsageError(
            f"--output-dir {directory}: {exc.strerror or exc}; one run's files per directory"
        ) from None
