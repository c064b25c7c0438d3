"""bench-metrics' authoritative path: everything that decides a number.

Recording (:class:`MetricsRegistry`; percentile methods in
:mod:`registry.percentiles`, MLPerf early stopping in :mod:`registry.mlperf`),
the snapshot types and their wire codec (SPEC §3, §4), the snapshot stream
and final file (:class:`MetricsPublisher`, :class:`SnapshotSubscriber`,
:func:`load_final_snapshot`; SPEC §2, §7). The
generic ZeroMQ transport lives in :mod:`registry.transport`. The hot path
(``record``, ``increment``) does constant, tiny work; all folding happens when
a snapshot is built.
"""

from registry.atomic_file import write_atomic, write_json_atomic
from registry.final_source import (
    FinalFileError,
    FinalSnapshotResult,
    FinalSnapshotUnavailable,
    load_final_snapshot,
    read_final_document,
    read_final_file,
)
from registry.metrics_registry import MetricsRegistry
from registry.mlperf import EarlyStoppingSpec
from registry.percentiles import PercentileMethod
from registry.publisher import MetricsPublisher
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
    run_block,
    snapshot_from_dict,
    snapshot_to_dict,
)
from registry.subscriber import SnapshotSubscriber

__all__ = [
    "DEFAULT_PERCENTILES",
    "SNAPSHOT_TOPIC",
    "CounterStat",
    "EarlyStoppingSpec",
    "FinalFileError",
    "FinalSnapshotResult",
    "FinalSnapshotUnavailable",
    "MetricsPublisher",
    "MetricsRegistry",
    "MetricsSnapshot",
    "PercentileMethod",
    "SeriesStat",
    "SessionState",
    "SnapshotCodec",
    "SnapshotDecodeError",
    "SnapshotSubscriber",
    "load_final_snapshot",
    "percentile_key",
    "read_final_document",
    "read_final_file",
    "run_block",
    "snapshot_from_dict",
    "snapshot_to_dict",
    "write_atomic",
    "write_json_atomic",
]
