"""Issue 24 item 10: an aggregator whose producer is gone ends the run INTERRUPTED with its
final files after ``--producer-timeout``, and never because a live producer is quiet.

Real processes throughout: ``bench-metrics aggregate`` (and upstream's launch mode,
``python -m exporter.upstream``) against a producer child killed with SIGKILL."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from pathlib import Path

import pytest

from registry.delivery.snapshot import SessionState
from registry.events import EventType
from registry.events.data import PromptData
from registry.report.summary import REPORT_NAME, UPSTREAM_MODE_REPORT_NAME
from tests.support.aggregate_process import exit_code, start_aggregate
from tests.support.aggregator_scenario import ev
from tests.support.exporter_support import TESTS_DIR, Child
from tests.support.helpers import wait_until
from tests.support.tokenizer_factory import CHAT_TEMPLATE, make_word_tokenizer

T = EventType
GRACE_S = 2.0
#: What "a few seconds" after the grace may take on a loaded 2-core machine.
SLACK_S = 8.0


def start_producer(events_ep: str) -> Child:
    child = Child([sys.executable, str(TESTS_DIR / "event_producer_child.py"), events_ep])
    child.wait_for("sent", stream="out", timeout=30)
    return child


def still_running_after(child: Child, seconds: float) -> bool:
    """Whether ``child`` is still running ``seconds`` from now (it may not end before)."""
    return not wait_until(lambda: child.proc.poll() is not None, seconds, interval=0.05)


def assert_interrupted_files(out: Path, report_name: str = REPORT_NAME) -> None:
    snap = json.loads((out / "final_snapshot.json").read_text())
    assert snap["state"] == "interrupted"
    counters = {m["name"]: m["value"] for m in snap["metrics"] if m["type"] == "counter"}
    assert counters["total_samples_issued"] == 8  # everything it sent before it died
    assert snap["run"]["interrupted_by"] == "producer_gone"
    summary = json.loads((out / report_name).read_text())
    assert summary["complete"] is False
    assert "event producer went away" in summary["incomplete_reason"]


def test_a_killed_producer_ends_the_run_interrupted(workdir: Path) -> None:
    out = workdir / "out"
    agg, events_ep, _ = start_aggregate(workdir, out, "--producer-timeout", str(GRACE_S))
    producer: Child | None = None
    try:
        agg.wait_for("aggregating events from")
        producer = start_producer(events_ep)
        # Alive and quiet for longer than the grace: never taken for gone.
        assert still_running_after(agg, GRACE_S + 1.5), "\n".join(agg.err[-20:])
        assert producer.proc.poll() is None
        killed_at = time.monotonic()
        producer.proc.send_signal(signal.SIGKILL)
        rc = exit_code(agg, timeout=GRACE_S + SLACK_S)
        took = time.monotonic() - killed_at
    finally:
        if producer is not None:
            producer.stop(signal.SIGKILL)
        agg.stop()
    assert rc == 4, "\n".join(agg.err[-20:])
    assert took >= GRACE_S  # not before the grace period
    assert_interrupted_files(out)
    assert agg.find("did not come back") is not None
    assert not (out / ".bench-metrics.lock").exists()  # the directory is free again


def test_upstream_launch_mode_notices_a_killed_producer(workdir: Path) -> None:
    """``python -m exporter.upstream`` with upstream's --socket-dir flags: same ending."""
    out = workdir / "metrics"
    agg = Child(
        [
            sys.executable,
            "-m",
            "exporter.upstream",
            "--socket-dir",
            str(workdir),
            "--socket-name",
            "ev",
            "--metrics-socket",
            "snap",
            "--metrics-output-dir",
            str(out),
            "--producer-timeout",
            str(GRACE_S),
        ]
    )
    producer: Child | None = None
    try:
        agg.wait_for("aggregating events from")
        producer = start_producer(f"ipc://{workdir}/ev")
        producer.proc.send_signal(signal.SIGKILL)
        rc = exit_code(agg, timeout=GRACE_S + SLACK_S)
    finally:
        if producer is not None:
            producer.stop(signal.SIGKILL)
        agg.stop()
    assert rc == 4, "\n".join(agg.err[-20:])
    assert_interrupted_files(out, UPSTREAM_MODE_REPORT_NAME)  # upstream's layout


def test_producer_timeout_zero_waits_and_bad_values_are_refused(workdir: Path) -> None:
    out = workdir / "out"
    agg, events_ep, _ = start_aggregate(workdir, out, "--producer-timeout", "0")
    producer: Child | None = None
    try:
        agg.wait_for("aggregating events from")
        producer = start_producer(events_ep)
        producer.proc.send_signal(signal.SIGKILL)
        # 0 = never: the run waits (here 2 s; the timeout tests above end within that)
        assert still_running_after(agg, GRACE_S), "\n".join(agg.err[-20:])
    finally:
        if producer is not None:
            producer.stop(signal.SIGKILL)
        rc = agg.stop()
    assert rc == 143  # SIGTERM ends it, as before
    bad, _, _ = start_aggregate(workdir, workdir / "o2", "--producer-timeout", "-1", tag="b")
    assert exit_code(bad) == 2
    assert len(bad.err) == 1 and "--producer-timeout" in bad.err[0]


def test_a_producer_that_leaves_after_session_ended_is_not_gone(workdir: Path) -> None:
    """session.ended, then the producer closes at once while the aggregator still has a
    tokenization backlog to drain (longer than the grace): the run is COMPLETE, exit 0."""
    pytest.importorskip("transformers", reason="needs the extra bench-metrics[tokenizer]")
    from registry.aggregator import AggregatorService
    from registry.events import EventPublisher
    from registry.tokens import TokenCounter, load_tokenizer

    slow = "{%- for i in range(20000) %}{%- endfor %}" + CHAT_TEMPLATE  # ~1 ms per prompt
    counter = TokenCounter(load_tokenizer(make_word_tokenizer(workdir / "tok", chat_template=slow)))
    events_ep = f"ipc://{workdir}/ev.sock"
    n = 1500
    records = [ev(T.SESSION_STARTED, 0), ev(T.SESSION_START_PERFORMANCE_TRACKING, 1)]
    for i in range(n):
        data = PromptData.build(messages=[{"role": "user", "content": "why"}])
        records.append(ev(T.SAMPLE_ISSUED, 10 + i, f"p{i}", data=data))
    records.append(ev(T.SESSION_ENDED, 10**6))

    async def main() -> tuple[int, AggregatorService]:
        service = AggregatorService(
            events_endpoint=events_ep,
            snapshots_endpoint=f"ipc://{workdir}/snap.sock",
            output_dir=workdir / "out",
            handle_signals=False,
            tokenizer=counter,
            tokenizer_workers=0,  # everything waits for the drain
            producer_timeout_s=0.2,
        )
        task = asyncio.create_task(service.run())
        with EventPublisher(events_ep) as pub:
            assert await pub.wait_for_subscriber(30)
            pub.send_many(records)
        # the producer is gone now; the drain of 1,500 prompts takes well over 0.2 s
        return await asyncio.wait_for(task, 60), service

    rc, service = asyncio.run(main())
    assert rc == 0 and not service.producer_gone
    assert service.final_snapshot is not None
    assert service.final_snapshot.state is SessionState.COMPLETE
    assert service.final_snapshot.series["isl"].count == n
