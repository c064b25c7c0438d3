"""Push the final values of a run to a Prometheus Pushgateway, once (SPEC §8).

The push is a courtesy copy for setups where Prometheus cannot scrape the
exporter during its linger: it uses ``prometheus_client.push_to_gateway``
(PUT, text format) with the grouping key ``job`` + ``run_id``, so runs never
overwrite each other. Only the run's families are pushed, not the exporter's
health (an age frozen at push time would mislead).

A failed push is logged and reported as ``False``; it is never fatal and never
retried in a loop. This module only sends; it never changes a value.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, push_to_gateway
from prometheus_client.metrics_core import Metric

from exporter.prometheus.collector import SnapshotCollector

__all__ = ["DEFAULT_PUSH_JOB", "push_final", "push_final_async"]

logger = logging.getLogger(__name__)

DEFAULT_PUSH_JOB = "bench_metrics"


class _RunFamilies:
    """A collector view with the run's families only."""

    def __init__(self, collector: SnapshotCollector) -> None:
        self._collector = collector

    def collect(self) -> Iterator[Metric]:
        return self._collector.run_families()


def push_final(
    url: str, collector: SnapshotCollector, *, job: str = DEFAULT_PUSH_JOB, timeout: float = 10.0
) -> bool:
    """Push what ``collector`` serves now to ``url``; ``True`` when the gateway took it."""
    registry = CollectorRegistry()
    registry.register(_RunFamilies(collector))
    snap = collector.snapshot
    what = f"snapshot #{snap.counter} ({snap.state.value})" if snap else "no snapshot"
    try:
        push_to_gateway(
            url, job=job, registry=registry, grouping_key={"run_id": collector.run_id},
            timeout=timeout,
        )  # fmt: skip
    except Exception as exc:  # any failure (refused, 4xx/5xx, timeout) is logged, not fatal
        logger.error("could not push %s to the Pushgateway at %s: %s", what, url, exc)
        return False
    logger.info(
        "pushed %s to the Pushgateway at %s (job=%r, run_id=%r)", what, url, job, collector.run_id
    )
    return True


async def push_final_async(
    url: str, collector: SnapshotCollector, *, job: str = DEFAULT_PUSH_JOB, timeout: float = 10.0
) -> bool:
    """:func:`push_final` in a worker thread, so the event loop keeps serving scrapes."""
    return await asyncio.to_thread(push_final, url, collector, job=job, timeout=timeout)
