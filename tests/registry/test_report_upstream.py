"""The Report of upstream's final files equals upstream's own numbers (SPEC §7); legacy rates."""

from __future__ import annotations

import json
import math

import jsonschema
import pytest

from registry import (
    CounterStat,
    MetricsRegistry,
    MetricsSnapshot,
    SeriesStat,
    SessionState,
    snapshot_to_dict,
)
from registry.mlperf import discard_count
from registry.report.summary import build_report, load_schema
from tests.support.upstream_fixtures import (
    SESSION_A_UPSTREAM,
    SESSION_A_UPSTREAM_NOTOK,
    SNAPSHOT_FINAL,
    load_json,
)

VALIDATOR = jsonschema.Draft202012Validator(
    load_schema(), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
)
# upstream's Report field -> our series name
UPSTREAM_SERIES = {
    "latency": "sample_latency_ns",
    "ttft": "ttft_ns",
    "tpot": "tpot_ns",
    "output_sequence_lengths": "osl",
}


def _validate(report: dict) -> None:
    VALIDATOR.validate(report)
    json.dumps(report, allow_nan=False)


@pytest.mark.parametrize(
    "run", [SESSION_A_UPSTREAM, SESSION_A_UPSTREAM_NOTOK], ids=["tok", "notok"]
)
def test_report_of_upstreams_file_matches_upstreams_summary(run) -> None:
    theirs = load_json(run / "result_summary.json")
    r = build_report(load_json(run / "final_snapshot.json"), source="file")
    _validate(r)
    assert r["complete"] is True and r["state"] == theirs["state"] == "complete"
    # upstream's qps/tps use the legacy LoadGen window (its default for these files)
    assert theirs["legacy_loadgen_window_duration_ns"] == round(r["legacy_window_s"] * 1e9)
    assert math.isclose(r["qps_legacy"], theirs["qps"], rel_tol=1e-12)
    if theirs["tps"] is None:
        assert r["tps_legacy"] is None and r["output_tokens"] is None  # no osl without tokenizer
    else:
        assert math.isclose(r["tps_legacy"], theirs["tps"], rel_tol=1e-12)
        assert r["output_tokens"] == theirs["output_sequence_lengths"]["total"]
    samples = r["samples"]["tracked"]
    assert (samples["issued"], samples["completed"], samples["failed"]) == (
        theirs["n_samples_issued"],
        theirs["n_samples_completed"],
        theirs["n_samples_failed"],
    )
    assert round(r["duration_s"] * 1e9) == theirs["duration_ns"]
    compared = 0
    for field, name in UPSTREAM_SERIES.items():
        want, ours = theirs[field], r["series"][name]
        assert ours["early_stopping_percentiles"] == want.get("early_stopping_percentiles")
        if "std_dev" not in want:  # upstream's empty series
            assert ours["count"] == 0 and ours["std_dev"] is None
            continue
        assert ours["std_dev"] == want["std_dev"], name  # the same formula, the same float
        assert ours["avg"] == want["avg"] and ours["median"] == want["median"]
        assert (ours["min"], ours["max"]) == (want["min"], want["max"])
        assert ours["percentiles"] == want["percentiles"]
        compared += 1
    assert compared == (4 if theirs["tps"] is not None else 2)
    # upstream's files have no run block: the method is not known, nothing invented
    assert r["percentile_method"] is None and r["run"]["run_id"] is None


def test_report_of_the_snapshot_fixture_builds_and_validates() -> None:
    r = build_report(load_json(SNAPSHOT_FINAL), source="file")
    _validate(r)
    c = load_json(SNAPSHOT_FINAL)
    counters = {m["name"]: m["value"] for m in c["metrics"] if m["type"] == "counter"}
    window_s = counters["legacy_loadgen_window_duration_ns"] / 1e9
    assert r["qps_legacy"] == (counters["tracked_samples_completed"] - 1) / window_s
    assert r["output_tokens"] == 174_469  # the osl total (fixture README)
    assert r["tps_legacy"] == 174_469 / window_s


