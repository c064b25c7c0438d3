"""Our terminal series equal the ones upstream's aggregator wrote, key for key, bit for bit.

Session A's raw values (decoded from the recorded frames by ``upstream_series``)
go into a registry set up as upstream's (``numpy-lower``, early stopping at
0.99 on the tail-latency series); the dict form of each series must equal the
fixture file's entry exactly: counts, totals, the float ``sum_sq``, every
percentile, the early-stopping map and every histogram edge and count.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from registry import MetricsRegistry, SessionState, snapshot_to_dict
from registry.core.series import display_edges
from tests.support.upstream_fixtures import (
    SESSION_A_UPSTREAM,
    SESSION_A_UPSTREAM_NOTOK,
    SNAPSHOT_FINAL,
    load_json,
)
from tests.support.upstream_series import session_a_series

HDR_HIGH = 3_600_000_000_000
TAIL = ("sample_latency_ns", "ttft_ns", "tpot_ns")
FINAL_FILES = [
    SESSION_A_UPSTREAM / "final_snapshot.json",
    SESSION_A_UPSTREAM_NOTOK / "final_snapshot.json",
    SNAPSHOT_FINAL,
]


def _series_of(path) -> dict[str, dict[str, Any]]:
    return {m["name"]: m for m in load_json(path)["metrics"] if m["type"] == "series"}


def _upstream_like_registry(names: list[str]) -> MetricsRegistry:
    reg = MetricsRegistry(percentile_method="numpy-lower")
    for name in names:
        dtype = float if name == "tpot_ns" else int
        reg.register_series(
            name, hdr_low=1, hdr_high=HDR_HIGH, dtype=dtype, tail_latency=name in TAIL
        )
    return reg


@pytest.mark.parametrize(
    ("run", "names"),
    [
        (SESSION_A_UPSTREAM_NOTOK, ["sample_latency_ns", "ttft_ns", "chunk_delta_ns", "isl"]),
        # with a tokenizer upstream's isl also counts text prompts; the rest is the same
        (SESSION_A_UPSTREAM, ["sample_latency_ns", "ttft_ns", "chunk_delta_ns"]),
    ],
    ids=["notok", "tokenizer"],
)
def test_terminal_series_equal_upstreams_file_exactly(run, names: list[str]) -> None:
    values = session_a_series()
    reg = _upstream_like_registry(names)
    for name in names:
        reg.record_many(name, np.array(values[name], dtype=np.int64))
    ours = snapshot_to_dict(reg.build_snapshot(state=SessionState.COMPLETE, n_pending_tasks=0))
    theirs = _series_of(run / "final_snapshot.json")
    differing = 0
    for entry in ours["metrics"]:
        assert entry.pop("hdr")  # our extension; upstream's file has none
        want = theirs[entry["name"]]
        assert list(entry) == list(want), entry["name"]  # same keys, same order
        differing += sum(entry[k] != want[k] for k in want)
        assert entry == want, entry["name"]
    assert differing == 0


def test_empty_series_look_like_upstreams_empty_ones() -> None:
    theirs = _series_of(SESSION_A_UPSTREAM_NOTOK / "final_snapshot.json")
    reg = _upstream_like_registry(["osl", "tpot_ns"])
    ours = snapshot_to_dict(reg.build_snapshot(state=SessionState.COMPLETE, n_pending_tasks=0))
    for entry in ours["metrics"]:
        entry.pop("hdr")
        want = theirs[entry["name"]]
        assert entry == want, entry["name"]
        # the types too: int 0 min/max even for the float series, its zeros float
        for key in ("count", "total", "min", "max", "sum_sq"):
            assert type(entry[key]) is type(want[key]), (entry["name"], key)
    assert type(theirs["tpot_ns"]["total"]) is float and type(theirs["tpot_ns"]["min"]) is int


@pytest.mark.parametrize("path", FINAL_FILES, ids=lambda p: p.parent.name + "/" + p.name)
def test_display_edges_equal_upstreams_to_the_last_bit(path) -> None:
    checked = 0
    for name, s in _series_of(path).items():
        if not s["count"]:
            assert s["histogram"] == []
            continue
        want = [lo for (lo, _), _ in s["histogram"]] + [s["histogram"][-1][0][1]]
        assert display_edges(s["min"], s["max"], len(s["histogram"])) == want, name
        assert len(want) == 31 and sum(n for _, n in s["histogram"]) == s["count"]
        checked += 1
    assert checked >= 4


def test_sum_sq_is_the_correctly_rounded_exact_sum_and_a_float() -> None:
    values = session_a_series()["sample_latency_ns"]
    reg = _upstream_like_registry(["sample_latency_ns"])
    reg.record_many("sample_latency_ns", list(values))
    for state in (SessionState.LIVE, SessionState.COMPLETE):
        s = reg.build_snapshot(state=state, n_pending_tasks=0).series["sample_latency_ns"]
        assert isinstance(s.sum_sq, float) and s.sum_sq == float(sum(v * v for v in values))
        assert isinstance(s.total, int) and isinstance(s.min, int) and isinstance(s.max, int)


def test_live_histograms_use_the_same_edges_and_count_every_value() -> None:
    values = session_a_series()["chunk_delta_ns"]
    reg = _upstream_like_registry(["chunk_delta_ns"])
    reg.record_many("chunk_delta_ns", list(values))
    live = reg.build_snapshot(state=SessionState.LIVE, n_pending_tasks=0).series["chunk_delta_ns"]
    final = reg.build_snapshot(state=SessionState.COMPLETE, n_pending_tasks=0)
    exact = final.series["chunk_delta_ns"]
    assert [b for b, _ in live.histogram] == [b for b, _ in exact.histogram]
    assert sum(n for _, n in live.histogram) == len(values)
    # HDR buckets (3 significant figures) move few values across a display edge
    moved = sum(abs(a - b) for (_, a), (_, b) in zip(live.histogram, exact.histogram, strict=True))
    assert moved <= 0.01 * len(values)


@pytest.mark.parametrize("dtype", [int, float])
def test_values_below_one_and_single_values_still_fill_the_histogram(dtype: type) -> None:
    reg = MetricsRegistry()
    reg.register_series("s", hdr_low=1, hdr_high=10**6, dtype=dtype)
    reg.record_many("s", [dtype(v) for v in (-5, 0, 0, 1, 3)])
    for state in (SessionState.LIVE, SessionState.COMPLETE):
        s = reg.build_snapshot(state=state, n_pending_tasks=0).series["s"]
        # lo = max(min, 1) = 1, hi = max(max, 10 * lo) = 10; values below 1 land in bucket 0
        assert math.isclose(s.histogram[0][0][0], 1.0) and math.isclose(s.histogram[-1][0][1], 10.0)
        assert len(s.histogram) == 30 and sum(n for _, n in s.histogram) == 5
        if state is SessionState.COMPLETE:
            assert s.histogram[0][1] == 4  # -5, 0, 0 clipped up to 1, and 1 itself
    one = MetricsRegistry()
    one.register_series("s", hdr_low=1, hdr_high=10**6, dtype=dtype)
    one.record("s", dtype(7))
    s = one.build_snapshot(state=SessionState.COMPLETE, n_pending_tasks=0).series["s"]
    assert len(s.histogram) == 30 and sum(n for _, n in s.histogram) == 1
    assert s.histogram[0][1] == 1  # [7, 70]: the single value sits at the first edge
