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
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
    StateSetMetricFamily,
)
from prometheus_client.utils import floatToGoString

from exporter.prometheus.buckets import BucketCounts, HdrDecodeError, cumulative_buckets
from exporter.prometheus.naming import (
    NS_PER_SECOND,
    FamilyPlan,
    SeriesPlan,
    check_labels,
    check_namespace,
    plan_families,
    quantile_label,
    verdict_names,
)
from registry.core.percentiles import percent_to_fraction
from registry.delivery.run_id import new_run_id
from registry.delivery.snapshot import (
    CounterStat,
    MetricsSnapshot,
    SeriesStat,
    SessionState,
    run_tag,
)
from registry.mlperf.constraints import CONSTRAINT_STATES, STATES
from registry.mlperf.validity import VALIDITY_STATES
from registry.mlperf.verdict_counters import (
    ValidityReading,
    VerdictReading,
    read_validity,
    read_verdict,
)

__all__ = [
    "DEFAULT_STALE_AFTER",
    "DROP_REASONS",
    "SnapshotCollector",
    "collector_registry",
    "exporter_version",
]

logger = logging.getLogger(__name__)

#: Why a value a snapshot carried was left out (``<ns>_exporter_dropped_total{reason}``).
DROP_REASONS = ("bad_quantile_key", "bad_run_label")

#: Seconds after which a live view counts as stale (``<ns>_exporter_up`` 0).
DEFAULT_STALE_AFTER = 10.0


def collector_registry(*collectors: SnapshotCollector) -> CollectorRegistry:
    """A registry serving ``collectors``, reachable by ``/metrics?name[]=...`` too.

    A collector's family names change with the snapshots it serves, so it
    describes none (:meth:`SnapshotCollector.describe`); a plain registry would
    then leave it out of every restricted (``name[]``) collection, an empty 200.
    ``support_collectors_without_names`` makes the restricted registry collect it
    and keep the samples named.
    """
    registry = CollectorRegistry(support_collectors_without_names=True)
    for c in collectors:
        registry.register(c)
    return registry


def exporter_version() -> str:
    try:
        return package_version("bench-metrics")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"


class _Identity:
    """The labels every sample of one view carries (``run_id`` first), in three handy forms.

    ``left_out`` counts the stream's run labels that were invalid or reserved
    (counted again for every snapshot served under this identity).
    """

    __slots__ = ("labels", "left_out", "names", "values")

    def __init__(self, labels: Mapping[str, str], left_out: int = 0) -> None:
        self.labels: dict[str, str] = dict(labels)
        self.names: tuple[str, ...] = tuple(self.labels)
        self.values: tuple[str, ...] = tuple(self.labels.values())
        self.left_out = left_out


