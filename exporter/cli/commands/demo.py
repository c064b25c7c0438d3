"""``bench-metrics demo``: a complete simulated benchmark run on this machine (SPEC §9).

The demo plays the benchmark: it binds an event publisher, starts the
aggregator as its own process (``python -m exporter.cli.main aggregate …`` on
ipc:// endpoints in a temporary directory), drives it with the synthetic
source (:mod:`registry.events.synthetic`), shows the snapshot stream live and
prints the final report with a line comparing what the source sent to what
the aggregator counted.

Ctrl-C (or SIGTERM) stops the source and sends SIGINT to the aggregator so it
writes INTERRUPTED files; the demo then prints what it got and exits 130 (143).
If the demo itself dies without a chance to do that (SIGKILL, OOM), the
aggregator gets SIGTERM from :mod:`exporter.cli.parent_watch` and writes the same
INTERRUPTED files. The demo never computes a metric itself and never writes
the final files: the aggregator does.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from exporter.cli import args as cli_args
from exporter.cli.commands.aggregate import add_tokenizer_arguments, check_tokenizer_arguments
from exporter.cli.errors import UsageError
from exporter.cli.mirror_args import (
    DEFAULT_LISTEN,
    add_exporter_arguments,
    check_listen_free,
    exporter_options,
)
from exporter.cli.output_dir import clear_output_dir, lock_output_dir
from exporter.cli.parent_watch import child_env
from exporter.cli.stop_signals import StopSignals
from exporter.cli.verdict_args import (
    add_verdict_arguments,
    constraints_from_args,
    requirements_from_args,
)
from exporter.views.live_display import show_live
from exporter.views.live_view import LiveView, ViewContext
from exporter.views.report_view import (
    ReportDocument,
    ReportFileError,
    load_report_file,
    render_report,
)
from registry.core.percentiles import PercentileMethod
from registry.delivery.final_source import FinalSnapshotUnavailable, load_final_snapshot
from registry.delivery.run_lock import RunLock
from registry.delivery.safe_open import open_for_writing
from registry.delivery.subscriber import SnapshotSubscriber
from registry.events.publisher import EventPublisher
from registry.events.synthetic import SourceStats, SyntheticLoad, drive
from registry.report.summary import build_report
from registry.tokens.loader import (
    EXTRA_HINT,
    TokenizerUnavailable,
    check_tokenizer_dir,
    transformers_available,
)

__all__ = [
    "AGGREGATOR_PASSTHROUGH",
    "DEFAULT_OUTPUT_DIR",
    "FINAL_FILES",
    "PROFILES",
    "add_parser",
    "aggregator_command",
    "compare_counts",
    "load_from_args",
    "offered_line",
    "run",
]

log = logging.getLogger(__name__)

DEFAULT_OUTPUT_DIR = "bench-metrics-out"
#: The highest ``--qps`` the synthetic source takes (far above what one machine sends).
MAX_QPS = 1_000_000.0
MAX_SECONDS = cli_args.MAX_SECONDS
FINAL_FILES = ("final_snapshot.json", "result_summary.json")

#: Options of ``demo`` handed unchanged to the aggregator process, as
#: ``(argparse dest, aggregate's flag)``: a value of ``None``/``False`` is left
#: out, ``True`` passes the bare flag, anything else ``flag value``. Add an
#: option to :func:`add_parser` and here to pass it through.
AGGREGATOR_PASSTHROUGH: list[tuple[str, str]] = [
    ("interval", "--interval"),
    ("run_id", "--run-id"),
    ("label", "--label"),
    ("percentile_method", "--percentile-method"),
    ("no_early_stopping", "--no-early-stopping"),
    # the Prometheus mirror runs inside the aggregator process
    ("listen", "--listen"),
    ("web_config", "--web-config"),
    ("linger", "--linger"),
    ("pushgateway", "--pushgateway"),
    ("push_job", "--push-job"),
    ("namespace", "--namespace"),
    ("stale_after", "--stale-after"),
    # token counts from the text (the source then sends text instead of counts)
    ("tokenizer", "--tokenizer"),
    ("tokenizer_workers", "--tokenizer-workers"),
    ("drain_timeout", "--drain-timeout"),
    ("tokenizer_job_timeout", "--tokenizer-job-timeout"),
    ("buckets", "--buckets"),
    # the verdict is decided in the aggregator (SPEC §10)
    ("ruleset", "--ruleset"),
    ("slo", "--slo"),
    ("scenario", "--scenario"),
    ("min_queries", "--min-queries"),
    ("requirements", "--requirements"),
]

#: ``--profile``: named traffic shapes; ``nominal`` passes every ruleset of
#: :mod:`registry.mlperf.rulesets`, ``slow`` fails each one's TTFT limit (its p99 is
#: about 8 s) and the tighter TPOT limits too.
PROFILES: dict[str, dict[str, float]] = {
    "nominal": {},
    "slow": {"ttft_median_ms": 2500.0, "tpot_median_ms": 25.0},
}

# How long the aggregator may take to subscribe to the events after it starts.
_STARTUP_TIMEOUT_S = 20.0
# How long after the source's last event (or a SIGINT) the aggregator may take
# to drain its backlog and publish the terminal snapshot, beyond the run's length.
_DRAIN_GRACE_S = 30.0
# How long the aggregator may take to exit after its terminal snapshot, before SIGTERM/SIGKILL.
_EXIT_TIMEOUT_S = 15.0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run a simulated LLM benchmark through the aggregator, live view and report",
        description="A complete simulated benchmark on this machine: synthetic streaming LLM "
        "traffic (Poisson arrivals, lognormal latencies) -> aggregator process -> snapshot "
        "stream -> live terminal view; the final files land in --output-dir and the report "
        "is printed at the end. Ctrl-C stops the run and keeps an INTERRUPTED report.",
    )
    load = parser.add_argument_group("synthetic load")
    load.add_argument(
        "--duration",
        type=cli_args.seconds(),
        default=25.0,
        metavar="S",
        help="seconds of load (default: 25)",
    )
    load.add_argument(
        "--qps",
        type=cli_args.number(low=0.0, low_open=True, high=MAX_QPS),
        default=200.0,
        metavar="N",
        help="offered load: the mean of the Poisson arrivals, requests/s (default: 200)",
    )
    load.add_argument(
        "--seed",
        type=cli_args.integer(0, 2**63 - 1),
        default=0,
        metavar="N",
        help="random seed: same seed, same run",
    )
    load.add_argument(
        "--error-rate",
        type=cli_args.fraction(),
        default=0.01,
        metavar="F",
        help="fraction of requests that fail (default: %(default)s)",
    )
    load.add_argument(
        "--tokens-per-chunk",
        type=cli_args.integer(1, 1024),
        default=6,
        metavar="N",
        help="output tokens per streamed chunk event (default: %(default)s)",
    )
    load.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        default="nominal",
        help="traffic shape: nominal (TTFT median 40 ms, TPOT 4 ms: passes the MLPerf "
        "rulesets) or slow (TTFT median 2.5 s, TPOT 25 ms: fails them); default: nominal",
    )
    load.add_argument(
        "--ttft-median",
        type=cli_args.number(low=0.0, low_open=True, high=MAX_SECONDS * 1000, unit="ms"),
        default=None,
        metavar="MS",
        help="median time to first token in ms (overrides the profile's)",
    )
    load.add_argument(
        "--tpot-median",
        type=cli_args.number(low=0.0, low_open=True, high=MAX_SECONDS * 1000, unit="ms"),
        default=None,
        metavar="MS",
        help="median time per output token in ms (overrides the profile's)",
    )
    load.add_argument(
        "--no-streaming",
        dest="streaming",
        action="store_false",
        help="non-streaming responses (no TTFT, TPOT or chunk gaps)",
    )
    parser.add_argument(
        "--output-dir",
        type=cli_args.output_dir,
        default=DEFAULT_OUTPUT_DIR,
        metavar="DIR",
        help="where the aggregator writes final_snapshot.json and result_summary.json "
        "(default: ./%(default)s)",
    )
    parser.add_argument(
        "--no-tui", action="store_true", help="plain progress lines instead of the live view"
    )
    parser.add_argument(
        "--html",
        action="store_true",
        help="also write report.html in --output-dir: one self-contained page of the run "
        "(as 'bench-metrics report --html')",
    )
    parser.add_argument(
        "--interval",
        type=cli_args.seconds(high=3600.0),
        default=0.5,
        metavar="S",
        help="aggregator snapshot interval in seconds (default: %(default)s)",
    )
    parser.add_argument(
        "--run-id",
        type=cli_args.run_id,
        default=None,
        metavar="ID",
        help="run id (default: demo-<date>-<time>)",
    )
    parser.add_argument(
        "--percentile-method",
        choices=[m.value for m in PercentileMethod],
        default=None,
        help="the aggregator's exact percentile method (default: nearest-rank)",
    )
    parser.add_argument(
        "--no-early-stopping",
        action="store_true",
        help="leave out the MLPerf early-stopping estimates",
    )
    add_tokenizer_arguments(parser)
    add_verdict_arguments(parser)
    # The demo exits after printing its report: no linger unless asked for.
    add_exporter_arguments(parser, listen_default=DEFAULT_LISTEN, linger_default=0.0)
    parser.set_defaults(run=run)


def load_from_args(args: argparse.Namespace) -> SyntheticLoad:
    """The synthetic load the options describe (``UsageError`` saying which one is bad)."""
    shape = dict(PROFILES[getattr(args, "profile", "nominal") or "nominal"])
    for dest, key in (("ttft_median", "ttft_median_ms"), ("tpot_median", "tpot_median_ms")):
        value = getattr(args, dest, None)
        if value is not None:
            shape[key] = value
    try:
        return SyntheticLoad(
            qps=args.qps,
            duration_s=args.duration,
            seed=args.seed,
            streaming=args.streaming,
            error_rate=args.error_rate,
            tokens_per_chunk=args.tokens_per_chunk,
            text=getattr(args, "tokenizer", None) is not None,
            **shape,  # type: ignore[arg-type]
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def aggregator_command(
    args: argparse.Namespace, *, events: str, snapshots: str, output_dir: Path
) -> list[str]:
    """The aggregator process's command line: the one place where its flags are built."""
    cmd = [
        sys.executable,
        "-m",
        "exporter.cli.main",
        "--log-level",
        getattr(args, "log_level", "INFO"),
        "aggregate",
        "--events",
        events,
        "--snapshots",
        snapshots,
        "--output-dir",
        str(output_dir),
    ]
    if getattr(args, "streaming", True):
        cmd.append("--streaming")
    for dest, flag in AGGREGATOR_PASSTHROUGH:
        value = getattr(args, dest, None)
        if value is None or value is False:
            continue
        if isinstance(value, list):  # a repeatable option: the flag once per item
            for item in value:
                cmd += [flag, str(item)]
            continue
        cmd += (
            [flag]
            if value is True
            else [flag, f"{value:g}" if isinstance(value, float) else str(value)]
        )
    if getattr(args, "min_duration", None) is not None:  # parsed to ns: given back in seconds
        cmd += ["--min-duration", f"{args.min_duration / 1e9!r}s"]
    return cmd


