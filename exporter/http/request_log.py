"""What the HTTP server says about bad requests: one line per kind, rate-limited, no secrets.

aiohttp logs every malformed request as an ERROR with a traceback, and the
message of a parse error quotes up to 100 bytes of the offending line: for an
oversized ``Authorization`` header, the user name and the start of the
password. :class:`RequestLog` stands in for aiohttp's server logger (it has the
methods aiohttp calls) and turns each report into at most one WARNING line per
kind and interval, naming the kind (the exception's class), the peer address
and how many more of that kind were seen, and never the exception's message,
a header, or a traceback. The server's own checks (connection cap, slow
clients, bodies, refused credentials) report through :meth:`RequestLog.report`.

This module must never log request contents: no headers, no bodies, no
exception messages of request parsing.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from aiohttp.http_exceptions import HttpProcessingError

__all__ = ["DEFAULT_REPORT_INTERVAL_S", "RequestLog"]

#: At most one line per kind per this many seconds (the first one at once).
DEFAULT_REPORT_INTERVAL_S = 60.0


class _Kind:
    __slots__ = ("last", "suppressed")

    def __init__(self) -> None:
        self.last = -float("inf")
        self.suppressed = 0


class RequestLog:
    """Rate-limited, content-free logging of bad requests (see the module docstring).

    ``counts`` holds how many reports of each kind arrived, logged or not.
    """

    def __init__(
        self,
        logger: logging.Logger | None = None,
        *,
        interval_s: float = DEFAULT_REPORT_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger or logging.getLogger("exporter.http.server.requests")
        self.interval_s = float(interval_s)
        self._clock = clock
        self._kinds: dict[str, _Kind] = {}
        self._lock = threading.Lock()
        self.counts: dict[str, int] = {}

    def report(self, kind: str, text: str, *, level: int = logging.WARNING) -> bool:
        """Log ``text`` for ``kind`` unless that kind was logged within the interval.

        ``text`` must not hold request contents. Returns whether a line was written.
        """
        now = self._clock()
        with self._lock:
            self.counts[kind] = self.counts.get(kind, 0) + 1
            state = self._kinds.get(kind)
            if state is None:
                if len(self._kinds) >= 256:  # kinds come from a closed set; stay bounded anyway
                    self._kinds.clear()
                state = self._kinds[kind] = _Kind()
            if now - state.last < self.interval_s:
                state.suppressed += 1
                return False
            suppressed, state.suppressed, state.last = state.suppressed, 0, now
        more = f" ({suppressed} more since the last report)" if suppressed else ""
        self.logger.log(level, "%s%s", text, more)
        return True

    # -- the interface aiohttp's RequestHandler uses as its ``logger`` ----------------------

    def exception(self, msg: str, *args: Any, exc_info: Any = None, **_: Any) -> None:
        exc = _exception_of(exc_info)
        peer = args[0] if msg.startswith("Error handling request from") and args else None
        if _is_parse_error(exc):
            kind = type(exc).__name__ if exc is not None else "malformed request"
            self.report(
                f"malformed:{kind}",
                f"malformed HTTP request{_from(peer)} answered 400 and closed ({kind})",
            )
            return
        # A failure of our own handler (a bug): still one line, with the class only; the
        # traceback goes to DEBUG on the parent logger, never parse errors (they quote headers).
        kind = type(exc).__name__ if exc is not None else "error"
        self.report(
            f"handler:{kind}",
            f"request{_from(peer)} failed with {kind}; answered 500",
            level=logging.ERROR,
        )
        if exc is not None:
            logging.getLogger("exporter.http.server").debug(
                "traceback of the failed request", exc_info=exc
            )

    def error(self, msg: str, *args: Any, **kw: Any) -> None:
        self.exception(msg, *args, **kw)

    def warning(self, msg: str, *args: Any, **_: Any) -> None:
        # aiohttp warns here only about its own configuration, never about a request.
        self.report(f"aiohttp:{msg[:40]}", "aiohttp: " + (msg % args if args else msg))

    def info(self, msg: str, *args: Any, **_: Any) -> None:
        pass

    def debug(self, msg: str, *args: Any, exc_info: Any = None, **_: Any) -> None:
        # aiohttp logs non-HTTP bytes on a fresh connection (a bad method) at DEBUG: still a
        # malformed request, reported like the others; its other debug lines are dropped.
        if _is_parse_error(_exception_of(exc_info)):
            self.exception(msg, *args, exc_info=exc_info)

    def isEnabledFor(self, level: int) -> bool:
        return level >= logging.WARNING and self.logger.isEnabledFor(level)


def _exception_of(exc_info: Any) -> BaseException | None:
    if isinstance(exc_info, BaseException):
        return exc_info
    if isinstance(exc_info, tuple) and len(exc_info) == 3:
        return exc_info[1] if isinstance(exc_info[1], BaseException) else None
    if exc_info:
        return sys.exc_info()[1]
    return None


def _is_parse_error(exc: BaseException | None) -> bool:
    return isinstance(exc, HttpProcessingError)


def _from(peer: object) -> str:
    return f" from {peer}" if isinstance(peer, str) and peer else ""
