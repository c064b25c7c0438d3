"""The dict form and wire slots shared with mlcommons/endpoints (SPEC §4), ours and theirs."""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonschema
import msgspec
import pytest

from registry import (
    MetricsRegistry,
    SessionState,
    SnapshotCodec,
    SnapshotDecodeError,
    run_block,
    snapshot_from_dict,
    snapshot_to_dict,
)
from registry.schemas import FINAL_SNAPSHOT_SCHEMA_PATH, load_schema
from tests.support.upstream_fixtures import (
    SESSION_A_UPSTREAM,
    SESSION_A_UPSTREAM_NOTOK,
    SNAPSHOT_FINAL,
    SNAPSHOT_FRAMES,
    load_json,
    read_frames,
)

UPSTREAM_FILES = [
    SESSION_A_UPSTREAM / "final_snapshot.json",
    SESSION_A_UPSTREAM_NOTOK / "final_snapshot.json",
    SNAPSHOT_FINAL,
]
SERIES_KEYS = ["type", "name", "count", "total", "min", "max", "sum_sq", "percentiles"]


def _validator() -> jsonschema.Draft202012Validator:
    schema = load_schema(FINAL_SNAPSHOT_SCHEMA_PATH)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _terminal_snapshot(state: SessionState = SessionState.COMPLETE):
    reg = MetricsRegistry(percentile_method="loadgen")
    reg.register_counter("tracked_samples_completed")
    reg.register_series("ttft_ns", hdr_low=1, hdr_high=10**12, tail_latency=True)
    reg.register_series("tpot_ns", hdr_low=1, hdr_high=10**12, dtype=float, tail_latency=True)
    reg.register_series("isl", hdr_low=1, hdr_high=10**6)
    reg.increment("tracked_samples_completed", 700)
    reg.record_many("ttft_ns", list(range(1_000, 701_000, 1_000)))
    reg.record_many("isl", [5, 7, 9])
    return reg.build_snapshot(state=state, n_pending_tasks=0)


def test_series_keys_in_upstreams_order_optional_ones_only_when_set() -> None:
    d = snapshot_to_dict(_terminal_snapshot(), run={"run_id": "r1", "percentile_method": "loadgen"})
    assert list(d) == ["counter", "timestamp_ns", "state", "n_pending_tasks", "metrics", "run"]
    series = {m["name"]: m for m in d["metrics"] if m["type"] == "series"}
    tail = [*SERIES_KEYS, "early_stopping_percentiles", "histogram", "hdr"]
    assert list(series["ttft_ns"]) == tail
    assert list(series["tpot_ns"]) == tail  # empty, still carries its (all-null) map
    assert list(series["isl"]) == [*SERIES_KEYS, "histogram", "hdr"]
    assert set(series["tpot_ns"]["early_stopping_percentiles"].values()) == {None}
    assert series["ttft_ns"]["early_stopping_percentiles"]["99.0"] == 700_000.0  # n=700: t=1
    assert d["run"] == {"run_id": "r1", "percentile_method": "loadgen"}
    assert "run" not in snapshot_to_dict(_terminal_snapshot())
    # LIVE: no map anywhere
    live = snapshot_to_dict(_terminal_snapshot(SessionState.LIVE))
    assert all("early_stopping_percentiles" not in m for m in live["metrics"])


def test_our_dict_round_trips_with_its_run_block() -> None:
    snap = _terminal_snapshot(SessionState.INTERRUPTED)
    run = {"run_id": "r1", "labels": {"model": "m"}, "percentile_method": "loadgen"}
    d = json.loads(json.dumps(snapshot_to_dict(snap, run=run), allow_nan=False))
    assert snapshot_from_dict(d) == snap
    assert run_block(d) == run
    assert not list(_validator().iter_errors(d))


@pytest.mark.parametrize("path", UPSTREAM_FILES, ids=lambda p: p.parent.name + "/" + p.name)
def test_upstreams_files_read_and_write_back_identically(path) -> None:
    d = load_json(path)
    assert not list(_validator().iter_errors(d))
    snap = snapshot_from_dict(d)
    assert run_block(d) is None
    assert snapshot_to_dict(snap) == d  # key for key, including order-sensitive types
    assert json.dumps(snapshot_to_dict(snap)) == json.dumps(d)
    tails = [s for s in snap.series.values() if s.early_stopping_percentiles is not None]
    assert sorted(s.name for s in tails) == ["sample_latency_ns", "tpot_ns", "ttft_ns"]


