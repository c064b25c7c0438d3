"""The raw store: every folded value of every series, in memory up to a bound, then on disk.

SPEC §3 wants every raw value kept for the exact terminal statistics and
SPEC §11 wants memory flat however long the run. A :class:`RawStore` owns one
:class:`MemoryBudget` shared by all series of a registry (default
:data:`DEFAULT_MEMORY_BYTES` in total) and one directory. Each series folds
its values into a :class:`SeriesValues`: while the budget lasts they go to
memory blocks, after that to a spill buffer that is written as one Arrow IPC
record batch (``<dir>/<series>.arrows``, :mod:`registry.store.segments`)
whenever it fills. The fold runs in the publisher's worker thread, so the
writes never touch the benchmark's event loop or the hot path.

:meth:`RawStore.finalize` (after the final snapshot) writes the values still
in memory too, closes the files and writes ``manifest.json`` (atomically):
each series' dtype, HDR settings, exact rollups and value count, so a later
``bench-metrics merge`` knows the store is whole.

A spill that fails (a full disk) loses nothing: what is not known to be whole
in the file stays in memory, beyond the bound, and so do the series' later
values. ``finalize`` then rewrites that series' file whole (its complete
batches and memory, a temporary file renamed over it), so once the disk has
room again the store is complete after all; until then it raises and there is
no manifest.

A registry without a store keeps every value in memory (:class:`SeriesValues`
with no spill), as before. Nothing here computes a statistic.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from registry.delivery.atomic_file import fsync_directory, temporary_path, write_json_atomic
from registry.delivery.safe_open import make_directory
from registry.store.segments import SegmentWriter, arrow, read_values

__all__ = [
    "DEFAULT_MEMORY_BYTES",
    "MANIFEST_NAME",
    "STORE_FORMAT",
    "MemoryBudget",
    "RawStore",
    "SeriesValues",
    "series_file_name",
]

logger = logging.getLogger(__name__)

#: In-memory bound for raw values across all series of a registry.
DEFAULT_MEMORY_BYTES = 256 * 1024 * 1024
#: Values per memory block and at most per spilled record batch (512 KiB of int64).
BLOCK_VALUES = 1 << 16
#: Fewest values per spilled record batch.
MIN_SPILL_VALUES = 1 << 10
MANIFEST_NAME = "manifest.json"
STORE_FORMAT = "bench-metrics raw store 1 (Arrow IPC stream, one column 'value')"

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def series_file_name(name: str) -> str:
    """The store file of series ``name`` (characters unsafe in a file name become ``-``)."""
    safe = _UNSAFE.sub("-", name).lstrip(".") or "series"
    return f"{safe}.arrows"


class MemoryBudget:
    """Bytes of raw values a registry may keep in memory; shared by its series."""

    def __init__(self, limit_bytes: int) -> None:
        if int(limit_bytes) != limit_bytes or limit_bytes < 0:
            raise ValueError(f"memory bound must be an integer >= 0, got {limit_bytes!r}")
        self.limit = int(limit_bytes)
        self.used = 0
        self._lock = threading.Lock()
        # the spill buffers sit beside the bound: keep them a small part of it
        self.spill_values = max(MIN_SPILL_VALUES, min(BLOCK_VALUES, self.limit // 16 // 8))

    def take(self, nbytes: int) -> int:
        """Reserve up to ``nbytes``; returns how many were granted."""
        with self._lock:
            granted = max(0, min(nbytes, self.limit - self.used))
            self.used += granted
            return granted


class SeriesValues:
    """The raw values of one series: memory blocks, then (with a store) spilled batches.

    Small folds are copied into fixed blocks (no concatenation ever copies
    the whole series); big ones are kept as they are. ``chunks()`` yields
    every value exactly once, memory first, then the file, then the spill
    buffer not yet written.
    """

    def __init__(
        self,
        dtype: Any,
        *,
        budget: MemoryBudget | None = None,
        spill_path: Path | None = None,
        metadata: dict[str, str] | None = None,
    ) -> None:
        self.dtype = np.dtype(dtype)
        self._blocks: list[npt.NDArray[Any]] = []
        self._fill = 0  # values used in the last block when it is a partial one
        self._open_block: npt.NDArray[Any] | None = None
        self._open_index = -1
        self._budget = budget
        self._spill_path = spill_path
        self._metadata = metadata or {}
        self._writer: SegmentWriter | None = None
        self._spill_buf: npt.NDArray[Any] | None = None
        self._spill_fill = 0
        #: values held in memory / written to the file
        self.in_memory = 0
        self.spilled = 0
        #: values the file held when the run ended (written as they were folded)
        self.spilled_while_running = 0
        #: writing the file failed once (a full disk, a link in the way): values stay in
        #: memory from then on, and ``finalize`` rewrites the file whole
        self.spill_failed = False
        self.finalized = False
        self._spill_size = budget.spill_values if budget is not None else BLOCK_VALUES

    @property
    def count(self) -> int:
        return self.in_memory + self.spilled + self._spill_fill

    # -- writing ---------------------------------------------------------------

    def append(self, batch: npt.NDArray[Any]) -> None:
        """Keep ``batch`` (1-D, this dtype): in memory while the budget lasts, else spill."""
        if batch.size == 0:
            return
        if self._budget is not None and self._spill_path is not None and not self.spill_failed:
            fits = self._budget.take(batch.nbytes) // self.dtype.itemsize
            if fits < batch.size:
                self._keep(batch[:fits])
                self._spill(batch[fits:])
                return
        self._keep(batch)

    def _keep(self, batch: npt.NDArray[Any]) -> None:
        n = int(batch.size)
        if n == 0:
            return
        self.in_memory += n
        if n >= BLOCK_VALUES:
            self._blocks.append(batch)
            return
        block = self._open_block
        if block is not None and self._fill + n <= block.size:
            block[self._fill : self._fill + n] = batch
            self._fill += n
            return
        if block is not None:
            # the open block is done: keep only its filled part
            self._blocks[self._open_index] = block[: self._fill]
        block = np.empty(BLOCK_VALUES, dtype=self.dtype)
        block[:n] = batch
        self._open_index = len(self._blocks)
        self._blocks.append(block)
        self._open_block = block
        self._fill = n

    def _spill(self, batch: npt.NDArray[Any]) -> None:
        size = self._spill_size
        pos = 0
        n = int(batch.size)
        try:
            if self._writer is None:
                assert self._spill_path is not None
                make_directory(self._spill_path.parent)
                self._writer = SegmentWriter(self._spill_path, self.dtype, metadata=self._metadata)
                self._spill_buf = np.empty(size, dtype=self.dtype)
            buf = self._spill_buf
            assert buf is not None
            while pos < n:
                if self._spill_fill == 0 and n - pos >= size:
                    # whole batches straight from the fold's array, at most a block each
                    take = min(n - pos, BLOCK_VALUES) // size * size
                    self._writer.write(batch[pos : pos + take])
                    self.spilled += take
                    pos += take
                    continue
                take = min(size - self._spill_fill, n - pos)
                buf[self._spill_fill : self._spill_fill + take] = batch[pos : pos + take]
                self._spill_fill += take
                pos += take
                if self._spill_fill == size:
                    self._writer.write(buf)
                    self.spilled += size
                    self._spill_fill = 0
        except OSError as exc:
            # A full or failing disk must not lose values: what is not known to be in the
            # file (the buffer, the rest of this batch) stays in memory, and so does every
            # later value, beyond the bound (logged once).
            logger.error(
                "raw store file %s cannot be written (%s): keeping this series' values in memory",
                self._spill_path,
                exc.strerror or exc,
            )
            self.spill_failed = True
            if self._spill_buf is not None and self._spill_fill:
                self._keep(self._spill_buf[: self._spill_fill].copy())
            self._spill_fill = 0
            self._keep(batch[pos:])

    # -- reading ---------------------------------------------------------------

    def _memory_chunks(self) -> Iterator[npt.NDArray[Any]]:
        for block in self._blocks:
            if block is self._open_block:
                yield block[: self._fill]
            else:
                yield block

    def chunks(self) -> Iterator[npt.NDArray[Any]]:
        """Every value once, in pieces (file pieces are memory-mapped, read-only)."""
        if not self.finalized:
            yield from self._memory_chunks()
        if self._writer is not None or self.finalized:
            assert self._spill_path is not None
            # only what is known to be written whole (a failed write may have left a part)
            yield from read_values(self._spill_path, limit=self.spilled)
        if self._spill_fill and not self.finalized:
            assert self._spill_buf is not None
            yield self._spill_buf[: self._spill_fill]

    def concatenated(self) -> npt.NDArray[Any]:
        """Every value in one array (loads the whole series; for small data and tests)."""
        parts = list(self.chunks())
        return np.concatenate(parts) if parts else np.empty(0, dtype=self.dtype)

    # -- the end -----------------------------------------------------------------

    def finalize(self) -> None:
        """Write what memory and the spill buffer hold, close the file (stores only)."""
        if self.finalized or self._spill_path is None:
            return
        if self.spill_failed:
            self._rewrite()
            return
        self.spilled_while_running = self.spilled
        make_directory(self._spill_path.parent)
        if self._writer is None:
            self._writer = SegmentWriter(self._spill_path, self.dtype, metadata=self._metadata)
        for chunk in self._memory_chunks():
            self._writer.write(chunk)
        if self._spill_fill:
            assert self._spill_buf is not None
            self._writer.write(self._spill_buf[: self._spill_fill])
            self.spilled += self._spill_fill
            self._spill_fill = 0
        self._writer.close()
        self.finalized = True
        # the memory values now live in the file: reading goes there from now on
        self.spilled += self.in_memory
        self.in_memory = 0
        self._blocks = []
        self._open_block = None

    def _rewrite(self) -> None:
        """After a failed spill: the file's whole batches, then every value in memory, into
        a fresh file renamed over the old one (it works once the disk has room again; until
        then it raises and the values stay where they are)."""
        path = self._spill_path
        assert path is not None
        old = self._writer
        if old is not None:
            # the old file only has to give back its whole batches: a failing close is moot
            with contextlib.suppress(Exception):
                old.close()
        make_directory(path.parent)
        tmp = temporary_path(path)
        writer: SegmentWriter | None = None
        try:
            writer = SegmentWriter(tmp, self.dtype, metadata=self._metadata)
            if old is not None:
                for chunk in read_values(path, limit=self.spilled):
                    writer.write(chunk)
            if writer.values_written != self.spilled:
                raise OSError(
                    errno.EIO,
                    f"raw store file {path} holds {writer.values_written} of the "
                    f"{self.spilled} values written to it",
                )
            for chunk in self._memory_chunks():
                writer.write(chunk)
            writer.close()
            os.replace(tmp, path)
            fsync_directory(path.parent)
        except BaseException:
            if writer is not None:
                with contextlib.suppress(Exception):
                    writer.close()
            tmp.unlink(missing_ok=True)
            raise
        logger.info("raw store file %s rewritten whole after the earlier failure", path)
        self._writer = writer
        self.spilled_while_running = self.spilled
        self.spilled += self.in_memory
        self.in_memory = 0
        self._blocks = []
        self._open_block = None
        self.finalized = True


class RawStore:
    """A directory of per-series raw-value files under one shared memory bound."""

    def __init__(
        self, directory: str | os.PathLike[str], *, memory_bytes: int = DEFAULT_MEMORY_BYTES
    ) -> None:
        self.directory = Path(directory)
        self.budget = MemoryBudget(memory_bytes)
        # A store spills on the loop that records: pyarrow is imported now, not
        # in the middle of a run at the first spill.
        arrow()
        self._series: dict[str, SeriesValues] = {}
        self._names: set[str] = set()
        self.finalized = False

    def values_for(self, name: str, dtype: Any, metadata: dict[str, str]) -> SeriesValues:
        """The :class:`SeriesValues` of a new series ``name`` (its file created on first spill)."""
        file_name = series_file_name(name)
        if file_name in self._names:
            raise ValueError(f"series {name!r}: its store file name {file_name!r} is taken")
        self._names.add(file_name)
        values = SeriesValues(
            dtype,
            budget=self.budget,
            spill_path=self.directory / file_name,
            metadata={"series": name, **metadata},
        )
        self._series[name] = values
        return values

    def finalize(self, series_info: dict[str, dict[str, Any]]) -> Path:
        """Write every series' remaining values and ``manifest.json``; returns its path.

        ``series_info``: per series name, what the manifest records beside the
        file (dtype, HDR settings, exact rollups). Idempotent.
        """
        path = self.directory / MANIFEST_NAME
        if self.finalized:
            return path
        entries: dict[str, Any] = {}
        make_directory(self.directory)
        failed: OSError | None = None
        for name, values in self._series.items():
            try:
                values.finalize()
            except OSError as exc:
                # the other series still get their files completed; no manifest then
                logger.error("raw store series %s not completed: %s", name, exc.strerror or exc)
                failed = failed or exc
                continue
            entries[name] = {
                "file": series_file_name(name),
                "values": values.count,
                "spilled_while_running": values.spilled_while_running,
                **series_info.get(name, {}),
            }
        if failed is not None:
            raise failed
        write_json_atomic(
            path,
            {"format": STORE_FORMAT, "complete": True, "series": entries},
        )
        self.finalized = True
        logger.info("raw store complete: %s (%d series)", self.directory, len(entries))
        return path
