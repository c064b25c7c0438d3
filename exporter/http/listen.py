"""Listen addresses: ``HOST:PORT`` parsed and bound, before any server exists.

The command line checks ``--listen`` while it parses, and a command binds
its socket before its run starts so that a taken port fails at once with a
clear message. Both need only the socket module; this module is kept apart
from :mod:`exporter.http.server` so that neither pays for importing aiohttp.
It never serves anything.
"""

from __future__ import annotations

import socket

__all__ = ["DEFAULT_HOST", "bind_socket", "parse_listen"]

DEFAULT_HOST = "127.0.0.1"


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