@dataclass(frozen=True)
class CountCheck:
    """The source's counts against the aggregator's (all samples, not only tracked)."""

    matches: bool
    line: str


def compare_counts(stats: SourceStats, report: Mapping[str, Any]) -> CountCheck:
    """One line comparing sent and reported counts; ``matches`` when all four agree."""
    samples = report.get("samples") or {}
    got = samples.get("all") if isinstance(samples, dict) else None
    got = got if isinstance(got, dict) else {}
    pairs = [
        ("issued", stats.issued, got.get("issued")),
        ("completed", stats.completed, got.get("completed")),
        ("failed", stats.failed, got.get("failed")),
        ("in flight", stats.in_flight, got.get("in_flight")),
    ]
    matches = all(sent == reported for _, sent, reported in pairs)
    shown = " · ".join(
        f"{name} {sent:,}/{reported:,}" if isinstance(reported, int) else f"{name} {sent:,}/-"
        for name, sent, reported in pairs
    )
    verdict = "match" if matches else "DIFFER"
    line = f"Counts {verdict} (sent/reported): {shown} · {stats.events_sent:,} events sent"
    return CountCheck(matches, line)


def offered_line(load: SyntheticLoad, stats: SourceStats, report: Mapping[str, Any]) -> str:
    """The plan against what came of it: why the report's QPS is not the ``--qps`` asked for."""
    issued_rate = stats.issued / load.duration_s
    line = (
        f"Offered {load.qps:g}/s for {load.duration_s:g} s (Poisson arrivals): "
        f"{stats.issued:,} issued = {issued_rate:,.1f}/s"
    )
    qps, duration = report.get("qps"), report.get("duration_s")
    if isinstance(qps, int | float) and isinstance(duration, int | float) and duration > 0:
        tail = duration - load.duration_s
        line += f"; the report's QPS {qps:,.1f} is over the tracked {duration:,.2f} s" + (
            f" ({tail:,.2f} s of it after the last issue)" if tail > 0 else ""
        )
    return line


