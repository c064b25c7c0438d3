"""Per-sample records as the aggregator closes rows: what ``samples.parquet`` is made of (SPEC §11).

:class:`SampleLog` is a plain list of tuples in :data:`SAMPLE_FIELDS` order,
appended on the event loop when a tracked sample completes (one tuple, no
conversion) and, at the end, for every sample still in flight. Whoever
writes the file takes the rows with :meth:`SampleLog.take` and converts them
off the loop (:mod:`registry.store.samples`). This module holds rows only; it
never decides a metric and never does I/O.
"""

from __future__ import annotations

from typing import Any

__all__ = ["SAMPLES_NAME", "SAMPLE_FIELDS", "SampleLog"]

#: The file the rows end up in (:mod:`registry.store.samples` writes it). Named here,
#: where importing costs nothing: whoever only needs the name need not import pyarrow.
SAMPLES_NAME = "samples.parquet"

#: The fields of one row tuple, in order (times on the producer's monotonic clock).
SAMPLE_FIELDS: tuple[str, ...] = (
    "sample_uuid",
    "conversation_id",  # "" when the sample has none
    "turn",  # int or None
    "worker_id",  # int or None (from the sample.complete record)
    "window",  # tracking window the sample was issued in, 0-based
    "issued_ns",
    "first_ns",  # None before the first chunk
    "complete_ns",  # None while in flight
    "tpot_ns",  # float or None, as recorded into tpot_ns
    "n_chunks",  # receive events (first and later chunks)
    "isl",  # int or None
    "osl",  # int or None
    "finish_reason",  # str or None
    "error_type",  # str (the sample failed) or None
)


class SampleLog:
    """Rows waiting to be written, oldest first."""

    __slots__ = ("rows", "taken")

    def __init__(self) -> None:
        self.rows: list[tuple[Any, ...]] = []
        #: rows handed out by take() so far
        self.taken = 0

    def append(self, row: tuple[Any, ...]) -> None:
        self.rows.append(row)

    def take(self) -> list[tuple[Any, ...]]:
        """Every row appended so far, detached (the log starts empty again)."""
        rows, self.rows = self.rows, []
        self.taken += len(rows)
        return rows
