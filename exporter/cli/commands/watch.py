"""``bench-metrics watch --connect ENDPOINT``: the live view of any snapshot stream (SPEC §9).

Subscribes to the stream, shows it (rich live view, or plain lines with
``--no-tui`` or when stdout is not a terminal) and ends when the terminal
snapshot arrives (exit 0), on Ctrl-C/SIGTERM (exit 130/143), or after
``--timeout`` seconds without one (exit 1). It only reads the stream: it
never sends anything to the producer and never writes a file.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys

from rich.console import Console

from exporter.cli import args as cli_args
from exporter.cli.stop_signals import StopSignals
from exporter.views.live_display import show_live
from exporter.views.live_view import LiveView, ViewContext
from registry.delivery.subscriber import SnapshotSubscriber

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "watch",
        help="live terminal view of a snapshot stream",
        description="Attach to a snapshot stream (ours or mlcommons/endpoints') and show it "
        "live: state, progress, rates and latency quantiles. Ends when the terminal "
        "snapshot arrives or on Ctrl-C.",
    )
    parser.add_argument(
        "--connect",
        type=cli_args.connect_endpoint,
        required=True,
        metavar="ENDPOINT",
        help="the snapshot stream to watch, e.g. tcp://127.0.0.1:5558 or ipc:///tmp/snapshots",
    )
    parser.add_argument(
        "--no-tui",
        action="store_true",
        help="print plain progress lines instead of the live view",
    )
    parser.add_argument(
        "--refresh",
        type=cli_args.seconds(high=60.0),
        default=0.25,
        metavar="S",
        help="seconds between redraws (default: %(default)s)",
    )
    parser.add_argument(
        "--timeout",
        type=cli_args.seconds(),
        default=None,
        metavar="S",
        help="give up (exit 1) when no terminal snapshot arrived after S seconds "
        "(default: wait until Ctrl-C)",
    )
    parser.set_defaults(run=run)


async def _watch(args: argparse.Namespace) -> int:
    stop = StopSignals().install()
    finished = asyncio.Event()
    console = Console(markup=False)  # a "[" in a run id or name from the stream is text
    tui = not args.no_tui and console.is_terminal
    view = LiveView(ViewContext(title="bench-metrics watch", source=args.connect))
    try:
        async with SnapshotSubscriber(args.connect) as sub:
            display = asyncio.create_task(
                show_live(
                    sub, view, finished=finished, tui=tui, console=console, refresh_s=args.refresh
                )
            )
            terminal = asyncio.create_task(sub.wait_for_terminal(args.timeout))
            stopped = asyncio.create_task(stop.wait())
            await asyncio.wait({terminal, stopped, display}, return_when=asyncio.FIRST_COMPLETED)
            finished.set()
            for task in (terminal, stopped):
                task.cancel()
            await display
            with contextlib.suppress(asyncio.CancelledError):
                await terminal
    finally:
        stop.remove()
    if sub.terminal is not None:
        return 0  # the run's end was seen: a signal at the same moment changes nothing
    if stop.is_set():
        return stop.exit_code
    print(
        f"bench-metrics watch: no terminal snapshot from {args.connect} within {args.timeout:g} s",
        file=sys.stderr,
    )
    return 1


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_watch(args))
