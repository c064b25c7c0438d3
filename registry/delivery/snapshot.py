"""The snapshot value types: what a registry hands out at each tick (SPEC §3, §4).

A snapshot is an immutable picture of every counter and series at one moment.
These structs are the single shape shared by the wire codec, the JSON files,
the exporter and the report; they carry data only and must never reach back
into a registry or do I/O.

The struct layout *is* the wire layout: ``array_like`` structs encode as the
positional msgpack arrays of SPEC §4, and the ``"counter"``/``"series"`` tag is
the first array element.
"""

from __future__ import annotations

import enum
import math
from typing import Any

import msgspec

__all__ = [
    "DEFAULT_PERCENTILES",
    "CounterStat",
    "HistogramBucket",
    "MetricStat",
    "MetricsSnapshot",
    "RunTag",
    "SeriesStat",
    "SessionState",
    "percentile_key",
    "run_tag",
]

#: The default percentile grid (SPEC §3). Every grid must contain 50.
DEFAULT_PERCENTILES: tuple[float, ...] = (
    99.9,
    99.0,
    97.0,
    95.0,
    90.0,
    80.0,
    75.0,
    50.0,
    25.0,
    10.0,
    5.0,
    1.0,
)


def percentile_key(p: float) -> str:
    """The wire key of percentile ``p``: ``str(float(p))`` (``50`` -> ``"50.0"``)."""
    return str(float(p))


class SessionState(enum.StrEnum):
    """Session lifecycle; forward-only, the last two are terminal."""

    INITIALIZE = "initialize"
    LIVE = "live"
    DRAINING = "draining"
    COMPLETE = "complete"
    INTERRUPTED = "interrupted"

    @property
    def is_terminal(self) -> bool:
        return self in (SessionState.COMPLETE, SessionState.INTERRUPTED)

    @property
    def rank(self) -> int:
        """Position in the forward-only order (both terminal states share the top)."""
        return _STATE_RANK[self]


_STATE_RANK = {
    SessionState.INITIALIZE: 0,
    SessionState.LIVE: 1,
    SessionState.DRAINING: 2,
    SessionState.COMPLETE: 3,
    SessionState.INTERRUPTED: 3,
}

#: One display-histogram bucket: ``((lo, hi), count)``.
HistogramBucket = tuple[tuple[float, float], int]


class CounterStat(msgspec.Struct, frozen=True, array_like=True, tag="counter"):
    """``["counter", name, value]``."""

    name: str
    value: int | float


class SeriesStat(msgspec.Struct, frozen=True, array_like=True, tag="series"):
    """``["series", name, count, total, min, max, sum_sq, percentiles, histogram,
    early_stopping_percentiles, hdr]``.

    A non-empty series carries ``sum_sq`` as a float (upstream's shape; ours is
    the correctly rounded float of the exact sum) and ``total``/``min``/``max``
    in the series' own type. An empty one: count 0, ``total``/``sum_sq`` the
    type's zero, ``min``/``max`` the int 0, every percentile 0.0, no histogram.

    ``early_stopping_percentiles`` (slot 9) is ``None`` except in terminal
    snapshots of tail-latency series: then a map from grid key (50 <= p < 100)
    to the early-stopping estimate, ``None`` where there are too few values.
    ``hdr`` (slot 10, our extension) is the HdrHistogram V2 compressed encoding
    as raw bytes, or ``None`` when the producer sent none (mlcommons/endpoints
    frames stop after slot 9).
    """

    name: str
    count: int
    total: int | float
    min: int | float
    max: int | float
    sum_sq: int | float
    percentiles: dict[str, float]
    histogram: list[tuple[tuple[float, float], int]]
    early_stopping_percentiles: dict[str, float | None] | None = None
    hdr: bytes | None = None

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0

    @property
    def std_dev(self) -> float:
        """Sample standard deviation (n - 1) from the rollups, computed as upstream's Report.

        Integer ``total`` and ``sum_sq``: ``sqrt(n*sum_sq - total**2) / sqrt(n*(n-1))``
        in exact integers; otherwise ``sqrt((sum_sq - total**2/n) / (n-1))`` in
        floats (what upstream does with the float ``sum_sq`` it sends). 0.0 for
        fewer than two values.
        """
        n = self.count
        if n < 2:
            return 0.0
        total, sum_sq = self.total, self.sum_sq
        if isinstance(total, int) and isinstance(sum_sq, int):
            return math.sqrt(max(0, n * sum_sq - total * total)) / math.sqrt(n * (n - 1))
        var_num = sum_sq - total * total / n
        return math.sqrt(max(0.0, var_num / (n - 1)))

    def percentile(self, p: float) -> float:
        """The value of percentile ``p`` from the snapshot's grid (``KeyError`` if absent)."""
        return self.percentiles[percentile_key(p)]


MetricStat = CounterStat | SeriesStat


class MetricsSnapshot(msgspec.Struct, frozen=True, array_like=True):
    """``[counter, timestamp_ns, state, n_pending_tasks, metrics, run]``.

    ``metrics`` lists counters first, then series, each in registration order.

    ``run`` (slot 5, our extension) is what the producer says about its run, so
    a consumer of the stream alone knows whose numbers it holds: a map with
    ``run_id`` (str), ``labels`` (str → str) and, when the producer serves
    Prometheus, ``metrics_url``; ``None`` when the producer says nothing
    (mlcommons/endpoints' frames stop after slot 4, and its decoder, a msgspec
    ``array_like`` struct, ignores trailing elements, as it does the series'
    ``hdr`` slot). Without it the payload is upstream's five elements exactly
    (:class:`~registry.delivery.snapshot_codec.SnapshotCodec` then writes five slots).
    It is decoded as any value and read only through :func:`run_tag`, so a
    foreign value there never breaks a snapshot.
    """

    counter: int
    timestamp_ns: int
    state: SessionState
    n_pending_tasks: int
    metrics: list[CounterStat | SeriesStat]
    run: Any = None

    @property
    def counters(self) -> dict[str, int | float]:
        return {m.name: m.value for m in self.metrics if isinstance(m, CounterStat)}

    @property
    def series(self) -> dict[str, SeriesStat]:
        return {m.name: m for m in self.metrics if isinstance(m, SeriesStat)}

    def get(self, name: str) -> CounterStat | SeriesStat:
        """The metric called ``name`` (``KeyError`` naming it when absent)."""
        for m in self.metrics:
            if m.name == name:
                return m
        raise KeyError(name)

    @property
    def is_terminal(self) -> bool:
        return self.state.is_terminal

    @property
    def run_id(self) -> str | None:
        """The run id the producer put in slot 5, if it put a usable one there."""
        return run_tag(self).run_id


class RunTag(msgspec.Struct, frozen=True):
    """Slot 5 of a snapshot, read leniently: what is not of the right type is left out."""

    run_id: str | None = None
    labels: dict[str, str] = msgspec.field(default_factory=dict)
    metrics_url: str | None = None


def run_tag(snap: MetricsSnapshot) -> RunTag:
    """What ``snap`` says about its run (all ``None``/empty when it says nothing usable)."""
    run = snap.run
    if not isinstance(run, dict):
        return RunTag()
    run_id = run.get("run_id")
    labels = run.get("labels")
    url = run.get("metrics_url")
    return RunTag(
        run_id=run_id if isinstance(run_id, str) and run_id else None,
        labels=(
            {k: v for k, v in labels.items() if isinstance(k, str) and isinstance(v, str)}
            if isinstance(labels, dict)
            else {}
        ),
        metrics_url=url if isinstance(url, str) and url else None,
    )
