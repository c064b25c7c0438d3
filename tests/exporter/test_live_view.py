"""The live terminal view, rendered headless: what a person would read on screen."""

from __future__ import annotations

import io
import re

import msgspec
from rich.console import Console

from exporter.views.format import format_count, format_ns
from exporter.views.live_view import LiveView, RateWindow, ViewContext, progress_line, render_live
from registry.core.metrics_registry import MetricsRegistry
from registry.delivery.snapshot import CounterStat, MetricsSnapshot, SessionState
from tests.support.snapshots_factory import snapshot


def text_of(renderable: object, width: int = 100) -> str:
    console = Console(width=width, record=True, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


def row(text: str, label: str) -> list[str]:
    """The cells of the table row starting with ``label`` (panel borders removed)."""
    for line in text.splitlines():
        body = line.strip("│ ")
        if body.startswith(label):
            return re.split(r"\s{2,}", body[len(label) :].strip())
    raise AssertionError(f"no row {label!r} in:\n{text}")


def test_live_snapshot_shows_state_progress_counts_and_quantiles() -> None:
    snap = snapshot(SessionState.LIVE, completed=1000, failed=10, in_flight=5)
    ctx = ViewContext(
        title="bench-metrics demo", source="ipc:///x", expected_samples=2000, planned_duration_s=25
    )
    text = text_of(render_live(snap, context=ctx, dropped=3, notes=["source: 42 events sent"]))
    assert "bench-metrics demo · ipc:///x" in text
    assert "LIVE" in text
    assert "10.0 s of ~25 s planned" in text
    assert "1,010 / ~2,000 samples" in text and "50.5%" in text
    assert "Issued 1,015" in text and "Completed 1,010" in text and "Failed 10" in text
    assert "In flight 5" in text
    # whole run: 1010 tracked completions (10 failed) over 10 s, in the "whole run" column
    assert row(text, "QPS")[-1] == "101.0"
    assert "Quantiles (live, HDR)" in text
    # TTFT values are 1..1000 ms: nearest-rank p50/p90/p99 = 500/900/990 ms (HDR is exact here).
    assert row(text, "TTFT") == ["1,000", "500 ms", "500 ms", "900 ms", "990 ms", "1.00 s"]
    assert row(text, "TPOT")[2] == "2.50 ms"
    assert row(text, "Output tokens")[1:] == ["64"] * 5
    assert "stop 750 · length 250" in text
    assert "source: 42 events sent" in text
    assert "3 frames dropped" in text


def test_terminal_snapshot_shows_exact_quantiles_and_full_progress() -> None:
    live = text_of(render_live(snapshot(SessionState.LIVE)))
    done = text_of(
        render_live(snapshot(SessionState.COMPLETE), context=ViewContext(expected_samples=5000))
    )
    assert "COMPLETE" in done and "Quantiles (exact)" in done
    assert "100.0%" in done
    # Latency 10..10000 ms: exact p99 = 9.90 s; the live HDR view rounds within its precision.
    assert row(done, "Request latency")[4] == "9.90 s"
    assert row(live, "Request latency")[4] == "9.91 s"
    interrupted = text_of(render_live(snapshot(SessionState.INTERRUPTED, pending=7)))
    assert "INTERRUPTED" in interrupted and "Tokenizations pending 7" in interrupted


def test_before_the_first_snapshot_the_view_says_it_is_waiting() -> None:
    text = text_of(render_live(None, context=ViewContext(source="tcp://127.0.0.1:1")))
    assert "waiting for the first snapshot" in text
    assert "tcp://127.0.0.1:1" in text
    assert progress_line(None) == "waiting for the first snapshot"


def test_a_foreign_stream_is_shown_as_it_is() -> None:
    reg = MetricsRegistry()
    reg.register_counter("requests_seen")
    reg.register_series("queue_depth", hdr_low=1, hdr_high=1000)
    reg.register_series("ttft_ns", hdr_low=1000, hdr_high=10**12)
    reg.increment("requests_seen", 12)
    for v in (3, 5, 7):
        reg.record("queue_depth", v)
    snap = reg.build_snapshot(state=SessionState.DRAINING, n_pending_tasks=0)
    text = text_of(render_live(snap))
    assert "DRAINING" in text
    assert "requests_seen=12" in text
    assert row(text, "queue_depth")[:3] == ["3", "5", "5"]  # count, mean, p50
    assert row(text, "TTFT") == ["0"] + ["-"] * 5  # empty series: no made-up numbers
    assert "Issued -" in text


def test_narrow_terminal_still_renders() -> None:
    text = text_of(render_live(snapshot(), context=ViewContext(expected_samples=10)), width=50)
    assert "LIVE" in text and "TTFT" in text


def with_time(snap: MetricsSnapshot, counter: int, t_ns: int, **counters: int) -> MetricsSnapshot:
    metrics = [
        CounterStat(m.name, counters.get(m.name, m.value)) if isinstance(m, CounterStat) else m
        for m in snap.metrics
    ]
    return msgspec.structs.replace(snap, counter=counter, timestamp_ns=t_ns, metrics=metrics)


def test_rates_come_from_the_producer_clock_over_the_window() -> None:
    base = snapshot(completed=0, failed=0, in_flight=0)
    window = RateWindow(span_s=5)
    first = window.update(with_time(base, 1, 10**9, total_samples_completed=100))
    assert first.qps is None  # one point is no rate
    r = window.update(
        with_time(base, 2, 3 * 10**9, total_samples_completed=500, tracked_output_tokens=64 * 400)
    )
    assert r.qps == 200.0 and r.tps == 64 * 200.0
    # Repeating the same snapshot (no new frame) changes nothing.
    assert window.update(with_time(base, 2, 3 * 10**9, total_samples_completed=500)) == r
    # Old points slide out: the rate is over the last ~5 s only.
    window.update(with_time(base, 3, 9 * 10**9, total_samples_completed=800))
    r = window.update(with_time(base, 4, 10 * 10**9, total_samples_completed=1000))
    assert r.qps == (1000 - 500) / 7
    # A restarted producer (lower sequence) starts a new window.
    assert window.update(with_time(base, 1, 10**9, total_samples_completed=5)).qps is None


def test_live_view_keeps_the_last_snapshot_and_renders_rates() -> None:
    view = LiveView(ViewContext(expected_samples=100))
    base = snapshot(completed=0, failed=0, in_flight=0)
    view.update(with_time(base, 1, 0, total_samples_completed=0))
    view.update(with_time(base, 2, 2 * 10**9, total_samples_completed=50))
    view.update(None)  # nothing new arrived: the view keeps what it had
    assert view.snapshot is not None and view.snapshot.counter == 2
    text = text_of(view.render())
    assert row(text, "QPS")[0] == "25.0"  # the recent window's column
    assert "qps 25.0 (5 s)" in view.line()


def test_progress_line_has_the_headline_figures() -> None:
    line = progress_line(snapshot(completed=200, failed=3, in_flight=1))
    assert "live" in line
    assert "issued 204" in line and "completed 203" in line and "failed 3" in line
    assert "ttft p50/p99 100ms/198ms" in line
    assert "\n" not in line


def test_number_formats() -> None:
    assert format_ns(999) == "999 ns"
    assert format_ns(41_234_567) == "41.2 ms"
    assert format_ns(1_500) == "1.50 µs"
    assert format_ns(123_456_789_000) == "123 s"
    assert format_ns(float("nan")) == format_ns(None) == "-"
    assert format_count(1234567) == "1,234,567"
    assert format_count(2.0) == "2"


def test_completions_stamped_before_a_chunk_are_said_in_words() -> None:
    """SPEC §6: counted as upstream counts them, and the view says what that means."""
    snap = snapshot(SessionState.LIVE, completed=1000, failed=10, in_flight=5)
    assert "stamped before a chunk" not in text_of(render_live(snap))
    metrics = [*snap.metrics, CounterStat(name="samples_complete_before_chunk", value=505)]
    text = text_of(render_live(msgspec.structs.replace(snap, metrics=metrics)), width=140)
    assert "505 completions stamped before a chunk (50 % of completions)" in text
    assert "TPOT and chunk gaps are unreliable" in text
    assert "samples_complete_before_chunk=" not in text  # not listed twice
