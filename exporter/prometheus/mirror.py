"""The Prometheus mirror of one run: collector + HTTP server + end-of-run linger and push.

Shared by every command that serves ``/metrics`` (``export``, and ``aggregate`` /
``demo`` through ``--listen``): their options come from
:mod:`exporter.cli.mirror_args`, and :class:`PrometheusMirror` runs the mirror on
the caller's event loop.

In-process use with an aggregator service: :func:`mirror_service` (the server
runs on its own thread and loop, so a scrape never runs on the aggregator's
loop, and a bad address fails before the run starts). By hand::

    mirror = PrometheusMirror(options, labels={"run_id": run_id, **labels},
                              gauges=settable_counter_names(registry))
    await mirror.start()                          # or mirror.start_in_thread()
    publisher.add_listener(mirror.on_snapshot)    # every tick, live and terminal
    ...
    await mirror.finish(stop_event)   # push once, then serve the final values for --linger S
    await mirror.stop()                           # or mirror.close()

In-process use with a :class:`registry.MetricsSession` (``listen=`` /
``pushgateway=``): :class:`SessionMirror`, which the session finds through the
``bench_metrics.session_exporter`` entry point (pyproject.toml), so that
``registry`` never imports the exporter.

The mirror only reflects snapshots; it never decides a number, and a failing
push or scrape never stops the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from exporter.cli.errors import UsageError
from exporter.cli.mirror_args import ExporterOptions
from exporter.http.listen import bind_socket, parse_listen
from exporter.http.server import MetricsServer, MetricsServerThread
from exporter.http.web_config import WebConfig
from exporter.prometheus.collector import DEFAULT_STALE_AFTER, SnapshotCollector, collector_registry
from exporter.prometheus.pushgateway import DEFAULT_PUSH_JOB, push_final_async
from registry.core.metrics_registry import MetricsRegistry
from registry.delivery.snapshot import MetricsSnapshot

if TYPE_CHECKING:
    from registry.aggregator import AggregatorService
    from registry.session_api import ExporterRequest, SessionExporterFactory

__all__ = ["PrometheusMirror", "SessionMirror", "mirror_service", "settable_counter_names"]

logger = logging.getLogger(__name__)


def settable_counter_names(registry: MetricsRegistry) -> list[str]:
    """The registry's settable counters: exported as gauges."""
    return [n for n in registry.counter_names if registry.counter_info(n).settable]


class PrometheusMirror:
    """A collector, its HTTP server (when ``options.listen``) and the end-of-run duties.

    Construction checks the labels (``UsageError`` naming a bad one).
    ``run_id_from_stream``: without a ``run_id`` label, serve each snapshot under
    the run id it carries (the bridge); see :class:`SnapshotCollector`.
    """

    def __init__(
        self,
        options: ExporterOptions,
        *,
        labels: Mapping[str, str],
        gauges: Sequence[str] = (),
        run_id_from_stream: bool = False,
    ) -> None:
        self.options = options
        try:
            self.collector = SnapshotCollector(
                options.namespace,
                labels,
                gauges=gauges,
                stale_after=options.stale_after,
                buckets=options.buckets,
                run_id_from_stream=run_id_from_stream,
            )
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        self.registry = collector_registry(self.collector)
        self.server: MetricsServer | None = None
        self.pushed: bool | None = None
        self._thread: MetricsServerThread | None = None

    @property
    def url(self) -> str | None:
        return self.server.url if self.server is not None else None

    @property
    def server_thread(self) -> MetricsServerThread | None:
        """The thread serving ``/metrics``, when :meth:`start_in_thread` started one."""
        return self._thread

    def bind(self) -> None:
        """Bind the listening socket now, before any loop runs (``UsageError`` if it cannot).

        Without ``--listen`` this does nothing. Idempotent.
        """
        if self.options.listen is None or self.server is not None:
            return
        host, port = self.options.listen
        try:
            sock = bind_socket(host, port)
        except OSError as exc:
            raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        self.server = MetricsServer(
            self.registry,
            host,
            port,
            self.options.web_config,
            health=self.collector.health,
            sock=sock,
            generation=lambda: self.collector.generation,
        )

    async def start(self) -> None:
        """Bind (unless :meth:`bind` did) and serve on the running loop."""
        self.bind()
        if self.server is not None:
            await self.server.start()

    def start_in_thread(self) -> None:
        """Bind now and serve from a thread with its own loop (``UsageError`` if it cannot)."""
        self.bind()
        if self.server is None:
            return
        self._thread = MetricsServerThread(self.server)
        self._thread.start()

    def close(self) -> None:
        """Stop a server started by :meth:`start_in_thread`; close a socket never served on."""
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.stop()
        elif self.server is not None:
            self.server.discard()

    def on_snapshot(self, snapshot: MetricsSnapshot) -> None:
        """A publisher listener: serve ``snapshot`` from now on."""
        self.collector.update(snapshot)

    async def finish(self, stop: asyncio.Event | None = None) -> None:
        """End of run: push once (if asked), then keep serving for ``linger`` seconds.

        Returns early when ``stop`` is set (a signal). Call it after the terminal
        snapshot reached :meth:`on_snapshot`.
        """
        snap = self.collector.snapshot
        if snap is None or not snap.is_terminal:
            logger.warning("ending without a final snapshot: nothing final to linger on or push")
        elif self.options.pushgateway:
            self.pushed = await push_final_async(
                self.options.pushgateway, self.collector, job=self.options.push_job
            )
        if self.server is None or self.options.linger <= 0:
            return
        logger.info(
            "serving the final values at %s/metrics for %g s", self.server.url, self.options.linger
        )
        waiter = stop.wait() if stop is not None else asyncio.sleep(self.options.linger)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(waiter, self.options.linger)

    async def stop(self) -> None:
        """Stop serving, whether on this loop or on a server thread."""
        if self._thread is not None:
            await asyncio.to_thread(self.close)
        elif self.server is not None:
            await self.server.stop()


