"""Checks a ZeroMQ endpoint string before a socket sees it.

Only full ``ipc://`` and ``tcp://`` endpoints are accepted, so a typo fails
with a message naming the endpoint instead of libzmq's bare ``EINVAL``. This
module never opens a socket.
"""

from __future__ import annotations

__all__ = ["check_endpoint"]

_SCHEMES = ("ipc://", "tcp://")


def check_endpoint(endpoint: str) -> str:
    """``endpoint`` unchanged, or ``ValueError`` saying what is wrong with it."""
    if not isinstance(endpoint, str):
        raise ValueError(f"endpoint must be a str like 'tcp://127.0.0.1:5557', got {endpoint!r}")
    if not endpoint.startswith(_SCHEMES):
        raise ValueError(
            f"endpoint {endpoint!r} must start with ipc:// or tcp:// "
            "(e.g. 'ipc:///tmp/metrics.sock' or 'tcp://127.0.0.1:5557')"
        )
    rest = endpoint.split("://", 1)[1]
    if not rest:
        raise ValueError(f"endpoint {endpoint!r} has no address after the scheme")
    if endpoint.startswith("tcp://") and ":" not in rest:
        raise ValueError(f"endpoint {endpoint!r} needs a port (tcp://HOST:PORT)")
    return endpoint
