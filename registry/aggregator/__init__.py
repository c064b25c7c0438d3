"""The aggregator: turns a benchmark's event stream into metrics (SPEC §6).

:class:`AggregatorMetrics` holds the computations, :class:`SessionMachine`
the session state; the service wires them to sockets, the publisher and
signals. The service is imported when first named: it pulls in the
sockets, the stores and pyarrow, which the computations alone (what every
command line parser needs) must not pay for at start-up. The catalogue of
counters and series is declared in :mod:`registry.core.catalogue`.
"""

from typing import TYPE_CHECKING, Any

from registry.aggregator.metrics import (
    COUNTERS,
    DIAGNOSTIC_COUNTERS,
    FINISH_REASONS,
    AggregatorEventCodec,
    AggregatorMetrics,
    series_names,
)
from registry.aggregator.session import SessionMachine

if TYPE_CHECKING:
    from registry.aggregator.service import AggregatorService

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


def __getattr__(name: str) -> Any:
    if name == "AggregatorService":
        from registry.aggregator.service import AggregatorService

        return AggregatorService
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
