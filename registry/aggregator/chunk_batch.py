"""Chunk receives held back and applied to the sample table together.

Nine records in ten of a streaming run are ``sample.recv_non_first``, and the
rule for one is tiny (SPEC §6): the gap since its sample's previous receive
goes into ``chunk_delta_ns``, the receive becomes the sample's latest, and its
chunk count grows by one. Done record by record in Python, the ``array``
reads and writes and the series append cost more than decoding the record;
done for a batch at once they cost a few numpy calls.

Why holding them back is exact: a chunk receive reads and writes only its own
sample's row, and no other sample's event touches that row. So a sample's
receives may wait, in order, until the next event of another type for the
same sample (which may read them: a completion reports the latest receive and
the chunk count), a session event, or the batch's end; and, when no one reads
the table or the registry in between, across batches. :class:`HeldReceives`
keeps them per sample uuid in arrival order (the row is looked up when they
are applied: a sample's row opens and closes only with its own events of
other types, so it is the same then as when they arrived); the caller settles
a sample's before any other event of that sample (:func:`settle`) and the
rest when it must (:func:`finish`).

Only the common case is done here: the sample has a row, every receive
follows an earlier one of its sample (so it has a gap) and none is earlier
than the one before it. Receives that are not all like that are handed back
unchanged, and the caller applies them one by one by the full rule.

This module decides no rule beyond the common case above and never records
into a registry: it returns the gaps.
"""

from __future__ import annotations

import itertools

import numpy as np
import numpy.typing as npt

from registry.aggregator.rows import SampleTable

__all__ = ["HeldReceives", "finish", "settle"]


class HeldReceives:
    """Held chunk receives.

    ``by_uuid``: sample uuid -> timestamps not applied yet, in arrival order
    (the hot loop appends to it directly). ``settled``: timestamps already
    applied to their rows whose gaps are still to be computed, with
    ``settled_prev``, each list's predecessor (the row's latest receive before
    them).
    """

    __slots__ = ("by_uuid", "settled", "settled_prev")

    def __init__(self) -> None:
        self.by_uuid: dict[str, list[int]] = {}
        self.settled: list[list[int]] = []
        self.settled_prev: list[int] = []

    def __bool__(self) -> bool:
        return bool(self.by_uuid or self.settled)


def settle(rows: SampleTable, held: HeldReceives, slot: int, stamps: list[int]) -> bool:
    """Bring ``slot``'s row up to date with ``stamps``, the receives held for its
    sample (the caller took them out of ``held.by_uuid``), before another event of
    that sample.

    ``False``, with nothing applied, when they are not the common case.
    """
    last_recv = rows.last_recv
    prev = last_recv[slot]
    # UNSET (no receive yet) is the int64 maximum: never the common case.
    if stamps[0] < prev or (len(stamps) > 1 and stamps != sorted(stamps)):
        return False
    last_recv[slot] = stamps[-1]
    rows.chunks[slot] += len(stamps)
    held.settled.append(stamps)
    held.settled_prev.append(prev)
    return True


def finish(
    rows: SampleTable, held: HeldReceives
) -> tuple[npt.NDArray[np.int64], int, dict[int, list[int]], list[tuple[str, list[int]]]]:
    """Apply what is still held where it is the common case; empty ``held``.

    Returns the gaps of every settled and applied receive (each sample's in
    order), the latest of their timestamps (``-2**63`` if none), and what is
    handed back unapplied: by row slot, the receives of samples with a row
    that are not all the common case; by uuid, those of samples without a row.
    """
    by_uuid, settled, settled_prev = held.by_uuid, held.settled, held.settled_prev
    held.by_uuid, held.settled, held.settled_prev = {}, [], []
    back: dict[int, list[int]] = {}
    index_get = rows.index.get
    by_slot: dict[int, list[int]] = {}
    no_row: list[tuple[str, list[int]]] = []
    for uuid, waiting in by_uuid.items():
        slot = index_get(uuid)
        if slot is None:
            no_row.append((uuid, waiting))
        else:
            by_slot[slot] = waiting
    if not by_slot and not settled:
        return np.empty(0, np.int64), -(2**63), back, no_row
    n_open = len(by_slot)
    groups = [*by_slot.values(), *settled]
    lengths = list(map(len, groups))
    sizes = np.array(lengths, np.intp)
    stamps = np.fromiter(itertools.chain.from_iterable(groups), np.int64, sum(lengths))
    ends = np.cumsum(sizes)
    starts = ends - sizes
    prev = np.empty(len(stamps), np.int64)
    prev[1:] = stamps[:-1]
    # Views on the table's columns pin their size (SampleTable grows them when it
    # opens a row), so they must not outlive this call.
    last_recv = np.frombuffer(rows.last_recv, np.int64)
    chunks = np.frombuffer(rows.chunks, np.intc)
    try:
        if n_open:
            slot_list = list(by_slot)
            slots = np.array(slot_list, np.intp)
            prev[starts[:n_open]] = last_recv[slots]
        if settled_prev:
            prev[starts[n_open:]] = settled_prev
        gaps = stamps - prev
        if n_open:
            # per sample: is every gap >= 0? (an unset latest receive is the int64
            # maximum, so its gap is negative too)
            ok = np.minimum.reduceat(gaps[: int(ends[n_open - 1])], starts[:n_open]) >= 0
            applied = slots[ok]
            last_recv[applied] = stamps[ends[:n_open][ok] - 1]
            chunks[applied] += sizes[:n_open][ok]
            if not ok.all():
                keep = np.ones(len(stamps), bool)
                for i in np.flatnonzero(~ok).tolist():
                    back[slot_list[i]] = by_slot[slot_list[i]]
                    keep[starts[i] : ends[i]] = False
                gaps, stamps = gaps[keep], stamps[keep]
    finally:
        del last_recv, chunks
    latest = int(stamps.max()) if len(stamps) else -(2**63)
    return gaps, latest, back, no_row