def _snapshot(completed: int, window_ns: int, *, tokens: int | None = None, osl=()) -> dict:
    reg = MetricsRegistry()
    reg.register_counter("tracked_samples_completed")
    reg.register_counter("legacy_loadgen_window_duration_ns", settable=True)
    if tokens is not None:
        reg.register_counter("tracked_output_tokens")
        reg.increment("tracked_output_tokens", tokens)
    reg.register_series("osl", hdr_low=1, hdr_high=10**6)
    reg.increment("tracked_samples_completed", completed)
    reg.set_counter("legacy_loadgen_window_duration_ns", window_ns)
    reg.record_many("osl", list(osl))
    return snapshot_to_dict(reg.build_snapshot(state=SessionState.COMPLETE, n_pending_tasks=0))


def test_legacy_rates_follow_upstreams_rule() -> None:
    r = build_report(_snapshot(5, 2_000_000_000, osl=[10, 20, 30]))
    _validate(r)
    assert r["legacy_window_s"] == 2.0
    assert r["qps_legacy"] == 2.0 and r["tps_legacy"] == 30.0 and r["output_tokens"] == 60
    # our counter wins over the osl total when the snapshot has it
    r = build_report(_snapshot(5, 2_000_000_000, tokens=100, osl=[10, 20, 30]))
    assert r["output_tokens"] == 100 and r["tps_legacy"] == 50.0
    # fewer than two completed, or an empty window: no legacy rate at all
    for completed, window in ((1, 2_000_000_000), (0, 2_000_000_000), (5, 0)):
        r = build_report(_snapshot(completed, window, osl=[10]))
        _validate(r)
        assert r["qps_legacy"] is None and r["tps_legacy"] is None
    # no tokens known: QPS still, TPS not
    r = build_report(_snapshot(3, 1_000_000_000))
    assert r["qps_legacy"] == 2.0 and r["tps_legacy"] is None and r["output_tokens"] is None


def test_a_snapshot_without_the_legacy_counter_gives_nulls() -> None:
    snap = MetricsSnapshot(
        1, 1, SessionState.COMPLETE, 0, [CounterStat("tracked_samples_completed", 9)]
    )
    r = build_report(snap)
    _validate(r)
    assert r["legacy_window_s"] is None and r["qps_legacy"] is None


def test_run_block_and_method_come_from_the_file_and_merge_with_the_callers() -> None:
    reg = MetricsRegistry(percentile_method="numpy-lower")
    reg.register_series("ttft_ns", hdr_low=1, hdr_high=10**9, tail_latency=True)
    reg.record_many("ttft_ns", list(range(1, 20)))
    snap = reg.build_snapshot(state=SessionState.COMPLETE, n_pending_tasks=0)
    file_run = {
        "run_id": "from-file",
        "labels": {"model": "m", "site": "a"},
        "percentile_method": "numpy-lower",
        "tokenizer": "/models/tok",
        "versions": {"bench_metrics": "0.0.1"},
    }
    d = json.loads(json.dumps(snapshot_to_dict(snap, run=file_run)))
    r = build_report(d, labels={"site": "b"})
    _validate(r)
    assert r["percentile_method"] == "numpy-lower"
    assert r["run"]["run_id"] == "from-file" and r["run"]["tokenizer"] == "/models/tok"
    assert r["run"]["labels"] == {"model": "m", "site": "b"}  # the caller's label wins
    assert r["run"]["snapshot_versions"] == {"bench_metrics": "0.0.1"}
    assert r["run"]["versions"]["python"]  # ours: what built the report
    assert build_report(d, run_id="override")["run"]["run_id"] == "override"
    # the struct and an explicit run block give the same
    assert build_report(snap, run=file_run)["run"]["tokenizer"] == "/models/tok"
    es = r["series"]["ttft_ns"]["early_stopping_percentiles"]
    # n = 19 reaches only p50's minimum (11): sorted[n - t], values 1..19
    assert es is not None and [k for k, v in es.items() if v is not None] == ["50.0"]
    assert es["50.0"] == float(19 - discard_count(19, 0.5) + 1)


def test_std_dev_is_the_sample_deviation_in_upstreams_two_forms() -> None:
    # exact integer rollups (an older file of ours): the integer form
    ints = SeriesStat("s", 3, 6, 1, 3, 14, {"50.0": 2.0}, [])
    assert ints.std_dev == 1.0
    # a float sum_sq (upstream's shape): the float form
    floats = SeriesStat("s", 4, 10.0, 1.0, 4.0, 30.0, {"50.0": 2.0}, [])
    assert floats.std_dev == math.sqrt((30.0 - 100.0 / 4) / 3)
    assert SeriesStat("s", 1, 5, 5, 5, 25.0, {"50.0": 5.0}, []).std_dev == 0.0
