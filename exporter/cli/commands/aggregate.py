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
import gc
import logging
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from exporter.cli import args as cli_args
from exporter.cli.errors import UsageError
from exporter.cli.mirror_args import add_exporter_arguments, exporter_options, parse_label_args
from exporter.cli.output_dir import clear_output_dir, lock_output_dir
from exporter.cli.verdict_args import (
    add_verdict_arguments,
    constraints_from_args,
    requirements_from_args,
)
from registry.aggregator.event_subscriber import DEFAULT_MAX_FRAME_BYTES
from registry.aggregator.producer_watch import DEFAULT_PRODUCER_TIMEOUT_S
from registry.core.percentiles import PercentileMethod
from registry.delivery.run_id import new_run_id
from registry.mlperf.early_stopping import EarlyStoppingSpec
from registry.report.summary import REPORT_NAME, UPSTREAM_MODE_REPORT_NAME
from registry.store.raw_store import DEFAULT_MEMORY_BYTES
from registry.tokens import TokenCounter, TokenizerUnavailable, load_tokenizer
from registry.tokens.pool import DEFAULT_JOB_TIMEOUT_S
from registry.transport import check_endpoint

if TYPE_CHECKING:
    from registry.aggregator.service import AggregatorService, Hook, SnapshotListener

__all__ = ["add_parser", "build_service", "run"]

log = logging.getLogger(__name__)