class _Aggregator:
    """The aggregator child process: started in its own session, so the terminal's
    Ctrl-C reaches only the demo, which decides when and how to stop it; armed to
    get SIGTERM if the demo dies first."""

    def __init__(self, cmd: list[str], log_path: Path | None, lock: RunLock) -> None:
        self.cmd = cmd
        self.log_path = log_path
        self.lock = lock
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        stderr: Any = None
        if self.log_path is not None:
            # never through a link planted at the log's name
            stderr = os.fdopen(open_for_writing(self.log_path), "wb")
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *self.cmd,
                stdin=subprocess.DEVNULL,
                stdout=stderr if stderr is not None else None,
                stderr=stderr,
                start_new_session=True,
                # Its own session escapes a group kill: a parent-death SIGTERM ends it instead.
                # It writes the files under the demo's output-directory lock.
                pass_fds=(self.lock.fileno(),),
                env={**child_env(), **self.lock.child_env()},
            )
        finally:
            if stderr is not None:
                stderr.close()

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode if self.proc is not None else None

    async def wait(self) -> int:
        assert self.proc is not None
        return await self.proc.wait()

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(sig)

    async def stop(self, timeout: float) -> int | None:
        """Wait up to ``timeout`` for it to exit, then SIGTERM, then SIGKILL."""
        if self.proc is None:
            return None
        for sig in (None, signal.SIGTERM, signal.SIGKILL):
            if sig is not None:
                self.signal(sig)
            with contextlib.suppress(TimeoutError):
                return await asyncio.wait_for(self.proc.wait(), timeout)
            timeout = 5.0
        return self.proc.returncode

    def log_tail(self, lines: int = 15) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


