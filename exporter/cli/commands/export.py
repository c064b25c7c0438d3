"""``bench-metrics export``: the bridge from any snapshot stream to ``/metrics`` (SPEC §9).

Subscribes to a snapshot stream (ours or mlcommons/endpoints', SPEC §4) and
serves it for Prometheus. It keeps serving through publisher restarts, tells
how stale its view is (``<ns>_exporter_last_snapshot_age_seconds``,
``<ns>_exporter_up``, ``/healthz``), and after the final snapshot pushes it once
(``--pushgateway``) and serves its exact values for ``--linger`` seconds, then
exits 0. SIGTERM / Ctrl-C stop it at once: exit 143 / 130 before the final
snapshot, 0 once it was served (the linger cut short).

This command only mirrors; it never writes files and never changes a number.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from exporter.cli import args as cli_args
from exporter.cli.mirror_args import (
    DEFAULT_LISTEN,
    add_exporter_arguments,
    exporter_options,
    parse_label_args,
)
from exporter.cli.stop_signals import StopSignals
from exporter.prometheus.bridge import Bridge

if TYPE_CHECKING:
    from exporter.prometheus.mirror import PrometheusMirror

__all__ = ["add_parser", "run"]

logger = logging.getLogger(__name__)

#: ``export`` lingers long enough for a 15 s scrape interval to catch the final values.
DEFAULT_LINGER_S = 30.0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="serve any snapshot stream as Prometheus/OpenMetrics /metrics",
        description="Subscribe to a snapshot stream (bench-metrics or mlcommons/endpoints) "
        "and serve it at /metrics for Prometheus, with /healthz and a landing page. "
        "Survives publisher restarts; after the final snapshot it pushes once "
        "(--pushgateway) and keeps serving the final values for --linger seconds.",
    )
    parser.add_argument(
        "--connect",
        type=cli_args.connect_endpoint,
        required=True,
        metavar="ENDPOINT",
        help="the snapshot stream to follow, e.g. tcp://127.0.0.1:5557 or ipc:///tmp/m.sock",
    )
    parser.add_argument(
        "--run-id",
        type=cli_args.run_id,
        default=None,
        metavar="ID",
        help="run_id label on every sample (default: the run id the stream carries, "
        "else <UTC time>-<random>)",
    )
    add_exporter_arguments(parser, listen_default=DEFAULT_LISTEN, linger_default=DEFAULT_LINGER_S)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from exporter.prometheus.mirror import PrometheusMirror  # the HTTP server: only when running

    options = exporter_options(args)
    labels = parse_label_args(args.label)
    if args.run_id is not None:
        labels = {"run_id": args.run_id, **labels}
    # Without --run-id the stream names the run (slot 5 of our snapshots, SPEC §4);
    # a stream that does not (mlcommons/endpoints') gets a generated id.
    mirror = PrometheusMirror(options, labels=labels, run_id_from_stream=True)
    return asyncio.run(_serve(args.connect, mirror))


async def _serve(endpoint: str, mirror: PrometheusMirror) -> int:
    stop = StopSignals().install()
    try:
        await mirror.start()
        if mirror.collector.run_id_from_stream:
            logger.info(
                "scrape %s/metrics; run_id: the one the stream carries (else %r; --run-id pins it)",
                mirror.url,
                mirror.collector.run_id,
            )
        else:
            logger.info("scrape %s/metrics; run_id %r", mirror.url, mirror.collector.run_id)
        async with Bridge(endpoint, mirror.collector) as bridge:
            final = asyncio.create_task(bridge.wait_for_terminal())
            stopped = asyncio.create_task(stop.wait())
            await asyncio.wait({final, stopped}, return_when=asyncio.FIRST_COMPLETED)
            for task in (final, stopped):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if bridge.final is not None and not stop.is_set():
                await mirror.finish(stop.event)
    finally:
        await mirror.stop()
        stop.remove()
    if bridge.final is not None:
        return 0  # the run's final values were served: a signal only cut the linger short
    return stop.exit_code if stop.is_set() else 0
