"""The Prometheus/OpenMetrics mirror and the command line (SPEC §8, §9).

Nothing here decides a number: the exporter only reflects snapshots that the
registry built. The ZeroMQ stream and the final file stay the authority.

The names below are imported when first used: the HTTP server pulls in
aiohttp, which a command that serves nothing (``report``, ``watch``, every
``--help``) must not pay for at start-up.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from exporter.http.server import MetricsServer, MetricsServerThread
    from exporter.prometheus.collector import SnapshotCollector

__all__ = ["MetricsServer", "MetricsServerThread", "SnapshotCollector"]

_HOMES = {
    "SnapshotCollector": "exporter.prometheus.collector",
    "MetricsServer": "exporter.http.server",
    "MetricsServerThread": "exporter.http.server",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(home), name)
