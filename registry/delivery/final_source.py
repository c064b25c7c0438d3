"""Where the final report comes from, in the order SPEC §7 fixes.

1. ``final_snapshot.json`` (atomic, exact): used whenever it is a valid
   terminal snapshot.
2. The terminal frame on the snapshot stream.
3. The latest live snapshot seen on the stream: not exact, not complete; the
   report must say so.

:func:`load_final_snapshot` returns which source it used and, when it is not
the file, why the file was not usable. This module only reads; it never
writes the final file and never invents a snapshot.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from registry.delivery.snapshot import MetricsSnapshot
from registry.delivery.snapshot_codec import SnapshotDecodeError, run_block, snapshot_from_dict
from registry.delivery.subscriber import SnapshotSubscriber

__all__ = [
    "FINAL_SNAPSHOT_NAME",
    "FinalFileError",
    "FinalSnapshotResult",
    "FinalSnapshotUnavailable",
    "load_final_snapshot",
    "read_final_document",
    "read_final_file",
]

#: The final snapshot's file name in a run's output directory.
FINAL_SNAPSHOT_NAME = "final_snapshot.json"

FinalSource = Literal["file", "terminal_frame", "latest_live"]


class FinalFileError(ValueError):
    """The final snapshot file is missing or not a complete terminal snapshot."""


class FinalSnapshotUnavailable(LookupError):
    """No source had a snapshot; the message lists why each one failed."""


@dataclass(frozen=True)
class FinalSnapshotResult:
    """The snapshot a report is built from, and where it came from."""

    snapshot: MetricsSnapshot
    source: FinalSource
    #: why the file was not used (``None`` when ``source == "file"``)
    reason: str | None = None
    #: the file's ``run`` block (``None`` for upstream's files and for stream sources)
    run: dict[str, Any] | None = None

    @property
    def exact(self) -> bool:
        """Terminal data (file or terminal frame), not a live approximation."""
        return self.source != "latest_live"


def read_final_file(path: str | os.PathLike[str]) -> MetricsSnapshot:
    """The terminal snapshot in ``path`` or :class:`FinalFileError` saying what is wrong."""
    return read_final_document(path)[0]


def read_final_document(
    path: str | os.PathLike[str],
) -> tuple[MetricsSnapshot, dict[str, Any] | None]:
    """:func:`read_final_file` plus the file's ``run`` block (``None`` when it has none)."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise FinalFileError(f"{p}: no such file") from None
    except OSError as exc:
        raise FinalFileError(f"{p}: cannot read: {exc.strerror or exc}") from None
    try:
        doc = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FinalFileError(f"{p}: not valid JSON ({len(raw)} bytes): {exc}") from None
    if not isinstance(doc, dict):
        raise FinalFileError(f"{p}: expected a JSON object, got {type(doc).__name__}")
    try:
        snap = snapshot_from_dict(doc)
        run = run_block(doc)
    except SnapshotDecodeError as exc:
        raise FinalFileError(f"{p}: {exc}") from None
    if not snap.is_terminal:
        raise FinalFileError(f"{p}: snapshot state is {snap.state.value!r}, not terminal")
    return snap, run


def _from_file(path: str | os.PathLike[str]) -> FinalSnapshotResult:
    snap, run = read_final_document(path)
    return FinalSnapshotResult(snap, "file", run=run)


async def load_final_snapshot(
    path: str | os.PathLike[str],
    *,
    endpoint: str | None = None,
    subscriber: SnapshotSubscriber | None = None,
    timeout: float = 5.0,
) -> FinalSnapshotResult:
    """The final snapshot by SPEC §7's order: file, terminal frame, latest live.

    The stream is read through ``subscriber`` (already running) or, when only
    ``endpoint`` is given, a subscriber opened for up to ``timeout`` seconds.
    The file is read again when a terminal frame arrives (the publisher
    writes it before sending the frame) and when the wait times out. Raises
    :class:`FinalSnapshotUnavailable` when nothing is available.
    """
    try:
        return _from_file(path)
    except FinalFileError as exc:
        file_reason = str(exc)
    if subscriber is None and endpoint is None:
        raise FinalSnapshotUnavailable(f"{file_reason}; no snapshot stream to fall back on")
    if subscriber is not None:
        return await _from_stream(path, subscriber, timeout, file_reason)
    assert endpoint is not None
    async with SnapshotSubscriber(endpoint, conflate=False) as sub:
        return await _from_stream(path, sub, timeout, file_reason)


async def _from_stream(
    path: str | os.PathLike[str],
    sub: SnapshotSubscriber,
    timeout: float,
    file_reason: str,
) -> FinalSnapshotResult:
    terminal = await sub.wait_for_terminal(timeout)
    if terminal is not None:
        try:
            return _from_file(path)
        except FinalFileError as exc:
            file_reason = str(exc)
        return FinalSnapshotResult(terminal, "terminal_frame", file_reason)
    try:  # the frame may have been missed while the file was written meanwhile
        return _from_file(path)
    except FinalFileError as exc:
        file_reason = str(exc)
    no_terminal = f"no terminal frame on {sub.endpoint} within {timeout:g} s"
    if sub.latest is not None:
        return FinalSnapshotResult(sub.latest, "latest_live", f"{file_reason}; {no_terminal}")
    raise FinalSnapshotUnavailable(f"{file_reason}; {no_terminal}; no live snapshot either")