async def _first(*aws: Any) -> None:
    """Wait until the first of ``aws`` finishes; cancel the rest."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t


async def _final_document(output_dir: Path, sub: SnapshotSubscriber) -> ReportDocument | None:
    """The Report to print: the aggregator's result_summary.json, else one built from
    the final snapshot found in SPEC §7's order (file, terminal frame, latest live)."""
    summary = output_dir / "result_summary.json"
    if summary.exists():
        try:
            return load_report_file(summary)
        except ReportFileError as exc:
            log.error("%s", exc)
    final = output_dir / "final_snapshot.json"
    try:
        found = await load_final_snapshot(final, subscriber=sub, timeout=0.5)
    except FinalSnapshotUnavailable as exc:
        log.error("no final snapshot: %s", exc)
        return None
    report = build_report(found.snapshot, source=found.source, reason=found.reason, run=found.run)
    if found.source == "file":
        return ReportDocument(path=final, kind="snapshot", report=report)
    return ReportDocument(path=Path("snapshot stream"), kind="summary", report=report)


def _prepare_output_dir(path: str, run_id: str) -> tuple[Path, RunLock]:
    output_dir = Path(path).resolve()
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot use --output-dir {output_dir}: {exc.strerror or exc}") from None
    lock = lock_output_dir(output_dir, run_id)  # before anything in it is touched
    # An earlier run's files (raw store included: a merge reads it) would otherwise pass
    # for this one's.
    clear_output_dir(output_dir, lock)
    return output_dir, lock


async def _wait_for_file(path: Path, timeout: float) -> bool:
    """Poll for ``path`` until ``timeout``: the aggregator writes the summary just
    after its terminal frame, so the file may lag the frame by a moment."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.02)
    return True


async def _started(
    publisher: EventPublisher, aggregator: _Aggregator, stop: asyncio.Event, problems: list[str]
) -> bool:
    """Wait for the aggregator's subscription to the events (or its death, or Ctrl-C)."""
    subscribed = asyncio.ensure_future(publisher.wait_for_subscriber(_STARTUP_TIMEOUT_S))
    await _first(subscribed, aggregator.wait(), stop.wait())
    if stop.is_set():
        problems.append("interrupted before the run started")
        return False
    if subscribed.done() and not subscribed.cancelled() and subscribed.result():
        return True
    rc = aggregator.returncode
    problems.append(
        f"the aggregator exited with code {rc} before subscribing"
        if rc is not None
        else f"the aggregator did not subscribe within {_STARTUP_TIMEOUT_S:g} s"
    )
    return False


