"""The bridge: a snapshot stream (SPEC §4, ours or mlcommons/endpoints') → a collector.

:class:`Bridge` follows a :class:`registry.delivery.subscriber.SnapshotSubscriber` and
hands every snapshot to a :class:`SnapshotCollector`. It survives publisher
restarts: ZeroMQ reconnects by itself, and a snapshot whose sequence
(``counter``) is lower than the last one is a restarted publisher, served as
the new truth, never dropped as out of order. Once a terminal snapshot has
arrived the view is frozen: the final values stay exactly as they were for
the linger period, whatever else arrives.

Malformed frames are counted (``<ns>_exporter_decode_errors_total``) and
skipped by the subscriber; a view older than the collector's stale limit is
reported (gauge, ``/healthz`` and one log line per stale spell). The bridge
only reflects: it never sends and never changes a number.
"""

from __future__ import annotations

import asyncio
import logging

from exporter.prometheus.collector import SnapshotCollector
from registry.delivery.snapshot import MetricsSnapshot
from registry.delivery.subscriber import SnapshotSubscriber

__all__ = ["Bridge"]

logger = logging.getLogger(__name__)


class Bridge:
    """Subscribes to ``endpoint`` and keeps ``collector`` up to date.

    Use as ``async with Bridge(endpoint, collector) as bridge:`` on the loop
    that serves the collector (or that runs next to it), then
    ``await bridge.wait_for_terminal(timeout)``.
    """

    def __init__(
        self,
        endpoint: str,
        collector: SnapshotCollector,
        *,
        watch_interval: float = 0.5,
    ) -> None:
        self.endpoint = endpoint
        self.collector = collector
        self._sub = SnapshotSubscriber(endpoint)
        self._sub.add_listener(self._on_snapshot)
        self._watch_interval = watch_interval
        self._watch_task: asyncio.Task[None] | None = None
        self._terminal_event: asyncio.Event | None = None
        self._errors_synced = 0
        self._stale_logged = False
        #: snapshots handed to the collector
        self.accepted = 0
        #: publisher restarts seen (a sequence lower than the previous one)
        self.restarts = 0
        #: snapshots ignored because the final one was already served
        self.ignored_after_final = 0
        #: the terminal snapshot being served, once it arrived
        self.final: MetricsSnapshot | None = None
        self._last: MetricsSnapshot | None = None

    async def __aenter__(self) -> Bridge:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def start(self) -> None:
        """Connect and follow the stream on the running loop."""
        self._terminal_event = asyncio.Event()
        self._sub.start()
        self._watch_task = asyncio.get_running_loop().create_task(
            self._watch(), name=f"bridge-watch {self.endpoint}"
        )
        logger.info("following snapshots from %s", self.endpoint)

    async def aclose(self) -> None:
        task, self._watch_task = self._watch_task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await self._sub.aclose()
        self._sync_errors()

    def _on_snapshot(self, snap: MetricsSnapshot) -> None:
        self._sync_errors()
        if self.final is not None:
            if self.ignored_after_final == 0:
                logger.info(
                    "snapshot #%d (%s) after the final one: the final values stay served",
                    snap.counter,
                    snap.state.value,
                )
            self.ignored_after_final += 1
            return
        last = self._last
        if last is not None and snap.counter < last.counter:
            self.restarts += 1
            logger.warning(
                "publisher restarted (sequence %d after %d): serving the new stream",
                snap.counter,
                last.counter,
            )
        self._last = snap
        self.collector.update(snap)
        self.accepted += 1
        if self._stale_logged:
            logger.info("snapshots flow again from %s", self.endpoint)
            self._stale_logged = False
        if snap.is_terminal:
            self.final = snap
            logger.info(
                "final snapshot #%d (%s, %d pending) is served",
                snap.counter,
                snap.state.value,
                snap.n_pending_tasks,
            )
            assert self._terminal_event is not None
            self._terminal_event.set()

    def _sync_errors(self) -> None:
        dropped = self._sub.dropped
        if dropped > self._errors_synced:
            self.collector.count_decode_error(dropped - self._errors_synced)
            logger.warning(
                "%d malformed snapshot frame(s) skipped: %s",
                dropped - self._errors_synced,
                self._sub.last_error,
            )
            self._errors_synced = dropped

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._watch_interval)
            self._sync_errors()
            health = self.collector.health()
            stale = health["age_seconds"] is not None and not health["up"]
            if stale and self.final is None and not self._stale_logged:
                self._stale_logged = True
                logger.warning(
                    "no snapshot from %s for %.1f s: the view is stale",
                    self.endpoint,
                    health["age_seconds"],
                )

    async def wait_for_terminal(self, timeout: float | None = None) -> MetricsSnapshot | None:
        """The final snapshot, waiting up to ``timeout`` seconds (``None`` if none came)."""
        if self.final is not None:
            return self.final
        if self._terminal_event is None:
            raise RuntimeError("Bridge is not started")
        try:
            await asyncio.wait_for(self._terminal_event.wait(), timeout)
        except TimeoutError:
            return None
        return self.final
