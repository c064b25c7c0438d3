"""A real ``bench-metrics aggregate`` process and a benchmark session driven against it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from registry import MetricsSnapshot, SnapshotSubscriber
from registry.events import EventPublisher, EventType
from tests.support.aggregator_scenario import SCENARIO, ev
from tests.support.cli_process import bench_metrics
from tests.support.exporter_support import Child
from tests.support.helpers import async_wait_until

WAIT_S = 20.0
T = EventType

# The shared scenario without the sample it leaves in flight: a complete run.
COMPLETE_SESSION = [e for e in SCENARIO if e.sample_uuid != "F"]


def endpoints(workdir: Path, tag: str = "") -> tuple[str, str]:
    return f"ipc://{workdir}/ev{tag}.sock", f"ipc://{workdir}/snap{tag}.sock"


def start_aggregate(
    workdir: Path, out: Path, *extra: str, run_id: str = "exit-test", tag: str = ""
) -> tuple[Child, str, str]:
    """``aggregate`` on fresh ipc endpoints in ``workdir``, writing into ``out``."""
    events_ep, snapshots_ep = endpoints(workdir, tag)
    argv = [
        *bench_metrics(),
        "aggregate",
        "--events",
        events_ep,
        "--snapshots",
        snapshots_ep,
        "--output-dir",
        str(out),
        "--interval",
        "0.05",
        "--streaming",
        "--run-id",
        run_id,
        *extra,
    ]
    return Child(argv), events_ep, snapshots_ep


def exit_code(child: Child, timeout: float = WAIT_S) -> int:
    rc = child.proc.wait(timeout)
    for t in child._threads:
        t.join(5)
    return rc


async def drive_session(
    events_ep: str,
    snapshots_ep: str,
    *,
    before_end: Callable[[], None] | None = None,
) -> MetricsSnapshot | None:
    """Send a complete session; ``before_end`` runs once a live snapshot shows the
    aggregator caught up and before ``session.ended`` is sent. Returns the terminal frame."""
    body = [e for e in COMPLETE_SESSION if e.event_type is not T.SESSION_ENDED]
    async with SnapshotSubscriber(snapshots_ep) as sub:
        with EventPublisher(events_ep) as pub:
            assert await pub.wait_for_subscriber(WAIT_S), "the aggregator never subscribed"
            pub.send_many(body)

            def caught_up() -> bool:
                s = sub.latest
                return s is not None and s.counters.get("total_samples_issued") == 7

            assert await async_wait_until(caught_up, WAIT_S), "the aggregator never caught up"
            if before_end is not None:
                before_end()
            pub.send(ev(T.SESSION_ENDED, 10**7))
            return await sub.wait_for_terminal(WAIT_S)


def run_session(events_ep: str, snapshots_ep: str, **kw: object) -> MetricsSnapshot | None:
    return asyncio.run(drive_session(events_ep, snapshots_ep, **kw))  # type: ignore[arg-type]
