"""A hand-computed event scenario shared by the aggregator, service and report tests.

Every expected number is worked out by hand in the comments, by the SPEC §6
rules (mlcommons/endpoints' counting rules); the tests check the aggregator
against them, whether the events arrive in-process or over a real socket.
"""

from __future__ import annotations

from registry.events import EventRecord, EventType
from registry.events.data import ErrorData

T = EventType


def ev(t: EventType, ts: int, uuid: str = "", **kw: object) -> EventRecord:
    return EventRecord(event_type=t, timestamp_ns=ts, sample_uuid=uuid, **kw)  # type: ignore[arg-type]


def err(t: EventType, ts: int, uuid: str = "", message: str = "") -> EventRecord:
    return ev(t, ts, uuid, data=ErrorData("ClientError", message))


# Two tracking windows, an untracked sample before and after, a failure before
# completion (B), an error after completion (C), a failure of an untracked sample
# (D), an unknown finish reason (E), one tracked sample still in flight (F) and one
# failed sample that never completes (G).
SCENARIO: list[EventRecord] = [
    ev(T.SESSION_STARTED, 1000),
    ev(T.SAMPLE_ISSUED, 1100, "u0", input_tokens=5),
    ev(T.SESSION_START_PERFORMANCE_TRACKING, 2000),
    ev(T.SAMPLE_ISSUED, 2100, "A", input_tokens=10),
    ev(T.SAMPLE_ISSUED, 2200, "B", input_tokens=20),
    ev(T.SAMPLE_ISSUED, 2300, "C", input_tokens=30),
    ev(T.SAMPLE_RECV_FIRST, 2400, "A"),
    ev(T.SAMPLE_RECV_FIRST, 2500, "B"),
    ev(T.SAMPLE_RECV_NON_FIRST, 2600, "A"),
    err(T.ERROR_CLIENT, 2650, "B", "HTTP 500"),
    ev(T.SAMPLE_RECV_NON_FIRST, 2700, "B"),
    ev(T.SAMPLE_RECV_NON_FIRST, 2900, "A"),
    ev(T.SAMPLE_COMPLETE, 3000, "A", output_tokens=5, finish_reason="stop"),
    ev(T.SAMPLE_COMPLETE, 3100, "B", output_tokens=2, finish_reason="stop"),
    ev(T.SAMPLE_COMPLETE, 3200, "u0", output_tokens=9, finish_reason="stop"),
    ev(T.SAMPLE_RECV_FIRST, 3300, "C"),
    ev(T.SAMPLE_COMPLETE, 3400, "C", output_tokens=1, finish_reason="length"),
    ev(T.SESSION_STOP_PERFORMANCE_TRACKING, 3500),
    ev(T.SAMPLE_ISSUED, 3600, "D", input_tokens=1),
    err(T.ERROR_GENERIC, 3700, "D", "timeout"),
    ev(T.SAMPLE_COMPLETE, 3800, "D"),
    err(T.ERROR_CLIENT, 3900, "C", "late"),
    ev(T.SESSION_START_PERFORMANCE_TRACKING, 4000),
    ev(T.SAMPLE_ISSUED, 4100, "E", input_tokens=7),
    ev(T.SAMPLE_RECV_FIRST, 4200, "E"),
    ev(T.SAMPLE_COMPLETE, 4500, "E", output_tokens=3, finish_reason="weird"),
    ev(T.SAMPLE_ISSUED, 4600, "F", input_tokens=2),
    ev(T.SAMPLE_ISSUED, 4700, "G", input_tokens=2),
    err(T.ERROR_CLIENT, 4750, "G"),
    ev(T.SESSION_ENDED, 5000),
]

SCENARIO_COUNTERS = {
    "total_samples_issued": 8,  # u0 A B C D E F G
    "total_samples_completed": 6,  # A B u0 C D E: failed completions count too
    "total_samples_failed": 4,  # every error event: B D C(late) G
    "tracked_samples_issued": 6,  # A B C E F G
    "tracked_samples_completed": 4,  # A B C E
    "tracked_samples_failed": 2,  # B G (errors while the sample has a row)
    "tracked_finish_reason_stop": 2,  # A B
    "tracked_finish_reason_length": 1,  # C
    "tracked_finish_reason_tool_calls": 0,
    "tracked_finish_reason_content_filter": 0,
    "tracked_finish_reason_function_call": 0,
    "tracked_finish_reason_other": 1,  # "weird"
    "tracked_duration_ns": 1900,  # (3400 - 2000) + (4500 - 4000)
    "legacy_loadgen_window_duration_ns": 2400,  # first tracked issue 2100 -> E's completion 4500
    "total_duration_ns": 4000,  # 5000 - 1000
    "tracked_output_tokens": 11,  # 5 + 2 + 1 + 3
    "events_malformed": 0,
    "events_unmatched": 1,  # the error for C after its completion
    "events_out_of_order": 0,
    "samples_complete_before_chunk": 0,
    "session_errors": 0,
    "tokenization_errors": 0,  # no tokenizer
}

SCENARIO_SERIES = {
    "sample_latency_ns": [900, 900, 1100, 400],  # A 3000-2100, B 3100-2200, C 3400-2300, E
    "isl": [10, 20, 30, 7, 2, 2],  # at issue: A B C E F G
    "osl": [5, 2, 1, 3],  # A B C E
    "ttft_ns": [300, 300, 1000, 100],  # A 2400-2100, B 2500-2200, C 3300-2300, E 4200-4100
    "chunk_delta_ns": [200, 200, 300],  # A 2600-2400, B 2700-2500, A 2900-2600
    "tpot_ns": [150.0, 600.0, 150.0],  # A (3000-2400)/4, B (3100-2500)/1, E 300/2; C has 1
}
#: Tracked samples still in flight at the end (F, G).
SCENARIO_IN_FLIGHT = 2