def test_upstreams_complete_frame_decodes_to_the_file_it_wrote() -> None:
    frames = read_frames(SNAPSHOT_FRAMES)
    codec = SnapshotCodec()
    snaps = [codec.decode(f[40:]) for f in frames]
    assert [s.state for s in snaps] == [SessionState.LIVE] * 7 + [SessionState.COMPLETE]
    assert all(s.series["ttft_ns"].early_stopping_percentiles is None for s in snaps[:7])
    assert snapshot_to_dict(snaps[-1]) == load_json(SNAPSHOT_FINAL)


def test_our_frames_carry_the_map_in_slot_9_and_hdr_in_slot_10() -> None:
    snap = _terminal_snapshot()
    raw = msgspec.msgpack.decode(SnapshotCodec().encode(snap)[1])
    ttft = next(m for m in raw[4] if m[1] == "ttft_ns")
    isl = next(m for m in raw[4] if m[1] == "isl")
    assert len(ttft) == 11 and isinstance(ttft[9], dict) and isinstance(ttft[10], bytes)
    assert ttft[9] == snap.series["ttft_ns"].early_stopping_percentiles
    assert isl[9] is None
    assert isinstance(ttft[6], float)  # sum_sq, as upstream sends it


def _first_series(d: dict[str, Any]) -> dict[str, Any]:
    return next(m for m in d["metrics"] if m["type"] == "series")


def test_a_newer_upstreams_early_stopping_key_is_read() -> None:
    d = copy.deepcopy(load_json(SESSION_A_UPSTREAM / "final_snapshot.json"))
    s = _first_series(d)
    want = s["early_stopping_percentiles"]
    s["early_stopping"] = s.pop("early_stopping_percentiles")
    assert not list(_validator().iter_errors(d))
    snap = snapshot_from_dict(d)
    assert snap.series[s["name"]].early_stopping_percentiles == want
    # a pre-release shape under that key (a detail block) is not a map: ignored
    s["early_stopping"] = {"percentile": 0.99, "estimate": 1.0, "sufficient": True}
    assert snapshot_from_dict(d).series[s["name"]].early_stopping_percentiles is None


@pytest.mark.parametrize(
    "mutate",
    [
        lambda s: s.__setitem__("early_stopping_percentiles", [1, 2]),
        lambda s: s.__setitem__("early_stopping_percentiles", {"99.0": "fast"}),
        lambda s: s.__setitem__("early_stopping_percentiles", {"99.0": True}),
    ],
    ids=["list", "string value", "bool value"],
)
def test_a_malformed_map_is_refused_with_a_reason(mutate) -> None:
    d = copy.deepcopy(load_json(SESSION_A_UPSTREAM_NOTOK / "final_snapshot.json"))
    mutate(_first_series(d))
    with pytest.raises(SnapshotDecodeError, match="invalid snapshot dict"):
        snapshot_from_dict(d)
    assert list(_validator().iter_errors(d))


def test_a_run_block_that_is_not_an_object_is_refused() -> None:
    d = snapshot_to_dict(_terminal_snapshot())
    d["run"] = ["not", "an", "object"]
    with pytest.raises(SnapshotDecodeError, match="'run' must be an object"):
        run_block(d)
    assert list(_validator().iter_errors(d))


def test_schema_catches_what_a_reader_would_trip_on() -> None:
    good = snapshot_to_dict(_terminal_snapshot(), run={"percentile_method": "loadgen"})
    v = _validator()
    assert not list(v.iter_errors(good))
    for mutate in (
        lambda d: d.pop("n_pending_tasks"),
        lambda d: d.__setitem__("state", "finished"),
        lambda d: _first_series(d).pop("histogram"),
        lambda d: _first_series(d).__setitem__("surprise", 1),
        lambda d: d["run"].__setitem__("percentile_method", "median"),
        lambda d: d["metrics"][0].__setitem__("value", "7"),
    ):
        bad = copy.deepcopy(good)
        mutate(bad)
        assert list(v.iter_errors(bad)), mutate