def mirror_service(
    service: AggregatorService, options: ExporterOptions, *, own_thread: bool = True
) -> PrometheusMirror | None:
    """Mirror an aggregator service's snapshots (``None`` without --listen / --pushgateway).

    The socket is bound now (a bad address fails before the run). By default the
    server then runs on a thread with its own loop: in bench/exporter.py, 500
    concurrent scrapers stretched the worst gap between 0.5 s snapshot ticks to
    0.65 s that way, against 0.87 s with the server on the service's loop (medians
    of 3 runs each; 0.74 against 1.30 s on a busier machine); ``own_thread=False``
    serves from the service's loop instead. Every published snapshot reaches the
    collector; after the final files are written the mirror pushes once and
    lingers (SIGTERM / Ctrl-C cut the linger short), then stops. The caller calls
    :meth:`PrometheusMirror.close` when the service returns, whatever happened.
    """
    if options.listen is None and not options.pushgateway:
        return None
    labels = {**service.labels, "run_id": service.run_id or ""}  # last: no label replaces it
    mirror = PrometheusMirror(
        options, labels=labels, gauges=settable_counter_names(service.registry)
    )
    if own_thread:
        mirror.start_in_thread()
    else:
        mirror.bind()
        service.add_start_hook(mirror.start)
    if mirror.url is not None:
        service.metrics_url = mirror.url + "/metrics"  # said on the stream (the real port)
    service.add_listener(mirror.on_snapshot)

    async def finish() -> None:
        stop = asyncio.Event()
        if threading.current_thread() is threading.main_thread():
            # Replaces the service's handlers for the linger; it removes them when it returns.
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
        try:
            await mirror.finish(stop)
        finally:
            await mirror.stop()

    service.add_stop_hook(finish)
    return mirror


class SessionMirror:
    """The Prometheus mirror of a :class:`registry.MetricsSession` (its exporter hook).

    The session calls this class (the ``prometheus`` entry point of the
    ``bench_metrics.session_exporter`` group) when ``listen`` or ``pushgateway``
    is given. Construction checks the arguments and binds nothing (``ValueError``
    for a bad address, an empty Pushgateway URL or a bad label); :meth:`start`
    binds and serves from a thread with its own loop, so a scrape never runs on
    the benchmark's loop, and a blocking scrape from that loop is answered
    (``OSError`` when the address cannot be bound).
    """

    def __init__(self, request: ExporterRequest) -> None:
        listen = request.listen
        self._address = parse_listen(listen, default_port=0) if listen is not None else None
        if request.pushgateway is not None and not request.pushgateway.strip():
            raise ValueError("pushgateway: empty URL")
        # ValueError naming a bad label or namespace (labels: the run's, run_id included)
        SnapshotCollector(request.namespace, request.labels)
        self._request = request
        self._mirror: PrometheusMirror | None = None

    @property
    def metrics_url(self) -> str | None:
        """``http://HOST:PORT/metrics`` (the real port) while serving, else None."""
        mirror = self._mirror
        if mirror is None or mirror.url is None:
            return None
        return mirror.url + "/metrics"

    def start(self, registry: MetricsRegistry, labels: Mapping[str, str]) -> None:
        """Bind and serve; the registry's catalogue is final now (its settable counters
        are gauges), and ``labels`` are the run's (``run_id`` included)."""
        request = self._request
        options = ExporterOptions(
            listen=self._address,
            web_config=WebConfig(),
            linger=request.linger_s,
            pushgateway=request.pushgateway,
            push_job=DEFAULT_PUSH_JOB,
            namespace=request.namespace,
            stale_after=max(DEFAULT_STALE_AFTER, 4 * request.interval_s),
        )
        mirror = PrometheusMirror(options, labels=labels, gauges=settable_counter_names(registry))
        try:
            mirror.start_in_thread()
        except UsageError as exc:  # the command line's error type; here it is a bind failure
            raise OSError(str(exc)) from None
        self._mirror = mirror

    def on_snapshot(self, snapshot: MetricsSnapshot) -> None:
        """A publisher listener: serve ``snapshot`` from now on."""
        if self._mirror is not None:
            self._mirror.on_snapshot(snapshot)

    async def finish(self, *, interrupted: bool) -> None:
        """Push once (if asked); linger only after a complete run, not on the way out
        of an exception."""
        if self._mirror is None:
            return
        stop = asyncio.Event()
        if interrupted:
            stop.set()
        await self._mirror.finish(stop)

    async def stop(self) -> None:
        if self._mirror is not None:
            await self._mirror.stop()

    def close(self) -> None:
        if self._mirror is not None:
            self._mirror.close()


if TYPE_CHECKING:  # mypy holds SessionMirror to the hook's contract
    _SESSION_HOOK: SessionExporterFactory = SessionMirror
