"""Checks a ZeroMQ endpoint string before a socket sees it.

Only full ``ipc://`` and ``tcp://`` endpoints are accepted, so a typo fails
with a message naming the endpoint instead of libzmq's bare ``EINVAL`` or,
worse, a connect that never completes (libzmq takes ``tcp://host:99999``
and then waits forever). A TCP port must be 1-65535; a socket that binds may
also ask for any free port (``0`` or ``*``). This module never opens a socket.
"""

from __future__ import annotations

__all__ = ["MAX_IPC_PATH_BYTES", "check_endpoint"]

_SCHEMES = ("ipc://", "tcp://")

#: The longest ipc:// path a Unix socket address holds (``sun_path`` is 108 bytes with its NUL).
MAX_IPC_PATH_BYTES = 107


def check_endpoint(endpoint: str, *, bind: bool = False) -> str:
    """``endpoint`` unchanged, or ``ValueError`` saying what is wrong with it.

    ``bind``: the endpoint is bound, not connected to, so a TCP port of ``0``
    or ``*`` (any free port) is fine too.
    """
    if not isinstance(endpoint, str):
        raise ValueError(f"endpoint must be a str like 'tcp://127.0.0.1:5557', got {endpoint!r}")
    if not endpoint.startswith(_SCHEMES):
        raise ValueError(
            f"endpoint {endpoint!r} must start with ipc:// or tcp:// "
            "(e.g. 'ipc:///tmp/metrics.sock' or 'tcp://127.0.0.1:5557')"
        )
    scheme, rest = endpoint.split("://", 1)
    if not rest:
        raise ValueError(f"endpoint {endpoint!r} has no address after the scheme")
    if scheme == "ipc":
        if len(rest.encode()) > MAX_IPC_PATH_BYTES:
            raise ValueError(
                f"endpoint {endpoint!r}: an ipc:// path may be at most "
                f"{MAX_IPC_PATH_BYTES} bytes (a Unix socket's limit)"
            )
        return endpoint
    host, sep, port = rest.rpartition(":")
    if not sep:
        raise ValueError(f"endpoint {endpoint!r} needs a port (tcp://HOST:PORT)")
    if not host:
        raise ValueError(f"endpoint {endpoint!r} needs a host (tcp://HOST:PORT)")
    if bind and port == "*":
        return endpoint
    if not (port.isascii() and port.isdigit()):
        raise ValueError(f"endpoint {endpoint!r}: the port {port!r} is not a number")
    low = 0 if bind else 1
    if not low <= int(port) <= 65535:
        raise ValueError(
            f"endpoint {endpoint!r}: port {int(port)} is out of range "
            f"({low}-65535{' or *' if bind else ''})"
        )
    return endpoint
