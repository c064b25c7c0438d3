"""The event record a benchmark emits, one per session or sample happening (SPEC §5).

This is mlcommons/endpoints' ``EventRecord``: on the wire a msgpack *map*
with the keys ``event_type`` (``"category.value"``), ``timestamp_ns``,
``sample_uuid``, ``conversation_id``, ``turn`` and ``data`` always written,
``finish_reason`` and ``worker_id`` only when set, in that order, so a record
we encode is byte for byte what upstream's encoder writes for the same
values. Our extension keys ``input_tokens`` / ``output_tokens`` (token counts
the producer already knows) follow, only when set; upstream ignores them.
Unknown keys are ignored; absent keys take their defaults.

Validation happens here, at decoding, so a record is applied wholly or not at
all: timestamps and token counts must fit a non-negative int64, ``turn`` and
``worker_id`` an int64 (the ``samples.parquet`` columns they are stored in),
uuids and conversation ids at most :data:`MAX_ID_LENGTH` characters. A record that
breaks a rule does not decode (the aggregator counts it in
``events_malformed``), so no handler ever sees half-valid input.

Plain data: no behaviour beyond classifying its own type.
"""

from __future__ import annotations

import enum
from typing import Annotated

import msgspec

from registry.events.data import ErrorData, PromptData, TextModelOutput

__all__ = ["MAX_ID_LENGTH", "EventData", "EventRecord", "EventType"]

#: The longest ``sample_uuid`` / ``conversation_id`` accepted: a uuid is 32-36
#: characters; a longer id costs memory for every sample in flight.
MAX_ID_LENGTH = 256
_INT64_MAX = 2**63 - 1
_INT64_MIN = -(2**63)

#: A count or timestamp: an integer in [0, 2**63 - 1].
NonNegativeInt64 = Annotated[int, msgspec.Meta(ge=0, le=_INT64_MAX)]
#: An id the producer chose: any int64 (msgpack also carries [2**63, 2**64), which no
#: int64 column can store; such a record is malformed rather than a failed Parquet write).
Int64 = Annotated[int, msgspec.Meta(ge=_INT64_MIN, le=_INT64_MAX)]
Identifier = Annotated[str, msgspec.Meta(max_length=MAX_ID_LENGTH)]


class EventType(enum.StrEnum):
    """Every event type of SPEC §5 (the wire value is the string)."""

    SESSION_STARTED = "session.started"
    SESSION_ENDED = "session.ended"
    SESSION_STOP_LOADGEN = "session.stop_loadgen"
    SESSION_START_PERFORMANCE_TRACKING = "session.start_performance_tracking"
    SESSION_STOP_PERFORMANCE_TRACKING = "session.stop_performance_tracking"
    #: Sent just before ``session.ended`` by newer upstream sessions that stopped
    #: early; the final snapshot is then marked interrupted.
    SESSION_INTERRUPTED = "session.interrupted"
    SAMPLE_ISSUED = "sample.issued"
    SAMPLE_RECV_FIRST = "sample.recv_first"
    SAMPLE_RECV_NON_FIRST = "sample.recv_non_first"
    SAMPLE_COMPLETE = "sample.complete"
    ERROR_GENERIC = "error.generic"
    ERROR_LOADGEN = "error.loadgen"
    ERROR_SESSION = "error.session"
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


#: The ``data`` variants (tagged arrays on the wire).
EventData = PromptData | TextModelOutput | ErrorData


class EventRecord(msgspec.Struct, frozen=True, gc=False):
    """One event. ``sample_uuid`` is ``""`` for session events (and for errors that
    belong to no sample); unset optional fields are :data:`msgspec.UNSET` (or
    ``None`` for ``turn`` and ``data``) and are then left off the wire."""

    event_type: EventType
    timestamp_ns: NonNegativeInt64
    sample_uuid: Identifier = ""
    conversation_id: Identifier = ""
    turn: Int64 | None = None
    data: EventData | None = None
    finish_reason: str | msgspec.UnsetType | None = msgspec.UNSET
    worker_id: Int64 | msgspec.UnsetType = msgspec.UNSET
    input_tokens: NonNegativeInt64 | msgspec.UnsetType = msgspec.UNSET
    output_tokens: NonNegativeInt64 | msgspec.UnsetType = msgspec.UNSET
