"""Snapshot wire codec and dict form (SPEC §4)."""

from __future__ import annotations

import base64
import json
import math

import msgspec
import numpy as np
import pytest

from registry import (
    SNAPSHOT_TOPIC,
    CounterStat,
    MetricsRegistry,
    MetricsSnapshot,
    SeriesStat,
    SessionState,
    SnapshotCodec,
    SnapshotDecodeError,
    snapshot_from_dict,
    snapshot_to_dict,
)


def sample_snapshot(state: SessionState = SessionState.LIVE) -> MetricsSnapshot:
    reg = MetricsRegistry()
    reg.register_counter("issued")
    reg.register_counter("tokens", dtype=float)
    reg.register_series("ttft_ns", hdr_low=1, hdr_high=10**12)
    reg.register_series("tpot_ns", hdr_low=1, hdr_high=10**12, dtype=float)
    reg.register_series("empty", hdr_low=1, hdr_high=100)
    reg.increment("issued", 42)
    reg.increment("tokens", 0.5)
    rng = np.random.default_rng(3)
    reg.record_many("ttft_ns", rng.lognormal(12, 1, 5000).astype(np.int64))
    reg.record_many("tpot_ns", rng.lognormal(15, 0.5, 5000))
    return reg.build_snapshot(state=state, n_pending_tasks=2)


def test_topic_is_met_nul_padded_to_40_bytes() -> None:
    topic, _ = SnapshotCodec().encode(sample_snapshot())
    assert topic == SNAPSHOT_TOPIC == b"MET" + b"\0" * 37


@pytest.mark.parametrize("state", list(SessionState))
def test_round_trip_through_msgpack(state: SessionState) -> None:
    codec = SnapshotCodec()
    snap = sample_snapshot(state)
    _, payload = codec.encode(snap)
    assert codec.decode(payload) == snap


def test_payload_is_the_positional_array_of_spec_4() -> None:
    snap = sample_snapshot()
    raw = msgspec.msgpack.decode(SnapshotCodec().encode(snap)[1])
    counter, ts, state, pending, metrics = raw
    assert (counter, ts, state, pending) == (snap.counter, snap.timestamp_ns, "live", 2)
    assert metrics[0] == ["counter", "issued", 42]
    series = metrics[2]
    assert series[0:2] == ["series", "ttft_ns"] and len(series) == 11
    assert isinstance(series[7], dict) and "50.0" in series[7]
    assert series[9] is None and isinstance(series[10], bytes)


@pytest.mark.parametrize("length", [9, 10, 11, 14])
def test_series_arrays_of_any_supported_length_decode(length: int) -> None:
    series = ["series", "x", 2, 30, 10, 20, 500, {"50.0": 10.0}, [[[10.0, 20.0], 2]]]
    series += [None, b"", "extra", 1, 2][: length - 9]
    payload = msgspec.msgpack.encode([7, 99, "complete", 0, [["counter", "c", 1], series]])
    snap = SnapshotCodec().decode(payload)
    stat = snap.series["x"]
    assert (stat.count, stat.total, stat.min, stat.max, stat.sum_sq) == (2, 30, 10, 20, 500)
    assert stat.histogram == [((10.0, 20.0), 2)]
    assert snap.state is SessionState.COMPLETE and snap.counters == {"c": 1}


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\xc1",
        msgspec.msgpack.encode([1, 2, "live"]),
        msgspec.msgpack.encode([1, 2, "bogus", 0, []]),
        msgspec.msgpack.encode([1, 2, "live", 0, [["gauge", "x", 1]]]),
        msgspec.msgpack.encode([1, 2, "live", 0, [["series", "x", 1]]]),
        msgspec.msgpack.encode({"counter": 1}),
    ],
)
def test_malformed_payloads_raise_decode_error(payload: bytes) -> None:
    with pytest.raises(SnapshotDecodeError):
        SnapshotCodec().decode(payload)


def test_sum_sq_beyond_uint64_goes_out_as_correctly_rounded_float() -> None:
    sum_sq = 3 * 10**25 + 1
    stat = SeriesStat("s", 3, 10**13, 1, 10**13, sum_sq, {"50.0": 1.0}, [((1.0, 1e13), 3)])
    snap = MetricsSnapshot(1, 1, SessionState.COMPLETE, 0, [CounterStat("c", 2**70), stat])
    decoded = SnapshotCodec().decode(SnapshotCodec().encode(snap)[1])
    assert decoded.series["s"].sum_sq == float(sum_sq)
    assert isinstance(decoded.series["s"].sum_sq, float)
    assert decoded.series["s"].total == 10**13  # in range: stays an exact int
    assert decoded.counters["c"] == float(2**70)


def test_dict_form_is_strict_json_and_round_trips() -> None:
    snap = sample_snapshot(SessionState.COMPLETE)
    d = snapshot_to_dict(snap)
    text = json.dumps(d, allow_nan=False)
    back = snapshot_from_dict(json.loads(text))
    assert back == snap
    series = d["metrics"][2]
    assert series["type"] == "series" and base64.b64decode(series["hdr"]) == snap.metrics[2].hdr


def test_dict_form_writes_non_finite_floats_as_null() -> None:
    stat = SeriesStat("s", 1, math.inf, 1.0, math.nan, 1.0, {"50.0": math.nan}, [])
    snap = MetricsSnapshot(1, 1, SessionState.LIVE, 0, [CounterStat("c", math.nan), stat])
    d = snapshot_to_dict(snap)
    json.dumps(d, allow_nan=False)
    assert d["metrics"][0]["value"] is None
    assert d["metrics"][1]["total"] is None and d["metrics"][1]["percentiles"]["50.0"] is None


@pytest.mark.parametrize(
    "bad",
    [
        {},
        {"counter": 1, "timestamp_ns": 1, "state": "nope", "n_pending_tasks": 0, "metrics": []},
        {"counter": 1, "timestamp_ns": 1, "state": "live", "n_pending_tasks": 0, "metrics": [{}]},
        {"counter": "x", "timestamp_ns": 1, "state": "live", "n_pending_tasks": 0, "metrics": []},
    ],
)
def test_bad_dicts_raise_decode_error_saying_why(bad: dict) -> None:
    with pytest.raises(SnapshotDecodeError, match=r"invalid snapshot dict|unknown type"):
        snapshot_from_dict(bad)
