"""``bench-metrics export``: the bridge from any snapshot stream to ``/metrics`` (SPEC §9).

Subscribes to a snapshot stream (ours or mlcommons/endpoints', SPEC §4) and
serves it for Prometheus. It keeps serving through publisher restarts, tells
how stale its view is (``<ns>_exporter_last_snapshot_age_seconds``,
``<ns>_exporter_up``, ``/healthz``), and after the final snapshot pushes it once
(``--pushgateway``) and serves its exact values for ``--linger`` seconds, then
exits 0. SIGTERM / Ctrl-C stop it at once (exit 0 / 130).

This command only mirrors; it never writes files and never changes a number.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal

from exporter.bridge import Bridge
from exporter.errors import UsageError
from exporter.mirror import (
    DEFAULT_LISTEN,
    PrometheusMirror,
    add_exporter_arguments,
    exporter_options,
    parse_label_args,
)
from registry.transport import check_endpoint

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
        required=True,
        metavar="ENDPOINT",
        help="the snapshot stream to follow, e.g. tcp://127.0.0.1:5557 or ipc:///tmp/m.sock",
    )
    parser.add_argument(
        "--run-id",
        default=None,
        metavar="ID",
        help="run_id label on every sample (default: <UTC time>-<random>)",
    )
    add_exporter_arguments(parser, listen_default=DEFAULT_LISTEN, linger_default=DEFAULT_LINGER_S)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        check_endpoint(args.connect)
    except ValueError as exc:
        raise UsageError(f"--connect: {exc}") from None
    options = exporter_options(args)
    labels = parse_label_args(args.label)
    if "run_id" in labels:
        raise UsageError("give the run id with --run-id, not --label run_id=")
    if args.run_id is not None:
        labels = {"run_id": args.run_id, **labels}
    mirror = PrometheusMirror(options, labels=labels)
    return asyncio.run(_serve(args.connect, mirror))


async def _serve(endpoint: str, mirror: PrometheusMirror) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals: list[int] = []

    def on_signal(sig: int) -> None:
        signals.append(sig)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    await mirror.start()
    logger.info("run_id %r; scrape %s/metrics", mirror.collector.run_id, mirror.url)
    try:
        async with Bridge(endpoint, mirror.collector) as bridge:
            final = asyncio.create_task(bridge.wait_for_terminal())
            stopped = asyncio.create_task(stop.wait())
            await asyncio.wait({final, stopped}, return_when=asyncio.FIRST_COMPLETED)
            for task in (final, stopped):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if bridge.final is not None and not stop.is_set():
                await mirror.finish(stop)
    finally:
        await mirror.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    if signals and signals[0] == signal.SIGINT:
        return 130
    return 0
