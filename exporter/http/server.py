"""The exporter's HTTP endpoint: ``/metrics``, ``/healthz`` and a landing page at ``/``.

aiohttp serves. ``/metrics`` keeps the semantics of
``prometheus_client.aiohttp.make_aiohttp_handler`` (content negotiation between
text 0.0.4 and OpenMetrics 1.0, ``name[]`` filters, gzip/deflate as aiohttp
negotiates them) but renders each variant once per snapshot
(:mod:`exporter.prometheus.exposition_cache`) and serves the same bytes to every
scraper. TLS is an ``ssl.SSLContext`` given to the listening socket, basic
auth a middleware (both from :mod:`exporter.http.web_config`).

No client can hold the server or the run (:mod:`exporter.http.limits`): a
connection cap, a deadline for request heads, aiohttp's bounds on lines,
fields, headers and pipelining, an idle keep-alive timeout, a request limit
per connection, bodies refused unread, and connections closed whose client
stops reading. Bad requests are logged as one WARNING line per kind,
rate-limited, without tracebacks or header contents (:mod:`exporter.http.request_log`);
aiohttp's access log is off.

The server binds 127.0.0.1 unless told otherwise. It never changes what it
serves: it only renders the collectors of the registry it was given.
:class:`MetricsServerThread` runs it on its own loop in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import logging
import socket
import ssl
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import hdrs, web
from prometheus_client.registry import Collector

from exporter.http.limits import ConnectionGuard, GuardedConnection, ServerLimits
from exporter.http.listen import DEFAULT_HOST, bind_socket
from exporter.http.request_log import RequestLog
from exporter.http.web_config import WebConfig
from exporter.prometheus.exposition_cache import ExpositionCache

__all__ = ["MetricsServer", "MetricsServerThread", "ServerLimits"]

logger = logging.getLogger(__name__)

HealthFn = Callable[[], dict[str, Any]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


_LANDING = """<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title></head>
<body>
<h1>{title}</h1>
<p>Prometheus/OpenMetrics mirror of a bench-metrics snapshot stream.</p>
<ul>
<li><a href="metrics">/metrics</a> &mdash; the exposition (text 0.0.4 or OpenMetrics 1.0, gzip)</li>
<li><a href="healthz">/healthz</a> &mdash; JSON: is a fresh (or final) snapshot held</li>
</ul>
{details}
</body></html>
"""


class _GuardedSite(web.BaseSite):
    """A site on an already bound socket whose connections go through a :class:`ConnectionGuard`."""

    __slots__ = ("_factory", "_handshake_timeout", "_name", "_sock")

    def __init__(
        self,
        runner: web.BaseRunner,
        sock: socket.socket,
        factory: ConnectionGuard,
        *,
        ssl_context: ssl.SSLContext | None,
        handshake_timeout: float,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context)
        self._sock = sock
        self._factory = factory
        self._handshake_timeout = handshake_timeout
        host, port = sock.getsockname()[:2]
        self._name = f"{'https' if ssl_context else 'http'}://{host}:{port}"

    @property
    def name(self) -> str:
        return self._name

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._factory,
            sock=self._sock,
            ssl=self._ssl_context,
            backlog=self._backlog,
            ssl_handshake_timeout=self._handshake_timeout if self._ssl_context else None,
        )


class MetricsServer:
    """An aiohttp server over one ``prometheus_client`` registry (or collector).

    ``port`` 0 picks a free port; after :meth:`start`, :attr:`port` and :attr:`url`
    tell the bound one. ``health`` supplies the ``/healthz`` body (and details on
    the landing page). ``sock``: serve on this already bound socket (see
    :func:`bind_socket`) instead of binding ``host``/``port`` in :meth:`start`.
    ``generation`` returns a new value whenever the registry's data changed (the
    collector's ``generation``): renderings are reused until then, and for at most
    a second in any case. ``limits`` bound what a client can hold.
    """

    def __init__(
        self,
        registry: Collector,
        host: str = DEFAULT_HOST,
        port: int = 0,
        web_config: WebConfig | None = None,
        *,
        health: HealthFn | None = None,
        title: str = "bench-metrics exporter",
        sock: socket.socket | None = None,
        generation: Callable[[], object] | None = None,
        limits: ServerLimits | None = None,
        request_log: RequestLog | None = None,
    ) -> None:
        self.registry = registry
        self._sock = sock
        self.host = host
        self._requested_port = port
        self.web_config = web_config or WebConfig()
        self._health = health
        self._title = title
        self.limits = limits or ServerLimits()
        self.request_log = request_log or RequestLog()
        self.cache = ExpositionCache(registry, generation=generation)
        self.guard: ConnectionGuard | None = None
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    # -- app ----------------------------------------------------------------------

    def _make_app(self) -> web.Application:
        middlewares: list[Any] = [self._limits_middleware]
        auth = self.web_config.auth
        if auth is not None:

            @web.middleware
            async def basic_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
                try:
                    ok = await auth.check(request.headers.get(hdrs.AUTHORIZATION))
                except Exception as exc:  # a check that breaks is a refusal, never a 500
                    self.request_log.report(
                        f"auth-error:{type(exc).__name__}",
                        f"checking credentials failed with {type(exc).__name__}; answered 401",
                        level=logging.ERROR,
                    )
                    ok = False
                if ok:
                    return await handler(request)
                self.request_log.report(
                    "unauthorized",
                    f"refused a request without valid credentials from {request.remote} (401)",
                )
                return web.Response(
                    status=401,
                    text="401 Unauthorized\n",
                    headers={hdrs.WWW_AUTHENTICATE: 'Basic realm="bench-metrics"'},
                )

            middlewares.append(basic_auth)
        app = web.Application(middlewares=middlewares)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/", self._landing)
        return app

    @web.middleware
    async def _limits_middleware(
        self, request: web.Request, handler: Handler
    ) -> web.StreamResponse:
        transport = request.transport
        conn = transport.get_protocol() if transport is not None else None
        guarded = conn if isinstance(conn, GuardedConnection) else None
        number = guarded.request_started() if guarded is not None else 0
        try:
            if request.body_exists:
                # No endpoint takes a body; it is never read (aiohttp closes after the reply).
                self.request_log.report(
                    "body", f"refused a request with a body from {request.remote} (413)"
                )
                resp: web.StreamResponse = web.Response(
                    status=413, text="413 Payload Too Large: no endpoint takes a body\n"
                )
                resp.force_close()
                return resp
            resp = await handler(request)
        finally:
            if guarded is not None:
                guarded.request_finished()
        if number >= self.limits.max_requests_per_connection:
            resp.force_close()  # keep-alive limit: the client reconnects for the next one
        return resp

    async def _metrics(self, request: web.Request) -> web.Response:
        exposition = self.cache.get(
            ",".join(request.headers.getall(hdrs.ACCEPT, [])),
            request.headers.get(hdrs.ACCEPT_ENCODING, ""),
            request.query.getall("name[]", []),
        )
        headers = {hdrs.CONTENT_TYPE: exposition.content_type}
        if exposition.content_encoding is not None:
            headers[hdrs.CONTENT_ENCODING] = exposition.content_encoding
        return web.Response(body=exposition.body, headers=headers)

    async def _healthz(self, request: web.Request) -> web.Response:
        body: dict[str, Any] = {"status": "ok"}
        if self._health is not None:
            body.update(self._health())
        return web.json_response(body, dumps=lambda o: json.dumps(o, allow_nan=False))

    async def _landing(self, request: web.Request) -> web.Response:
        details = ""
        if self._health is not None:
            rows = "".join(
                f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                for k, v in self._health().items()
            )
            details = f"<table>{rows}</table>"
        page = _LANDING.format(title=html.escape(self._title), details=details)
        return web.Response(text=page, content_type="text/html")

    # -- lifecycle ----------------------------------------------------------------

    async def start(self) -> None:
        """Bind (unless given a socket) and serve (``OSError`` when it cannot be bound)."""
        if self._runner is not None:
            raise RuntimeError("MetricsServer already started")
        if self._sock is None:
            self._sock = bind_socket(self.host, self._requested_port)
        runner = web.AppRunner(
            self._make_app(),
            access_log=None,  # an access log line per scrape is noise, and names users
            shutdown_timeout=2.0,
            logger=self.request_log,
            **self.limits.aiohttp_kwargs(),
        )
        await runner.setup()
        assert runner.server is not None
        self.guard = ConnectionGuard(runner.server, self.limits, self.request_log)
        site = _GuardedSite(
            runner,
            self._sock,
            self.guard,
            ssl_context=self.web_config.ssl_context,
            handshake_timeout=self.limits.tls_handshake_timeout_s,
        )
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = int(self._sock.getsockname()[1])
        logger.info("serving /metrics at %s", self.url)

    async def stop(self) -> None:
        """Stop serving (open connections are closed)."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        if self.guard is not None:
            self.guard.close_all()
        if self._sock is not None:
            self._sock.close()

    def discard(self) -> None:
        """Close the pre-bound socket of a server that never started (idempotent)."""
        if self._runner is None and self._sock is not None:
            self._sock.close()

    @property
    def port(self) -> int:
        if self._port is None:
            if self._sock is not None and self._sock.fileno() >= 0:
                return int(self._sock.getsockname()[1])
            raise RuntimeError("MetricsServer is not started")
        return self._port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.web_config.scheme}://{host}:{self.port}"


class MetricsServerThread:
    """A :class:`MetricsServer` on its own event loop in a daemon thread, for sync callers.

    :meth:`start` returns once the port is bound (or raises what binding raised);
    :meth:`stop` closes the server and joins the thread.
    """

    def __init__(self, server: MetricsServer) -> None:
        self.server = server
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._stop: asyncio.Event | None = None

    def start(self, timeout: float = 10.0) -> None:
        self._thread = threading.Thread(target=self._run, name="metrics-http", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout):
            raise TimeoutError("the metrics server did not start in time")
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to start() when it happens before binding
            if not self._started.is_set():
                self._error = exc
                self._started.set()
            else:
                logger.exception("metrics server thread failed")

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        await self.server.start()
        self._started.set()
        try:
            await self._stop.wait()
        finally:
            await self.server.stop()

    def stop(self, timeout: float = 10.0) -> None:
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(stop.set)
        if self._thread is not None:
            self._thread.join(timeout)

    def cpu_time(self) -> float:
        """CPU seconds the server thread has used so far (0.0 before it runs)."""
        thread = self._thread
        if thread is None or thread.ident is None or not thread.is_alive():
            return 0.0
        return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def url(self) -> str:
        return self.server.url
