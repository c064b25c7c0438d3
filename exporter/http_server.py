"""The exporter's HTTP endpoint: ``/metrics``, ``/healthz`` and a landing page at ``/``.

aiohttp serves; ``prometheus_client.aiohttp.make_aiohttp_handler`` renders
``/metrics`` with content negotiation (text 0.0.4 / OpenMetrics 1.0) and aiohttp
compresses when the scraper asks for gzip. TLS is an ``ssl.SSLContext`` given
to the site, basic auth a middleware (both from :mod:`exporter.web_config`).

Note: ``make_aiohttp_handler`` renders on the event loop thread (it calls the
collectors synchronously): 2-3 ms for the demo's metric set (bench/exporter.py).
On the loop of a busy service that is cheaper than a server thread contending
for the GIL; :class:`MetricsServerThread` gives sync callers a loop of their own.

The server binds 127.0.0.1 unless told otherwise. It never changes what it
serves: it only renders the collectors of the registry it was given.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import logging
import socket
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import hdrs, web
from prometheus_client.aiohttp import make_aiohttp_handler
from prometheus_client.registry import Collector

from exporter.web_config import WebConfig

__all__ = ["DEFAULT_HOST", "MetricsServer", "MetricsServerThread", "bind_socket", "parse_listen"]

logger = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"

HealthFn = Callable[[], dict[str, Any]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def parse_listen(value: str, *, default_port: int | None = None) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6; empty host = 127.0.0.1) → ``(host, port)``.

    ``ValueError`` with a one-line reason for anything else.
    """
    text = value.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"invalid listen address {value!r}: expected [IPV6]:PORT")
        port_text = rest[1:]
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep:
            host, port_text = text, ""
        if ":" in host:
            raise ValueError(f"invalid listen address {value!r}: write IPv6 hosts as [HOST]:PORT")
    if not port_text:
        if default_port is None:
            raise ValueError(f"invalid listen address {value!r}: expected HOST:PORT")
        port = default_port
    else:
        try:
            port = int(port_text)
        except ValueError:
            raise ValueError(f"invalid listen address {value!r}: port is not a number") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"invalid listen address {value!r}: port must be in 0..65535")
    return host or DEFAULT_HOST, port


def bind_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``(host, port)`` (``OSError`` when it cannot be bound).

    Binding before the event loop runs lets a command fail with a clear message
    before its run starts; :class:`MetricsServer` then serves on the socket.
    """
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, addr = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
    except OSError:
        sock.close()
        raise
    return sock


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


class MetricsServer:
    """An aiohttp server over one ``prometheus_client`` registry (or collector).

    ``port`` 0 picks a free port; after :meth:`start`, :attr:`port` and :attr:`url`
    tell the bound one. ``health`` supplies the ``/healthz`` body (and details on
    the landing page). ``sock``: serve on this already bound socket (see
    :func:`bind_socket`) instead of binding ``host``/``port`` in :meth:`start`.
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
    ) -> None:
        self.registry = registry
        self._sock = sock
        self.host = host
        self._requested_port = port
        self.web_config = web_config or WebConfig()
        self._health = health
        self._title = title
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    # -- app ----------------------------------------------------------------------

    def _make_app(self) -> web.Application:
        middlewares = []
        auth = self.web_config.auth
        if auth is not None:

            @web.middleware
            async def basic_auth(
                request: web.Request,
                handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
            ) -> web.StreamResponse:
                if await auth.check(request.headers.get(hdrs.AUTHORIZATION)):
                    return await handler(request)
                return web.Response(
                    status=401,
                    text="401 Unauthorized\n",
                    headers={hdrs.WWW_AUTHENTICATE: 'Basic realm="bench-metrics"'},
                )

            middlewares.append(basic_auth)
        app = web.Application(middlewares=middlewares)
        app.router.add_get("/metrics", make_aiohttp_handler(self.registry))
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/", self._landing)
        return app

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
        """Bind and serve (``OSError`` when the address cannot be bound)."""
        if self._runner is not None:
            raise RuntimeError("MetricsServer already started")
        runner = web.AppRunner(self._make_app(), access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        site: web.BaseSite
        if self._sock is not None:
            site = web.SockSite(runner, self._sock, ssl_context=self.web_config.ssl_context)
        else:
            site = web.TCPSite(
                runner, self.host, self._requested_port, ssl_context=self.web_config.ssl_context
            )
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = int(runner.addresses[0][1])
        logger.info("serving /metrics at %s", self.url)

    async def stop(self) -> None:
        """Stop serving (open connections are closed)."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
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

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def url(self) -> str:
        return self.server.url
