"""Limits that keep any client from holding the exporter's HTTP server (issue 13, item 7).

aiohttp bounds a request line and header fields (``max_line_size``,
``max_field_size``, ``max_headers``), closes idle keep-alive connections
(``keepalive_timeout``, a timer that also runs from the moment a connection is
accepted), stops parsing a pipelining client after a few dozen queued requests,
and can cancel a handler whose client left (``handler_cancellation``). It has
no cap on connections and no deadline for a request head that trickles in byte
by byte (its keep-alive timer only fires when no data at all is pending). This
module adds those two:

* :class:`ConnectionGuard` is the protocol factory given to the listening
  socket. Each accepted connection gets a :class:`GuardedConnection`, a thin
  protocol in front of aiohttp's own (every asyncio callback is passed on).
  Beyond ``max_connections`` a connection gets ``503`` and is closed at once,
  before aiohttp sees it.
* A request head must be complete within ``head_timeout_s`` of the connection
  being accepted, or of its first byte after a previous request: slowloris
  connections are closed.
* A connection whose client stops reading (the transport's buffer stays above
  its high-water mark, so asyncio paused writing) is closed after
  ``send_timeout_s``: a pipelining client that never reads cannot pin
  responses in memory. Small responses sit in the kernel's socket buffer and
  never get here.

The server's middleware tells the connection when a request starts and ends
(:meth:`GuardedConnection.request_started`), which also counts requests per
connection for the keep-alive limit. :class:`ServerLimits` holds every
number, aiohttp's included, so that one object says how the server is bounded.

This module never reads or logs request contents; it only counts bytes'
arrival and connections.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from exporter.http.request_log import RequestLog

__all__ = ["ConnectionGuard", "GuardedConnection", "ServerLimits"]


@dataclass(frozen=True)
class ServerLimits:
    """How the exporter's HTTP server is bounded (defaults suit a few Prometheus scrapers)."""

    #: open connections served at once; more get 503 and are closed (node_exporter's
    #: --web.max-requests defaults to 40 parallel scrapes; each admitted connection
    #: shares the server with the others, so the cap also bounds a scrape's wait)
    max_connections: int = 40
    #: seconds from accept (or from the first byte of a later request) to a complete head
    head_timeout_s: float = 10.0
    #: seconds an idle keep-alive connection is kept (aiohttp's ``keepalive_timeout``)
    keepalive_timeout_s: float = 30.0
    #: requests served on one connection before it is closed (``Connection: close``)
    max_requests_per_connection: int = 1000
    #: seconds a connection may stay write-blocked (its client not reading) before it is closed
    send_timeout_s: float = 10.0
    #: seconds a TLS handshake may take (asyncio's ``ssl_handshake_timeout``)
    tls_handshake_timeout_s: float = 10.0
    # aiohttp's own parser bounds (its defaults, except fewer headers: scrapers send few)
    max_line_size: int = 8190
    max_field_size: int = 8190
    max_headers: int = 64

    def __post_init__(self) -> None:
        for name in ("max_connections", "max_requests_per_connection", "max_headers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        for name in (
            "head_timeout_s",
            "keepalive_timeout_s",
            "send_timeout_s",
            "tls_handshake_timeout_s",
        ):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0")

    def aiohttp_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``web.AppRunner`` (passed on to aiohttp's request handler)."""
        return {
            "keepalive_timeout": self.keepalive_timeout_s,
            "max_line_size": self.max_line_size,
            "max_field_size": self.max_field_size,
            "max_headers": self.max_headers,
            # Bodies are refused unread (the server has no endpoint that takes one): close
            # at once instead of draining what the client still sends for 10 s.
            "lingering_time": 0,
            "handler_cancellation": True,
        }


_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: 21\r\n"
    b"Retry-After: 1\r\n"
    b"Connection: close\r\n"
    b"\r\n"
    b"too many connections\n"
)
# A refused client gets this long to read the 503 before the socket is torn down.
_REFUSED_GRACE_S = 1.0


