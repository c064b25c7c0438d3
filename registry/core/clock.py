"""Wall-clock anchors: what lets runs recorded on several hosts share one timeline (SPEC §11).

Event timestamps are the producer's ``CLOCK_MONOTONIC`` in ns: comparable
between processes of one boot of one host, meaningless anywhere else. An
anchor is a ``time.time_ns()`` taken beside ``time.monotonic_ns()`` (the
wall reading between two monotonic ones, which are averaged), so
``wall = monotonic + (anchor.wall_ns - anchor.monotonic_ns)``. The kernel's
boot id says which runs share a monotonic clock exactly: those need no
alignment at all (``bench-metrics merge`` then uses their timestamps as
they are).

Pure reads of the clocks and of ``/proc``; nothing here changes state.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

__all__ = ["anchor", "boot_id", "clock_block", "offset_ns"]

_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def anchor() -> dict[str, int]:
    """``{"wall_ns", "monotonic_ns"}`` read together (to well under a microsecond)."""
    best: tuple[int, int, int] | None = None
    for _ in range(3):  # keep the tightest of a few brackets
        m0 = time.monotonic_ns()
        w = time.time_ns()
        m1 = time.monotonic_ns()
        if best is None or m1 - m0 < best[2]:
            best = (w, (m0 + m1) // 2, m1 - m0)
    assert best is not None
    return {"wall_ns": best[0], "monotonic_ns": best[1]}


def boot_id() -> str | None:
    """This boot's id (Linux), or ``None`` where the kernel does not say."""
    try:
        return _BOOT_ID.read_text(encoding="ascii").strip() or None
    except OSError:
        return None


def clock_block(start: dict[str, int] | None, end: dict[str, int] | None) -> dict[str, Any]:
    """The ``clock`` entry of a final file's ``run`` block."""
    return {
        "host": socket.gethostname(),
        "boot_id": boot_id(),
        "start": start,
        "end": end,
    }


def offset_ns(clock: dict[str, Any] | None) -> int | None:
    """``wall - monotonic`` of a ``clock`` block (its start anchor, else its end), or ``None``."""
    if not isinstance(clock, dict):
        return None
    for key in ("start", "end"):
        a = clock.get(key)
        if isinstance(a, dict) and isinstance(a.get("wall_ns"), int):
            mono = a.get("monotonic_ns")
            if isinstance(mono, int):
                return int(a["wall_ns"]) - mono
    return None
