"""MetricsSession: bench-metrics inside a benchmark's own process, no aggregator (SPEC §2, §7, §8).

One object owns a :class:`~registry.MetricsRegistry` (with the standard
catalogue registered, :mod:`registry.core.catalogue`), a
:class:`~registry.MetricsPublisher` (the snapshot stream and the never-partial
``final_snapshot.json``), the Report (``result_summary.json``, built as the
aggregator builds it) and, when asked, the Prometheus exporter. Use
:class:`MetricsSession` with ``async with`` on the benchmark's event loop, or
:class:`SyncMetricsSession` with ``with`` from plain threads (it runs the
publisher on an event loop of its own, in a thread).

Why it lives in ``registry``: what it owns is the authoritative path (every
number, the final file, the Report); the exporter only reflects it. So this
module never imports the exporter: ``listen`` and ``pushgateway`` are served by
a :class:`SessionExporter` that the installed exporter registers under the
entry point :data:`EXPORTER_ENTRY_POINT` (bench-metrics' own:
``exporter.prometheus.mirror.SessionMirror``, declared in pyproject.toml). It is looked up
and loaded only when one of them is given, so ``import registry`` never pulls
in aiohttp or prometheus_client.

Guarantees:

- ``record`` is the registry's own bound method (no wrapper, no lock): an
  ``array.array`` append, atomic under the GIL, safe from any thread.
  ``increment``, ``set_counter`` and the ``sample_*`` helpers take the session's
  lock, so counters are exact however many threads update them. A sample helper
  checks all its arguments before it changes anything: a bad call raises and
  leaves no half-counted sample.
- The exporter (``listen``) serves from its own thread and event loop, so a
  scrape never runs on the benchmark's loop, and a blocking scrape *from* that
  loop (``urllib`` in a coroutine) is answered instead of hanging.
- Leaving the ``with`` block normally writes the COMPLETE final snapshot and the
  Report; leaving it by an exception (``KeyboardInterrupt``, ``SystemExit`` and
  cancellation included) writes them INTERRUPTED, holding everything recorded
  so far, and the exception propagates. The final file is written atomically
  (tmp, fsync, rename); a disk that refuses it is logged and recorded in
  ``unwritten_files``, never raised, and the Report then comes from memory.
- After ``finish`` the session's ``record``/``increment``/... raise
  ``RuntimeError``: a value recorded then could not reach the final files.
- The output directory is locked for the run (``registry.delivery.run_lock``): a second
  session or aggregator on it is refused with ``DirectoryLocked`` naming the
  holder.
- Signals are the benchmark's: the session installs no handler. To get
  INTERRUPTED files on SIGTERM, turn it into an exception (``sys.exit`` in a
  handler) that leaves the ``with`` block.

This module never decides a number (the registry and :mod:`registry.report.summary`
do) and never writes a final file in place.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import operator
import threading
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, TypeVar, Unpack

from registry.core.catalogue import FINISH_REASONS, register_standard_metrics
from registry.core.metrics_registry import MetricsRegistry
from registry.core.percentiles import PercentileMethod
from registry.core.series import SeriesSettings, check_series_keywords
from registry.delivery.final_source import FINAL_SNAPSHOT_NAME
from registry.delivery.previous_run import clear_previous_run
from registry.delivery.publisher import MetricsPublisher
from registry.delivery.run_end import end_run
from registry.delivery.run_id import new_run_id
from registry.delivery.run_lock import RunLock
from registry.delivery.snapshot import MetricsSnapshot, SessionState
from registry.mlperf.early_stopping import EarlyStoppingSpec
from registry.report.summary import REPORT_NAME
from registry.transport.endpoint import check_endpoint

__all__ = [
    "DEFAULT_SNAPSHOTS_ENDPOINT",
    "EXPORTER_ENTRY_POINT",
    "ExporterRequest",
    "MetricsSession",
    "SessionExporter",
    "SessionExporterFactory",
    "SyncMetricsSession",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Where the snapshot stream is bound unless told: a free port on the loopback.
DEFAULT_SNAPSHOTS_ENDPOINT = "tcp://127.0.0.1:0"

_MANAGED_DURATIONS = ("total_duration_ns", "tracked_duration_ns")

#: (group, name) of the entry point that serves ``listen=`` / ``pushgateway=``.
EXPORTER_ENTRY_POINT = ("bench_metrics.session_exporter", "prometheus")


class SessionExporter(Protocol):
    """What serves a session's snapshots outside the process (the hook the exporter fills).

    The session calls, in this order: :meth:`start` when it starts (the
    registry's catalogue is final then, and ``labels`` are the run's, ``run_id``
    included; ``OSError`` if it cannot serve),
    :meth:`on_snapshot` with every live and terminal snapshot (on the loop that
    publishes), :meth:`finish` once the final files are written, :meth:`stop`,
    and :meth:`close` (also after a start that failed half-way).
    """

    @property
    def metrics_url(self) -> str | None: ...

    def start(self, registry: MetricsRegistry, labels: Mapping[str, str]) -> None: ...

    def on_snapshot(self, snapshot: MetricsSnapshot) -> None: ...

    async def finish(self, *, interrupted: bool) -> None: ...

    async def stop(self) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class ExporterRequest:
    """What a session asks of its exporter: its own arguments, as given."""

    listen: str | None
    pushgateway: str | None
    namespace: str
    #: the run's labels, ``run_id`` included (checked now; :meth:`SessionExporter.start`
    #: gets them again, as they are then)
    labels: Mapping[str, str]
    linger_s: float
    interval_s: float


#: Builds a :class:`SessionExporter`: checks the request, binds nothing (``ValueError``).
SessionExporterFactory = Callable[[ExporterRequest], SessionExporter]


@functools.cache
def _exporter_factory() -> SessionExporterFactory:
    # Looked up, not imported: the exporter depends on registry, never the reverse.
    from importlib.metadata import entry_points

    group, name = EXPORTER_ENTRY_POINT
    for entry in entry_points(group=group, name=name):
        factory: SessionExporterFactory = entry.load()
        return factory
    raise RuntimeError(
        f"listen= and pushgateway= need an exporter registered as entry point {name!r} in "
        f"group {group!r}, and none is installed (bench-metrics' own registers it: "
        "reinstall the package, e.g. pip install -e .)"
    )


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_snapshots_endpoint(endpoint: str) -> str:
    # bound, so port 0 or * (any free port) is fine; check_endpoint refuses 99999,
    # which libzmq would otherwise take modulo 2**16
    try:
        return check_endpoint(endpoint, bind=True)
    except ValueError as exc:
        raise ValueError(f"snapshots {exc}") from None


def _non_negative_int(name: str, value: object) -> int:
    try:
        n = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{name} must be an int, got {value!r} ({type(value).__name__})") from None
    if n < 0:
        raise ValueError(f"{name} must be >= 0, got {n}")
    return n


class _SessionCore:
    """What both session variants share: construction, recording, the async lifecycle."""

    #: Append one value to a series (the registry's own bound method; thread-safe).
    record: Callable[[str, int | float], None]
    #: Append a batch (any sequence or numpy array) to a series.
    record_many: Callable[[str, Any], None]

    def __init__(
        self,
        output_dir: str | Path,
        *,
        streaming: bool = True,
        standard_metrics: bool = True,
        listen: str | None = None,
        pushgateway: str | None = None,
        linger_s: float = 0.0,
        namespace: str = "bench",
        snapshots: str = DEFAULT_SNAPSHOTS_ENDPOINT,
        interval_s: float = 0.25,
        run_id: str | None = None,
        labels: Mapping[str, str] | None = None,
        percentile_method: PercentileMethod | str = PercentileMethod.NEAREST_RANK,
        early_stopping: EarlyStoppingSpec | None = EarlyStoppingSpec(),  # noqa: B008 (frozen)
        lock_output_dir: bool = True,
    ) -> None:
        if not _finite(interval_s) or interval_s <= 0:
            raise ValueError(f"interval_s must be a finite number > 0, got {interval_s!r}")
        if not _finite(linger_s) or linger_s < 0:
            raise ValueError(f"linger_s must be a finite number >= 0, got {linger_s!r}")
        if run_id is not None and (not isinstance(run_id, str) or not run_id):
            raise ValueError(f"run_id must be a non-empty str, got {run_id!r}")
        self.output_dir = Path(output_dir)
        self.final_snapshot_path = self.output_dir / FINAL_SNAPSHOT_NAME
        self.report_path = self.output_dir / REPORT_NAME
        self.run_id: str = run_id or new_run_id()
        self.labels: dict[str, str] = {}
        for key, value in (labels or {}).items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise ValueError(f"labels must map str to str, got {key!r}: {value!r}")
            if key == "run_id":  # a label must never rename the run
                raise ValueError("labels: 'run_id' is reserved; give the run id as run_id=")
            self.labels[key] = value
        self.streaming = bool(streaming)
        self.interval_s = float(interval_s)
        self.linger_s = float(linger_s)
        self.snapshots = _check_snapshots_endpoint(snapshots)
        self.registry = MetricsRegistry(
            percentile_method=percentile_method, early_stopping=early_stopping
        )
        self.standard_metrics = bool(standard_metrics)
        if self.standard_metrics:
            register_standard_metrics(self.registry, streaming=self.streaming)
        self._exporter: SessionExporter | None = None
        if listen is not None or pushgateway is not None:
            request = ExporterRequest(
                listen=listen,
                pushgateway=pushgateway,
                namespace=namespace,
                labels=self._exporter_labels(),
                linger_s=self.linger_s,
                interval_s=self.interval_s,
            )
            self._exporter = _exporter_factory()(request)
        self._lock_output_dir = lock_output_dir

        self._lock = threading.Lock()
        self._state = SessionState.INITIALIZE
        self._finished = False
        self._managed = set(_MANAGED_DURATIONS) if self.standard_metrics else set()
        self._start_ns = 0
        self._last_completion_ns: int | None = None
        self._run_lock: RunLock | None = None
        self._publisher: MetricsPublisher | None = None
        self._finish_task: asyncio.Task[dict[str, Any]] | None = None
        self._waiters: list[tuple[int, asyncio.Future[MetricsSnapshot]]] = []
        self.record = self.registry.record
        self.record_many = self.registry.record_many
        #: the terminal snapshot and the Report, once finished
        self.final_snapshot: MetricsSnapshot | None = None
        self.report: dict[str, Any] | None = None
        #: final files that could not be written, with the reason
        self.unwritten_files: dict[str, str] = {}

    def _exporter_labels(self) -> dict[str, str]:
        return {**self.labels, "run_id": self.run_id}  # run_id last: nothing replaces it

    # -- registration (before start) ---------------------------------------------

    def _check_not_started(self, what: str) -> None:
        if self._state is not SessionState.INITIALIZE:
            raise RuntimeError(
                f"{what}: register metrics before the session starts (the exporter and the "
                "stream fix their catalogue then)"
            )

    def register_counter(self, name: str, dtype: type = int, settable: bool = False) -> None:
        """A counter of your own (see :meth:`MetricsRegistry.register_counter`)."""
        self._check_not_started(f"register_counter({name!r})")
        self.registry.register_counter(name, dtype, settable)

    def register_series(self, name: str, **settings: Unpack[SeriesSettings]) -> None:
        """A series of your own (keywords and errors: :meth:`MetricsRegistry.register_series`).

        A name ending in ``_ns`` is a time in nanoseconds (seconds on ``/metrics``).
        """
        check_series_keywords("register_series", settings)
        self._check_not_started(f"register_series({name!r})")
        self.registry.register_series(name, **settings)

    # -- recording ---------------------------------------------------------------

    def _check_recording(self) -> None:
        if self._finished:
            raise RuntimeError(
                "the session has finished: a value recorded now would not reach the final files"
            )

    def increment(self, name: str, delta: int | float = 1) -> None:
        """Add ``delta`` to counter ``name`` (thread-safe; errors name the counter)."""
        with self._lock:
            self._check_recording()
            self.registry.increment(name, delta)

    def set_counter(self, name: str, value: int | float) -> None:
        """Set a settable counter (thread-safe).

        Setting ``total_duration_ns`` or ``tracked_duration_ns`` takes it over: the
        session stops timing it.
        """
        with self._lock:
            self._check_recording()
            self.registry.set_counter(name, value)
            self._managed.discard(name)

    def _check_standard(self, what: str) -> None:
        if not self.standard_metrics:
            raise RuntimeError(f"{what} needs the standard metrics (standard_metrics=True)")

    def sample_issued(self, *, isl: int | None = None) -> None:
        """Count one issued sample as the aggregator would (all and tracked); ``isl`` recorded."""
        self._check_standard("sample_issued")
        n_isl = None if isl is None else _non_negative_int("isl", isl)
        with self._lock:
            self._check_recording()
            reg = self.registry
            reg.increment("total_samples_issued", 1)
            reg.increment("tracked_samples_issued", 1)
            if n_isl is not None:
                reg.record("isl", n_isl)

    def sample_completed(
        self,
        latency_ns: int,
        *,
        ttft_ns: int | None = None,
        osl: int | None = None,
        finish_reason: str | None = None,
        failed: bool = False,
    ) -> None:
        """Count one completed sample and record its series, by the aggregator's rules.

        ``latency_ns`` issue → completion; ``ttft_ns`` issue → first token
        (streaming sessions); ``osl`` output tokens (added to
        ``tracked_output_tokens``); ``tpot_ns`` = (latency - ttft) / (osl - 1)
        when streaming, both known and osl > 1. ``failed`` also counts the
        failure (a failed sample still completes, as upstream counts it).
        ``finish_reason``: one of the known reasons, any other string counts as
        ``other``. All values are recorded now, at completion.
        """
        self._check_standard("sample_completed")
        latency = _non_negative_int("latency_ns", latency_ns)
        ttft = None if ttft_ns is None else _non_negative_int("ttft_ns", ttft_ns)
        n_out = None if osl is None else _non_negative_int("osl", osl)
        if ttft is not None and not self.streaming:
            raise ValueError("ttft_ns needs a streaming session (streaming=True)")
        if ttft is not None and ttft > latency:
            raise ValueError(f"ttft_ns ({ttft}) is after the completion (latency_ns {latency})")
        if finish_reason is not None and not isinstance(finish_reason, str):
            raise TypeError(f"finish_reason must be a str or None, got {finish_reason!r}")
        reason = None
        if finish_reason is not None:
            reason = finish_reason if finish_reason in FINISH_REASONS else "other"
        with self._lock:
            self._check_recording()
            reg = self.registry
            self._last_completion_ns = time.monotonic_ns()
            if failed:
                reg.increment("total_samples_failed", 1)
                reg.increment("tracked_samples_failed", 1)
            reg.increment("total_samples_completed", 1)
            reg.increment("tracked_samples_completed", 1)
            reg.record("sample_latency_ns", latency)
            if ttft is not None:
                reg.record("ttft_ns", ttft)
            if n_out is not None:
                reg.record("osl", n_out)
                reg.increment("tracked_output_tokens", n_out)
                if ttft is not None and n_out > 1:
                    reg.record("tpot_ns", (latency - ttft) / (n_out - 1))
            if reason is not None:
                reg.increment(f"tracked_finish_reason_{reason}", 1)

    def _refuse_late(self, name: str, value: Any = None) -> None:
        self._check_recording()

    # -- reading -----------------------------------------------------------------

    @property
    def state(self) -> SessionState:
        """INITIALIZE, LIVE while running, COMPLETE or INTERRUPTED once finished."""
        return self._state

    @property
    def publisher(self) -> MetricsPublisher | None:
        return self._publisher

    @property
    def snapshots_endpoint(self) -> str | None:
        """Where the snapshot stream is bound (``bench-metrics watch --connect`` it)."""
        return self._publisher.endpoint if self._publisher is not None else None

    @property
    def metrics_url(self) -> str | None:
        """``http://HOST:PORT/metrics`` (the real port) while the exporter serves, else None."""
        return self._exporter.metrics_url if self._exporter is not None else None

    # -- lifecycle (async; SyncMetricsSession runs these on its own loop) ---------

    async def _astart(self) -> None:
        if self._state is not SessionState.INITIALIZE or self._finish_task is not None:
            raise RuntimeError("the session was already started")
        self.output_dir.mkdir(parents=True, exist_ok=True)
        try:
            if self._lock_output_dir:
                self._run_lock = RunLock(self.output_dir, self.run_id).acquire()
                # the directory is this run's now: an earlier run's files must not mix in
                clear_previous_run(self.output_dir)
            publisher = MetricsPublisher(
                self.registry,
                endpoint=self.snapshots,
                final_snapshot_path=self.final_snapshot_path,
                interval_s=self.interval_s,
                run_info=self._run_info,
            )
            self._publisher = publisher
            if self._exporter is not None:
                # its own thread and loop (SessionExporter): see the module docstring
                self._exporter.start(self.registry, self._exporter_labels())
                publisher.add_listener(self._exporter.on_snapshot)
            publisher.add_listener(self._on_snapshot)  # after the mirror: it is current on wake
        except BaseException:
            self._release()
            raise
        self._start_ns = time.monotonic_ns()
        # every capture (live and final) sees durations as of that moment
        self.registry.add_capture_hook(self._refresh_durations)
        self._state = SessionState.LIVE
        publisher.start(self._runtime_state)
        log.info(
            "metrics session %s: snapshots on %s%s; final files in %s",
            self.run_id,
            publisher.endpoint,
            f", /metrics at {self.metrics_url}" if self.metrics_url else "",
            self.output_dir,
        )

    def _run_info(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "labels": dict(self.labels),
            "streaming": self.streaming,
            "tokenizer": None,
            "recorder": "in-process",
        }

    def _refresh_durations(self) -> None:
        # A capture hook. The session is one tracking window from start; it ends at the
        # latest sample_completed (upstream's window ends at the latest completion) or now.
        if not self._managed:
            return
        now = time.monotonic_ns()
        with self._lock:
            elapsed = now - self._start_ns
            if "total_duration_ns" in self._managed:
                self.registry.set_counter("total_duration_ns", elapsed)
            if "tracked_duration_ns" in self._managed:
                last = self._last_completion_ns
                tracked = elapsed if last is None else last - self._start_ns
                self.registry.set_counter("tracked_duration_ns", tracked)

    def _runtime_state(self) -> tuple[SessionState, int]:
        return self._state, 0  # nothing is ever pending: no tokenizer in-process

    def _on_snapshot(self, snap: MetricsSnapshot) -> None:
        waiting = []
        for after_ns, fut in self._waiters:
            if fut.done():
                continue
            if snap.timestamp_ns > after_ns or snap.is_terminal:
                fut.set_result(snap)
            else:
                waiting.append((after_ns, fut))
        self._waiters = waiting

    async def _snapshot_after(self, after_ns: int, timeout: float) -> MetricsSnapshot:
        if self._publisher is None:
            raise RuntimeError("the session is not started")
        final = self.final_snapshot
        if final is not None:
            return final
        fut: asyncio.Future[MetricsSnapshot] = asyncio.get_running_loop().create_future()
        self._waiters.append((after_ns, fut))
        return await asyncio.wait_for(fut, timeout)

    async def _afinish(self, interrupted: bool) -> dict[str, Any]:
        if self._finish_task is None:
            if self._state is SessionState.INITIALIZE:
                raise RuntimeError("finish() before start()")
            self._finish_task = asyncio.get_running_loop().create_task(
                self._finish(interrupted), name="metrics-session-finish"
            )
        # shielded: cancelling the caller (a second Ctrl-C) must not cut the final files short
        return await asyncio.shield(self._finish_task)

    async def _finish(self, interrupted: bool) -> dict[str, Any]:
        publisher = self._publisher
        assert publisher is not None
        try:
            with self._lock:
                self._finished = True
            self.record = self.record_many = self._refuse_late
            self.report = await end_run(
                publisher,
                report_path=self.report_path,
                unwritten_files=self.unwritten_files,
                n_pending_tasks=0,  # nothing is ever pending: no tokenizer in-process
                interrupted=interrupted,
                run_id=self.run_id,
                labels=self.labels,
                on_final_snapshot=self._on_final_snapshot,
                # no stores in-process (no raw store, no samples.parquet); and a library
                # inside the benchmark's process stays quiet: unwritten files are logged below
                stores=None,
                log=None,
            )
            if self._exporter is not None:
                # push once (if asked); linger only after a complete run, not on the way out
                # of an exception
                await self._exporter.finish(interrupted=interrupted)
        finally:
            await publisher.aclose()
            if self._exporter is not None:
                await self._exporter.stop()
            self._release()
        if self.unwritten_files:
            log.error(
                "final files NOT written: %s",
                "; ".join(f"{name} ({why})" for name, why in self.unwritten_files.items()),
            )
        return self.report

    def _on_final_snapshot(self, snap: MetricsSnapshot) -> None:
        self._state = snap.state
        # set now: the publisher has already handed it to _on_snapshot's waiters, so a
        # later next_snapshot() must find it here
        self.final_snapshot = snap

    def _release(self) -> None:
        if self._publisher is not None and self._finish_task is None:
            self._publisher.close()
        if self._exporter is not None:
            self._exporter.close()
        if self._run_lock is not None:
            self._run_lock.release()
            self._run_lock = None