class _View:
    """One snapshot, when it arrived (local monotonic clock), and what is derived from it."""

    __slots__ = (
        "_buckets",
        "_lock",
        "arrived",
        "identity",
        "plan",
        "snapshot",
        "validity",
        "verdict",
    )

    def __init__(
        self, snapshot: MetricsSnapshot, arrived: float, plan: FamilyPlan, identity: _Identity
    ) -> None:
        self.snapshot = snapshot
        self.arrived = arrived
        self.plan = plan
        self.identity = identity
        self._lock = threading.Lock()
        self._buckets: dict[str, BucketCounts | None] = {}
        #: the verdict counters the snapshot carries (``None`` without constraints)
        self.verdict: VerdictReading | None = read_verdict(snapshot.counters)
        #: LoadGen's validity the snapshot carries (``None`` without requirements)
        self.validity: ValidityReading | None = read_validity(snapshot.counters)

    def limits(self, series: str) -> tuple[int, ...]:
        """The constraint limits on ``series`` (native unit): each becomes a bucket bound."""
        if self.verdict is None:
            return ()
        return tuple(sorted({c.limit_ns for c in self.verdict.constraints if c.series == series}))

    def buckets(
        self,
        stat: SeriesStat,
        warn: Callable[[str, str], None],
        override: tuple[int, ...] | None = None,
    ) -> BucketCounts | None:
        """Fixed cumulative buckets of ``stat``, or ``None`` when it has no usable HDR data."""
        with self._lock:
            if stat.name in self._buckets:
                return self._buckets[stat.name]
            result: BucketCounts | None = None
            if stat.hdr is not None:
                try:
                    result = cumulative_buckets(
                        stat.hdr, stat.name, limits=self.limits(stat.name), override=override
                    )
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
    (a fresh one is made when absent). With ``run_id_from_stream`` and no
    ``run_id`` given, the run id and labels a snapshot carries (slot 5, see
    :func:`registry.delivery.snapshot.run_tag`) are used while that snapshot is served
    (``labels`` given here win over the stream's); a snapshot that carries none
    gets the fresh id. ``gauges`` names registry counters to
    export as gauges (settable counters; the snapshot cannot say which they
    are). ``stale_after`` is the age in seconds after which a live view counts
    as stale; a terminal view never does (its values are final). ``buckets``
    replaces the fixed bucket bounds of registry series (native units, e.g.
    from ``--buckets``).
    """

    def __init__(
        self,
        namespace: str = "bench",
        labels: Mapping[str, str] | None = None,
        *,
        gauges: Iterable[str] = (),
        stale_after: float = DEFAULT_STALE_AFTER,
        clock: Callable[[], float] = time.monotonic,
        buckets: Mapping[str, Iterable[int]] | None = None,
        run_id_from_stream: bool = False,
    ) -> None:
        self.namespace = check_namespace(namespace)
        self._bucket_overrides = {
            name: tuple(sorted({int(b) for b in bounds}))
            for name, bounds in (buckets or {}).items()
        }
        self._verdict_names = verdict_names(self.namespace)
        given = dict(labels or {})
        run_id = given.pop("run_id", None)
        #: the stream names the run unless a run id was given here
        self.run_id_from_stream = run_id_from_stream and run_id is None
        if run_id is None:
            run_id = new_run_id()
        if not isinstance(run_id, str):
            raise ValueError(f"run_id must be a str, got {type(run_id).__name__}")
        self._given_labels = check_labels(given, namespace=self.namespace)
        self._own = _Identity({"run_id": run_id, **self._given_labels})
        self._identities: dict[tuple[str, tuple[tuple[str, str], ...]], _Identity] = {}
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
        #: values a snapshot carried that cannot be exported, by reason (counted per snapshot)
        self._dropped: dict[str, int] = dict.fromkeys(DROP_REASONS, 0)
        self._generation = 0
        self._warned: set[tuple[str, str]] = set()

    # -- feeding -------------------------------------------------------------

    @property
    def labels(self) -> dict[str, str]:
        """The run's labels (``run_id`` first), as put on every sample now."""
        return dict(self._ident(self._view).labels)

    @property
    def run_id(self) -> str:
        return self._ident(self._view).labels["run_id"]

    def _ident(self, view: _View | None) -> _Identity:
        return view.identity if view is not None else self._own

    def _identity_for(self, snapshot: MetricsSnapshot) -> _Identity:
        """The labels of ``snapshot``'s samples: its own run's when the stream names the run."""
        if not self.run_id_from_stream:
            return self._own
        tag = run_tag(snapshot)
        if tag.run_id is None:
            return self._own
        key = (tag.run_id, tuple(sorted(tag.labels.items())))
        found = self._identities.get(key)
        if found is not None:
            return found
        stream_labels: dict[str, str] = {}
        left_out = 0
        for k, v in tag.labels.items():
            try:
                # check_labels refuses run_id and the exporter's own label names: a
                # label from the stream never replaces them
                stream_labels.update(check_labels({k: v}, namespace=self.namespace))
            except ValueError as exc:
                left_out += 1
                self._warn_once("run labels", f"the stream's label left out: {exc}")
        found = _Identity({"run_id": tag.run_id, **stream_labels, **self._given_labels}, left_out)
        if len(self._identities) > 64:  # one per run the stream announced; stay bounded
            self._identities.clear()
        self._identities[key] = found
        if self._view is None or self._view.identity.labels["run_id"] != tag.run_id:
            logger.info("serving run %r (the run id the snapshot stream carries)", tag.run_id)
        return found

    @property
    def snapshot(self) -> MetricsSnapshot | None:
        """The snapshot currently served (``None`` before the first)."""
        view = self._view
        return view.snapshot if view is not None else None

    def update(self, snapshot: MetricsSnapshot) -> None:
        """Serve ``snapshot`` from now on (an atomic swap; callable from any thread)."""
        plan = self._plan_for(snapshot)
        view = _View(snapshot, self._clock(), plan, self._identity_for(snapshot))
        bad_keys = _bad_quantile_keys(snapshot)
        with self._lock:
            self._view = view
            self._received += 1
            self._dropped["bad_quantile_key"] += bad_keys
            self._dropped["bad_run_label"] += view.identity.left_out
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
        """What ``/healthz`` reports: whether a fresh (or final) snapshot is held.

        ``status`` says the same as ``up`` in a word: ``ok`` (up), ``waiting`` (no
        snapshot yet) or ``stale`` (the live view is older than ``stale_after``).
        """
        view = self._view
        with self._lock:
            received, errors = self._received, self._decode_errors
            dropped = dict(self._dropped)
        out: dict[str, Any] = {
            "status": "waiting",
            "run_id": self._ident(view).labels["run_id"],
            "up": False,
            "state": None,
            "sequence": None,
            "age_seconds": None,
            "snapshots_received": received,
            "decode_errors": errors,
            "dropped": dropped,
        }
        if view is not None:
            age = max(0.0, self._clock() - view.arrived)
            up = self._is_up(view, age)
            out.update(
                status="ok" if up else "stale",
                up=up,
                state=view.snapshot.state.value,
                sequence=view.snapshot.counter,
                age_seconds=age,
            )
        return out

    def _is_up(self, view: _View, age: float) -> bool:
        return view.snapshot.is_terminal or age <= self.stale_after

    # -- collecting --------------------------------------------------------------

    def describe(self) -> list[Metric]:
        """No names up front: the families depend on the snapshots served (see
        :func:`collector_registry`); describing none also keeps ``register`` from
        collecting a view that does not exist yet."""
        return []

    def collect(self) -> Iterator[Metric]:
        """Fresh families for one scrape: the run's metrics, then the exporter's health."""
        view = self._view
        yield from self._run_families(view)
        yield from self._health_families(view)

    def run_families(self) -> Iterator[Metric]:
        """Only the run's metrics (what is pushed to a Pushgateway: no exporter health)."""
        return self._run_families(self._view)

    @staticmethod
    def _gauge(
        ident: _Identity, name: str, text: str, value: float, unit: str = ""
    ) -> GaugeMetricFamily:
        g = GaugeMetricFamily(name, text, labels=ident.names, unit=unit)
        g.add_metric(ident.values, value)
        return g

    @staticmethod
    def _counter(ident: _Identity, name: str, text: str, value: float) -> CounterMetricFamily:
        c = CounterMetricFamily(name, text, labels=ident.names)
        c.add_metric(ident.values, value)
        return c

    def _name(self, name: str) -> str:
        return f"{self.namespace}_{name}" if self.namespace else name

    def _run_families(self, view: _View | None) -> Iterator[Metric]:
        ident = self._ident(view)
        info = InfoMetricFamily(
            self._name("run"),
            "Run metadata: run id, model, scenario and exporter version.",
            labels=ident.names,
        )
        extra = {"model": "", "scenario": "", "version": self._version}
        info.add_metric(ident.values, {k: v for k, v in extra.items() if k not in ident.labels})
        yield info
        if view is None:
            return
        snap = view.snapshot
        states = StateSetMetricFamily(
            self._name("session_state"),
            "Session state of the run (forward-only; complete and interrupted are terminal).",
            labels=ident.names,
        )
        states.add_metric(ident.values, {s.value: s is snap.state for s in SessionState})
        yield states
        yield self._gauge(
            ident,
            self._name("pending_tasks"),
            "Tokenizations not yet recorded (n_pending_tasks); above 0 in a final "
            "snapshot: the drain ran out of time.",
            snap.n_pending_tasks,
        )
        yield from self._counter_families(view)
        if view.verdict is not None:
            yield from self._verdict_families(ident, view.verdict)
        if view.validity is not None:
            yield from self._validity_families(ident, view.validity)
        for splan in view.plan.series:
            try:
                stat = snap.get(splan.registry_name)
            except KeyError:  # the plan is built from this very snapshot
                continue
            if not isinstance(stat, SeriesStat):
                continue
            yield from self._series_families(view, splan, stat)

    def _counter_families(self, view: _View) -> Iterator[Metric]:
        ident = view.identity
        values = view.snapshot.counters
        families: dict[str, Metric] = {}
        for plan in view.plan.counters:
            value = values.get(plan.registry_name)
            if value is None:
                continue
            v = float(value) / plan.divisor if plan.divisor != 1.0 else float(value)
            fam = families.get(plan.family)
            label_names = ident.names + tuple(k for k, _ in plan.labels)
            label_values = ident.values + tuple(v for _, v in plan.labels)
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
        ident = view.identity
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
            summary.add_sample(plan.summary, {**ident.labels, "quantile": q}, v)
        summary.add_sample(plan.summary + "_sum", ident.labels, total)
        summary.add_sample(plan.summary + "_count", ident.labels, float(stat.count))
        buckets = view.buckets(stat, self._warn_once, self._bucket_overrides.get(stat.name))
        if buckets is not None:
            hist = HistogramMetricFamily(
                plan.histogram, plan.help, labels=ident.names, unit=plan.unit
            )
            pairs = [
                (floatToGoString(_scaled_bound(b, div)), float(c))
                for b, c in zip(buckets.bounds, buckets.cumulative, strict=True)
            ]
            pairs.append(("+Inf", float(buckets.total)))
            hist.add_metric(ident.values, pairs, total)
            yield hist
        yield summary

    def _verdict_families(self, ident: _Identity, verdict: VerdictReading) -> Iterator[Metric]:
        """The run's verdict (SPEC §10): goodput, then per constraint n, t, needed, state."""
        names = self._verdict_names
        yield self._counter(
            ident,
            names.good_samples,
            "Tracked samples that succeeded within every latency limit they have a value for.",
            verdict.good_samples,
        )
        yield self._counter(
            ident,
            names.good_output_tokens,
            "Output tokens of the good samples.",
            verdict.good_output_tokens,
        )
        yield self._gauge(
            ident,
            names.goodput,
            "Goodput: good samples per second of tracked duration.",
            verdict.goodput_samples_per_second,
        )
        yield self._gauge(
            ident,
            names.token_goodput,
            "Token goodput: output tokens of good samples per second of tracked duration.",
            verdict.goodput_tokens_per_second,
        )
        run_state = StateSetMetricFamily(
            names.verdict_state,
            "The run's verdict: pending, on_track or failing while live; pass or fail at the end.",
            labels=ident.names,
        )
        run_state.add_metric(ident.values, {s: s == verdict.state for s in STATES})
        yield run_state
        label_names = (*ident.names, "constraint", "series")
        families: dict[str, Metric] = {
            names.constraint_samples: CounterMetricFamily(
                names.constraint_samples,
                "Samples judged on the constraint (those with a value for its series).",
                labels=label_names,
            ),
            names.constraint_violations: CounterMetricFamily(
                names.constraint_violations,
                "Judged samples over the constraint's limit.",
                labels=label_names,
            ),
            names.constraint_queries_needed: GaugeMetricFamily(
                names.constraint_queries_needed,
                "More samples the run needs before it can pass with its current violations "
                "(MLPerf early stopping, confidence 0.99): max(0, h(t) + t - n).",
                labels=label_names,
            ),
            names.constraint_limit: GaugeMetricFamily(
                names.constraint_limit,
                "The constraint's limit: a sample above it violates the constraint.",
                labels=label_names,
                unit="seconds",
            ),
            names.constraint_target: GaugeMetricFamily(
                names.constraint_target,
                "The constraint's percentile as a ratio: the attainment it asks for.",
                labels=label_names,
            ),
        }
        states = StateSetMetricFamily(
            names.constraint_state,
            "State of each constraint: pending, on_track, failing (live), pass, fail (final).",
            labels=label_names,
        )
        for c in verdict.constraints:
            values = (*ident.values, c.key, c.series.removesuffix("_ns"))
            for name, value in (
                (names.constraint_samples, c.samples),
                (names.constraint_violations, c.over_limit),
                (names.constraint_queries_needed, c.queries_needed),
                (names.constraint_limit, c.limit_ns / NS_PER_SECOND),
                (names.constraint_target, percent_to_fraction(c.percentile)),
            ):
                fam = families[name]
                assert isinstance(fam, CounterMetricFamily | GaugeMetricFamily)
                fam.add_metric(values, float(value))
            states.add_metric(values, {s: s == c.state for s in CONSTRAINT_STATES})
        if verdict.constraints:
            yield from families.values()
            yield states

    def _validity_families(self, ident: _Identity, v: ValidityReading) -> Iterator[Metric]:
        """LoadGen's validity (SPEC §10): state, the four reasons, figures and what is needed."""
        names = self._verdict_names
        state = StateSetMetricFamily(
            names.validity_state,
            "LoadGen's validity: pending, on_track or failing while live; valid or invalid "
            "at the end (VALID needs performance constraints, min duration, min queries and "
            "early stopping).",
            labels=ident.names,
        )
        state.add_metric(ident.values, {s: s == v.state for s in VALIDITY_STATES})
        yield state
        reasons = GaugeMetricFamily(
            names.validity_reason,
            "Each of LoadGen's reasons: 1 satisfied, 0 not (absent where it does not apply: "
            "Offline has no performance constraint).",
            labels=(*ident.names, "reason"),
        )
        for name, ok in v.reasons.items():
            if ok is not None:
                reasons.add_metric((*ident.values, name), 1.0 if ok else 0.0)
        yield reasons
        sec = NS_PER_SECOND
        for name, help_text, value, unit in (
            (
                names.validity_submittable,
                "1 when the requirements are a ruleset's unmodified (no --min-duration / "
                "--min-queries override): a VALID result could be submitted.",
                float(v.submittable),
                "",
            ),
            (
                names.validity_duration,
                "The run's duration as LoadGen measures it (Server: to the last issue; "
                "Offline: to the latest completion).",
                v.duration_ns / sec,
                "seconds",
            ),
            (
                names.validity_min_duration,
                "The minimum duration required.",
                v.requirements.min_duration_ns / sec,
                "seconds",
            ),
            (
                names.validity_duration_needed,
                "Duration still needed before min duration is met.",
                v.duration_needed_ns / sec,
                "seconds",
            ),
            (names.validity_queries, "Queries issued (Offline: samples).", v.queries, ""),
            (
                names.validity_min_queries,
                "The minimum query count required.",
                v.requirements.min_queries,
                "",
            ),
            (
                names.validity_queries_needed,
                "Queries still needed: the larger of min queries and early stopping's need.",
                v.queries_needed,
                "",
            ),
            (
                names.validity_eta,
                "Seconds until both min duration and the queries needed are reached at the "
                "current rate (NaN: unknown, or nothing needed).",
                v.eta_s if v.eta_s is not None else math.nan,
                "seconds",
            ),
        ):
            yield self._gauge(ident, name, help_text, float(value), unit=unit)

    def _health_families(self, view: _View | None) -> Iterator[Metric]:
        ident = self._ident(view)
        with self._lock:
            received, errors = self._received, self._decode_errors
            dropped = dict(self._dropped)
        up = False
        if view is not None:
            age = max(0.0, self._clock() - view.arrived)
            up = self._is_up(view, age)
            yield self._gauge(
                ident,
                self._name("exporter_last_snapshot_age_seconds"),
                "Seconds since the exporter received the snapshot it serves (local clock).",
                age,
                unit="seconds",
            )
            yield self._gauge(
                ident,
                self._name("exporter_snapshot_sequence"),
                "Sequence number (counter) of the snapshot served.",
                view.snapshot.counter,
            )
        yield self._counter(
            ident, self._name("exporter_snapshots_received"), "Snapshots received.", received
        )
        yield self._counter(
            ident,
            self._name("exporter_decode_errors"),
            "Snapshot frames that failed to decode.",
            errors,
        )
        left_out = CounterMetricFamily(
            self._name("exporter_dropped"),
            "Values a snapshot carried that cannot be exported and were left out, counted "
            "per snapshot received: percentile keys not a number in [0, 100] "
            "(bad_quantile_key), run labels from the stream that are invalid or reserved, "
            "run_id among them (bad_run_label).",
            labels=(*ident.names, "reason"),
        )
        for reason, n in dropped.items():
            left_out.add_metric((*ident.values, reason), n)
        yield left_out
        yield self._gauge(
            ident,
            self._name("exporter_up"),
            "1 when the exporter holds a final snapshot or one younger than "
            f"{self.stale_after:g} s.",
            1.0 if up else 0.0,
        )


#: Bad-key counts of the percentile key sets seen (one grid per stream: a handful).
_BAD_KEYS: dict[tuple[str, ...], int] = {}


def _bad_quantile_keys(snapshot: MetricsSnapshot) -> int:
    """How many percentile keys of ``snapshot`` cannot be quantile labels."""
    bad = 0
    for m in snapshot.metrics:
        if isinstance(m, SeriesStat):
            keys = tuple(m.percentiles)
            n = _BAD_KEYS.get(keys)
            if n is None:
                n = sum(1 for k in keys if not _is_quantile_key(k))
                if len(_BAD_KEYS) > 64:  # hostile streams vary their keys: stay bounded
                    _BAD_KEYS.clear()
                _BAD_KEYS[keys] = n
            bad += n
    return bad


def _is_quantile_key(key: str) -> bool:
    try:
        quantile_label(key)
    except ValueError:
        return False
    return True


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
