"""Append-only Arrow IPC stream files of one numeric column: the raw store's on-disk form.

Why Arrow IPC (the stream format, ``.arrows``) and not Parquet: values arrive
a batch at a time for hours and a crash must keep every batch already
written. An IPC stream is a schema followed by self-delimiting record
batches, so a file cut anywhere still reads back up to its last complete
batch; a Parquet file is unreadable until its footer is written at close.
Batches are uncompressed int64/float64, so reading maps them straight into
numpy without decoding, and any Arrow reader opens them
(``pyarrow.ipc.open_stream``, ``polars.read_ipc_stream``; DuckDB through
pyarrow, see docs/store-and-merge.md).

Durability: every batch is handed to the OS when written (a crashed process
loses nothing written), ``fdatasync`` runs at most once per ``sync_every_s``
and at close (a crashed machine loses at most that long).

This module only writes and reads files; it never decides which values go
where and never holds more than one batch.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import numpy.typing as npt

from registry.delivery.safe_open import open_whole_writes

__all__ = ["COLUMN", "FileFacts", "SegmentWriter", "arrow", "file_facts", "read_values"]

logger = logging.getLogger(__name__)

#: The one column of every raw-store file.
COLUMN = "value"


def arrow() -> ModuleType:
    """pyarrow, imported on first use: every registry has a series, few write
    files, and the import costs 0.1-0.3 s of start-up. Whoever will write from
    a running loop calls this first (the raw store does when it is made)."""
    import pyarrow

    return pyarrow


class SegmentWriter:
    """Appends record batches of ``dtype`` values to a new IPC stream file at ``path``."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        dtype: Any,
        *,
        metadata: Mapping[str, str] | None = None,
        sync_every_s: float = 1.0,
    ) -> None:
        self.path = Path(path)
        self.dtype = np.dtype(dtype)
        pa = arrow()
        types = {np.dtype(np.int64): pa.int64(), np.dtype(np.float64): pa.float64()}
        self._schema = pa.schema(
            [pa.field(COLUMN, types[self.dtype], nullable=False)],
            metadata={str(k): str(v) for k, v in (metadata or {}).items()},
        )
        # never through a link; every byte written or an error (a short write on a nearly
        # full disk must not leave a batch counted that is not whole in the file)
        self._file = open_whole_writes(self.path)
        try:
            self._writer = pa.ipc.new_stream(self._file, self._schema)
        except BaseException:
            self._file.close()
            raise
        self._sync_every_s = float(sync_every_s)
        self._last_sync = time.monotonic()
        self.closed = False
        #: values written so far (every batch complete on disk)
        self.values_written = 0

    def write(self, values: npt.NDArray[Any]) -> None:
        """One record batch of ``values`` (1-D, this writer's dtype), handed to the OS."""
        if values.size == 0:
            return
        pa = arrow()
        array = pa.array(np.ascontiguousarray(values, dtype=self.dtype))
        self._writer.write_batch(pa.record_batch([array], schema=self._schema))
        self.values_written += int(values.size)
        now = time.monotonic()
        if now - self._last_sync >= self._sync_every_s:
            os.fdatasync(self._file.fileno())
            self._last_sync = now

    def close(self) -> None:
        """End-of-stream marker, fsync, close. Idempotent."""
        if self.closed:
            return
        self.closed = True
        try:
            self._writer.close()
            os.fsync(self._file.fileno())
        finally:
            self._file.close()


@dataclass(frozen=True)
class FileFacts:
    """What a raw-store file says about itself, read without touching its values."""

    #: its schema metadata (``series``, ``dtype``)
    metadata: dict[str, str]
    #: the column's type as numpy names it (``"int64"``, ``"float64"``)
    dtype: str
    #: values in its complete batches
    values: int


def file_facts(path: str | os.PathLike[str]) -> FileFacts:
    """The schema metadata, column type and value count of raw-store file ``path``
    (batch headers only: the values stay memory-mapped, unread). :class:`OSError` when
    it has no readable schema."""
    pa = arrow()
    try:
        reader = pa.ipc.open_stream(pa.memory_map(str(path)))
    except pa.ArrowInvalid as exc:
        raise OSError(f"{path}: no readable Arrow IPC schema ({exc})") from None
    meta = {
        k.decode("utf-8", "replace"): v.decode("utf-8", "replace")
        for k, v in (reader.schema.metadata or {}).items()
    }
    try:
        dtype = np.dtype(reader.schema.field(0).type.to_pandas_dtype()).name
    except (IndexError, NotImplementedError, TypeError):
        dtype = "none"
    n = 0
    while True:
        try:
            n += reader.read_next_batch().num_rows
        except StopIteration:
            break
        except (pa.ArrowInvalid, OSError):
            break  # cut short: the complete batches count
    return FileFacts(metadata=meta, dtype=dtype, values=n)


def read_values(
    path: str | os.PathLike[str], *, limit: int | None = None
) -> Iterator[npt.NDArray[Any]]:
    """Every complete batch of ``path`` as a read-only numpy array (memory-mapped, no copy),
    at most ``limit`` values in all.

    A file cut short by a crash yields its complete batches and logs where it
    stopped; a missing or empty file yields nothing.
    """
    p = Path(path)
    pa = arrow()
    try:
        if p.stat().st_size == 0:
            return
        source = pa.memory_map(str(p))
    except FileNotFoundError:
        return
    try:
        reader = pa.ipc.open_stream(source)
    except (pa.ArrowInvalid, OSError) as exc:
        logger.warning("raw store file %s has no readable schema (%s): skipped", p, exc)
        return
    n = 0
    left = limit
    while left is None or left > 0:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            return
        except (pa.ArrowInvalid, OSError) as exc:
            logger.warning(
                "raw store file %s ends in an incomplete batch after %d complete ones (%s)",
                p,
                n,
                exc,
            )
            return
        n += 1
        values = batch.column(0).to_numpy(zero_copy_only=True)
        if left is not None:
            values = values[:left]
            left -= values.size
        yield values
