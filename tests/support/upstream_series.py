"""Series values of session A, derived from the recorded frames without our decoders.

The registry's tests need upstream's raw values to compare whole series (every
percentile, the early-stopping map, the histogram to the last bit) with the
files upstream's aggregator wrote, independently of the aggregator being
rewritten elsewhere. The frames are decoded with plain ``msgspec`` and the
fixture README's rules for the four series whose rules need no tokenizer:
tracked rows are created by ``sample.issued`` while tracking is on and closed by
``sample.complete`` (failed ones included); ``sample_latency_ns`` = complete -
issued, ``ttft_ns`` = recv_first - issued, ``chunk_delta_ns`` = each
recv_non_first - the previous receive, ``isl`` = ``len(token_ids)`` of
token-id prompts (what the run without a tokenizer records). Values are in
recording order.
"""

from __future__ import annotations

import functools
from typing import Any

import msgspec

from tests.support.upstream_fixtures import SESSION_A_FRAMES, read_frames

TOPIC_LEN = 40


def session_a_records() -> list[dict[str, Any]]:
    """Every EventRecord of ``session-a.frames`` as a plain dict, in publish order."""
    decoder = msgspec.msgpack.Decoder()
    records: list[dict[str, Any]] = []
    for frame in read_frames(SESSION_A_FRAMES):
        topic, payload = frame[:TOPIC_LEN].rstrip(b"\0"), frame[TOPIC_LEN:]
        if topic == b"batch":
            records.extend(decoder.decode(item) for item in decoder.decode(payload))
        else:
            records.append(decoder.decode(payload))
    return records


@functools.cache
def session_a_series() -> dict[str, tuple[int, ...]]:
    """``sample_latency_ns``, ``ttft_ns``, ``chunk_delta_ns`` and ``isl`` of session A."""
    tracking = False
    issued_at: dict[str, int] = {}
    last_recv: dict[str, int] = {}
    out: dict[str, list[int]] = {
        "sample_latency_ns": [],
        "ttft_ns": [],
        "chunk_delta_ns": [],
        "isl": [],
    }
    for r in session_a_records():
        kind, uuid, ts = r["event_type"], r.get("sample_uuid", ""), r["timestamp_ns"]
        if kind == "session.ended":
            break
        if kind == "session.start_performance_tracking":
            tracking = True
        elif kind == "session.stop_performance_tracking":
            tracking = False
        elif kind == "sample.issued" and tracking and uuid not in issued_at:
            issued_at[uuid] = last_recv[uuid] = ts
            data = r.get("data")
            if data and data[0] == "PromptData" and data[2] is not None:
                out["isl"].append(len(data[2]))
        elif uuid not in issued_at:
            continue
        elif kind == "sample.recv_first":
            out["ttft_ns"].append(ts - issued_at[uuid])
            last_recv[uuid] = ts
        elif kind == "sample.recv_non_first":
            out["chunk_delta_ns"].append(ts - last_recv[uuid])
            last_recv[uuid] = ts
        elif kind == "sample.complete":
            out["sample_latency_ns"].append(ts - issued_at.pop(uuid))
    return {name: tuple(values) for name, values in out.items()}
