"""The in-flight sample table: one row per tracked sample until its completion (SPEC §6, §11).

A row holds the few timestamps the metric rules need (issued, first and
latest receive), the tracking window it was issued in, and what
``samples.parquet`` reports about the sample beyond them: its input length,
how many chunks it received and whether (and how) it failed. Rows live in
parallel ``array.array`` columns indexed by a slot number, with a
``uuid -> slot`` dict and a free list: per in-flight sample that costs the
uuid string and its dict entry plus 38 bytes of columns, instead of a Python
list and an int object per timestamp (a busy run keeps tens of thousands of
samples in flight, and a timestamp as a Python int is 32 bytes). The rare
conversation id and turn sit in a dict keyed by slot, only when set.

Reading a column returns a Python int; :data:`UNSET` (the int64 maximum)
marks a timestamp not seen yet, so "a later event than the last one seen"
is one comparison that an unset column always fails. ``failed`` is 0 for a
sample without an error event, else 1 + the index of its (first) error type
in :attr:`SampleTable.error_types`. This module holds state only: it never
decides a metric and never records into a registry.
"""

from __future__ import annotations

import array

__all__ = ["NO_COUNT", "UNSET", "SampleTable"]

#: A timestamp column value meaning "not seen yet".
UNSET = 2**63 - 1
#: A count column value meaning "not known" (``isl`` without token counts).
NO_COUNT = -1

_GROW = 1024
_INT32_MAX = 2**31 - 1


class SampleTable:
    """Rows of in-flight tracked samples, keyed by uuid."""

    __slots__ = (
        "_error_codes",
        "_free",
        "block",
        "chunks",
        "error_types",
        "failed",
        "index",
        "isl",
        "issued",
        "last_recv",
        "recv_first",
        "tags",
    )

    def __init__(self) -> None:
        #: uuid -> slot of every in-flight tracked sample
        self.index: dict[str, int] = {}
        self.issued = array.array("q")
        self.recv_first = array.array("q")
        self.last_recv = array.array("q")
        #: tracking window (0-based) the sample was issued in
        self.block = array.array("i")
        #: input tokens known at issue, or NO_COUNT
        self.isl = array.array("i")
        #: receive events (first and later chunks) applied
        self.chunks = array.array("i")
        #: 0, or 1 + index into error_types of the sample's first error
        self.failed = array.array("h")
        #: slot -> (conversation_id, turn), only for samples that carry them
        self.tags: dict[int, tuple[str, int | None]] = {}
        #: every error type seen, in order of first appearance
        self.error_types: list[str] = []
        self._error_codes: dict[str, int] = {}
        self._free: list[int] = []

    def __len__(self) -> int:
        return len(self.index)

    def __contains__(self, uuid: str) -> bool:
        return uuid in self.index

    def _grow(self) -> None:
        start = len(self.issued)
        for col in (self.issued, self.recv_first, self.last_recv):
            col.extend([UNSET] * _GROW)
        for col32 in (self.block, self.isl, self.chunks):
            col32.extend([0] * _GROW)
        self.failed.extend([0] * _GROW)
        # Reversed, so slots are handed out in increasing order (pop from the end).
        self._free.extend(range(start + _GROW - 1, start - 1, -1))

    def open(self, uuid: str, issued_ns: int, block: int, isl: int | None = None) -> int:
        """A new row for ``uuid`` (the caller checked it has none); its slot.

        ``isl``: the input length when known at issue (see :meth:`set_isl`).
        """
        if not self._free:
            self._grow()
        slot = self._free.pop()
        self.index[uuid] = slot
        self.issued[slot] = issued_ns
        self.recv_first[slot] = UNSET
        self.last_recv[slot] = UNSET
        self.block[slot] = block
        self.isl[slot] = isl if isl is not None and 0 <= isl <= _INT32_MAX else NO_COUNT
        self.chunks[slot] = 0
        self.failed[slot] = 0
        return slot

    def set_isl(self, slot: int, n: int) -> None:
        """Remember the input length (a count beyond int32 is kept as unknown)."""
        self.isl[slot] = n if 0 <= n <= _INT32_MAX else NO_COUNT

    def mark_failed(self, slot: int, error_type: str) -> None:
        """Flag the row failed; its first error's type is the one kept."""
        if self.failed[slot]:
            return
        code = self._error_codes.get(error_type)
        if code is None:
            if len(self.error_types) >= 32_000:  # hostile input: stop interning
                error_type = "other"
                code = self._error_codes.get(error_type)
            if code is None:
                self.error_types.append(error_type)
                code = self._error_codes[error_type] = len(self.error_types)
        self.failed[slot] = code

    def error_type(self, slot: int) -> str | None:
        """The error type of a failed row, ``None`` for one that did not fail."""
        code = self.failed[slot]
        return self.error_types[code - 1] if code else None

    def close(self, uuid: str) -> int:
        """Remove ``uuid``'s row; its slot stays readable until the next :meth:`open`."""
        slot = self.index.pop(uuid)
        self._free.append(slot)
        return slot

    def release_tags(self, slot: int) -> tuple[str, int | None] | None:
        """The row's (conversation_id, turn), forgotten (call after its last use)."""
        return self.tags.pop(slot, None)
