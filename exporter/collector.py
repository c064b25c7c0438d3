"""SnapshotCollector: the prometheus_client collector that mirrors snapshots (SPEC §8).

``update(snapshot)`` swaps in an immutable view (one reference assignment, safe
from any thread); ``collect()`` reads the view it finds once and builds fresh
metric families from it, so no metric object is ever shared between scrapes.
Data derived from a view (the plan of family names, the HDR bucket counts) is
immutable and memoised on that view, so many scrapes of one snapshot decode
its HDR data once.

The collector only reflects snapshots: it never changes a number, never talks
to the network and never blocks its caller for longer than the swap.
"""

from __future__ import annotations

import logging
import math
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from typing import Any

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
    StateSetMetricFamily,
)
from prometheus_client.utils import floatToGoString

from exporter.buckets import BucketCounts, HdrDecodeError, cumulative_buckets
from exporter.naming import (
    FamilyPlan,
    SeriesPlan,
    check_labels,
    check_namespace,
    plan_families,
    quantile_label,
)
from registry.snapshot import CounterStat, MetricsSnapshot, SeriesStat, SessionState

__all__ = ["DEFAULT_STALE_AFTER", "SnapshotCollector", "default_run_id", "exporter_version"]

logger = logging.getLogger(__name__)

#: Seconds after which a live view counts as stale (``<ns>_exporter_up`` 0).
DEFAULT_STALE_AFTER = 10.0


