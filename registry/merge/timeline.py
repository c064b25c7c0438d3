"""One timeline for several runs: clock offsets and the merged durations (SPEC §11).

Each run's timestamps are its producer's monotonic clock. Runs of the same
boot (same kernel boot id) share that clock exactly and need no offset;
others are moved onto the first run's clock through their wall-clock
anchors (``wall - monotonic`` of each, :mod:`registry.core.clock`). On that one
timeline:

- ``tracked_duration_ns``: per tracking window index, the union of the runs'
  ``[start, latest completion]`` intervals (they usually overlap: every load
  generator starts window k at about the same time), summed over windows;
  for runs that split one session this is exactly the one run's figure;
- ``legacy_loadgen_window_duration_ns``: earliest first tracked issue to the
  completion of the latest-issued tracked sample of all runs;
- ``total_duration_ns``: earliest ``session.started`` to the latest event.

Pure arithmetic on the run blocks; no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from registry.core.clock import offset_ns

__all__ = ["Alignment", "align", "merged_durations"]


class Alignment:
    """How one run's timestamps map onto the merged timeline: ``ts + offset_ns``."""

    __slots__ = ("how", "offset_ns")

    def __init__(self, offset: int, how: str) -> None:
        self.offset_ns = offset
        #: "reference", "same-boot", "wall-clock" or "none" (no anchors: taken as is)
        self.how = how

    def as_dict(self) -> dict[str, Any]:
        return {"offset_ns": self.offset_ns, "alignment": self.how}


def align(run_blocks: Sequence[dict[str, Any]]) -> list[Alignment]:
    """The offset of every run onto the first one's clock."""
    out: list[Alignment] = []
    ref = run_blocks[0].get("clock") if run_blocks else None
    ref_boot = ref.get("boot_id") if isinstance(ref, dict) else None
    ref_offset = offset_ns(ref)
    for i, run in enumerate(run_blocks):
        clock = run.get("clock")
        boot = clock.get("boot_id") if isinstance(clock, dict) else None
        if i == 0:
            out.append(Alignment(0, "reference"))
        elif boot is not None and boot == ref_boot:
            out.append(Alignment(0, "same-boot"))
        else:
            own = offset_ns(clock)
            if own is None or ref_offset is None:
                out.append(Alignment(0, "none"))
            else:
                out.append(Alignment(own - ref_offset, "wall-clock"))
    return out


def _union_length(intervals: list[tuple[int, int]]) -> int:
    total = 0
    end: int | None = None
    start = 0
    for s, e in sorted(intervals):
        if end is None or s > end:
            if end is not None:
                total += end - start
            start, end = s, e
        else:
            end = max(end, e)
    if end is not None:
        total += end - start
    return total


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def merged_durations(
    timelines: Sequence[dict[str, Any] | None], alignments: Sequence[Alignment]
) -> dict[str, int] | None:
    """The three duration counters of the merged run; ``None`` when a run has no timeline."""
    if any(not isinstance(t, dict) for t in timelines):
        return None
    windows: dict[int, list[tuple[int, int]]] = {}
    starts: list[int] = []
    latest: list[int] = []
    legacy_start: list[int] = []
    legacy_last: tuple[int, int] | None = None  # (issued, end) of the latest-issued sample
    for t, a in zip(timelines, alignments, strict=True):
        assert isinstance(t, dict)
        off = a.offset_ns
        for w, pair in enumerate(t.get("windows") or []):
            s, e = _int(pair[0]), _int(pair[1])
            if s is not None and e is not None:
                windows.setdefault(w, []).append((s + off, max(s, e) + off))
        s0, last = _int(t.get("session_start_ns")), _int(t.get("latest_event_ns"))
        if s0 is not None and last is not None:
            starts.append(s0 + off)
            latest.append(last + off)
        leg = t.get("legacy") or {}
        first = _int(leg.get("first_issued_ns"))
        if first is not None:
            legacy_start.append(first + off)
        issued, end = _int(leg.get("latest_issued_ns")), _int(leg.get("end_ns"))
        if issued is not None and end is not None:
            cand = (issued + off, end + off)
            if legacy_last is None or cand[0] > legacy_last[0]:
                legacy_last = cand
    legacy = 0
    if legacy_start and legacy_last is not None:
        legacy = max(0, legacy_last[1] - min(legacy_start))
    return {
        "tracked_duration_ns": sum(_union_length(iv) for iv in windows.values()),
        "legacy_loadgen_window_duration_ns": legacy,
        "total_duration_ns": (max(latest) - min(starts)) if starts else 0,
    }
