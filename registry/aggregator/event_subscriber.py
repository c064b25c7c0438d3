"""EventSubscriber: the aggregator's lossless, batch-at-a-time view of the event stream.

A :class:`~registry.transport.ZmqSubscriber` that hands out *lists* of
events: everything decoded from the next message (a SPEC §4 batch message
carries many). The aggregator applies each list in one call, so per-event
cost is one dispatch, not one ``await``.

It connects to the benchmark's bound endpoint with no receive high-water mark
(nothing is dropped; a slow aggregator makes the queue grow). Malformed
frames and payloads are counted by the transport and the codec, never raised.
This module never sends and never interprets an event.
"""

from __future__ import annotations

from registry.events import EventRecord
from registry.transport import MessageCodec, ZmqSubscriber

__all__ = ["EventSubscriber"]


class EventSubscriber(ZmqSubscriber[EventRecord]):
    """Connects to ``endpoint`` (lossless) and returns events batch by batch."""

    def __init__(self, codec: MessageCodec[EventRecord], endpoint: str) -> None:
        super().__init__(codec, endpoint, rcvhwm=0)

    async def recv_batch(self) -> list[EventRecord]:
        """The events of the next message (a batch message gives many), in order.

        One message at a time on purpose: merging queued messages into bigger
        lists measured slower, since thousands of live decoded events make
        the garbage collector work harder than the saved calls gain. May
        return ``[]`` when every payload was malformed. Raises
        :class:`EOFError` once the subscriber is closed.
        """
        if self._pending:
            items = list(self._pending)
            self._pending.clear()
            return items
        return self._decode_message(await self._recv_frames(self._socket()))
