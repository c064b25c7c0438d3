"""The event record a benchmark emits, one per session or sample happening (SPEC §5).

Plain data: no behaviour beyond classifying its own type. On the wire it is a
msgpack *map* (fields by name, optional ones omitted when unset), so any
producer in any language that writes the same keys is understood.
"""

from __future__ import annotations

import enum

import msgspec

__all__ = ["EventRecord", "EventType"]


class EventType(enum.StrEnum):
    """Every event type of SPEC §5 (the wire value is the string)."""

    SESSION_STARTED = "session.started"
    SESSION_START_PERFORMANCE_TRACKING = "session.start_performance_tracking"
    SESSION_STOP_PERFORMANCE_TRACKING = "session.stop_performance_tracking"
    SESSION_ENDED = "session.ended"
    SAMPLE_ISSUED = "sample.issued"
    SAMPLE_RECV_FIRST = "sample.recv_first"
    SAMPLE_RECV_NON_FIRST = "sample.recv_non_first"
    SAMPLE_COMPLETE = "sample.complete"
    ERROR_GENERIC = "error.generic"
    ERROR_CLIENT = "error.client"

    @property
    def is_session(self) -> bool:
        return self.value.startswith("session.")

    @property
    def is_sample(self) -> bool:
        return self.value.startswith("sample.")

    @property
    def is_error(self) -> bool:
        return self.value.startswith("error.")


class EventRecord(msgspec.Struct, frozen=True, omit_defaults=True):
    """One event. ``sample_uuid`` is ``""`` for session events (and for errors
    that belong to no sample); the optional fields are ``None`` when absent."""

    event_type: EventType
    timestamp_ns: int
    sample_uuid: str = ""
    worker_id: int | None = None
    finish_reason: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    error: str | None = None
