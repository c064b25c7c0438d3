"""``samples.parquet``: one row per tracked sample (SPEC §11), written incrementally off the loop.

The aggregator appends row tuples to a :class:`~registry.store.sample_log.SampleLog`
on its event loop; :class:`SampleWriter` takes them (``submit``) and, in its
own worker thread, turns them into Arrow columns and writes a Parquet row
group whenever :data:`ROW_GROUP_ROWS` rows are buffered. ``close`` writes the
rest and the footer to a temporary file beside the target, fsyncs it and
renames it into place (then fsyncs the directory): like every final file,
``samples.parquet`` is never half-written; a crash before ``close`` leaves
no ``samples.parquet`` (the raw store keeps the values).

Schema: :data:`SAMPLES_SCHEMA` (docs/store-and-merge.md lists it, a test checks both).
Timestamps are the producer's monotonic clock in ns; the final files' ``run``
block anchors that clock to wall time. This module writes one file; it never
decides a metric and never blocks the caller's loop.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from registry.delivery.atomic_file import fsync_directory, temporary_path
from registry.delivery.safe_open import WholeWrites, open_whole_writes
from registry.store.sample_log import SAMPLE_FIELDS

__all__ = ["ROW_GROUP_ROWS", "SAMPLES_SCHEMA", "SampleWriter", "rows_to_table"]

logger = logging.getLogger(__name__)

#: Rows per Parquet row group (the last one may be smaller).
ROW_GROUP_ROWS = 65_536

SAMPLES_SCHEMA = pa.schema(
    [
        pa.field("run_id", pa.dictionary(pa.int32(), pa.string()), nullable=True),
        pa.field("sample_uuid", pa.string(), nullable=False),
        pa.field("conversation_id", pa.string()),
        pa.field("turn", pa.int64()),
        pa.field("worker_id", pa.int64()),
        pa.field("window", pa.int32(), nullable=False),
        pa.field("issued_ns", pa.int64(), nullable=False),
        pa.field("first_ns", pa.int64()),
        pa.field("complete_ns", pa.int64()),
        pa.field("ttft_ns", pa.int64()),
        pa.field("latency_ns", pa.int64()),
        pa.field("tpot_ns", pa.float64()),
        pa.field("n_chunks", pa.int32(), nullable=False),
        pa.field("isl", pa.int64()),
        pa.field("osl", pa.int64()),
        pa.field("finish_reason", pa.string()),
        pa.field("failed", pa.bool_(), nullable=False),
        pa.field("error_type", pa.string()),
    ],
    metadata={"producer": "bench-metrics", "clock": "producer monotonic, ns"},
)


def rows_to_table(rows: Sequence[tuple[Any, ...]], run_id: str | None) -> pa.Table:
    """A table of :data:`SAMPLES_SCHEMA` from :data:`SAMPLE_FIELDS` tuples.

    One transposition (``zip(*rows)``) and one Arrow conversion per column;
    the derived durations are Arrow arithmetic (nulls propagate).
    """
    n = len(rows)
    if n == 0:
        return SAMPLES_SCHEMA.empty_table()
    raw = dict(zip(SAMPLE_FIELDS, zip(*rows, strict=True), strict=True))
    types = {f.name: f.type for f in SAMPLES_SCHEMA}

    def col(name: str) -> pa.Array:
        return pa.array(raw[name], types[name])

    issued = col("issued_ns")
    first = col("first_ns")
    complete = col("complete_ns")
    errors = pa.array(raw["error_type"], pa.string())
    conversation = pa.array(raw["conversation_id"], pa.string())
    columns: dict[str, Any] = {
        "run_id": (
            pa.DictionaryArray.from_arrays(
                pa.array([0] * n, pa.int32()), pa.array([run_id], pa.string())
            )
            if run_id is not None
            else pa.DictionaryArray.from_arrays(pa.nulls(n, pa.int32()), pa.array([], pa.string()))
        ),
        "sample_uuid": col("sample_uuid"),
        # "" (no conversation) is null
        "conversation_id": pc.if_else(pc.equal(conversation, ""), None, conversation),
        "turn": col("turn"),
        "worker_id": col("worker_id"),
        "window": col("window"),
        "issued_ns": issued,
        "first_ns": first,
        "complete_ns": complete,
        "ttft_ns": pc.subtract(first, issued),
        "latency_ns": pc.subtract(complete, issued),
        "tpot_ns": col("tpot_ns"),
        "n_chunks": col("n_chunks"),
        "isl": col("isl"),
        "osl": col("osl"),
        "finish_reason": col("finish_reason"),
        "failed": pc.is_valid(errors),
        "error_type": errors,
    }
    return pa.Table.from_arrays([columns[f.name] for f in SAMPLES_SCHEMA], schema=SAMPLES_SCHEMA)


class SampleWriter:
    """Writes ``path`` (``samples.parquet``) from submitted rows, in a worker thread."""

    def __init__(self, path: str | os.PathLike[str], *, run_id: str | None) -> None:
        self.path = Path(path)
        self.run_id = run_id
        self._tmp = temporary_path(self.path)
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="samples-writer"
        )
        self._writer: pq.ParquetWriter | None = None
        self._file: WholeWrites | None = None
        self._buffer: list[tuple[Any, ...]] = []
        self._pending: concurrent.futures.Future[None] | None = None
        self.failed = False
        #: why the file could not be written (when ``failed``)
        self.error: str | None = None
        self.closed = False
        #: rows written into row groups so far (worker thread)
        self.rows_written = 0

    def submit(self, rows: list[tuple[Any, ...]]) -> None:
        """Queue ``rows`` for writing (returns at once; the worker converts and writes)."""
        if rows and not self.closed and not self.failed:
            self._pending = self._executor.submit(self._add, rows)

    def _add(self, rows: list[tuple[Any, ...]]) -> None:
        if self.failed:
            return
        self._buffer.extend(rows)
        try:
            while len(self._buffer) >= ROW_GROUP_ROWS:
                group, self._buffer = (
                    self._buffer[:ROW_GROUP_ROWS],
                    self._buffer[ROW_GROUP_ROWS:],
                )
                self._write(group)
        except Exception as exc:
            self._buffer = []
            self._fail(exc)

    def _fail(self, exc: Exception) -> None:
        self.failed = True
        if isinstance(exc, OSError):  # the disk's answer, not a bug: one line
            self.error = exc.strerror or str(exc)
            logger.error("could not write %s: %s", self.path, self.error)
        else:
            self.error = f"{type(exc).__name__}: {exc}"
            logger.exception("could not write %s", self.path)

    def _write(self, rows: list[tuple[Any, ...]]) -> None:
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # a new file (O_EXCL, never through a link), every byte written or an error
            self._file = open_whole_writes(self._tmp, exclusive=True)
            self._writer = pq.ParquetWriter(self._file, SAMPLES_SCHEMA, compression="zstd")
        if rows:
            self._writer.write_table(rows_to_table(rows, self.run_id), row_group_size=len(rows))
            self.rows_written += len(rows)

    def _discard(self) -> None:
        """Close and remove the temporary file this writer created (a file at that name
        it did not create, such as a planted link, is not its to remove)."""
        if self._file is None:
            return
        if self._writer is not None:
            # a writer left open would write its footer when collected
            with contextlib.suppress(Exception):
                self._writer.close()
        self._file.close()
        self._tmp.unlink(missing_ok=True)  # gone already once renamed into place

    def _finish(self) -> bool:
        if self.failed:
            self._discard()  # a row group failed: its temporary file must not stay
            return False
        try:
            self._write(self._buffer)
            self._buffer = []
            assert self._writer is not None and self._file is not None
            self._writer.close()
            os.fsync(self._file.fileno())
            self._file.close()
            os.replace(self._tmp, self.path)
            fsync_directory(self.path.parent)
            return True
        except Exception as exc:
            self._fail(exc)
            return False
        finally:
            self._discard()

    def close_sync(self, rows: list[tuple[Any, ...]] | None = None) -> bool:
        """Write ``rows`` and everything queued, finish the file; True when it is in place.

        Blocks until done (call it from a worker thread or ``asyncio.to_thread``).
        Idempotent; a failure is logged, never raised.
        """
        if self.closed:
            return not self.failed
        self.closed = True
        if rows:
            self._executor.submit(self._add, rows)
        ok = self._executor.submit(self._finish).result()
        self._executor.shutdown(wait=True)
        if ok:
            logger.info("%s written: %d samples", self.path, self.rows_written)
        return ok
