"""One finished run's exact per-sample data, as ``compare`` and ``report --html`` read it.

:func:`load_run_data` takes a run's output directory (or a final file inside
it) and offers its Report (:func:`registry.report.build_report` of
``final_snapshot.json``), its run block, each series' exact values and the
``samples.parquet`` columns. A series' values come from the raw store when it
holds them all (the very values behind the Report's percentiles), else from
the matching ``samples.parquet`` column (what a merged run has); a series
with neither is unavailable and :meth:`RunData.values` says why, so a caller
can show it instead of dropping it. The directory is read with
:func:`registry.merge.load_run` (the lock check, final file and raw store
checks are ``merge``'s). Anything that makes the run unusable is one
:class:`RunDataError` line. Reading only: it never writes and never prints.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from registry.delivery.final_source import FINAL_SNAPSHOT_NAME
from registry.delivery.snapshot_codec import SnapshotDecodeError
from registry.merge.run_dir import MergeError, RunDir, load_run
from registry.report.summary import REPORT_NAME, build_report

__all__ = ["PARQUET_COLUMN", "RunData", "RunDataError", "SeriesUnavailable", "load_run_data"]

#: Series name -> the ``samples.parquet`` column holding the same per-sample values.
PARQUET_COLUMN: dict[str, str] = {
    "sample_latency_ns": "latency_ns",
    "ttft_ns": "ttft_ns",
    "tpot_ns": "tpot_ns",
    "isl": "isl",
    "osl": "osl",
}


class RunDataError(ValueError):
    """The run cannot be read (the message is one line naming the path and why)."""


class SeriesUnavailable(LookupError):
    """A series has no per-sample values in this run (the message says why)."""


@dataclass
class RunData:
    """A finished run: its Report, run block and where its per-sample values are."""

    path: Path
    report: dict[str, Any]
    run: dict[str, Any]
    _dir: RunDir = field(repr=False)
    _values: dict[str, tuple[npt.NDArray[np.float64], str]] = field(
        default_factory=dict, repr=False
    )

    @property
    def label(self) -> str:
        """How outputs name this run: its run id, else its directory."""
        rid = self.run.get("run_id")
        return str(rid) if rid else str(self.path)

    @property
    def series_names(self) -> tuple[str, ...]:
        """The series the run's snapshot has, in its order."""
        return tuple(self._dir.snapshot.series)

    @property
    def has_samples(self) -> bool:
        return self._dir.samples is not None

    def series_count(self, name: str) -> int:
        return int(self._dir.snapshot.series[name].count)

    def source_of(self, name: str) -> str:
        """Where :meth:`values` would read ``name`` from: "raw store", "samples.parquet"
        or, when neither holds it, :class:`SeriesUnavailable`."""
        if name in self._dir.raw_files:
            return "raw store"
        if name in PARQUET_COLUMN and self._dir.samples is not None:
            return "samples.parquet"
        why = self._dir.raw_missing.get(name, "no raw store")
        if self._dir.samples is None:
            raise SeriesUnavailable(f"{name}: {why} and no samples.parquet")
        raise SeriesUnavailable(f"{name}: {why}, and samples.parquet has no such column")

    def values(
        self, name: str, source: str | None = None, *, ordered: bool = True
    ) -> npt.NDArray[np.float64]:
        """Every value of series ``name`` (base unit: ns or tokens), sorted ascending
        (``ordered=False``: in the order stored, a sort saved).

        ``source`` forces one source (so two runs compare like with like).
        """
        source = source or self.source_of(name)
        key = f"{name}@{source}"
        if ordered and f"{key}:sorted" in self._values:
            return self._values[f"{key}:sorted"][0]
        if key not in self._values:
            if source == "raw store":
                chunks = list(self._dir.raw_chunks(name))
                arr = (
                    np.concatenate([np.asarray(c, dtype=np.float64) for c in chunks])
                    if chunks
                    else np.empty(0, dtype=np.float64)
                )
            elif source == "samples.parquet" and name in PARQUET_COLUMN:
                col = self.samples([PARQUET_COLUMN[name]]).column(0)
                arr = col.drop_null().to_numpy(zero_copy_only=False).astype(np.float64)
            else:
                raise SeriesUnavailable(f"{name}: not in this run's {source}")
            self._values[key] = (arr, source)
        if not ordered:
            return self._values[key][0]
        arr = self._values.pop(key)[0]
        arr.sort()  # in place: the unsorted copy is not kept
        self._values[f"{key}:sorted"] = (arr, source)
        return arr

    def samples(self, columns: list[str]) -> Any:
        """These ``samples.parquet`` columns as an Arrow table (:class:`SeriesUnavailable`
        when the run has no such file)."""
        if self._dir.samples is None:
            raise SeriesUnavailable(f"{self.path}: no samples.parquet")
        return _read_columns(self._dir.samples, tuple(columns))


@functools.lru_cache(maxsize=8)
def _read_columns(path: Path, columns: tuple[str, ...]) -> Any:
    import pyarrow.parquet as pq

    return pq.read_table(path, columns=list(columns))


def load_run_data(path: str | Path, *, held_by_caller: bool = False) -> RunData:
    """Read run directory ``path`` (or the directory of the final file ``path``).

    A directory whose run still holds its lock is refused, unless the caller is
    that run (``held_by_caller``: ``aggregate``/``demo`` writing their page).
    """
    p = Path(path)
    if p.is_file() and p.name in (FINAL_SNAPSHOT_NAME, REPORT_NAME):
        p = p.parent
    if not p.exists():
        raise RunDataError(f"{p}: no such file or directory")
    try:
        rd = load_run(p, purpose="use", held_by_caller=held_by_caller)
    except MergeError as exc:
        raise RunDataError(str(exc)) from None
    try:
        report = build_report(rd.snapshot, source="file", run=rd.run)
    except (SnapshotDecodeError, ValueError) as exc:
        raise RunDataError(f"{p}: {exc}") from None
    return RunData(path=p, report=report, run=rd.run, _dir=rd)
