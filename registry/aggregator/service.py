"""AggregatorService: event socket in, snapshot stream and final files out (SPEC §2, §6, §7).

It connects to the benchmark's event endpoint, applies every event to
:class:`~registry.aggregator.metrics.AggregatorMetrics`, and publishes
snapshots through a :class:`~registry.delivery.publisher.MetricsPublisher` bound on the
snapshot endpoint. The run ends in one of two ways:

- ``session.ended`` → DRAINING: the service stops reading, the tokenizer's
  backlog (if a tokenizer is configured) is counted within ``drain_timeout_s``
  (``None``: no limit; live snapshots meanwhile show it shrinking in
  ``n_pending_tasks``), then the publisher writes the COMPLETE
  ``final_snapshot.json`` and sends the terminal frame, the state becomes
  COMPLETE, ``result_summary.json`` is written beside it, and
  :meth:`AggregatorService.run` returns 0. Tokenizations the budget did not
  cover stay in the final ``n_pending_tasks`` (the report then says the run
  is not complete, and why).
- SIGTERM or SIGINT (or :meth:`AggregatorService.interrupt`) at any moment
  before that: the service stops reading at once and writes an INTERRUPTED
  final snapshot holding everything applied so far (a tokenization backlog is
  not drained: it stays in ``n_pending_tasks``), then the report, and
  returns ``128 + signal number`` (130 for SIGINT, 143 for SIGTERM), as a
  shell reports a process killed by that signal, so scripts can tell an
  interrupted run from a complete one. A signal that arrives once the final
  publish has begun changes nothing.

Runs of any length (SPEC §11): raw values beyond ``raw_memory_bytes`` go to
the raw store in ``<output_dir>/raw/`` as they are folded, and after the final
files the store is completed (every value, ``manifest.json``);
``samples.parquet`` gets one row per tracked sample, written in row groups by
its own worker thread as samples complete (the rows of samples still in
flight are added at the end). The final files' ``run`` block carries the run
id and labels, wall-clock anchors, the timestamps behind the durations and
the series settings: what ``bench-metrics merge`` needs.

Seams for the exporter: extra snapshot listeners (``fn(snapshot)``, called on
the loop with every live and terminal snapshot) and async start/stop hooks
(awaited before the first event is read / after the final files are written).

The service never lets malformed input stop it (the metrics and the codec
count it), never writes a final file in place (the publisher and
:func:`~registry.report.write_report` write atomically), and never reads the
event stream after ``session.ended``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec
import zmq
import zmq.asyncio

from registry.aggregator.event_subscriber import DEFAULT_MAX_FRAME_BYTES, EventSubscriber
from registry.aggregator.metrics import AggregatorEventCodec, AggregatorMetrics
from registry.aggregator.producer_watch import DEFAULT_PRODUCER_TIMEOUT_S, ProducerWatch
from registry.aggregator.session import SessionMachine
from registry.core.clock import anchor, clock_block
from registry.core.metrics_registry import MetricsRegistry
from registry.core.percentiles import PercentileMethod
from registry.delivery.final_source import FINAL_SNAPSHOT_NAME
from registry.delivery.previous_run import RAW_STORE_DIR
from registry.delivery.publisher import MetricsPublisher
from registry.delivery.run_end import RunStores, end_run
from registry.delivery.safe_open import open_for_writing
from registry.delivery.snapshot import MetricsSnapshot, SessionState
from registry.mlperf.early_stopping import EarlyStoppingSpec, warm_up
from registry.mlperf.requirements import Requirements, requirements_entry
from registry.mlperf.slo import Constraint
from registry.report.summary import REPORT_NAME
from registry.store.raw_store import DEFAULT_MEMORY_BYTES, RawStore
from registry.store.sample_log import SAMPLES_NAME, SampleLog
from registry.store.samples import SampleWriter
from registry.tokens import TokenCounter
from registry.tokens.pool import DEFAULT_JOB_TIMEOUT_S

__all__ = [
    "AggregatorService",
    "Hook",
    "SnapshotListener",
]

logger = logging.getLogger(__name__)


SnapshotListener = Callable[[MetricsSnapshot], Any]
Hook = Callable[[], Awaitable[Any]]

#: Exit code when the ingest loop itself failed (a bug, not bad input).
EXIT_INTERNAL_ERROR = 1
#: How long the tokenizer's threads get to finish the input they count, after the end.
TOKENIZER_JOIN_S = 5.0
#: Records applied per loop step. Upstream's messages hold at most 1,000 records, about
#: 0.7 ms of work, and go in one step (each step folds the counters once, so smaller
#: steps cost ingest rate); bigger messages from other producers are split, so no step
#: holds the loop for long. A snapshot between two steps is consistent.
APPLY_SLICE = 1024
#: The same with a tokenizer: each record that carries text hands a job to the pool's
#: threads, which then compete with the loop for the GIL, so a 1,024-record step took
#: ~20 ms of the loop's time (bench/tokenizer.py); 128 keeps a step near 1-2 ms.
TOKENIZER_APPLY_SLICE = 128
#: Exit code when final_snapshot.json or result_summary.json could not be written.
EXIT_FINAL_FILES_NOT_WRITTEN = 3
#: Exit code when the event producer went away without session.ended (INTERRUPTED files).
EXIT_PRODUCER_GONE = 4


def _log_warm_up_failure(fut: asyncio.Future[None]) -> None:
    if not fut.cancelled() and fut.exception() is not None:
        logger.warning("early-stopping warm-up failed: %s", fut.exception())


class AggregatorService:
    """One aggregation run. Construct, then ``await run()`` on a fresh loop."""

    def __init__(
        self,
        *,
        events_endpoint: str,
        snapshots_endpoint: str,
        output_dir: str | Path,
        streaming: bool = False,
        interval_s: float = 0.25,
        run_id: str | None = None,
        labels: Mapping[str, str] | None = None,
        percentile_method: PercentileMethod | str = PercentileMethod.NEAREST_RANK,
        early_stopping: EarlyStoppingSpec | None = EarlyStoppingSpec(),  # noqa: B008 (frozen)
        sig_figs: int = 3,
        n_histogram_buckets: int = 30,
        constraints: Sequence[Constraint] = (),
        ruleset: str | None = None,
        requirements: Requirements | None = None,
        ignore_sigint: bool = False,
        readiness: tuple[str, int] | None = None,
        ready_marker: bool = False,
        tokenizer: TokenCounter | None = None,
        tokenizer_workers: int = 2,
        drain_timeout_s: float | None = None,
        tokenizer_job_timeout_s: float | None = DEFAULT_JOB_TIMEOUT_S,
        max_frame_bytes: int | None = DEFAULT_MAX_FRAME_BYTES,
        listeners: Sequence[SnapshotListener] = (),
        on_start: Sequence[Hook] = (),
        on_stop: Sequence[Hook] = (),
        handle_signals: bool = True,
        raw_store: bool = True,
        raw_memory_bytes: int = DEFAULT_MEMORY_BYTES,
        samples: bool = True,
        report_name: str = REPORT_NAME,
        producer_timeout_s: float | None = DEFAULT_PRODUCER_TIMEOUT_S,
    ) -> None:
        if not interval_s > 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s!r}")
        if drain_timeout_s is not None and not drain_timeout_s >= 0:
            raise ValueError(f"drain_timeout_s must be >= 0 or None, got {drain_timeout_s!r}")
        #: seconds the end-of-run tokenization may take (``None``: no limit)
        self.drain_timeout_s = drain_timeout_s or None
        if producer_timeout_s is not None and not producer_timeout_s >= 0:
            raise ValueError(f"producer_timeout_s must be >= 0 or None, got {producer_timeout_s!r}")
        #: seconds a producer's closed connection may stay closed (``None``: forever)
        self.producer_timeout_s = producer_timeout_s or None
        #: the producer went away without session.ended (the run ended INTERRUPTED)
        self.producer_gone = False
        # a message is being applied in slices (the loop turns between them)
        self._applying = False
        self.events_endpoint = events_endpoint
        self.snapshots_endpoint = snapshots_endpoint
        self.output_dir = Path(output_dir)
        self.final_snapshot_path = self.output_dir / FINAL_SNAPSHOT_NAME
        self.report_path = self.output_dir / report_name
        self.interval_s = float(interval_s)
        self.run_id = run_id
        self.labels = dict(labels or {})
        #: where this run's /metrics is served, when a mirror serves it (told to the stream)
        self.metrics_url: str | None = None
        self.handle_signals = handle_signals
        self.ignore_sigint = ignore_sigint
        self.readiness = readiness
        self.ready_marker = ready_marker
        self.raw_store = (
            RawStore(self.output_dir / RAW_STORE_DIR, memory_bytes=raw_memory_bytes)
            if raw_store
            else None
        )
        self.max_frame_bytes = max_frame_bytes
        self.registry = MetricsRegistry(
            percentile_method=percentile_method,
            early_stopping=early_stopping,
            raw_store=self.raw_store,
        )
        self.session = SessionMachine()
        self.sample_log = SampleLog() if samples else None
        self.samples_path = self.output_dir / SAMPLES_NAME
        self._sample_writer: SampleWriter | None = None
        self.metrics = AggregatorMetrics(
            self.registry,
            streaming=streaming,
            session=self.session,
            sig_figs=sig_figs,
            n_histogram_buckets=n_histogram_buckets,
            sample_log=self.sample_log,
            tokens=tokenizer,
            tokenizer_workers=tokenizer_workers,
            constraints=constraints,
            requirements=requirements,
            # every reader the service has (snapshot captures, the final files)
            # settles held receives first
            hold_receives=True,
        )
        if self.metrics.tokenizer is not None:
            if tokenizer_job_timeout_s is not None and not tokenizer_job_timeout_s >= 0:
                raise ValueError(
                    f"tokenizer_job_timeout_s must be >= 0 or None, got {tokenizer_job_timeout_s!r}"
                )
            # a hostile chat template is skipped after this, never holds the final files
            self.metrics.tokenizer.job_timeout_s = tokenizer_job_timeout_s or None
        #: the constraints the run is judged on, and the ruleset they came from
        self.constraints: tuple[Constraint, ...] = tuple(constraints)
        self.ruleset = ruleset
        #: LoadGen's validity requirements the run is judged on (``None``: not judged)
        self.requirements = requirements
        self._clock_start: dict[str, int] | None = None
        self._clock_end: dict[str, int] | None = None
        self.session.add_listener(self._on_state)
        self._listeners = list(listeners)
        self._on_start = list(on_start)
        self._on_stop = list(on_stop)
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._finishing = False
        #: the signal that interrupted the run, if one did
        self.signal: int | None = None
        #: events applied so far (decoded ones; malformed ones are counted apart)
        self.events_applied = 0
        #: the terminal snapshot and the report, once written
        self.final_snapshot: MetricsSnapshot | None = None
        self.report: dict[str, Any] | None = None
        #: final files that could not be written, with the reason
        self.unwritten_files: dict[str, str] = {}
        #: the snapshot endpoint actually bound (set once running)
        self.bound_snapshots_endpoint: str | None = None
        self._publisher: MetricsPublisher | None = None
        self._codec = AggregatorEventCodec(self.metrics)
        #: a tokenizer thread was still in the tokenizer when run() returned: the
        #: process must end with os._exit (finalising would abort in native code)
        self.tokenizer_stuck = False

    # -- seams -----------------------------------------------------------------

    def add_listener(self, fn: SnapshotListener) -> None:
        """``fn(snapshot)`` for every snapshot published (add before :meth:`run`)."""
        self._listeners.append(fn)

    def add_start_hook(self, hook: Hook) -> None:
        self._on_start.append(hook)

    def add_stop_hook(self, hook: Hook) -> None:
        self._on_stop.append(hook)

    # -- control ---------------------------------------------------------------

    def interrupt(self, signum: int = signal.SIGTERM) -> None:
        """Stop as if ``signum`` had arrived: INTERRUPTED final files, then return.

        Safe to call from the loop's thread, another thread, or a signal handler.
        """
        loop = self._loop
        if loop is None:
            raise RuntimeError("the service is not running")
        loop.call_soon_threadsafe(self._on_signal, signum)

    def _on_signal(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if self._finishing:
            logger.warning("%s received while writing the final files: finishing as before", name)
            return
        if self.signal is None:
            self.signal = signum
            logger.warning("%s received: writing an INTERRUPTED final snapshot", name)
        assert self._stop is not None
        self._stop.set()

    def _on_producer_gone(self) -> None:
        # Only while events are read: once session.ended is in, the producer may go.
        if self._finishing or self.signal is not None:
            return
        if self.session.state.rank >= SessionState.DRAINING.rank:
            return
        self.producer_gone = True
        assert self._stop is not None
        self._stop.set()

    def _runtime_state(self) -> tuple[SessionState, int]:
        return self.session.state, self.metrics.n_pending_tasks

    def _on_state(self, old: SessionState, new: SessionState) -> None:
        if new is SessionState.LIVE and self._clock_start is None:
            self._clock_start = anchor()

    def _flush_samples(self, snap: MetricsSnapshot) -> None:
        # a tick listener: hand the rows completed since the last tick to the writer's thread
        if self._sample_writer is not None and self.sample_log is not None:
            self._sample_writer.submit(self.sample_log.take())

    # -- the run ---------------------------------------------------------------

    async def run(self) -> int:
        """Aggregate until ``session.ended`` or a signal; write the final files.

        Returns the process exit code: 0 after a COMPLETE run, 128 + signal
        number after an interrupted one, 3 when a final file could not be
        written (whatever the state), 1 if the ingest loop failed.
        """
        self._loop = loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self.output_dir.mkdir(parents=True, exist_ok=True)
        publisher = MetricsPublisher(
            self.registry,
            endpoint=self.snapshots_endpoint,
            final_snapshot_path=self.final_snapshot_path,
            interval_s=self.interval_s,
            run_info=self.run_info,
            stream_run=self.stream_run(),
        )
        self._publisher = publisher
        self.bound_snapshots_endpoint = publisher.endpoint
        if self.sample_log is not None:
            self._sample_writer = SampleWriter(self.samples_path, run_id=self.run_id)
            publisher.add_listener(self._flush_samples)
        for fn in self._listeners:
            publisher.add_listener(fn)
        subscriber = EventSubscriber(
            self._codec, self.events_endpoint, max_message_bytes=self.max_frame_bytes
        )
        installed = self._install_signal_handlers(loop)
        ingest: asyncio.Task[None] | None = None
        watch: ProducerWatch | None = None
        watch_task: asyncio.Task[None] | None = None
        failed = False
        try:
            for hook in self._on_start:
                await hook()
            subscriber.open()
            if self.producer_timeout_s is not None:
                watch = ProducerWatch(
                    subscriber,
                    self.producer_timeout_s,
                    self._on_producer_gone,
                    busy=lambda: self._applying or subscriber.has_queued(),
                )
                watch_task = asyncio.create_task(watch.run(), name="aggregator-producer-watch")
            if self.metrics.tokenizer is not None:
                self.metrics.tokenizer.start(loop)
            publisher.start(self._runtime_state)
            await self._announce_ready()
            spec = self.registry.early_stopping
            if spec is not None or self.metrics.tracker is not None:
                # the final snapshot's early-stopping numbers need scipy: import it now,
                # off the loop, not after session.ended (the launcher waits then)
                warm = loop.run_in_executor(None, warm_up, spec or EarlyStoppingSpec())
                warm.add_done_callback(_log_warm_up_failure)
            logger.info(
                "aggregating events from %s; snapshots on %s; final files in %s",
                self.events_endpoint,
                publisher.endpoint,
                self.output_dir,
            )
            ingest = asyncio.create_task(self._ingest(subscriber), name="aggregator-ingest")
            stop = asyncio.create_task(self._stop.wait(), name="aggregator-stop")
            await asyncio.wait({ingest, stop}, return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            if not ingest.done():
                ingest.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ingest
            if watch_task is not None:  # the producer may leave once session.ended is read
                watch_task.cancel()
                await asyncio.gather(watch_task, return_exceptions=True)
            if self.signal is None and not self.producer_gone:
                await self._drain_tokenizer()
        except Exception:
            logger.exception("the aggregator's ingest failed; writing INTERRUPTED final files")
            failed = True
        finally:
            if watch_task is not None and not watch_task.done():
                watch_task.cancel()
            if watch is not None:
                watch.close()
            subscriber.close()
            self._finishing = True
        try:
            interrupted = (
                failed
                or self.signal is not None
                or self.producer_gone
                or self.metrics.interrupted_marker
            )
            await self._finish(publisher, interrupted=interrupted)
            for hook in self._on_stop:
                try:
                    await hook()
                except Exception:
                    logger.exception("a stop hook failed")
        finally:
            await publisher.aclose()
            self._remove_signal_handlers(loop, installed)
            await self._stop_tokenizer()
        if self.unwritten_files:
            logger.error(
                "final files NOT written: %s (the terminal frame was %s)",
                "; ".join(f"{name} ({why})" for name, why in self.unwritten_files.items()),
                "sent" if publisher.final_frame_sent else "NOT sent",
            )
        if failed:
            return EXIT_INTERNAL_ERROR
        if self.unwritten_files:
            return EXIT_FINAL_FILES_NOT_WRITTEN
        if self.session.state is SessionState.INTERRUPTED and self.signal is not None:
            return 128 + self.signal
        if self.producer_gone:
            return EXIT_PRODUCER_GONE
        return 0

    async def _ingest(self, subscriber: EventSubscriber) -> None:
        handle_many = self.metrics.handle_many
        session = self.session
        codec = self._codec
        draining = SessionState.DRAINING.rank
        framing_counted = 0
        step = APPLY_SLICE if self.metrics.tokenizer is None else TOKENIZER_APPLY_SLICE
        while session.state.rank < draining:
            batch = await subscriber.recv_batch()
            self._applying = True
            for i in range(0, len(batch), step):
                if i:
                    # Between slices of a big message: the loop stays responsive (ticks,
                    # signals, the tokenizer's deliveries) while a message is applied.
                    await asyncio.sleep(0)
                handle_many(batch[i : i + step] if len(batch) > step else batch)
            self._applying = False
            self.events_applied += len(batch)
            # The subscriber drops broken frames (wrong frame count, topic, batch)
            # before any payload reaches the codec: count those as malformed too.
            framing = subscriber.dropped - codec.errors
            if framing != framing_counted:
                self.metrics.count_malformed(
                    f"broken frame ({subscriber.last_error})", framing - framing_counted
                )
                framing_counted = framing
            # A ready socket completes the receive without suspending: yield so
            # ticks and signal handlers run even under a continuous stream.
            await asyncio.sleep(0)

    def _tokenizer_info(self) -> dict[str, Any] | None:
        """The run block's ``tokenizer``: which one counted, how (``None`` without one)."""
        pool = self.metrics.tokenizer
        if pool is None:
            return None
        return {
            **pool.counter.describe(),
            "workers": pool.workers,
            "drain_timeout_s": self.drain_timeout_s,
            "job_timeout_s": pool.job_timeout_s,
            "jobs_timed_out": pool.jobs_timed_out,
        }

    async def _drain_tokenizer(self) -> None:
        """After ``session.ended``: count the tokenization backlog within the budget.

        A signal meanwhile stops the drain at once (the run is then interrupted).
        """
        pool = self.metrics.tokenizer
        if pool is None or pool.pending == 0:
            return
        budget = self.drain_timeout_s
        logger.info(
            "session ended: draining %d tokenizations (%s)",
            pool.pending,
            "no time limit" if budget is None else f"budget {budget:g} s",
        )
        assert self._stop is not None
        drain = asyncio.create_task(pool.drain(budget), name="aggregator-token-drain")
        stop = asyncio.create_task(self._stop.wait(), name="aggregator-stop")
        try:
            await asyncio.wait({drain, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (drain, stop):
                task.cancel()
            await asyncio.gather(drain, stop, return_exceptions=True)
        if self.signal is not None:
            logger.warning("drain stopped by a signal: %d tokenizations left", pool.pending)

    async def _stop_tokenizer(self) -> None:
        pool = self.metrics.tokenizer
        if pool is None:
            return
        pool.close()
        if not await asyncio.to_thread(pool.join, TOKENIZER_JOIN_S):
            self.tokenizer_stuck = True
            logger.warning(
                "a tokenizer thread is still busy %g s after the end; the process must end "
                "with os._exit",
                TOKENIZER_JOIN_S,
            )

    async def _finish(self, publisher: MetricsPublisher, *, interrupted: bool) -> None:
        pool = self.metrics.tokenizer
        if pool is not None:
            # Freeze the backlog: a batch finishing from here on must not be recorded
            # after n_pending_tasks was read for the final snapshot.
            pool.close()
        self.metrics.refresh_durations()
        self._clock_end = anchor()
        pending = self.metrics.n_pending_tasks
        self.metrics.finalize_verdict(complete=not interrupted and pending == 0)
        if interrupted:
            self.session.interrupt()
        self.report = await end_run(
            publisher,
            report_path=self.report_path,
            unwritten_files=self.unwritten_files,
            n_pending_tasks=pending,
            interrupted=interrupted,
            run_id=self.run_id,
            labels=self.labels,
            on_final_snapshot=self._on_final_snapshot,
            stores=RunStores(
                self.registry,
                raw_store_dir=self.raw_store.directory if self.raw_store is not None else None,
                sample_writer=self._sample_writer,
                take_rows=self._remaining_rows if self.sample_log is not None else None,
            ),
            log=logger,  # the service's own lines: where its operator reads them
        )

    def _on_final_snapshot(self, snap: MetricsSnapshot) -> None:
        if snap.state is SessionState.COMPLETE:
            self.session.complete()
        self.final_snapshot = snap

    def _remaining_rows(self) -> list[tuple[Any, ...]]:
        # the samples still in flight get their rows too (SPEC §11)
        assert self.sample_log is not None
        self.metrics.log_in_flight()
        return self.sample_log.take()

    def stream_run(self) -> dict[str, Any] | None:
        """Slot 5 of every snapshot on the stream: the run id, labels and ``/metrics`` URL."""
        if self.run_id is None and not self.labels and self.metrics_url is None:
            return None
        tag: dict[str, Any] = {"run_id": self.run_id, "labels": dict(self.labels)}
        if self.metrics_url is not None:
            tag["metrics_url"] = self.metrics_url
        return tag

    def run_info(self) -> dict[str, Any]:
        """This run's part of the final files' ``run`` block (the registry adds its
        percentile method and early-stopping settings)."""
        reg = self.registry
        run: dict[str, Any] = {
            "run_id": self.run_id,
            "labels": dict(self.labels),
            "streaming": self.metrics.streaming,
            "tokenizer": self._tokenizer_info(),
            # SPEC §11: what bench-metrics merge needs to align and check the runs
            "clock": clock_block(self._clock_start, self._clock_end),
            "timeline": self.metrics.timeline(),
            "series": {name: reg.series_config(name).describe() for name in reg.series_names},
            "raw_store": (
                None
                if self.raw_store is None
                else {"dir": RAW_STORE_DIR, "memory_bytes": self.raw_store.budget.limit}
            ),
            "samples": SAMPLES_NAME if self.sample_log is not None else None,
        }
        if self.producer_gone:  # why the run is INTERRUPTED (the report says so)
            run["interrupted_by"] = "producer_gone"
        if self.constraints or self.requirements is not None:
            run["verdict"] = {
                "ruleset": self.ruleset,
                "constraints": [c.describe() for c in self.constraints],
            }
            if self.requirements is not None:
                run["verdict"]["requirements"] = requirements_entry(self.requirements)
        return run

    async def _announce_ready(self) -> None:
        """mlcommons/endpoints' launcher protocol: a ``.ready`` marker in the output
        directory once signals are handled, and the readiness id PUSHed to its socket."""
        if self.ready_marker:
            marker = self.output_dir / ".ready"
            try:
                # created (or kept) without following a link planted at its name
                os.close(open_for_writing(marker, truncate=False))
            except OSError as exc:
                logger.error(
                    "could not create the ready marker %s: %s", marker, exc.strerror or exc
                )
        if self.readiness is None:
            return
        endpoint, identity = self.readiness
        ctx = zmq.asyncio.Context.instance()
        sock = ctx.socket(zmq.PUSH)
        sock.setsockopt(zmq.LINGER, 5000)
        try:
            sock.connect(endpoint)
            await asyncio.wait_for(sock.send(msgspec.msgpack.encode(identity)), 5.0)
            logger.info("readiness %d sent to %s", identity, endpoint)
        except (zmq.ZMQError, TimeoutError) as exc:
            logger.warning("could not send readiness to %s: %s", endpoint, exc)
        finally:
            sock.close()

    # -- signals ---------------------------------------------------------------

    def _install_signal_handlers(self, loop: asyncio.AbstractEventLoop) -> list[int]:
        if not self.handle_signals:
            return []
        if threading.current_thread() is not threading.main_thread():
            logger.debug("not in the main thread: SIGTERM/SIGINT handlers not installed")
            return []
        installed: list[int] = []
        for signum in (signal.SIGTERM, signal.SIGINT):
            if signum == signal.SIGINT and self.ignore_sigint:
                loop.add_signal_handler(signum, self._on_ignored_sigint)
            else:
                loop.add_signal_handler(signum, self._on_signal, signum)
            installed.append(signum)
        return installed

    def _on_ignored_sigint(self) -> None:
        logger.info("SIGINT ignored (--ignore-sigint): the session's session.ended decides")

    @staticmethod
    def _remove_signal_handlers(loop: asyncio.AbstractEventLoop, installed: list[int]) -> None:
        for signum in installed:
            loop.remove_signal_handler(signum)
