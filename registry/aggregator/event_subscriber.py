"""EventSubscriber: the aggregator's lossless, batch-at-a-time view of the event stream.

A :class:`~registry.transport.ZmqSubscriber` that hands out *lists* of
events: everything decoded from the next message plus every message already
queued behind it (up to a bound). The aggregator applies each list in one
call, so per-event cost is one dispatch, not one ``await``.

It connects to the benchmark's bound endpoint with no receive high-water mark
(nothing is dropped; a slow aggregator makes the queue grow). Malformed
frames and payloads are counted by the transport and the codec, never raised.
This module never sends and never interprets an event.
"""

from __future__ import annotations

import zmq

from registry.events import EventRecord
from registry.transport import MessageCodec, ZmqSubscriber

__all__ = ["EventSubscriber"]

#: Messages taken in one :meth:`EventSubscriber.recv_batch` at most (each may be a
#: batch of up to ~1000 events): bounds how long the loop runs without yielding.
MAX_MESSAGES_PER_BATCH = 64


class EventSubscriber(ZmqSubscriber[EventRecord]):
    """Connects to ``endpoint`` (lossless) and returns events batch by batch."""

    def __init__(self, codec: MessageCodec[EventRecord], endpoint: str) -> None:
        super().__init__(codec, endpoint, rcvhwm=0)

    async def recv_batch(self) -> list[EventRecord]:
        """The events of the next message and of those already queued, in order.

        Waits for at least one message; may return ``[]`` when every payload
        was malformed. Raises :class:`EOFError` once the subscriber is closed.
        """
        items: list[EventRecord] = list(self._pending)
        self._pending.clear()
        sock = self._socket()
        if not items:
            items.extend(self._decode_message(await self._recv_frames(sock)))
        for _ in range(MAX_MESSAGES_PER_BATCH - 1):
            if not int(sock.getsockopt(zmq.EVENTS)) & zmq.POLLIN:
                break
            items.extend(self._decode_message(await self._recv_frames(sock)))
        return items
