"""EventPublisher: what a benchmark uses to send its events to the aggregator (SPEC §5, §6).

The benchmark *binds* the event endpoint; the aggregator connects to it. The
stream is lossless: the socket has no high-water mark, so nothing is ever
dropped once the aggregator is subscribed (a stalled aggregator makes the
queue grow instead). It is an XPUB socket, so
:meth:`EventPublisher.wait_for_subscriber` sees the aggregator's subscription
and the first events are not sent into the void (a PUB socket discards what
no subscriber asked for).

Batching is the caller's choice: :meth:`EventPublisher.send_many` packs
events into SPEC §4 ``batch`` messages, which is much cheaper per event than
one message each.

The wire format is only msgpack maps and 40-byte topics, so any producer in
any language that binds an XPUB/PUB socket and writes the same frames works
the same. This module only sends; it never decodes and never drops.
"""

from __future__ import annotations

from collections.abc import Iterable

import zmq

from registry.events.codec import EventCodec
from registry.events.record import EventRecord
from registry.transport import ZmqPublisher

__all__ = ["EventPublisher"]


class EventPublisher:
    """Binds ``endpoint`` (``ipc://…`` or ``tcp://…``) and sends :class:`EventRecord` s.

    ``linger_ms``: how long :meth:`close` may wait for queued events to reach
    a connected aggregator (events still queued after that are lost, so keep
    it generous). ``max_batch``: the most events one batch message carries.
    Not thread-safe: use it from one thread.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        linger_ms: int = 10_000,
        max_batch: int = 1000,
        context: zmq.Context | None = None,
    ) -> None:
        self._pub: ZmqPublisher[EventRecord] = ZmqPublisher(
            EventCodec(),
            endpoint,
            lossless=True,
            xpub=True,
            linger_ms=linger_ms,
            max_batch=max_batch,
            context=context,
        )
        self.endpoint = endpoint
        #: the endpoint actually bound (``tcp://127.0.0.1:0`` resolved to its port)
        self.bound_endpoint: str = self._pub.bound_endpoint

    @property
    def sent(self) -> int:
        """Events handed to the socket so far."""
        return self._pub.sent

    async def wait_for_subscriber(self, timeout: float) -> bool:
        """``True`` once an aggregator has subscribed (at once if one already has),
        ``False`` after ``timeout`` seconds without one."""
        return await self._pub.wait_for_subscriber(timeout)

    def send(self, record: EventRecord) -> None:
        """Send one event as its own message."""
        self._pub.send(record)

    def send_many(self, records: Iterable[EventRecord]) -> None:
        """Send events in order, packed into batch messages."""
        self._pub.send_many(records)

    def close(self, linger_ms: int | None = None) -> None:
        """Flush queued events (up to the linger time) and close. Idempotent."""
        self._pub.close(linger_ms)

    def __enter__(self) -> EventPublisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