def default_run_id() -> str:
    """A fresh run id: UTC start time plus a random suffix (unique across restarts)."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(3)


def exporter_version() -> str:
    try:
        return package_version("bench-metrics")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"


class _View:
    """One snapshot, when it arrived (local monotonic clock), and what is derived from it."""

    __slots__ = ("_buckets", "_lock", "arrived", "plan", "snapshot")

    def __init__(self, snapshot: MetricsSnapshot, arrived: float, plan: FamilyPlan) -> None:
        self.snapshot = snapshot
        self.arrived = arrived
        self.plan = plan
        self._lock = threading.Lock()
        self._buckets: dict[str, BucketCounts | None] = {}

    def buckets(self, stat: SeriesStat, warn: Callable[[str, str], None]) -> BucketCounts | None:
        """Fixed cumulative buckets of ``stat``, or ``None`` when it has no usable HDR data."""
        with self._lock:
            if stat.name in self._buckets:
                return self._buckets[stat.name]
            result: BucketCounts | None = None
            if stat.hdr is not None:
                try:
                    result = cumulative_buckets(stat.hdr)
                except HdrDecodeError as exc:
                    warn(stat.name, f"histogram left out: {exc}")
                else:
                    if result.total != stat.count:
                        warn(
                            stat.name,
                            f"histogram left out: HDR holds {result.total} values but the "
                            f"series counts {stat.count}",
                        )
                        result = None
            self._buckets[stat.name] = result
            return result


class SnapshotCollector:
    """A ``prometheus_client`` custom collector over the latest snapshot.

    ``labels`` are the run's labels, put on every sample; ``run_id`` among them
    (a fresh one is made when absent). ``gauges`` names registry counters to
    export as gauges (settable counters; the snapshot cannot say which they
    are). ``stale_after`` is the age in seconds after which a live view counts
    as stale; a terminal view never does (its values are final).
    """

    def __init__(
        self,
        namespace: str = "bench",
        labels: Mapping[str, str] | None = None,
        *,
        gauges: Iterable[str] = (),
        stale_after: float = DEFAULT_STALE_AFTER,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.namespace = check_namespace(namespace)
        given = dict(labels or {})
        run_id = given.pop("run_id", None)
        if run_id is None:
            run_id = default_run_id()
        if not isinstance(run_id, str):
            raise ValueError(f"run_id must be a str, got {type(run_id).__name__}")
        checked = check_labels(given, namespace=self.namespace)
        self._labels: dict[str, str] = {"run_id": run_id, **checked}
        self._label_names = tuple(self._labels)
        self._label_values = tuple(self._labels.values())
        self._gauges = frozenset(gauges)
        if not stale_after > 0:
            raise ValueError(f"stale_after must be > 0, got {stale_after!r}")
        self.stale_after = float(stale_after)
        self._clock = clock
        self._version = exporter_version()
        self._view: _View | None = None
        self._plans: dict[tuple[tuple[str, ...], tuple[str, ...]], FamilyPlan] = {}
        self._lock = threading.Lock()
        self._received = 0
        self._decode_errors = 0
        self._generation = 0
        self._warned: set[tuple[str, str]] = set()

    # -- feeding -------------------------------------------------------------

    @property
    def labels(self) -> dict[str, str]:
        """The run's labels (``run_id`` first), as put on every sample."""
        return dict(self._labels)

    @property
    def run_id(self) -> str:
        return self._labels["run_id"]

    @property
    def snapshot(self) -> MetricsSnapshot | None:
        """The snapshot currently served (``None`` before the first)."""
        view = self._view
        return view.snapshot if view is not None else None

    def update(self, snapshot: MetricsSnapshot) -> None:
        """Serve ``snapshot`` from now on (an atomic swap; callable from any thread)."""
        plan = self._plan_for(snapshot)
        view = _View(snapshot, self._clock(), plan)
        with self._lock:
            self._view = view
            self._received += 1
            self._generation += 1

    def count_decode_error(self, n: int = 1) -> None:
        """Count undecodable frames (``<ns>_exporter_decode_errors_total``)."""
        with self._lock:
            self._decode_errors += n
            self._generation += 1

    @property
    def generation(self) -> int:
        """Changes whenever what a scrape would show changes, but for the clock (age, up)."""
        return self._generation

    def _plan_for(self, snapshot: MetricsSnapshot) -> FamilyPlan:
        counters = tuple(m.name for m in snapshot.metrics if isinstance(m, CounterStat))
        series = tuple(m.name for m in snapshot.metrics if isinstance(m, SeriesStat))
        key = (counters, series)
        plan = self._plans.get(key)
        if plan is None:
            plan = plan_families(counters, series, namespace=self.namespace, gauges=self._gauges)
            for name, why in plan.skipped:
                logger.warning("metric %r is not exported: %s", name, why)
            if len(self._plans) > 64:  # layouts change only on restarts; stay bounded anyway
                self._plans.clear()
            self._plans[key] = plan
        return plan

    def _warn_once(self, series: str, message: str) -> None:
        key = (series, message.split(":", 1)[0])
        if key not in self._warned:
            self._warned.add(key)
            logger.warning("metric %r: %s", series, message)

    # -- health ----------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """What ``/healthz`` reports: whether a fresh (or final) snapshot is held."""
        view = self._view
        with self._lock:
            received, errors = self._received, self._decode_errors
        out: dict[str, Any] = {
            "run_id": self.run_id,
            "up": False,
            "state": None,
            "sequence": None,
            "age_seconds": None,
            "snapshots_received": received,
            "decode_errors": errors,
        }
        if view is not None:
            age = max(0.0, self._clock() - view.arrived)
            out.update(
                up=self._is_up(view, age),
                state=view.snapshot.state.value,
                sequence=view.snapshot.counter,
                age_seconds=age,
            )
        return out

    def _is_up(self, view: _View, age: float) -> bool:
        return view.snapshot.is_terminal or age <= self.stale_after

    # -- collecting --------------------------------------------------------------

    def collect(self) -> Iterator[Metric]:
        """Fresh families for one scrape: the run's metrics, then the exporter's health."""
        view = self._view
        yield from self._run_families(view)
        yield from self._health_families(view)

    def run_families(self) -> Iterator[Metric]:
        """Only the run's metrics (what is pushed to a Pushgateway: no exporter health)."""
        return self._run_families(self._view)

    def _gauge(self, name: str, text: str, value: float, unit: str = "") -> GaugeMetricFamily:
        g = GaugeMetricFamily(name, text, labels=self._label_names, unit=unit)
        g.add_metric(self._label_values, value)
        return g

    def _counter(self, name: str, text: str, value: float) -> CounterMetricFamily:
        c = CounterMetricFamily(name, text, labels=self._label_names)
        c.add_metric(self._label_values, value)
        return c

    def _name(self, name: str) -> str:
        return f"{self.namespace}_{name}" if self.namespace else name

    def _run_families(self, view: _View | None) -> Iterator[Metric]:
        info = InfoMetricFamily(
            self._name("run"),
            "Run metadata: run id, model, scenario and exporter version.",
            labels=self._label_names,
        )
        extra = {"model": "", "scenario": "", "version": self._version}
        info.add_metric(
            self._label_values, {k: v for k, v in extra.items() if k not in self._labels}
        )
        yield info
        if view is None:
            return
        snap = view.snapshot
        states = StateSetMetricFamily(
            self._name("session_state"),
            "Session state of the run (forward-only; complete and interrupted are terminal).",
            labels=self._label_names,
        )
        states.add_metric(self._label_values, {s.value: s is snap.state for s in SessionState})
        yield states
        yield self._gauge(
            self._name("pending_tasks"),
            "Tracked samples in flight whose metrics could not be recorded.",
            snap.n_pending_tasks,
        )
        yield from self._counter_families(view)
        for splan in view.plan.series:
            try:
                stat = snap.get(splan.registry_name)
            except KeyError:  # the plan is built from this very snapshot
                continue
            if not isinstance(stat, SeriesStat):
                continue
            yield from self._series_families(view, splan, stat)

    def _counter_families(self, view: _View) -> Iterator[Metric]:
        values = view.snapshot.counters
        families: dict[str, Metric] = {}
        for plan in view.plan.counters:
            value = values.get(plan.registry_name)
            if value is None:
                continue
            v = float(value) / plan.divisor if plan.divisor != 1.0 else float(value)
            fam = families.get(plan.family)
            label_names = self._label_names + tuple(k for k, _ in plan.labels)
            label_values = self._label_values + tuple(v for _, v in plan.labels)
            if plan.kind == "counter":
                if math.isnan(v) or v < 0:
                    self._warn_once(plan.registry_name, f"counter value {value!r} not exported")
                    continue
                if fam is None:
                    fam = CounterMetricFamily(plan.family, plan.help, labels=label_names)
                    families[plan.family] = fam
                assert isinstance(fam, CounterMetricFamily)
                fam.add_metric(label_values, v)
            else:
                if fam is None:
                    fam = GaugeMetricFamily(
                        plan.family, plan.help, labels=label_names, unit=plan.unit
                    )
                    families[plan.family] = fam
                assert isinstance(fam, GaugeMetricFamily)
                fam.add_metric(label_values, v)
        yield from families.values()

    def _series_families(self, view: _View, plan: SeriesPlan, stat: SeriesStat) -> Iterator[Metric]:
        div = plan.divisor
        total = float(stat.total) / div
        if not math.isfinite(total) or stat.count < 0 or (stat.count and float(stat.min) < 0):
            # OpenMetrics forbids negative or NaN sums and quantiles: leaving the
            # series out is honest, clamping it would not be.
            self._warn_once(stat.name, "negative or non-finite values: series not exported")
            return
        summary = Metric(plan.summary, plan.help, "summary", plan.unit)
        for key, value in stat.percentiles.items():
            try:
                q = quantile_label(key)
            except ValueError:
                self._warn_once(stat.name, f"bad percentile key {key!r} left out")
                continue
            v = float(value) / div if stat.count else math.nan
            summary.add_sample(plan.summary, {**self._labels, "quantile": q}, v)
        summary.add_sample(plan.summary + "_sum", self._labels, total)
        summary.add_sample(plan.summary + "_count", self._labels, float(stat.count))
        buckets = view.buckets(stat, self._warn_once)
        if buckets is not None:
            hist = HistogramMetricFamily(
                plan.histogram, plan.help, labels=self._label_names, unit=plan.unit
            )
            pairs = [
                (floatToGoString(_scaled_bound(b, div)), float(c))
                for b, c in zip(buckets.bounds, buckets.cumulative, strict=True)
            ]
            pairs.append(("+Inf", float(buckets.total)))
            hist.add_metric(self._label_values, pairs, total)
            yield hist
        yield summary

    def _health_families(self, view: _View | None) -> Iterator[Metric]:
        with self._lock:
            received, errors = self._received, self._decode_errors
        up = False
        if view is not None:
            age = max(0.0, self._clock() - view.arrived)
            up = self._is_up(view, age)
            yield self._gauge(
                self._name("exporter_last_snapshot_age_seconds"),
                "Seconds since the exporter received the snapshot it serves (local clock).",
                age,
                unit="seconds",
            )
            yield self._gauge(
                self._name("exporter_snapshot_sequence"),
                "Sequence number (counter) of the snapshot served.",
                view.snapshot.counter,
            )
        yield self._counter(
            self._name("exporter_snapshots_received"), "Snapshots received.", received
        )
        yield self._counter(
            self._name("exporter_decode_errors"), "Snapshot frames that failed to decode.", errors
        )
        yield self._gauge(
            self._name("exporter_up"),
            "1 when the exporter holds a final snapshot or one younger than "
            f"{self.stale_after:g} s.",
            1.0 if up else 0.0,
        )


def _scaled_bound(bound: int, divisor: float) -> float:
    """A native-unit bound in the exported unit, as the shortest exact decimal."""
    exp10 = round(math.log10(divisor)) if divisor > 0 else 0
    if divisor == 1.0 or 10.0**exp10 != divisor:
        return float(bound) / divisor
    # 1-2-5 bounds over a power of ten: build the decimal text, not a float product
    mantissa, exp = bound, 0
    while mantissa and mantissa % 10 == 0:
        mantissa //= 10
        exp += 1
    return float(f"{mantissa}e{exp - exp10}")
