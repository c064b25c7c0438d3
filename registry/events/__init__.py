"""What a benchmark sends: event records and their wire codec (SPEC §5)."""

from registry.events.record import EventRecord, EventType
from registry.events.codec import EventCodec, EventDecodeError

__all__ = ["EventCodec", "EventDecodeError", "EventRecord", "EventType"]
