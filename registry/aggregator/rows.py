"""The in-flight sample table: one row per tracked sample until its completion (SPEC §6).

A row holds the few timestamps the metric rules need (issued, first and
latest receive), the tracking window it was issued in, and a failed flag.
Rows live in parallel ``array.array`` columns indexed by a slot number, with
a ``uuid -> slot`` dict and a free list: per in-flight sample that costs the
uuid string and its dict entry plus 8 bytes per column, instead of a Python
list and an int object per timestamp (a busy run keeps tens of thousands of
samples in flight, and a timestamp as a Python int is 32 bytes).

Reading a column returns a Python int; :data:`UNSET` (the int64 maximum)
marks a timestamp not seen yet, so "a later event than the last one seen"
is one comparison that an unset column always fails. This module holds state only: it never
decides a metric and never records into a registry.
"""

from __future__ import annotations

import array

__all__ = ["UNSET", "SampleTable"]

#: A timestamp column value meaning "not seen yet".
UNSET = 2**63 - 1

_GROW = 1024


class SampleTable:
    """Rows of in-flight tracked samples, keyed by uuid."""

    __slots__ = ("_free", "block", "failed", "index", "issued", "last_recv", "recv_first")

    def __init__(self) -> None:
        #: uuid -> slot of every in-flight tracked sample
        self.index: dict[str, int] = {}
        self.issued = array.array("q")
        self.recv_first = array.array("q")
        self.last_recv = array.array("q")
        #: tracking window (0-based) the sample was issued in
        self.block = array.array("q")
        self.failed = array.array("b")
        self._free: list[int] = []

    def __len__(self) -> int:
        return len(self.index)

    def __contains__(self, uuid: str) -> bool:
        return uuid in self.index

    def _grow(self) -> None:
        start = len(self.issued)
        for col in (self.issued, self.recv_first, self.last_recv, self.block):
            col.extend([UNSET] * _GROW)
        self.failed.extend(bytes(_GROW))
        # Reversed, so slots are handed out in increasing order (pop from the end).
        self._free.extend(range(start + _GROW - 1, start - 1, -1))

    def open(self, uuid: str, issued_ns: int, block: int) -> int:
        """A new row for ``uuid`` (the caller checked it has none); its slot."""
        if not self._free:
            self._grow()
        slot = self._free.pop()
        self.index[uuid] = slot
        self.issued[slot] = issued_ns
        self.recv_first[slot] = UNSET
        self.last_recv[slot] = UNSET
        self.block[slot] = block
        self.failed[slot] = 0
        return slot

    def close(self, uuid: str) -> int:
        """Remove ``uuid``'s row; its slot stays readable until the next :meth:`open`."""
        slot = self.index.pop(uuid)
        self._free.append(slot)
        return slot
