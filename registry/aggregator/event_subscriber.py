"""EventSubscriber: the aggregator's lossless, batch-at-a-time view of the event stream.

A :class:`~registry.transport.ZmqSubscriber` read with ``recv_batch``: lists
of events, everything decoded from the next message (a SPEC §4 batch message
carries many). The aggregator applies each list in one call, so per-event
cost is one dispatch, not one ``await``. One message at a time on purpose:
merging queued messages into bigger lists measured slower, since thousands of
live decoded events make the garbage collector work harder than the saved
calls gain.

It connects to the benchmark's bound endpoint with no receive high-water mark
(nothing is dropped; a slow aggregator makes the queue grow). Malformed
frames and payloads are counted by the transport and the codec, never raised.
This module never sends and never interprets an event.
"""

from __future__ import annotations

from registry.events import EventRecord
from registry.transport import MessageCodec, ZmqSubscriber

__all__ = ["DEFAULT_MAX_FRAME_BYTES", "EventSubscriber"]

#: The largest event message decoded; a larger one is counted as malformed and
#: skipped undecoded. Upstream batches 1,000 records per message, and a
#: ``sample.issued`` record carries its prompt's token ids (3-5 bytes each): a
#: non-streaming batch of 8k-token prompts is about 16 MB, so the default
#: leaves room for long prompts while one hostile frame cannot cost more.
DEFAULT_MAX_FRAME_BYTES = 64 * 1024 * 1024


class EventSubscriber(ZmqSubscriber[EventRecord]):
    """Connects to ``endpoint`` (lossless) and returns events batch by batch."""

    def __init__(
        self,
        codec: MessageCodec[EventRecord],
        endpoint: str,
        *,
        max_message_bytes: int | None = DEFAULT_MAX_FRAME_BYTES,
    ) -> None:
        super().__init__(codec, endpoint, rcvhwm=0, max_message_bytes=max_message_bytes)
