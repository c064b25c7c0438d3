"""Issue 24 item 10: an aggregator whose producer is gone ends the run INTERRUPTED with its
final files after ``--producer-timeout``, and never because a live producer is quiet.

Real processes throughout: ``bench-metrics aggregate`` (and upstream's launch mode,
``python -m exporter.upstream``) against a producer child killed with SIGKILL."""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path

from aggregate_process import exit_code, start_aggregate

from tests.exporter_support import TESTS_DIR, Child
from tests.helpers import wait_until

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


def assert_interrupted_files(out: Path) -> None:
    snap = json.loads((out / "final_snapshot.json").read_text())
    assert snap["state"] == "interrupted"
    counters = {m["name"]: m["value"] for m in snap["metrics"] if m["type"] == "counter"}
    assert counters["total_samples_issued"] == 8  # everything it sent before it died
    assert snap["run"]["interrupted_by"] == "producer_gone"
    summary = json.loads((out / "result_summary.json").read_text())
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
    assert_interrupted_files(out)


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
