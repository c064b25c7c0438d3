"""Runs of any length (SPEC §11): raw values beyond a memory bound on disk, per-sample records.

:mod:`registry.store.raw_store` keeps each series' raw values (memory up to a
shared bound, then Arrow IPC files), :mod:`registry.store.segments` writes
and reads those files, :mod:`registry.store.samples` writes ``samples.parquet``.
"""

from registry.store.raw_store import (
    DEFAULT_MEMORY_BYTES,
    MANIFEST_NAME,
    MemoryBudget,
    RawStore,
    SeriesValues,
    series_file_name,
)
from registry.store.segments import read_values

__all__ = [
    "DEFAULT_MEMORY_BYTES",
    "MANIFEST_NAME",
    "MemoryBudget",
    "RawStore",
    "SeriesValues",
    "read_values",
    "series_file_name",
]
