"""bench-metrics' authoritative path: everything that decides a number.

Recording (:class:`MetricsRegistry`), the snapshot types and their wire codec
(SPEC §3, §4). The hot path (``record``, ``increment``) does constant, tiny
work; all folding happens when a snapshot is built.
"""

from registry.metrics_registry import MetricsRegistry
from registry.snapshot import (
    DEFAULT_PERCENTILES,
    CounterStat,
    MetricsSnapshot,
    SeriesStat,
    SessionState,
    percentile_key,
)
from registry.snapshot_codec import (
    SNAPSHOT_TOPIC,
    SnapshotCodec,
    SnapshotDecodeError,
    snapshot_from_dict,
    snapshot_to_dict,
)

__all__ = [
    "DEFAULT_PERCENTILES",
    "SNAPSHOT_TOPIC",
    "CounterStat",
    "MetricsRegistry",
    "MetricsSnapshot",
    "SeriesStat",
    "SessionState",
    "SnapshotCodec",
    "SnapshotDecodeError",
    "percentile_key",
    "snapshot_from_dict",
    "snapshot_to_dict",
]
