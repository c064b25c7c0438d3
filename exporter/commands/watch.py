"""``bench-metrics watch --connect ENDPOINT``: the live view of any snapshot stream (SPEC §9).

Subscribes to the stream, shows it (rich live view, or plain lines with
``--no-tui`` or when stdout is not a terminal) and ends when the terminal
snapshot arrives (exit 0), on Ctrl-C/SIGTERM (exit 130), or after
``--timeout`` seconds without one (exit 1). It only reads the stream: it
never sends anything to the producer and never writes a file.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

from rich.console import Console

from exporter.errors import UsageError
from exporter.live_display import show_live
from exporter.live_view import LiveView, ViewContext
from registry.subscriber import SnapshotSubscriber
from registry.transport.endpoint import check_endpoint

__all__ = ["add_parser", "install_stop_signals", "run"]


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
        type=float,
        default=0.25,
        metavar="S",
        help="seconds between redraws (default: %(default)s)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="S",
        help="give up (exit 1) when no terminal snapshot arrived after S seconds "
        "(default: wait until Ctrl-C)",
    )
    parser.set_defaults(run=run)


def install_stop_signals(stop: asyncio.Event) -> None:
    """Ctrl-C and SIGTERM set ``stop`` instead of raising in the middle of a redraw."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


async def _watch(args: argparse.Namespace) -> int:
    stop = asyncio.Event()
    finished = asyncio.Event()
    install_stop_signals(stop)
    console = Console()
    tui = not args.no_tui and console.is_terminal
    view = LiveView(ViewContext(title="bench-metrics watch", source=args.connect))
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
    if stop.is_set():
        return 130
    if sub.terminal is None:
        print(
            f"bench-metrics watch: no terminal snapshot from {args.connect} "
            f"within {args.timeout:g} s",
            file=sys.stderr,
        )
        return 1
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        check_endpoint(args.connect)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.refresh <= 0:
        raise UsageError(f"--refresh must be > 0, got {args.refresh}")
    if args.timeout is not None and args.timeout <= 0:
        raise UsageError(f"--timeout must be > 0, got {args.timeout}")
    return asyncio.run(_watch(args))