_EPILOG = """\
exit status:
  0         session.ended received; final_snapshot.json and result_summary.json written
            (state interrupted when the session sent session.interrupted first)
  130, 143  interrupted by SIGINT / SIGTERM; INTERRUPTED final files written
  1         internal error; INTERRUPTED final files written (when the disk allows)
  2         bad command line, or --output-dir is in use by another run
  3         final_snapshot.json or result_summary.json could not be written (the log
            names which); the terminal frame was still sent
  4         the event producer went away without session.ended (its connection closed
            and stayed closed for --producer-timeout S); INTERRUPTED final files written
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
        type=cli_args.connect_endpoint,
        metavar="ENDPOINT",
        help="the benchmark's event endpoint to connect to (ipc://PATH or tcp://HOST:PORT)",
    )
    p.add_argument(
        "--snapshots",
        type=cli_args.bind_endpoint,
        metavar="ENDPOINT",
        help="endpoint to bind for the snapshot stream (ipc://PATH or tcp://HOST:PORT)",
    )
    p.add_argument(
        "--output-dir",
        type=cli_args.output_dir,
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
        type=cli_args.seconds(high=3600.0),
        default=0.25,
        metavar="S",
        help="seconds between live snapshots (default: %(default)s)",
    )
    p.add_argument(
        "--percentile-method",
        choices=[m.value for m in PercentileMethod],
        default=PercentileMethod.NEAREST_RANK.value,
        help=(
            "how the final (exact) percentiles pick a value: nearest-rank (default), "
            "numpy-lower (mlcommons/endpoints' exact path) or loadgen (MLPerf LoadGen)"
        ),
    )
    p.add_argument(
        "--no-early-stopping",
        dest="early_stopping",
        action="store_false",
        help="leave out the MLPerf early-stopping estimates of the tail-latency series",
    )
    p.add_argument(
        "--hdr-sig-figs",
        type=cli_args.integer(1, 5),
        default=3,
        metavar="N",
        help="significant figures of the live HDR histograms, 1..5 (default: %(default)s)",
    )
    p.add_argument(
        "--n-histogram-buckets",
        type=cli_args.integer(1, 10_000),
        default=30,
        metavar="N",
        help="buckets of each series' display histogram (default: %(default)s)",
    )
    p.add_argument(
        "--max-frame-bytes",
        type=cli_args.integer(1024, 2**31 - 1),
        default=DEFAULT_MAX_FRAME_BYTES,
        metavar="N",
        help=(
            "larger event messages are counted as malformed and skipped undecoded "
            "(default: %(default)s = 64 MiB)"
        ),
    )
    p.add_argument(
        "--producer-timeout",
        type=cli_args.seconds(zero=True),
        default=DEFAULT_PRODUCER_TIMEOUT_S,
        metavar="S",
        help=(
            "when the event producer's connection closes without session.ended (it crashed "
            "or was killed) and stays closed for S seconds, end the run INTERRUPTED with its "
            "final files, exit 4; a connected producer that is merely quiet is never timed "
            "out (0 = wait forever; default: %(default)g)"
        ),
    )
    p.add_argument(
        "--ignore-sigint",
        action="store_true",
        help=(
            "ignore SIGINT (for a benchmark that starts the aggregator in its own process "
            "group, as mlcommons/endpoints does: its session.ended decides the end)"
        ),
    )
    p.add_argument(
        "--raw-memory-mb",
        type=float,
        default=DEFAULT_MEMORY_BYTES / 2**20,
        metavar="MB",
        help=(
            "raw values kept in memory, in MiB across all series; beyond it they go to the "
            "raw store in OUTPUT_DIR/raw (default: %(default)g)"
        ),
    )
    p.add_argument(
        "--no-raw-store",
        dest="raw_store",
        action="store_false",
        help="keep every raw value in memory and write no raw store (no exact merge later)",
    )
    p.add_argument(
        "--html",
        action="store_true",
        help="also write report.html beside the final files: one self-contained page of "
        "the run (as 'bench-metrics report --html')",
    )
    p.add_argument(
        "--no-samples",
        dest="samples",
        action="store_false",
        help="do not write samples.parquet (one row per tracked sample)",
    )
    p.add_argument(
        "--run-id",
        type=cli_args.run_id,
        default=None,
        metavar="ID",
        help="identifies the run in the report, the metrics and the snapshot stream "
        "(default: generated)",
    )
    add_tokenizer_arguments(p)
    add_verdict_arguments(p)
    # The Prometheus mirror is off unless --listen or --pushgateway is given.
    # --label: the run's labels, in the final files, on the stream and on every exported sample
    add_exporter_arguments(p, listen_default=None, linger_default=30.0)
    add_upstream_arguments(p)
    p.set_defaults(run=run)


def add_tokenizer_arguments(p: argparse.ArgumentParser) -> None:
    """``--tokenizer``, ``--tokenizer-workers``, ``--drain-timeout`` (also upstream's flags)."""
    g = p.add_argument_group(
        "token counts from the text",
        "Text prompts, chat prompts and streamed outputs are tokenized with a local Hugging "
        "Face tokenizer directory (offline; needs the extra bench-metrics[tokenizer]). "
        "Without --tokenizer, isl comes from token ids only and osl/tpot_ns only from the "
        "output_tokens extension, as upstream skips them.",
    )
    g.add_argument(
        "--tokenizer",
        type=cli_args.existing_dir,
        metavar="PATH",
        help="local tokenizer directory (tokenizer.json, tokenizer_config.json, ...)",
    )
    g.add_argument(
        "--tokenizer-workers",
        type=cli_args.integer(0, MAX_TOKENIZER_WORKERS),
        default=2,
        metavar="N",
        help=(
            "threads that tokenize while the run goes, 0..64; 0 = none, everything waits for "
            "the end of the run (default: %(default)s)"
        ),
    )
    g.add_argument(
        "--drain-timeout",
        type=cli_args.seconds(zero=True),
        default=0.0,
        metavar="S",
        help=(
            "seconds the backlog of tokenizations may take after session.ended; what is left "
            "stays in n_pending_tasks and the report is not complete (0 = no limit, the "
            "default)"
        ),
    )
    g.add_argument(
        "--tokenizer-job-timeout",
        type=cli_args.seconds(zero=True),
        default=DEFAULT_JOB_TIMEOUT_S,
        metavar="S",
        help=(
            "seconds one tokenization may take (a batch, then each of its inputs alone); an "
            "input slower than that (a chat template that loops) is skipped and counted in "
            "tokenization_errors, so it cannot hold back the final files (0 = no limit; "
            "default: %(default)g)"
        ),
    )


#: The most tokenizer threads one aggregator may start.
MAX_TOKENIZER_WORKERS = 64


def check_tokenizer_arguments(args: argparse.Namespace) -> None:
    """One-line :class:`UsageError` for a bad ``--tokenizer-workers`` / ``--drain-timeout``."""
    if not 0 <= args.tokenizer_workers <= MAX_TOKENIZER_WORKERS:
        raise UsageError(
            f"--tokenizer-workers must be in 0..{MAX_TOKENIZER_WORKERS}, "
            f"got {args.tokenizer_workers}"
        )
    if not (math.isfinite(args.tokenizer_job_timeout) and args.tokenizer_job_timeout >= 0):
        raise UsageError(
            "--tokenizer-job-timeout must be a finite number of seconds >= 0, "
            f"got {args.tokenizer_job_timeout}"
        )
    if not (math.isfinite(args.drain_timeout) and args.drain_timeout >= 0):
        raise UsageError(
            f"--drain-timeout must be a finite number of seconds >= 0, got {args.drain_timeout}"
        )


def load_token_counter(path: Path | None) -> TokenCounter | None:
    """The counter over ``--tokenizer PATH`` (``None`` without one); one-line UsageError."""
    if path is None:
        return None
    try:
        return TokenCounter(load_tokenizer(path), name=str(path.resolve()))
    except TokenizerUnavailable as exc:
        raise UsageError(f"--tokenizer {exc}") from None


def add_upstream_arguments(p: argparse.ArgumentParser) -> None:
    """mlcommons/endpoints' aggregator flags, so its launcher can start ours unchanged."""
    g = p.add_argument_group(
        "mlcommons/endpoints compatibility",
        "The command line of upstream's metrics aggregator. --socket-dir with --socket-name "
        "and --metrics-socket stand for --events ipc://DIR/NAME and --snapshots "
        "ipc://DIR/METRICS; upstream's defaults then apply (numpy-lower percentiles, early "
        "stopping only with --early-stopping, SIGINT ignored).",
    )
    g.add_argument(
        "--socket-dir",
        type=cli_args.existing_dir,
        metavar="DIR",
        help="directory of the IPC sockets",
    )
    g.add_argument("--socket-name", metavar="NAME", help="the event socket's name in DIR")
    g.add_argument("--metrics-socket", metavar="NAME", help="the snapshot socket's name in DIR")
    g.add_argument(
        "--metrics-output-dir", type=cli_args.output_dir, metavar="DIR", help="= --output-dir"
    )
    g.add_argument(
        "--publish-interval", type=cli_args.seconds(high=3600.0), metavar="S", help="= --interval"
    )
    g.add_argument(
        "--early-stopping",
        dest="upstream_early_stopping",
        action="store_true",
        help="compute early-stopping estimates (our default; upstream's is off)",
    )
    g.add_argument(
        "--es-confidence",
        type=cli_args.fraction(low_open=True, high_open=True),
        default=0.99,
        metavar="C",
        help="early-stopping confidence (default: %(default)s)",
    )
    g.add_argument(
        "--es-tolerance",
        type=cli_args.fraction(high_open=True),
        default=0.0,
        metavar="D",
        help="early-stopping tolerance (default: %(default)s)",
    )
    # Upstream's flag for one target percentile; its estimates follow the grid anyway.
    g.add_argument(
        "--es-percentile", type=cli_args.number(low=0.0, high=100.0), help=argparse.SUPPRESS
    )
    g.add_argument("--readiness-path", metavar="NAME", help="PUSH socket in DIR to say ready on")
    g.add_argument(
        "--readiness-id", type=cli_args.integer(), default=0, metavar="N", help="identity to send"
    )


def build_service(
    args: argparse.Namespace,
    *,
    listeners: Sequence[SnapshotListener] = (),
    on_start: Sequence[Hook] = (),
    on_stop: Sequence[Hook] = (),
) -> AggregatorService:
    """The service the arguments describe (:class:`UsageError` for bad input)."""
    apply_upstream_arguments(args)
    constraints = constraints_from_args(args)
    requirements = requirements_from_args(args)
    if not args.streaming:
        needs = [c.describe() for c in constraints if c.series in ("ttft_ns", "tpot_ns")]
        if needs:
            raise UsageError(
                f"constraint {needs[0]} needs --streaming (TTFT and TPOT exist only when streaming)"
            )
    for flag, value in (
        ("--events", args.events),
        ("--snapshots", args.snapshots),
        ("--output-dir", args.output_dir),
    ):
        if value is None:
            raise UsageError(f"{flag} is required (or mlcommons/endpoints' --socket-dir form)")
    for flag, endpoint in (("--events", args.events), ("--snapshots", args.snapshots)):
        try:
            check_endpoint(endpoint)
        except ValueError as exc:
            raise UsageError(f"{flag}: {exc}") from None
    if args.events == args.snapshots:
        raise UsageError("--events and --snapshots must be different endpoints")
    if not (math.isfinite(args.interval) and args.interval > 0):
        raise UsageError(f"--interval must be a finite number of seconds > 0, got {args.interval}")
    if not (math.isfinite(args.es_confidence) and 0 < args.es_confidence < 1):
        raise UsageError(f"--es-confidence must be in (0, 1), got {args.es_confidence}")
    if not (math.isfinite(args.es_tolerance) and 0 <= args.es_tolerance < 1):
        raise UsageError(f"--es-tolerance must be in [0, 1), got {args.es_tolerance}")
    if not (math.isfinite(args.producer_timeout) and args.producer_timeout >= 0):
        raise UsageError(
            f"--producer-timeout must be a finite number of seconds >= 0, "
            f"got {args.producer_timeout}"
        )
    if args.max_frame_bytes < 1024:
        raise UsageError(f"--max-frame-bytes must be >= 1024, got {args.max_frame_bytes}")
    if not 1 <= args.hdr_sig_figs <= 5:
        raise UsageError(f"--hdr-sig-figs must be in 1..5, got {args.hdr_sig_figs}")
    if not 1 <= args.n_histogram_buckets <= 10_000:
        raise UsageError(
            f"--n-histogram-buckets must be in 1..10000, got {args.n_histogram_buckets}"
        )
    if not (math.isfinite(args.raw_memory_mb) and 0 <= args.raw_memory_mb <= 2**40):
        raise UsageError(f"--raw-memory-mb must be a number of MiB >= 0, got {args.raw_memory_mb}")
    check_tokenizer_arguments(args)
    out: Path = args.output_dir
    if out.exists() and not out.is_dir():
        raise UsageError(f"--output-dir {out}: exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--output-dir {out}: cannot create: {exc.strerror or exc}") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise UsageError(f"--output-dir {out}: not writable")
    tokens = load_token_counter(args.tokenizer)
    # Here, not at the top: the service brings the sockets, the stores and pyarrow,
    # which parsing the command line (and every --help) must not wait for.
    from registry.aggregator.service import AggregatorService

    return AggregatorService(
        events_endpoint=args.events,
        snapshots_endpoint=args.snapshots,
        output_dir=out,
        streaming=args.streaming,
        interval_s=args.interval,
        run_id=args.run_id or new_run_id(),
        labels=parse_label_args(args.label),
        percentile_method=args.percentile_method,
        early_stopping=(
            EarlyStoppingSpec(confidence=args.es_confidence, tolerance=args.es_tolerance)
            if args.early_stopping
            else None
        ),
        sig_figs=args.hdr_sig_figs,
        n_histogram_buckets=args.n_histogram_buckets,
        constraints=constraints,
        ruleset=args.ruleset,
        requirements=requirements,
        ignore_sigint=args.ignore_sigint,
        readiness=args.readiness,
        ready_marker=args.ready_marker,
        raw_store=args.raw_store,
        raw_memory_bytes=int(args.raw_memory_mb * 2**20),
        samples=args.samples,
        report_name=args.report_name,
        tokenizer=tokens,
        tokenizer_workers=args.tokenizer_workers,
        drain_timeout_s=args.drain_timeout or None,
        tokenizer_job_timeout_s=args.tokenizer_job_timeout or None,
        producer_timeout_s=args.producer_timeout or None,
        max_frame_bytes=args.max_frame_bytes,
        listeners=listeners,
        on_start=on_start,
        on_stop=on_stop,
    )


def apply_upstream_arguments(args: argparse.Namespace) -> None:
    """Turn mlcommons/endpoints' flags into ours (in place), with upstream's defaults."""
    args.readiness = None
    args.ready_marker = False
    args.report_name = REPORT_NAME
    upstream = args.socket_dir is not None or args.socket_name or args.metrics_socket
    if args.metrics_output_dir is not None:
        if args.output_dir is not None:
            raise UsageError("give --output-dir or --metrics-output-dir, not both")
        args.output_dir = args.metrics_output_dir
        # upstream's <report dir>/metrics: its benchmark writes its own, differently
        # shaped result_summary.json under performance/ (README, compatibility)
        args.report_name = UPSTREAM_MODE_REPORT_NAME
    if args.publish_interval is not None:
        args.interval = args.publish_interval
    if not upstream:
        if args.readiness_path:
            raise UsageError("--readiness-path needs --socket-dir")
        return
    if args.socket_dir is None or not args.socket_name or not args.metrics_socket:
        raise UsageError("--socket-dir, --socket-name and --metrics-socket go together")
    if args.events is not None or args.snapshots is not None:
        raise UsageError("give --events/--snapshots or upstream's --socket-dir form, not both")
    if not args.socket_dir.is_dir():
        raise UsageError(f"--socket-dir {args.socket_dir}: not a directory")
    args.events = f"ipc://{args.socket_dir}/{args.socket_name}"
    args.snapshots = f"ipc://{args.socket_dir}/{args.metrics_socket}"
    # Upstream's defaults, so the same command gives the same numbers as upstream's.
    if args.percentile_method == PercentileMethod.NEAREST_RANK.value:
        args.percentile_method = PercentileMethod.NUMPY_LOWER.value
    args.early_stopping = args.early_stopping and args.upstream_early_stopping
    args.ignore_sigint = True
    args.ready_marker = True
    if args.readiness_path:
        args.readiness = (f"ipc://{args.socket_dir}/{args.readiness_path}", args.readiness_id)


def _write_page(output_dir: Path) -> None:
    """``report.html`` beside the final files (while the directory is still ours).

    A page that cannot be made is logged, never fatal: the final files are the result.
    """
    from exporter.html.report_page import HTML_NAME, write_run_page
    from exporter.views.report_view import ReportFileError

    try:
        (output_dir / HTML_NAME).unlink(missing_ok=True)  # an earlier run's page must not stay
        log.info("page written: %s", write_run_page(output_dir))
    except (ReportFileError, OSError) as exc:
        log.error("no %s: %s", HTML_NAME, exc)


def run(args: argparse.Namespace) -> int:
    from exporter.prometheus.mirror import mirror_service  # the HTTP server: only when running

    options = exporter_options(args)
    service = build_service(args)
    # Before anything is written: one run per output directory (SPEC §7).
    lock = lock_output_dir(service.output_dir, service.run_id)
    try:
        clear_output_dir(service.output_dir, lock)
        mirror = mirror_service(service, options)
        # Everything imported and loaded so far (transformers alone is ~50k objects)
        # lives as long as the process: keep it out of the collector, so that a full
        # collection during the run (it holds the GIL, so stalls the loop) stays short.
        gc.collect()
        gc.freeze()
        try:
            rc = asyncio.run(service.run())
        except OSError as exc:
            # Raised before any event is read: the snapshot endpoint cannot be bound.
            raise UsageError(str(exc)) from None
        finally:
            if mirror is not None:
                mirror.close()
        if args.html:
            _write_page(service.output_dir)
    finally:
        lock.release()
    if service.tokenizer_stuck:
        # The final files are on disk; finalising the interpreter with a thread inside
        # the tokenizer's native code would abort the process instead of exiting rc.
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(rc)
    return rc