class MetricsSession(_SessionCore):
    """bench-metrics in the benchmark's own event loop: ``async with MetricsSession(dir) as m``.

    ``output_dir`` receives ``final_snapshot.json`` and ``result_summary.json``.
    ``streaming`` registers TTFT, chunk gaps and TPOT too; ``standard_metrics``
    (default) registers the aggregator's catalogue. ``listen`` (``"HOST:PORT"``,
    port 0 for a free one) serves ``/metrics``, ``/healthz`` and ``/`` from a
    thread; ``pushgateway`` pushes the final values once; ``linger_s`` keeps
    serving them after a complete run. ``snapshots`` is the stream's endpoint.
    The rest is :class:`MetricsRegistry`'s and the final files' run block.
    Bad arguments raise ``ValueError`` here, before anything is bound.
    """

    async def start(self) -> None:
        """Lock the output directory, bind the stream (and exporter), start ticking."""
        await self._astart()

    async def finish(self, *, interrupted: bool = False) -> dict[str, Any]:
        """Write the final snapshot (COMPLETE, or INTERRUPTED) and the Report; return it.

        Then push / linger (exporter) and release everything. Idempotent.
        """
        return await self._afinish(interrupted)

    async def next_snapshot(self, timeout: float = 10.0) -> MetricsSnapshot:
        """The first snapshot captured after this call (the final one if it comes first).

        Once it returns, the exporter serves that snapshot too (``TimeoutError``
        after ``timeout`` seconds).
        """
        return await self._snapshot_after(time.monotonic_ns(), timeout)

    async def __aenter__(self) -> MetricsSession:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.finish(interrupted=exc_type is not None)

    def __enter__(self) -> None:
        raise TypeError("MetricsSession is asynchronous: use 'async with', or SyncMetricsSession")

    def __exit__(self, *exc: object) -> None:  # pragma: no cover - __enter__ always raises
        return None