async def _linger(
    args: argparse.Namespace, aggregator: _Aggregator, stop: asyncio.Event, console: Console
) -> None:
    """Let a lingering aggregator serve its final values (``--linger``) until it exits or Ctrl-C."""
    linger = getattr(args, "linger", None) or 0.0
    if aggregator.returncode is not None or linger <= 0 or stop.is_set():
        return
    console.print(
        f"The aggregator keeps serving the final values for {linger:g} s; Ctrl-C to stop.",
        highlight=False,
    )
    await _first(aggregator.wait(), stop.wait(), asyncio.sleep(linger + _EXIT_TIMEOUT_S))
    aggregator.signal(signal.SIGINT)


async def _demo(args: argparse.Namespace, load: SyntheticLoad) -> int:
    if args.run_id is None:
        args.run_id = time.strftime("demo-%Y%m%d-%H%M%S")
    output_dir, lock = _prepare_output_dir(args.output_dir, args.run_id)
    try:
        return await _demo_locked(args, load, output_dir, lock)
    finally:
        lock.release()


async def _demo_locked(
    args: argparse.Namespace, load: SyntheticLoad, output_dir: Path, lock: RunLock
) -> int:
    signals = StopSignals().install()
    stop = signals.event
    console = Console()
    tui = not args.no_tui and console.is_terminal
    tmp = Path(tempfile.mkdtemp(prefix="bm-demo-"))
    events_ep, snapshots_ep = f"ipc://{tmp}/events", f"ipc://{tmp}/snapshots"
    cmd = aggregator_command(args, events=events_ep, snapshots=snapshots_ep, output_dir=output_dir)
    # Under the live view the aggregator's log lines would tear the screen: they go to a file.
    aggregator = _Aggregator(cmd, output_dir / "aggregator.log" if tui else None, lock)
    stats = SourceStats()
    problems: list[str] = []
    summary = output_dir / "result_summary.json"
    publisher = EventPublisher(events_ep)
    try:
        log.debug("starting the aggregator: %s", " ".join(cmd))
        await aggregator.start()
        async with SnapshotSubscriber(snapshots_ep) as sub:
            if await _started(publisher, aggregator, stop, problems):
                view = LiveView(
                    ViewContext(
                        title="bench-metrics demo",
                        source=f"{load.qps:g} QPS x {load.duration_s:g} s, seed {load.seed}",
                        expected_samples=load.expected_samples,
                        planned_duration_s=load.duration_s,
                        offered_qps=load.qps,
                    )
                )

                def notes() -> list[str]:
                    return [
                        f"source sent: issued {stats.issued:,}  completed {stats.completed:,}  "
                        f"failed {stats.failed:,}  events {stats.events_sent:,}"
                    ]

                finished = asyncio.Event()
                display = asyncio.create_task(
                    show_live(sub, view, finished=finished, tui=tui, console=console, notes=notes)
                )
                try:
                    await _run_and_drain(
                        load, publisher, aggregator, sub, stop, stats, problems, summary
                    )
                finally:
                    finished.set()
                    await display
            interrupted = signals.exit_code if stop.is_set() else None
            await _first(_wait_for_file(summary, _EXIT_TIMEOUT_S), aggregator.wait())
            rc = aggregator.returncode
            if rc not in (0, None) and interrupted is None:
                problems.append(f"the aggregator exited with code {rc}")
            doc = await _final_document(output_dir, sub)
        code = _finish(
            console, output_dir, doc, stats, interrupted, problems, aggregator, load=load
        )
        await _linger(args, aggregator, stop, console)
        await aggregator.stop(_EXIT_TIMEOUT_S)
        if args.html and doc is not None:
            # after the aggregator's exit: its raw store is complete by then
            code = _write_page(output_dir, console) or code
        return code
    finally:
        await aggregator.stop(0.1)
        signals.remove()
        publisher.close()
        shutil.rmtree(tmp, ignore_errors=True)


