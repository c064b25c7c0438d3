"""What a benchmark sends: event records and their wire codec (SPEC §5)."""

from registry.events.codec import EventCodec, EventDecodeError
from registry.events.publisher import EventPublisher
from registry.events.record import EventRecord, EventType

__all__ = ["EventCodec", "EventDecodeError", "EventPublisher", "EventRecord", "EventType"]
