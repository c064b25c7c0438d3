"""An output directory's files from an earlier run: gone before a new run writes its own.

SPEC §7: a directory holding a ``final_snapshot.json`` holds one run's result. A
new run that only replaced its files one by one at the end would leave a mix of
two runs whenever one replacement failed (a read-only or immutable
``final_snapshot.json`` beside the new ``result_summary.json``), and an earlier
raw-store manifest would pass for the new run's store. So, with the directory's
run lock held and before anything is written:

- :func:`clear_previous_run` removes the earlier run's final files, in an order
  that keeps the directory one run's at every step: ``final_snapshot.json``
  first (what makes a directory a finished run), then ``result_summary.json``,
  ``samples.parquet`` and the raw store (its manifest first). When the first
  cannot be removed nothing else is touched and the :class:`OSError` says why
  (the command line turns it into one line and exit 2).
- :func:`report_blocked_by` is the end-of-run guard for a ``final_snapshot.json``
  that appeared during the run and could not be replaced: it is removed, or the
  new report is not written beside it.

Directories in the way (never written by a run) and symbolic links' targets
are left alone; this module removes files by name only, never through a link.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from registry.delivery.final_source import FINAL_SNAPSHOT_NAME
from registry.report.summary import REPORT_HTML_NAME, REPORT_NAME, UPSTREAM_MODE_REPORT_NAME
from registry.store.raw_store import MANIFEST_NAME
from registry.store.sample_log import SAMPLES_NAME

__all__ = ["RAW_STORE_DIR", "clear_previous_run", "report_blocked_by"]

#: The raw store's directory inside an output directory.
RAW_STORE_DIR = "raw"


def _remove_file(path: Path) -> None:
    """Unlink ``path`` unless it is missing or a directory (a link is removed, not followed)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        return  # not a file a run wrote: the write onto it fails and says so
    path.unlink()


def clear_previous_run(directory: str | os.PathLike[str]) -> None:
    """Remove an earlier run's final files and raw store from ``directory`` (see above).

    Raises :class:`OSError` naming the file that could not be removed.
    """
    d = Path(directory)
    for name in (
        FINAL_SNAPSHOT_NAME,
        REPORT_NAME,
        UPSTREAM_MODE_REPORT_NAME,
        SAMPLES_NAME,
        REPORT_HTML_NAME,
    ):
        try:
            _remove_file(d / name)
        except OSError as exc:
            raise OSError(
                exc.errno,
                f"the earlier run's {name} cannot be removed ({exc.strerror or exc})",
            ) from None
    raw = d / RAW_STORE_DIR
    if raw.is_dir() and not raw.is_symlink():
        try:
            _remove_file(raw / MANIFEST_NAME)
        except OSError as exc:
            raise OSError(
                exc.errno,
                f"the earlier run's {RAW_STORE_DIR}/{MANIFEST_NAME} cannot be removed "
                f"({exc.strerror or exc})",
            ) from None
        # without its manifest an old store is no store: what cannot go is harmless
        shutil.rmtree(raw, ignore_errors=True)


def report_blocked_by(final_snapshot_path: str | os.PathLike[str]) -> str | None:
    """After ``final_snapshot.json`` could not be written: ``None`` when the report may be
    written (nothing is at that path, or what was there could be removed), else why not
    (an earlier file there that cannot be removed would sit beside the new report)."""
    path = Path(final_snapshot_path)
    try:
        _remove_file(path)
    except OSError as exc:
        return (
            f"not written beside an earlier {path.name} that cannot be removed "
            f"({exc.strerror or exc})"
        )
    return None
