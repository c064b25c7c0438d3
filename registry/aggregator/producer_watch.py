"""Notice that the event producer is gone (issue 24 item 10).

A benchmark that dies without ``session.ended`` (a crash, ``kill -9``, a
launcher that is not its parent) would leave the aggregator waiting forever,
its output directory locked and no final files. :class:`ProducerWatch` reads
ZeroMQ's own connection events on the event socket (a socket monitor): when
the kernel closes a dead process's sockets, the subscriber sees
``DISCONNECTED``. If no connection is back within ``grace_s`` seconds, and
every message that arrived before is read, it calls ``on_gone`` once; the
aggregator then ends the run INTERRUPTED with its final files.

What it does not do, on purpose:

- It never judges silence. A live producer that sends nothing for an hour
  keeps its connection, so it is never taken for gone (no idle timeout).
- It arms only on a disconnection: an aggregator started before its
  producer binds waits as long as it must (ZeroMQ retries the connect).
- It sets no ZeroMQ heartbeat: a peer that does not answer pings would be
  disconnected by it, and a PUB drops what it sends while disconnected.
  A host that vanishes without closing its connections is therefore not
  noticed here (a signal or the parent watch ends such a run).

It only watches: it never reads, sends or decides a number.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import zmq
from zmq.utils.monitor import parse_monitor_message

from registry.transport import ZmqSubscriber

__all__ = ["DEFAULT_PRODUCER_TIMEOUT_S", "ProducerWatch"]

logger = logging.getLogger(__name__)

#: Seconds a producer's connection may stay closed before the run ends INTERRUPTED.
#: ZeroMQ reconnects a live peer within a fraction of a second; 30 s leaves room for a
#: producer that restarts its socket, and still ends an orphaned run promptly.
DEFAULT_PRODUCER_TIMEOUT_S = 30.0

_UP = zmq.EVENT_CONNECTED | zmq.EVENT_ACCEPTED
_DOWN = zmq.EVENT_DISCONNECTED
#: How often to look again when messages are still queued after the grace period.
_RECHECK_S = 0.1


class ProducerWatch:
    """Calls ``on_gone()`` once when ``subscriber`` lost every connection for ``grace_s``.

    ``busy()`` (default: the subscriber has a message queued) holds the call back
    while what arrived before is still being read or applied.

    ``await watch.run()`` as a task beside the ingest loop; cancel it (and call
    :meth:`close`) when the ingest ends, before the subscriber is closed.
    """

    def __init__(
        self,
        subscriber: ZmqSubscriber[Any],
        grace_s: float,
        on_gone: Callable[[], None],
        *,
        busy: Callable[[], bool] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not grace_s > 0:
            raise ValueError(f"grace_s must be > 0, got {grace_s!r}")
        self._subscriber = subscriber
        self.grace_s = float(grace_s)
        self._on_gone = on_gone
        #: whether what the producer sent is still being read or applied (then wait)
        self._busy = busy if busy is not None else subscriber.has_queued
        self._clock = clock
        self._monitor: zmq.asyncio.Socket | None = subscriber.monitor_socket(_UP | _DOWN)
        #: connections open now, as the monitor reported them
        self.connections = 0
        #: disconnections seen
        self.disconnections = 0
        #: True once ``on_gone`` was called
        self.gone = False

    async def run(self) -> None:
        monitor = self._monitor
        assert monitor is not None
        deadline: float | None = None
        while True:
            timeout = None if deadline is None else max(0.0, deadline - self._clock())
            try:
                frames = await asyncio.wait_for(monitor.recv_multipart(), timeout)
            except TimeoutError:
                assert deadline is not None
                if self._busy():  # what it sent before it went: read and apply it all
                    deadline = self._clock() + _RECHECK_S
                    continue
                self.gone = True
                logger.warning(
                    "the event producer's connection has been closed for %g s and did not "
                    "come back: it is gone; ending the run INTERRUPTED (--producer-timeout)",
                    self.grace_s,
                )
                self._on_gone()
                return
            event = parse_monitor_message(frames)["event"]
            if event & _UP:
                self.connections += 1
                if deadline is not None:
                    logger.info("the event producer is connected again")
                deadline = None
            elif event & _DOWN:
                self.disconnections += 1
                self.connections = max(0, self.connections - 1)
                if self.connections == 0 and deadline is None:
                    deadline = self._clock() + self.grace_s
                    logger.warning(
                        "the event producer disconnected without session.ended; the run ends "
                        "INTERRUPTED unless it is back within %g s",
                        self.grace_s,
                    )

    def close(self) -> None:
        """Stop monitoring (before the subscriber closes). Idempotent."""
        monitor, self._monitor = self._monitor, None
        if monitor is not None:
            with contextlib.suppress(zmq.ZMQError):
                self._subscriber.stop_monitor()
            monitor.close(linger=0)
