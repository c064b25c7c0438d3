"""The aggregator: turns a benchmark's event stream into metrics (SPEC §6).

:class:`AggregatorMetrics` holds the computations, :class:`SessionMachine`
the session state; the service wires them to sockets, the publisher and
signals.
"""

from registry.aggregator.metrics import (
    COUNTERS,
    DIAGNOSTIC_COUNTERS,
    FINISH_REASONS,
    AggregatorEventCodec,
    AggregatorMetrics,
    series_names,
)
from registry.aggregator.service import AggregatorService
from registry.aggregator.session import SessionMachine

__all__ = [
    "COUNTERS",
    "DIAGNOSTIC_COUNTERS",
    "FINISH_REASONS",
    "AggregatorEventCodec",
    "AggregatorMetrics",
    "AggregatorService",
    "SessionMachine",
    "series_names",
]
