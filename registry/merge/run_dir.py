"""One run's output directory, as ``bench-metrics merge`` reads it (SPEC §11).

:func:`load_run` reads ``final_snapshot.json`` (its dict form and ``run``
block), the raw store's ``manifest.json`` and which series it holds whole,
and where ``samples.parquet`` is. Anything that makes the directory unusable
raises :class:`MergeError` with one line naming the directory and why.
Reading only: nothing here writes or computes a statistic.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy.typing as npt

from registry.final_source import FINAL_SNAPSHOT_NAME, FinalFileError, read_final_document
from registry.run_lock import LOCK_NAME, LockHolder
from registry.snapshot import MetricsSnapshot
from registry.store.raw_store import MANIFEST_NAME
from registry.store.samples import SAMPLES_NAME
from registry.store.segments import read_values

__all__ = ["MergeError", "RunDir", "load_run"]

RAW_DIR = "raw"


class MergeError(ValueError):
    """Runs that cannot be merged (the message is one line, for the command line)."""


@dataclass
class RunDir:
    """What one run directory offers a merge."""

    path: Path
    snapshot: MetricsSnapshot
    run: dict[str, Any]
    #: series name -> store file holding every one of its values (checked)
    raw_files: dict[str, Path] = field(default_factory=dict)
    #: series name -> exact rollups from the manifest (ints stay exact)
    raw_rollups: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: why some series have no usable raw values (for the log and the merged run block)
    raw_missing: dict[str, str] = field(default_factory=dict)
    samples: Path | None = None

    @property
    def name(self) -> str:
        return str(self.path)

    @property
    def run_id(self) -> str | None:
        rid = self.run.get("run_id")
        return None if rid is None else str(rid)

    def raw_chunks(self, series: str) -> Iterator[npt.NDArray[Any]]:
        yield from read_values(self.raw_files[series])


def _load_raw(run: RunDir) -> None:
    manifest_path = run.path / RAW_DIR / MANIFEST_NAME
    series = run.snapshot.series
    if not manifest_path.exists():
        for name in series:
            run.raw_missing[name] = "no raw store"
        return
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        entries = manifest["series"] if manifest.get("complete") else {}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        entries = {}
    for name, stat in series.items():
        entry = entries.get(name) if isinstance(entries, dict) else None
        if not isinstance(entry, dict):
            run.raw_missing[name] = "not in the raw store's manifest"
            continue
        path = run.path / RAW_DIR / str(entry.get("file", ""))
        if not path.is_file():
            run.raw_missing[name] = f"raw store file {path.name} missing"
            continue
        # the selection pass checks that the file really holds them all
        if entry.get("count") != stat.count or entry.get("values") != stat.count:
            run.raw_missing[name] = f"raw store file {path.name} does not hold all {stat.count}"
            continue
        run.raw_files[name] = path
        run.raw_rollups[name] = entry


def _check_not_running(p: Path, purpose: str) -> None:
    """A run still writing its directory cannot be merged (its lock is held: SPEC §7)."""
    lock = p / LOCK_NAME
    try:
        fd = os.open(lock, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return  # no lock file: no run holds it
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = LockHolder.parse(os.read(fd, 4096).decode("utf-8", "replace"))
        who = holder.describe() if holder is not None else "another process"
        raise MergeError(f"{p}: still in use by {who}; {purpose} it once the run ended") from None
    finally:
        os.close(fd)


def load_run(path: str | Path, *, purpose: str = "merge", held_by_caller: bool = False) -> RunDir:
    """Read run directory ``path`` (:class:`MergeError` when it cannot take part).

    ``purpose`` names what the caller does with it (for the "still in use" line);
    ``held_by_caller``: the caller holds the directory's lock itself (a run writing
    its own page after its final files), so the lock says nothing.
    """
    p = Path(path)
    if not p.is_dir():
        raise MergeError(f"{p}: not a directory")
    if not held_by_caller:
        _check_not_running(p, purpose)
    final = p / FINAL_SNAPSHOT_NAME
    if not final.exists():
        raise MergeError(f"{p}: no {FINAL_SNAPSHOT_NAME} (not a finished run)")
    try:
        snap, run = read_final_document(final)  # the same reading as the Report's
    except FinalFileError as exc:
        raise MergeError(str(exc)) from None
    if run is None or not isinstance(run.get("series"), dict):
        raise MergeError(
            f"{final}: no series settings in its run block (not written by bench-metrics "
            "aggregate); cannot check that the runs belong together"
        )
    for s in snap.series.values():
        if s.hdr is None and s.count:
            raise MergeError(f"{final}: series {s.name!r} has no HDR data")
        for v in (s.min, s.max):
            if isinstance(v, float) and math.isnan(v):
                raise MergeError(f"{final}: series {s.name!r} has a null min/max")
    rd = RunDir(path=p, snapshot=snap, run=run)
    _load_raw(rd)
    samples = p / SAMPLES_NAME
    rd.samples = samples if samples.is_file() else None
    return rd
