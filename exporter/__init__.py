"""The Prometheus/OpenMetrics mirror and the command line (SPEC §8, §9).

Nothing here decides a number: the exporter only reflects snapshots that the
registry built. The ZeroMQ stream and the final file stay the authority.
"""

from exporter.collector import SnapshotCollector
from exporter.http_server import MetricsServer, MetricsServerThread

__all__ = ["MetricsServer", "MetricsServerThread", "SnapshotCollector"]