class ConnectionGuard:
    """Protocol factory for ``loop.create_server``: caps connections, times request heads.

    ``make_protocol`` builds the real (aiohttp) protocol of an admitted connection.
    """

    def __init__(
        self,
        make_protocol: Callable[[], asyncio.Protocol],
        limits: ServerLimits,
        log: RequestLog,
    ) -> None:
        self._make_protocol = make_protocol
        self.limits = limits
        self.log = log
        self._open: set[GuardedConnection] = set()
        #: connections refused at the cap so far
        self.refused = 0
        #: connections closed because their request head was not complete in time
        self.timed_out = 0
        #: connections closed because their client stopped reading
        self.send_timed_out = 0

    def __call__(self) -> GuardedConnection:
        return GuardedConnection(self)

    @property
    def open_connections(self) -> int:
        """Admitted connections not yet closed."""
        return len(self._open)

    def _admit(self, conn: GuardedConnection) -> bool:
        if len(self._open) >= self.limits.max_connections:
            self.refused += 1
            self.log.report(
                "connection-cap",
                f"refused a connection{conn.peer_text()}: {len(self._open)} connections are "
                f"open, the most served at once (answered 503)",
            )
            return False
        self._open.add(conn)
        return True

    def _closed(self, conn: GuardedConnection) -> None:
        self._open.discard(conn)

    def close_all(self) -> None:
        """Close every connection (the server is stopping)."""
        for conn in list(self._open):
            conn.abort()


class GuardedConnection(asyncio.Protocol):
    """One connection: refused at the cap, or passed on to aiohttp's protocol, timed."""

    def __init__(self, guard: ConnectionGuard) -> None:
        self._guard = guard
        self._inner: asyncio.Protocol | None = None
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._send_timer: asyncio.TimerHandle | None = None
        self._in_request = False
        #: requests started on this connection
        self.requests = 0

    # -- asyncio's protocol callbacks ---------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        if not self._guard._admit(self):
            self._refuse(transport)
            return
        self._inner = self._guard._make_protocol()
        self._arm_head_timer()
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        inner = self._inner
        if inner is None:
            return  # refused: whatever the client still sends is dropped
        if self._timer is None and not self._in_request:
            self._arm_head_timer()  # the first byte of a new request head
        inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._send_timer is not None:
            self._send_timer.cancel()
            self._send_timer = None
        self._guard._closed(self)
        inner, self._inner = self._inner, None
        self._transport = None
        if inner is not None:
            inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._send_timer is None:
            loop = asyncio.get_running_loop()
            self._send_timer = loop.call_later(
                self._guard.limits.send_timeout_s, self._send_timed_out
            )
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._send_timer is not None:
            self._send_timer.cancel()
            self._send_timer = None
        if self._inner is not None:
            self._inner.resume_writing()

    # -- what the server's middleware tells us ------------------------------------------

    def request_started(self) -> int:
        """A request head was parsed: its deadline is met. Returns the request's number."""
        self._disarm()
        self._in_request = True
        self.requests += 1
        return self.requests

    def request_finished(self) -> None:
        """The handler returned; the next byte that arrives starts the next head's deadline."""
        self._in_request = False

    # -- helpers ---------------------------------------------------------------------------

    def peer_text(self) -> str:
        transport = self._transport
        peer = transport.get_extra_info("peername") if transport is not None else None
        if isinstance(peer, tuple) and peer:
            return f" from {peer[0]}"
        return ""

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def _arm_head_timer(self) -> None:
        self._disarm()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self._guard.limits.head_timeout_s, self._head_timed_out)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _head_timed_out(self) -> None:
        self._timer = None
        if self._in_request or self._transport is None:
            return
        self._guard.timed_out += 1
        self._guard.log.report(
            "head-timeout",
            f"closed a connection{self.peer_text()}: no complete request head within "
            f"{self._guard.limits.head_timeout_s:g} s (a slow or stalled client)",
        )
        self._transport.abort()

    def _send_timed_out(self) -> None:
        self._send_timer = None
        if self._transport is None:
            return
        self._guard.send_timed_out += 1
        self._guard.log.report(
            "send-timeout",
            f"closed a connection{self.peer_text()}: its client read nothing for "
            f"{self._guard.limits.send_timeout_s:g} s while responses waited",
        )
        self._transport.abort()

    def _refuse(self, transport: asyncio.Transport) -> None:
        try:
            transport.write(_BUSY)
            if transport.can_write_eof():
                transport.write_eof()
        except OSError:  # the client is already gone
            transport.abort()
            return
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(_REFUSED_GRACE_S, transport.abort)
