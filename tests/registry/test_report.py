"""The Report (SPEC §7): numbers, honesty about completeness, schema, strict JSON."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import jsonschema
import pytest

from registry import (
    CounterStat,
    MetricsRegistry,
    MetricsSnapshot,
    SessionState,
    SnapshotDecodeError,
    snapshot_to_dict,
)
from registry.aggregator import AggregatorMetrics
from registry.report.summary import SCHEMA_PATH, build_report, load_schema, write_report
from tests.support.aggregator_scenario import SCENARIO, SCENARIO_SERIES

VALIDATOR = jsonschema.Draft202012Validator(
    load_schema(), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
)


def scenario_snapshot(state: SessionState = SessionState.COMPLETE, pending: int | None = None):
    reg = MetricsRegistry()
    agg = AggregatorMetrics(reg, streaming=True)
    agg.handle_many(SCENARIO)
    n = agg.n_pending_tasks if pending is None else pending
    return reg.build_snapshot(state=state, n_pending_tasks=n)


def validate(report: dict) -> None:
    VALIDATOR.validate(report)
    json.dumps(report, allow_nan=False)  # strict JSON: raises on NaN/Infinity


def test_schema_is_shipped_and_valid() -> None:
    assert SCHEMA_PATH.is_file()
    jsonschema.Draft202012Validator.check_schema(load_schema())


def test_complete_report_numbers() -> None:
    snap = scenario_snapshot(pending=0)
    when = dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    r = build_report(snap, source="file", run_id="r1", labels={"model": "m"}, generated_at=when)
    validate(r)
    assert r["state"] == "complete" and r["complete"] is True
    assert r["incomplete_reason"] is None and r["source_reason"] is None
    # completions include failed ones (SPEC §6): in flight = issued - completed
    assert r["samples"]["all"] == {"issued": 8, "completed": 6, "failed": 4, "in_flight": 2}
    assert r["samples"]["tracked"] == {"issued": 6, "completed": 4, "failed": 2, "in_flight": 2}
    assert r["duration_s"] == pytest.approx(1900e-9)
    assert r["total_duration_s"] == pytest.approx(4000e-9)
    assert r["qps"] == pytest.approx(4 / 1900e-9)
    assert r["tps"] == pytest.approx(11 / 1900e-9)
    assert r["output_tokens"] == 11
    # legacy LoadGen window 2100 -> 4500: (completed - 1) / window
    assert r["qps_legacy"] == pytest.approx(3 / 2400e-9)
    assert r["tps_legacy"] == pytest.approx(11 / 2400e-9)
    assert r["finish_reasons"] == {
        "stop": 2,
        "length": 1,
        "tool_calls": 0,
        "content_filter": 0,
        "function_call": 0,
        "other": 1,
    }
    ttft = r["series"]["ttft_ns"]
    assert ttft["unit"] == "ns" and r["series"]["isl"]["unit"] == "tokens"
    assert ttft["count"] == 4 and ttft["min"] == 100 and ttft["max"] == 1000
    assert ttft["avg"] == pytest.approx(1700 / 4)
    assert ttft["median"] == 300 == ttft["percentiles"]["50.0"]
    assert ttft["std_dev"] == pytest.approx(snap.series["ttft_ns"].std_dev)
    assert sum(b["count"] for b in ttft["histogram"]) == 4
    assert set(r["series"]) == set(SCENARIO_SERIES)
    assert r["counters"]["events_unmatched"] == 1
    assert r["run"]["run_id"] == "r1" and r["run"]["labels"] == {"model": "m"}
    versions = r["run"]["versions"]
    assert versions["bench_metrics"] and versions["numpy"] and versions["python"]
    assert r["generated_at"] == "2025-01-02T03:04:05Z"


def test_pending_tasks_make_it_incomplete() -> None:
    r = build_report(scenario_snapshot(pending=1), source="file")
    validate(r)
    assert r["state"] == "complete" and r["n_pending_tasks"] == 1
    assert r["complete"] is False
    assert "1 tokenization had not finished" in r["incomplete_reason"]
    r = build_report(scenario_snapshot(pending=7), source="file")
    assert r["complete"] is False
    assert "7 tokenizations had not finished" in r["incomplete_reason"]
    # samples still in flight at the end do not make a report incomplete
    assert build_report(scenario_snapshot(), source="file")["complete"] is True


def test_interrupted_from_latest_live_says_why() -> None:
    r = build_report(
        scenario_snapshot(SessionState.INTERRUPTED, pending=3),
        source="terminal_frame",
        reason="final_snapshot.json is missing",
    )
    validate(r)
    assert r["complete"] is False
    why = r["incomplete_reason"]
    assert "interrupted" in why and "3 tokenizations had not finished" in why
    assert "terminal frame" in why and "final_snapshot.json is missing" in why

    live = build_report(scenario_snapshot(SessionState.LIVE, pending=0), source="latest_live")
    validate(live)
    assert live["complete"] is False
    assert "'live'" in live["incomplete_reason"] and "latest live" in live["incomplete_reason"]


def test_complete_terminal_frame_is_complete_and_names_its_source() -> None:
    snap = scenario_snapshot(pending=0)
    r = build_report(snap, source="terminal_frame", reason="file unreadable")
    validate(r)
    assert r["complete"] is True and r["incomplete_reason"] is None
    assert r["source"] == "terminal_frame" and r["source_reason"] == "file unreadable"


def test_dict_form_gives_the_same_report() -> None:
    snap = scenario_snapshot(pending=0)
    when = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    from_struct = build_report(snap, source="file", generated_at=when)
    as_json = json.loads(json.dumps(snapshot_to_dict(snap)))
    assert build_report(as_json, source="file", generated_at=when) == from_struct


def test_empty_and_foreign_snapshots_give_nulls_not_nan() -> None:
    reg = MetricsRegistry()
    AggregatorMetrics(reg, streaming=True)
    r = build_report(reg.build_snapshot(state=SessionState.COMPLETE, n_pending_tasks=0))
    validate(r)
    assert r["qps"] is None and r["tps"] is None  # zero duration: no rate
    assert r["series"]["ttft_ns"] == {
        "unit": "ns",
        "count": 0,
        "min": None,
        "max": None,
        "avg": None,
        "median": None,
        "std_dev": None,
        "percentiles": {},
        # ttft_ns is a tail-latency series: an empty one still has its (all-null) map
        "early_stopping_percentiles": dict.fromkeys(
            ("99.9", "99.0", "97.0", "95.0", "90.0", "80.0", "75.0", "50.0")
        ),
        "histogram": [],
    }
    # A snapshot from another producer: unknown counters, a non-finite value.
    foreign = MetricsSnapshot(
        counter=7,
        timestamp_ns=1,
        state=SessionState.COMPLETE,
        n_pending_tasks=0,
        metrics=[CounterStat("something_else", math.nan)],
    )
    r = build_report(foreign, source="file")
    validate(r)
    assert r["samples"]["all"] == {
        "issued": None,
        "completed": None,
        "failed": None,
        "in_flight": None,
    }
    assert r["counters"] == {"something_else": None}
    assert r["duration_s"] is None and r["qps"] is None


def test_bad_input_is_rejected_with_a_reason() -> None:
    with pytest.raises(ValueError, match="source must be one of"):
        build_report(scenario_snapshot(), source="disk")
    with pytest.raises(SnapshotDecodeError):
        build_report({"counter": 1, "state": "complete"})


def test_write_report_is_atomic_strict_json(tmp_path: Path) -> None:
    path = tmp_path / "result_summary.json"
    path.write_text("old")
    report = build_report(scenario_snapshot(pending=0), source="file", run_id="r")
    write_report(path, report)
    text = path.read_text()
    back = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON {c}"))
    assert back == report
    validate(back)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result_summary.json"]


def test_the_report_warns_about_samples_never_completed() -> None:
    """Upstream's own final snapshot of session A: 9 tracked samples were still in flight
    at session.ended (fixture README); the Report says so and what it means."""
    from tests.support.upstream_fixtures import SESSION_A_UPSTREAM_NOTOK, load_json

    report = build_report(load_json(SESSION_A_UPSTREAM_NOTOK / "final_snapshot.json"))
    assert report["samples"]["tracked"]["in_flight"] == 9
    (w,) = report["warnings"]
    assert (w["code"], w["count"]) == ("never_completed", 9)
    assert "never completed" in w["message"] and "qps, tps" in w["message"]
    assert report["complete"] is True  # a finished run: the warning qualifies, not voids
    jsonschema.validate(report, load_schema())


def test_a_live_report_does_not_call_in_flight_samples_never_completed() -> None:
    from tests.support.upstream_fixtures import SESSION_A_UPSTREAM_NOTOK, load_json

    doc = load_json(SESSION_A_UPSTREAM_NOTOK / "final_snapshot.json")
    report = build_report({**doc, "state": "live"})
    assert report["warnings"] == []
