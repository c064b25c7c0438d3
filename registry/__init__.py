"""bench-metrics' authoritative path: everything that decides a number.

Recording (:class:`MetricsRegistry`; percentile methods in
:mod:`registry.core.percentiles`, MLPerf early stopping in :mod:`registry.mlperf`),
the snapshot types and their wire codec (SPEC §3, §4), the snapshot stream
and final file (:class:`MetricsPublisher`, :class:`SnapshotSubscriber`,
:func:`load_final_snapshot`; SPEC §2, §7), and all of it in a benchmark's own
process (:class:`MetricsSession`, :class:`SyncMetricsSession`, with the
aggregator's catalogue from :func:`register_standard_metrics`). The
generic ZeroMQ transport lives in :mod:`registry.transport`. The hot path
(``record``, ``increment``) does constant, tiny work; all folding happens when
a snapshot is built.
"""

from registry.core.catalogue import (
    STANDARD_COUNTERS,
    register_standard_metrics,
    standard_series,
)
from registry.core.metric_errors import MetricKindError, UnknownMetricError
from registry.core.metrics_registry import MetricsRegistry
from registry.core.percentiles import PercentileMethod
from registry.delivery.atomic_file import write_atomic, write_json_atomic
from registry.delivery.final_source import (
    FinalFileError,
    FinalSnapshotResult,
    FinalSnapshotUnavailable,
    load_final_snapshot,
    read_final_document,
    read_final_file,
)
from registry.delivery.publisher import MetricsPublisher
from registry.delivery.snapshot import (
    DEFAULT_PERCENTILES,
    CounterStat,
    MetricsSnapshot,
    SeriesStat,
    SessionState,
    percentile_key,
)
from registry.delivery.snapshot_codec import (
    SNAPSHOT_TOPIC,
    SnapshotCodec,
    SnapshotDecodeError,
    run_block,
    snapshot_from_dict,
    snapshot_to_dict,
)
from registry.delivery.subscriber import SnapshotSubscriber
from registry.mlperf import EarlyStoppingSpec
from registry.session_api import MetricsSession, SyncMetricsSession

__all__ = [
    "DEFAULT_PERCENTILES",
    "SNAPSHOT_TOPIC",
    "STANDARD_COUNTERS",
    "CounterStat",
    "EarlyStoppingSpec",
    "FinalFileError",
    "FinalSnapshotResult",
    "FinalSnapshotUnavailable",
    "MetricKindError",
    "MetricsPublisher",
    "MetricsRegistry",
    "MetricsSession",
    "MetricsSnapshot",
    "PercentileMethod",
    "SeriesStat",
    "SessionState",
    "SnapshotCodec",
    "SnapshotDecodeError",
    "SnapshotSubscriber",
    "SyncMetricsSession",
    "UnknownMetricError",
    "load_final_snapshot",
    "percentile_key",
    "read_final_document",
    "read_final_file",
    "register_standard_metrics",
    "run_block",
    "snapshot_from_dict",
    "snapshot_to_dict",
    "standard_series",
    "write_atomic",
    "write_json_atomic",
]
