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
import pyarrow as pa
import pyarrow.parquet as pq

from registry.delivery.final_source import FINAL_SNAPSHOT_NAME, FinalFileError, read_final_document
from registry.delivery.run_lock import LOCK_NAME, LockHolder
from registry.delivery.snapshot import MetricsSnapshot
from registry.store.raw_store import MANIFEST_NAME
from registry.store.sample_log import SAMPLES_NAME
from registry.store.segments import file_facts, read_values

__all__ = ["MergeError", "RunDir", "load_run"]

RAW_DIR = "raw"


class MergeError(ValueError):
    """Runs that cannot be merged (the message is one line, for the command line)."""


def one_line(exc: BaseException) -> str:
    """An exception's text on one line (pyarrow's messages may span several)."""
    return " ".join(str(exc).split())


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
    #: why its ``samples.parquet`` cannot be merged (missing, unreadable, wrong row count)
    samples_problem: str | None = None

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
        why = _file_mismatch(path, name, stat.count, run.run["series"].get(name))
        if why is not None:
            run.raw_missing[name] = why
            continue
        run.raw_files[name] = path
        run.raw_rollups[name] = entry


def _file_mismatch(path: Path, name: str, count: int, settings: Any) -> str | None:
    """Why raw-store file ``path`` cannot be series ``name``'s ``count`` values, judged by
    what the file says about itself (its schema metadata, column type and batch
    lengths): a file of another series or another type put in its place, or one cut
    short. ``None`` when it fits."""
    try:
        facts = file_facts(path)
    except OSError as exc:
        return f"raw store file {path.name} unreadable ({exc})"
    holds = facts.metadata.get("series")
    if holds != name:
        return f"raw store file {path.name} holds series {holds!r}, not {name!r}"
    want = "int64" if isinstance(settings, dict) and settings.get("dtype") == "int" else "float64"
    if isinstance(settings, dict) and facts.dtype != want:
        return f"raw store file {path.name} holds {facts.dtype} values, the series is {want}"
    if facts.values != count:
        return (
            f"raw store file {path.name} does not hold every value "
            f"({facts.values} of {count} in complete batches)"
        )
    return None


def _samples_problem(p: Path, run: dict[str, Any], issued: int | None) -> str | None:
    """Why run ``p``'s ``samples.parquet`` cannot take part in a merge (``None``: it can,
    or the run wrote none): missing although the run block names one, unreadable (no footer),
    or holding another number of rows than the run's tracked samples."""
    path = p / SAMPLES_NAME
    if not path.is_file():
        if run.get("samples") == SAMPLES_NAME:
            return f"{path}: missing (the run block names one)"
        return None
    try:
        rows = pq.ParquetFile(path).metadata.num_rows
    except (pa.ArrowException, OSError) as exc:
        return f"{path}: unreadable ({one_line(exc)})"
    if issued is not None and rows != issued:
        return f"{path}: {rows} rows, the run has {issued} tracked samples"
    return None


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
    issued = snap.counters.get("tracked_samples_issued")
    rd.samples_problem = _samples_problem(p, run, None if issued is None else int(issued))
    return rd