class SyncMetricsSession(_SessionCore):
    """bench-metrics for plain (threaded) code: ``with SyncMetricsSession(dir) as m``.

    The same arguments and recording methods as :class:`MetricsSession`; the
    publisher runs on an event loop of its own in a daemon thread, so recording
    threads never wait for it. Live snapshots are captured on that thread while
    yours record: one may show a counter a value ahead of its series; the final
    snapshot holds everything recorded before :meth:`finish`.
    """

    def __init__(self, output_dir: str | Path, **kwargs: Any) -> None:
        super().__init__(output_dir, **kwargs)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float | None) -> T:
        loop = self._loop
        if loop is None:
            coro.close()
            raise RuntimeError("the session is not started")
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout)

    def start(self, timeout: float = 30.0) -> None:
        """Start the session's thread, then as :meth:`MetricsSession.start`."""
        if self._loop is not None:
            raise RuntimeError("the session was already started")
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(
            target=loop.run_forever, name="metrics-session", daemon=True
        )
        self._thread.start()
        try:
            self._call(self._astart(), timeout)
        except BaseException:
            self._stop_thread()
            raise

    def finish(self, *, interrupted: bool = False) -> dict[str, Any]:
        """As :meth:`MetricsSession.finish`, then stop the session's thread."""
        if self._loop is None:
            if self.report is not None:
                return self.report
            raise RuntimeError("finish() before start()")
        try:
            return self._call(self._afinish(interrupted), None)
        finally:
            self._stop_thread()

    def next_snapshot(self, timeout: float = 10.0) -> MetricsSnapshot:
        """As :meth:`MetricsSession.next_snapshot`, blocking."""
        after = time.monotonic_ns()
        return self._call(self._snapshot_after(after, timeout), timeout + 1.0)

    def _stop_thread(self) -> None:
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        if loop is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(10.0)
        if not loop.is_running():
            loop.close()

    def __enter__(self) -> SyncMetricsSession:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.finish(interrupted=exc_type is not None)

    async def __aenter__(self) -> None:
        raise TypeError("SyncMetricsSession is for plain code: use 'with', or MetricsSession")

    async def __aexit__(self, *exc: object) -> None:  # pragma: no cover - __aenter__ raises
        return None
