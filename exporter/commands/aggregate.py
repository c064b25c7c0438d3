"""``bench-metrics aggregate``: run the aggregator service on a benchmark's event socket (SPEC §9).

Parses and checks the command line, builds an
:class:`~registry.aggregator.AggregatorService` and runs it on a fresh event
loop. Bad input (endpoints, interval, labels, an unusable output directory or
snapshot endpoint) ends with one line and exit code 2 before anything runs.
Everything that decides a number lives in :mod:`registry.aggregator`; this
module must never compute metrics itself.

:func:`build_service` is the seam for other commands and options (e.g. an
exporter's ``--listen``): it takes extra snapshot listeners and start/stop
hooks.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import secrets
from collections.abc import Sequence
from pathlib import Path

from exporter.errors import UsageError
from exporter.mirror import (
    add_exporter_arguments,
    exporter_options,
    mirror_service,
    parse_label_args,
)
from exporter.output_dir import lock_output_dir
from registry.aggregator import AggregatorService
from registry.aggregator.service import Hook, SnapshotListener
from registry.transport import check_endpoint

__all__ = ["add_parser", "build_service", "run"]

_EPILOG = """\
exit status:
  0         session.ended received; final_snapshot.json and result_summary.json written
  130, 143  interrupted by SIGINT / SIGTERM; INTERRUPTED final files written
  1         internal error; INTERRUPTED final files written (when the disk allows)
  2         bad command line, or --output-dir is in use by another run
  3         final_snapshot.json or result_summary.json could not be written (the log
            names which); the terminal frame was still sent
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "aggregate",
        help="run the aggregator on a benchmark's event socket",
        description=(
            "Connect to the benchmark's event endpoint, turn its events into metrics, "
            "publish live snapshots on the snapshot endpoint, and write "
            "final_snapshot.json and result_summary.json to the output directory "
            "when the session ends (or INTERRUPTED ones on SIGTERM/SIGINT)."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--events",
        required=True,
        metavar="ENDPOINT",
        help="the benchmark's event endpoint to connect to (ipc://PATH or tcp://HOST:PORT)",
    )
    p.add_argument(
        "--snapshots",
        required=True,
        metavar="ENDPOINT",
        help="endpoint to bind for the snapshot stream (ipc://PATH or tcp://HOST:PORT)",
    )
    p.add_argument(
        "--output-dir",
        required=True,
        type=Path,
        metavar="DIR",
        help="where final_snapshot.json and result_summary.json are written (created if needed)",
    )
    p.add_argument(
        "--streaming",
        action="store_true",
        help="streaming responses: also record ttft_ns, chunk_delta_ns and tpot_ns",
    )
    p.add_argument(
        "--interval",
        type=float,
        default=0.25,
        metavar="S",
        help="seconds between live snapshots (default: %(default)s)",
    )
    p.add_argument(
        "--run-id",
        default=None,
        metavar="ID",
        help="identifies the run in the report and the metrics (default: generated)",
    )
    p.add_argument(
        "--label",
        action="append",
        default=[],
        metavar="K=V",
        help="a run label for the report and the metrics (repeatable)",
    )
    # The Prometheus mirror is off unless --listen or --pushgateway is given.
    add_exporter_arguments(p, listen_default=None, linger_default=30.0, with_labels=False)
    p.set_defaults(run=run)


def _default_run_id() -> str:
    now = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"run-{now}-{secrets.token_hex(3)}"


def build_service(
    args: argparse.Namespace,
    *,
    listeners: Sequence[SnapshotListener] = (),
    on_start: Sequence[Hook] = (),
    on_stop: Sequence[Hook] = (),
) -> AggregatorService:
    """The service the arguments describe (:class:`UsageError` for bad input)."""
    for flag, endpoint in (("--events", args.events), ("--snapshots", args.snapshots)):
        try:
            check_endpoint(endpoint)
        except ValueError as exc:
            raise UsageError(f"{flag}: {exc}") from None
    if args.events == args.snapshots:
        raise UsageError("--events and --snapshots must be different endpoints")
    if not args.interval > 0:
        raise UsageError(f"--interval must be > 0 seconds, got {args.interval}")
    out: Path = args.output_dir
    if out.exists() and not out.is_dir():
        raise UsageError(f"--output-dir {out}: exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--output-dir {out}: cannot create: {exc.strerror or exc}") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise UsageError(f"--output-dir {out}: not writable")
    return AggregatorService(
        events_endpoint=args.events,
        snapshots_endpoint=args.snapshots,
        output_dir=out,
        streaming=args.streaming,
        interval_s=args.interval,
        run_id=args.run_id or _default_run_id(),
        labels=parse_label_args(args.label),
        listeners=listeners,
        on_start=on_start,
        on_stop=on_stop,
    )


def run(args: argparse.Namespace) -> int:
    options = exporter_options(args)
    service = build_service(args)
    # Before anything is written: one run per output directory (SPEC §7).
    lock = lock_output_dir(service.output_dir, service.run_id)
    try:
        mirror = mirror_service(service, options)
        try:
            return asyncio.run(service.run())
        except OSError as exc:
            # Raised before any event is read: the snapshot endpoint cannot be bound.
            raise UsageError(str(exc)) from None
        finally:
            if mirror is not None:
                mirror.close()
    finally:
        lock.release()
