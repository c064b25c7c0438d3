"""Event wire codec: topic = event type NUL-padded to 40 bytes, payload = msgpack map (SPEC §5).

Decoding never trusts its input: a payload that is not a valid record (wrong
shape, unknown event type, wrong field types) raises :class:`EventDecodeError`
with the reason; callers count and skip it.
"""

from __future__ import annotations

import msgspec

from registry.events.record import EventRecord
from registry.transport.framing import pad_topic

__all__ = ["EventCodec", "EventDecodeError"]


class EventDecodeError(ValueError):
    """A payload that is not a valid event record; the message says why."""


class EventCodec:
    """Encodes :class:`EventRecord` to ``(topic, payload)`` and back."""

    def __init__(self) -> None:
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder = msgspec.msgpack.Decoder(EventRecord)
        self._topics: dict[str, bytes] = {}  # event type -> padded topic, built on first use

    def topic_for(self, record: EventRecord) -> bytes:
        topic = self._topics.get(record.event_type)
        if topic is None:
            topic = self._topics[record.event_type] = pad_topic(record.event_type.value)
        return topic

    def encode(self, record: EventRecord) -> tuple[bytes, bytes]:
        return self.topic_for(record), self._encoder.encode(record)

    def decode(self, payload: bytes | memoryview) -> EventRecord:
        try:
            return self._decoder.decode(payload)
        except msgspec.DecodeError as exc:
            raise EventDecodeError(f"invalid event payload: {exc}") from exc
        except RecursionError:  # msgspec bounds the depth; the payload is hostile
            raise EventDecodeError("invalid event payload: nested too deep") from None

    def decode_many(self, payloads: list[bytes]) -> list[EventRecord]:
        """Every payload of a batch (the ingest path: no Python frame per record).

        Raises on the first malformed one; the subscriber then decodes item by item.
        """
        decode = self._decoder.decode
        return [decode(p) for p in payloads]

    def on_decode_error(self, payload: bytes, exc: Exception) -> EventRecord | None:
        """Malformed events are skipped (the subscriber counts them)."""
        return None
