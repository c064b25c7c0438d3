"""SnapshotSubscriber: follows a snapshot stream (ours or mlcommons/endpoints') on the loop.

``async with SnapshotSubscriber(endpoint) as sub:`` connects and reads in a
background task until the block ends, keeping ``latest`` (the newest
snapshot), ``terminal`` (the first terminal one seen) and ``dropped``
(malformed frames). Listeners are called on the loop with each snapshot.

By default the stream is conflated (latest wins, see
:mod:`registry.transport.zmq_subscriber`): a consumer that falls behind skips
stale snapshots instead of queueing them. ``conflate=False`` hands every
frame to the listeners. Terminal frames are sent once; a subscriber that was
not connected or fell too far behind can miss it, which is why the final file
is the authoritative source (SPEC §7, :mod:`registry.delivery.final_source`).

This module only reads; it never sends and never writes files.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from registry.delivery.snapshot import MetricsSnapshot
from registry.delivery.snapshot_codec import SNAPSHOT_TOPIC, SnapshotCodec
from registry.transport import ZmqSubscriber

__all__ = ["SnapshotSubscriber"]

log = logging.getLogger(__name__)


class SnapshotSubscriber:
    """Connects to ``endpoint`` and tracks the newest and the terminal snapshot."""

    def __init__(
        self,
        endpoint: str,
        *,
        conflate: bool = True,
        rcvhwm: int | None = None,
    ) -> None:
        self._sub: ZmqSubscriber[MetricsSnapshot] = ZmqSubscriber(
            SnapshotCodec(),
            endpoint,
            expected_topics=[SNAPSHOT_TOPIC],
            conflate=conflate,
            rcvhwm=rcvhwm,
        )
        self.endpoint = endpoint
        self._listeners: list[Callable[[MetricsSnapshot], Any]] = []
        self._task: asyncio.Task[None] | None = None
        self._terminal_seen: asyncio.Event | None = None
        #: the newest snapshot received (live or terminal)
        self.latest: MetricsSnapshot | None = None
        #: the first terminal (COMPLETE / INTERRUPTED) snapshot received
        self.terminal: MetricsSnapshot | None = None

    @property
    def dropped(self) -> int:
        """Malformed frames (bad framing, wrong topic, undecodable payload) skipped."""
        return self._sub.dropped

    @property
    def received(self) -> int:
        """Snapshots decoded (including ones conflation skipped)."""
        return self._sub.received

    @property
    def superseded(self) -> int:
        """Valid snapshots skipped by conflation because a newer one was queued."""
        return self._sub.superseded

    @property
    def last_error(self) -> str | None:
        return self._sub.last_error

    def add_listener(self, fn: Callable[[MetricsSnapshot], Any]) -> None:
        """Call ``fn(snapshot)`` on the loop for each snapshot taken off the stream."""
        self._listeners.append(fn)

    # -- lifetime ----------------------------------------------------------------

    async def __aenter__(self) -> SnapshotSubscriber:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def start(self) -> None:
        """Connect and start reading on the running loop (``async with`` does this)."""
        if self._task is not None:
            return
        self._terminal_seen = asyncio.Event()
        if self.terminal is not None:
            self._terminal_seen.set()
        self._sub.open()
        self._task = asyncio.get_running_loop().create_task(
            self._read(), name=f"snapshot-subscriber {self.endpoint}"
        )

    async def aclose(self) -> None:
        """Stop reading and close the socket."""
        task, self._task = self._task, None
        self._sub.close()
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _read(self) -> None:
        async for snap in self._sub:
            self.latest = snap
            if snap.is_terminal and self.terminal is None:
                self.terminal = snap
                assert self._terminal_seen is not None
                self._terminal_seen.set()
            for fn in list(self._listeners):
                try:
                    fn(snap)
                except Exception:
                    log.exception("snapshot listener %r failed", fn)

    # -- waiting -----------------------------------------------------------------

    async def wait_for_terminal(self, timeout: float | None) -> MetricsSnapshot | None:
        """The terminal snapshot, waiting up to ``timeout`` seconds; ``None`` if none came."""
        if self.terminal is not None:
            return self.terminal
        if self._terminal_seen is None:
            raise RuntimeError("SnapshotSubscriber is not started (use 'async with')")
        try:
            await asyncio.wait_for(self._terminal_seen.wait(), timeout)
        except TimeoutError:
            return None
        return self.terminal