async def _run_and_drain(
    load: SyntheticLoad,
    publisher: EventPublisher,
    aggregator: _Aggregator,
    sub: SnapshotSubscriber,
    stop: asyncio.Event,
    stats: SourceStats,
    problems: list[str],
    summary: Path,
) -> None:
    """Drive the load; then let the aggregator finish (or interrupt it) and publish its end."""
    # The source halts on Ctrl-C and when the aggregator dies; only the first is an interruption.
    halt = asyncio.Event()
    relay = asyncio.create_task(stop.wait())
    relay.add_done_callback(lambda _: halt.set())
    source = asyncio.create_task(drive(load, publisher.send_many, stop=halt, stats=stats))
    died = asyncio.ensure_future(aggregator.wait())
    await asyncio.wait({source, died}, return_when=asyncio.FIRST_COMPLETED)
    if not source.done():
        problems.append(f"the aggregator exited with code {aggregator.returncode} mid-run")
        halt.set()
    await source
    died.cancel()
    relay.cancel()
    if aggregator.returncode is not None:
        return
    if stop.is_set():
        log.debug("stopping: SIGINT to the aggregator for an INTERRUPTED report")
        aggregator.signal(signal.SIGINT)
    grace = _DRAIN_GRACE_S + load.duration_s
    await _first(sub.wait_for_terminal(grace), aggregator.wait(), _wait_for_file(summary, grace))
    if sub.terminal is None and aggregator.returncode is None and not summary.exists():
        problems.append(f"no terminal snapshot within {grace:g} s of the last event")


def _write_page(output_dir: Path, console: Console) -> int:
    """``report.html`` in ``output_dir``; 0, or 1 when it could not be written (said why)."""
    from exporter.html.report_page import HTML_NAME, write_run_page

    try:
        path = write_run_page(output_dir)
    except (ReportFileError, OSError) as exc:
        Console(stderr=True).print(
            f"bench-metrics demo: no {HTML_NAME}: {exc}", style="bold red", highlight=False
        )
        return 1
    console.print(f"Page: {path}", highlight=False)
    return 0


def _finish(
    console: Console,
    output_dir: Path,
    doc: ReportDocument | None,
    stats: SourceStats,
    interrupted: int | None,
    problems: list[str],
    aggregator: _Aggregator,
    *,
    load: SyntheticLoad | None = None,
) -> int:
    """Print the report and what went wrong; the exit code (``interrupted``: the
    signal's code, when one stopped the run). Lines wrap at spaces, never mid-word."""
    console.print()
    if doc is not None:
        console.print(render_report(doc))
        check = compare_counts(stats, doc.report)
        style = "green" if check.matches else "bold red"
        console.print(check.line, style=style, highlight=False)
        if load is not None and interrupted is None:
            console.print(offered_line(load, stats, doc.report), style="dim", highlight=False)
        if not check.matches and interrupted is None:
            problems.append("the aggregator's counts differ from what the source sent")
    else:
        problems.append("no report: no final file and no snapshot from the aggregator")
    missing = [name for name in FINAL_FILES if not (output_dir / name).exists()]
    if missing and interrupted is None:
        problems.append(f"missing in {output_dir}: {', '.join(missing)}")
    present = [n for n in FINAL_FILES if (output_dir / n).exists()]
    if present:
        console.print(f"Files in {output_dir}: {', '.join(present)}", highlight=False)
    err = Console(stderr=True)
    for problem in problems:
        err.print(f"bench-metrics demo: {problem}", style="bold red", highlight=False)
    if problems and aggregator.log_tail():
        err.print(f"last lines of {aggregator.log_path}:\n{aggregator.log_tail()}", highlight=False)
    if interrupted is not None:
        err.print("bench-metrics demo: interrupted", style="yellow")
        return interrupted
    return 1 if problems else 0


def check_tokenizer_options(args: argparse.Namespace) -> None:
    """``--tokenizer`` and friends, checked here so a bad one is one line and exit 2 before
    the aggregator process starts (it loads the tokenizer itself)."""
    check_tokenizer_arguments(args)
    if args.tokenizer is None:
        return
    try:
        args.tokenizer = check_tokenizer_dir(args.tokenizer).resolve()
    except TokenizerUnavailable as exc:
        raise UsageError(f"--tokenizer {exc}") from None
    if not transformers_available():
        raise UsageError(f"--tokenizer needs transformers and tokenizers: {EXTRA_HINT}")


def run(args: argparse.Namespace) -> int:
    check_tokenizer_options(args)
    load = load_from_args(args)
    constraints = constraints_from_args(args)
    requirements_from_args(args)  # a bad --scenario/--min-* is exit 2 here, not in the child
    if not args.streaming and any(c.series in ("ttft_ns", "tpot_ns") for c in constraints):
        raise UsageError("TTFT and TPOT constraints need streaming: drop --no-streaming")
    # bad exporter options and a busy --listen port fail here, not in the aggregator process
    check_listen_free(exporter_options(args).listen)
    return asyncio.run(_demo(args, load))
