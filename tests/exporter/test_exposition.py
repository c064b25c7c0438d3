"""Every exposition the collector produces is valid: the strict OpenMetrics parser of
prometheus_client accepts it, and ``promtool check metrics`` reports no finding on the
text format (SPEC §8)."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.prometheus.collector import SnapshotCollector
from registry import MetricsRegistry, SessionState, SnapshotCodec
from tests.support.exporter_support import (
    PROMTOOL,
    openmetrics_exposition,
    parse_strict,
    promtool_findings,
    spec_snapshot,
    text_exposition,
)

needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed")


def _no_hdr(snapshot):
    raw = msgspec.msgpack.decode(SnapshotCodec().encode(snapshot)[1])
    for m in raw[4]:
        if m[0] == "series":
            del m[10:]
            m[9] = None
    return SnapshotCodec().decode(msgspec.msgpack.encode(raw))


def _unknown_metrics_snapshot():
    reg = MetricsRegistry()
    reg.register_counter("Weird-Name.Count")
    reg.register_counter("idle_ns")
    reg.register_counter("queue_total", settable=True)
    reg.register_series("prefill_latency_ns", hdr_low=10, hdr_high=10**10)
    reg.register_series("batch_size", hdr_low=1, hdr_high=4096, dtype=float)
    reg.increment("Weird-Name.Count", 3)
    reg.record_many("prefill_latency_ns", [100, 10_000, 10**9])
    reg.record_many("batch_size", [1.5, 8.0, 64.25])
    return reg.build_snapshot(state=SessionState.DRAINING, n_pending_tasks=2)


CASES = {
    "live": lambda: spec_snapshot(SessionState.LIVE, n=1_000),
    "complete": lambda: spec_snapshot(SessionState.COMPLETE, n=1_000),
    "interrupted": lambda: spec_snapshot(SessionState.INTERRUPTED, n=10, pending=7),
    "empty": lambda: spec_snapshot(SessionState.INITIALIZE, n=0),
    "no_hdr": lambda: _no_hdr(spec_snapshot(n=300)),
    "unknown_metrics": _unknown_metrics_snapshot,
    "no_snapshot_yet": lambda: None,
}

LABELS = {
    "plain": {"run_id": "run-42"},
    "hostile": {
        "run_id": 'r"1\\2\n3 ünï ✓ {},= 日本',
        "model": "meta/llama-3.1-8b\\instruct",
        "note": '\n\n""\\\\',
    },
}


def _collector(case: str, labels: str, namespace: str = "bench") -> SnapshotCollector:
    c = SnapshotCollector(namespace=namespace, labels=LABELS[labels], gauges=["queue_total"])
    snap = CASES[case]()
    if snap is not None:
        c.update(snap)
    return c


@pytest.mark.parametrize("labels", sorted(LABELS))
@pytest.mark.parametrize("case", sorted(CASES))
def test_openmetrics_parses_strictly(case: str, labels: str) -> None:
    text = openmetrics_exposition(_collector(case, labels))
    fams = parse_strict(text)
    assert text.endswith("# EOF\n")
    assert "bench_run" in fams and "bench_exporter_up" in fams


@needs_promtool
@pytest.mark.parametrize("labels", sorted(LABELS))
@pytest.mark.parametrize("case", sorted(CASES))
def test_text_format_passes_promtool(case: str, labels: str) -> None:
    text = text_exposition(_collector(case, labels))
    code, out = promtool_findings(text)
    assert (code, out.strip()) == (0, "")


@needs_promtool
def test_promtool_does_find_problems_it_is_not_a_rubber_stamp() -> None:
    code, out = promtool_findings(
        "# HELP x_summary_seconds d\n# TYPE x_summary_seconds summary\nx_summary_seconds_sum 1\n"
        "x_summary_seconds_count 1\n"
    )
    assert code != 0 and "summary" in out


@needs_promtool
def test_other_namespace_passes_promtool() -> None:
    c = _collector("live", "plain", namespace="llm_bench")
    assert promtool_findings(text_exposition(c)) == (0, "")
    assert "llm_bench_ttft_seconds" in parse_strict(openmetrics_exposition(c))


_label_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=0, max_size=30)
_metric_name = st.text(
    alphabet=st.sampled_from("abcXYZ_-.:/ 019é"), min_size=1, max_size=12
).filter(lambda s: s.strip())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    run_id=_label_text,
    extra=st.dictionaries(
        st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True).filter(
            lambda k: (
                k not in {"le", "quantile", "window", "reason", "version", "job"}
                and k not in {"instance", "run_id", "bench_session_state"}
            )
        ),
        _label_text,
        max_size=3,
    ),
    counters=st.lists(_metric_name, max_size=4, unique=True),
    series=st.lists(_metric_name, max_size=3, unique=True),
    values=st.lists(st.integers(min_value=1, max_value=10**9), max_size=20),
)
def test_any_names_and_labels_give_a_strictly_valid_exposition(
    run_id: str, extra: dict[str, str], counters: list[str], series: list[str], values: list[int]
) -> None:
    reg = MetricsRegistry()
    seen: set[str] = set()
    for name in counters:
        reg.register_counter(name)
        reg.increment(name, len(name))
        seen.add(name)
    for name in series:
        if name in seen:
            continue
        reg.register_series(name, hdr_low=1, hdr_high=10**9)
        reg.record_many(name, values)
    c = SnapshotCollector(labels={"run_id": run_id, **extra})
    c.update(reg.build_snapshot(state=SessionState.LIVE, n_pending_tasks=0))
    for s in (sam for f in parse_strict(openmetrics_exposition(c)).values() for sam in f.samples):
        assert s.labels["run_id"] == run_id
