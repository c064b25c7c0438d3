"""MetricsRegistry: the in-memory home of every counter and series (SPEC §3).

Hot path: :meth:`MetricsRegistry.record` is one dict lookup and one array
append; :meth:`MetricsRegistry.increment` one dict lookup and an add. They
never allocate beyond the append, never take a lock and never touch numpy.
A call that fails gets an error naming the metric and what it expected
(:mod:`registry.core.metric_errors`), built only once the fast path has raised.

A snapshot is made in two steps. :meth:`MetricsRegistry.capture` is cheap: it
copies the counters and detaches every series' pending values at one moment,
so a capture taken between two updates of the recording thread is
consistent (a series holds exactly the values its counters counted).
:meth:`SnapshotCapture.build` does the numpy work and may run on another
thread. Builds fold captures in capture order; a capture that is never built
is folded by the next build, so no value is ever lost or counted twice.
:meth:`MetricsRegistry.build_snapshot` does both at once.
"""

from __future__ import annotations

import collections
import logging
import operator
import threading
import time
from collections.abc import Callable
from typing import Any, Unpack

from registry.core.metric_errors import (
    UnknownMetricError,
    counter_delta_error,
    lookup_error,
    series_value_error,
)
from registry.core.percentiles import PercentileMethod
from registry.core.series import SeriesConfig, SeriesSampler, SeriesSettings, check_series_keywords
from registry.delivery.snapshot import CounterStat, MetricsSnapshot, SessionState
from registry.mlperf.early_stopping import EarlyStoppingSpec
from registry.store.raw_store import RawStore

__all__ = ["CounterInfo", "MetricsRegistry", "SnapshotCapture"]

_log = logging.getLogger(__name__)


class CounterInfo:
    """How a counter was registered."""

    __slots__ = ("dtype", "name", "settable")

    def __init__(self, name: str, dtype: type, settable: bool) -> None:
        self.name = name
        self.dtype = dtype
        self.settable = settable


class MetricsRegistry:
    """Counters and series by unique name, and the snapshots built from them.

    ``percentile_method`` picks terminal (exact) percentiles (SPEC §3; live
    ones are always nearest rank on the HDR). ``early_stopping`` (on by
    default, ``None`` turns it off) gives terminal snapshots of series
    registered ``tail_latency=True`` their early-stopping map (SPEC §10).
    ``raw_store`` (SPEC §11): raw values beyond its memory bound go to its
    directory; without one every raw value stays in memory.
    """

    def __init__(
        self,
        *,
        percentile_method: PercentileMethod | str = PercentileMethod.NEAREST_RANK,
        early_stopping: EarlyStoppingSpec | None = EarlyStoppingSpec(),  # noqa: B008 - frozen
        raw_store: RawStore | None = None,
    ) -> None:
        if early_stopping is not None and not isinstance(early_stopping, EarlyStoppingSpec):
            raise TypeError(
                f"early_stopping must be an EarlyStoppingSpec or None, got {early_stopping!r}"
            )
        self._percentile_method = PercentileMethod.parse(percentile_method)
        self._early_stopping = early_stopping
        self._raw_store = raw_store
        self._counter_info: dict[str, CounterInfo] = {}
        self._counters: dict[str, int | float] = {}
        self._series: dict[str, SeriesSampler] = {}
        self._appenders: dict[str, Callable[[Any], None]] = {}
        self._capture_lock = threading.Lock()
        self._fold_lock = threading.Lock()
        self._sequence = 0
        # captures whose detached values are not folded yet, oldest first
        self._unfolded: collections.deque[SnapshotCapture] = collections.deque()
        self._capture_hooks: list[Callable[[], None]] = []

    # -- registration ----------------------------------------------------------

    def _check_new(self, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"metric name must be a non-empty str, got {name!r}")
        if name in self._counter_info or name in self._series:
            raise ValueError(f"metric {name!r} is already registered")

    def register_counter(self, name: str, dtype: type = int, settable: bool = False) -> None:
        """A counter starting at zero; only ``settable`` ones accept :meth:`set_counter`."""
        self._check_new(name)
        if dtype not in (int, float):
            raise ValueError(f"counter {name!r}: dtype must be int or float, not {dtype!r}")
        self._counter_info[name] = CounterInfo(name, dtype, settable)
        self._counters[name] = dtype(0)

    def register_series(self, name: str, **settings: Unpack[SeriesSettings]) -> None:
        """A series of int or float values (bounds and grid checked, ``ValueError`` if bad).

        The keywords are :class:`~registry.core.series.SeriesSettings`: ``hdr_low`` and
        ``hdr_high`` (required), ``sig_figs`` (3), ``n_histogram_buckets`` (30),
        ``percentiles``, ``dtype`` (int) and ``tail_latency`` (False: with True,
        terminal snapshots carry its early-stopping map).
        """
        check_series_keywords("register_series", settings)
        self._check_new(name)
        try:
            config = SeriesConfig(**settings)
        except ValueError as exc:
            raise ValueError(f"series {name!r}: {exc}") from None
        values = None
        if self._raw_store is not None:
            np_dtype = "int64" if config.dtype is int else "float64"
            values = self._raw_store.values_for(name, np_dtype, {"dtype": np_dtype})
        sampler = SeriesSampler(name, config, values)
        self._series[name] = sampler
        self._appenders[name] = sampler.pending.append

    # -- hot path --------------------------------------------------------------

    def record(self, name: str, value: int | float) -> None:
        """Append one value to series ``name``.

        ``UnknownMetricError`` (a ``KeyError``) for an unknown name, listing close
        matches; ``MetricKindError`` (a ``KeyError`` and ``TypeError``) for a
        counter's name; ``TypeError`` naming the series and its type for a value of
        the wrong kind (``OverflowError`` outside int64). Messages are built only
        after the append failed: the call that succeeds pays for a ``try`` alone.
        """
        try:
            self._appenders[name](value)
        except (KeyError, TypeError, OverflowError) as exc:
            raise self._record_error(name, value, exc) from None

    def appender(self, name: str) -> Callable[[Any], None]:
        """The bound ``record`` of series ``name``: one call per value, no lookup.

        For hot loops that record into one series. Unknown names raise as in
        :meth:`record`; the appender itself raises the array's bare ``TypeError``
        for a wrong value (it is the append, with nothing around it).
        """
        try:
            return self._appenders[name]
        except (KeyError, TypeError):
            raise self._lookup_error(name, "series") from None

    def record_many(self, name: str, values: Any) -> None:
        """Append a batch (any sequence or numpy array) to series ``name``."""
        try:
            sampler = self._series[name]
        except (KeyError, TypeError):
            raise self._lookup_error(name, "series") from None
        sampler.add_many(values)

    def increment(self, name: str, delta: int | float = 1) -> None:
        """Add ``delta`` to counter ``name``; monotonic counters refuse negatives.

        Errors name the counter: ``UnknownMetricError`` / ``MetricKindError`` as in
        :meth:`record`, ``TypeError`` for a delta that is not a number or a
        non-integer delta to an int counter. Not atomic across threads: one writer
        per counter (``MetricsSession.increment`` locks).
        """
        counters = self._counters
        try:
            old = counters[name]
            value = old + delta
        except (KeyError, TypeError):
            raise self._increment_error(name, delta) from None
        if delta < 0 and not self._counter_info[name].settable:
            raise ValueError(f"counter {name!r} is monotonic; cannot add {delta!r}")
        if value.__class__ is not old.__class__:
            # int + float, or a numpy scalar: the slow path decides (never taken by plain ints)
            value = self._checked_sum(name, old, delta)
        counters[name] = value

    def _checked_sum(self, name: str, old: int | float, delta: Any) -> int | float:
        dtype = self._counter_info[name].dtype
        if dtype is int:
            try:
                return old + operator.index(delta)
            except TypeError:
                raise counter_delta_error(name, dtype, delta) from None
        return float(old + delta)

    def set_counter(self, name: str, value: int | float) -> None:
        """Set a counter registered with ``settable=True``."""
        try:
            info = self._counter_info[name]
        except (KeyError, TypeError):
            raise self._lookup_error(name, "counter") from None
        if not info.settable:
            raise ValueError(
                f"counter {name!r} is monotonic; register it with settable=True to set it"
            )
        self._counters[name] = info.dtype(value)

    # -- reading ---------------------------------------------------------------

    @property
    def percentile_method(self) -> PercentileMethod:
        """How terminal snapshots pick their percentiles."""
        return self._percentile_method

    @property
    def early_stopping(self) -> EarlyStoppingSpec | None:
        """The early-stopping test for tail-latency series, or ``None`` when off."""
        return self._early_stopping

    @property
    def raw_store(self) -> RawStore | None:
        """Where raw values beyond the memory bound go, or ``None`` (all in memory)."""
        return self._raw_store

    def series_sampler(self, name: str) -> SeriesSampler:
        """The sampler of series ``name`` (its rollups, HDR and raw values)."""
        return self._series[name]

    def inexact_series(self) -> dict[str, str]:
        """Series whose last terminal statistics are not exact, and why (normally none)."""
        return {n: s.inexact for n, s in self._series.items() if s.inexact is not None}

    def finalize_raw_store(self) -> None:
        """Complete the raw store after the last snapshot: every value on disk, a manifest.

        Call it once nothing records any more (after the final snapshot); a
        registry without a store does nothing. Runs the file writes in the
        caller's thread.
        """
        store = self._raw_store
        if store is None:
            return
        with self._fold_lock:
            self._fold_through(self._sequence)
            info: dict[str, dict[str, Any]] = {}
            for name, s in self._series.items():
                r = s.rollup
                info[name] = {
                    **s.config.describe(),
                    "count": r.count,
                    "total": r.total,
                    "min": r.min,
                    "max": r.max,
                    "sum_sq": r.sum_sq,
                }
            store.finalize(info)

    @property
    def counter_names(self) -> tuple[str, ...]:
        return tuple(self._counter_info)

    @property
    def series_names(self) -> tuple[str, ...]:
        return tuple(self._series)

    def counter_info(self, name: str) -> CounterInfo:
        try:
            return self._counter_info[name]
        except (KeyError, TypeError):
            raise self._lookup_error(name, "counter") from None

    def series_config(self, name: str) -> SeriesConfig:
        try:
            return self._series[name].config
        except (KeyError, TypeError):
            raise self._lookup_error(name, "series") from None

    def counter_value(self, name: str) -> int | float:
        try:
            return self._counters[name]
        except (KeyError, TypeError):
            raise self._lookup_error(name, "counter") from None

    # -- errors (built only after the fast path failed) --------------------------

    def _lookup_error(self, name: object, wanted: str) -> UnknownMetricError:
        return lookup_error(name, wanted=wanted, counters=self._counter_info, series=self._series)

    def _record_error(self, name: object, value: object, exc: BaseException) -> Exception:
        if not isinstance(name, str) or name not in self._series:
            return self._lookup_error(name, "series")
        return series_value_error(name, self._series[name].config.dtype, value, exc)

    def _increment_error(self, name: object, delta: object) -> Exception:
        if not isinstance(name, str) or name not in self._counter_info:
            return self._lookup_error(name, "counter")
        return counter_delta_error(name, self._counter_info[name].dtype, delta)

    def add_capture_hook(self, fn: Callable[[], None]) -> None:
        """Call ``fn()`` at the start of every capture, before the counters are copied.

        For counters derived from others that need to be current only when a
        snapshot is taken (the aggregator's verdict): computing them per
        capture instead of per update keeps the hot path cheap. ``fn`` runs on
        the capturing thread; an exception is logged and the capture goes on.
        """
        self._capture_hooks.append(fn)

    def capture(self, *, state: SessionState, n_pending_tasks: int) -> SnapshotCapture:
        """Take the counters and detach the pending series values, at one moment.

        Cheap (no numpy work beyond copying the pending buffers): call it on the
        thread that records, between updates, for a consistent snapshot; then
        :meth:`SnapshotCapture.build` anywhere.
        """
        state = SessionState(state)
        with self._capture_lock:
            for hook in self._capture_hooks:
                try:
                    hook()
                except Exception:
                    _log.exception("a capture hook failed; capturing without it")
            self._sequence += 1
            capture = SnapshotCapture(
                self,
                sequence=self._sequence,
                timestamp_ns=time.monotonic_ns(),
                state=state,
                n_pending_tasks=int(n_pending_tasks),
                counters=[CounterStat(name, value) for name, value in self._counters.items()],
                batches=[(s, s.take_pending()) for s in self._series.values()],
            )
            self._unfolded.append(capture)
        return capture

    def build_snapshot(self, *, state: SessionState, n_pending_tasks: int) -> MetricsSnapshot:
        """Capture and build in one call: fold everything pending, return a snapshot.

        Terminal states (COMPLETE, INTERRUPTED) give exact percentiles (by
        :attr:`percentile_method`), display histograms and early-stopping maps
        from the raw values; the others use the HDR.
        """
        return self.capture(state=state, n_pending_tasks=n_pending_tasks).build()

    def _fold_through(self, sequence: int) -> None:
        # caller holds _fold_lock; captures are appended in sequence order
        while self._unfolded and self._unfolded[0].sequence <= sequence:
            self._unfolded.popleft()._fold()


class SnapshotCapture:
    """Counters and detached series values taken by :meth:`MetricsRegistry.capture`."""

    __slots__ = (
        "_batches",
        "_counters",
        "_registry",
        "n_pending_tasks",
        "sequence",
        "state",
        "timestamp_ns",
    )

    def __init__(
        self,
        registry: MetricsRegistry,
        *,
        sequence: int,
        timestamp_ns: int,
        state: SessionState,
        n_pending_tasks: int,
        counters: list[CounterStat],
        batches: list[tuple[SeriesSampler, list[Any]]],
    ) -> None:
        self._registry = registry
        self.sequence = sequence
        self.timestamp_ns = timestamp_ns
        self.state = state
        self.n_pending_tasks = n_pending_tasks
        self._counters = counters
        self._batches = batches

    def _fold(self) -> None:
        for sampler, batches in self._batches:
            sampler.fold(batches)
        self._batches = []

    def build(self) -> MetricsSnapshot:
        """Fold this capture (and any older unbuilt one) and describe every series.

        Built in capture order, each snapshot's series hold exactly the values
        recorded up to its capture. A capture built after a newer one shows the
        newer values too: never fewer values than its counters counted.
        """
        registry = self._registry
        exact = self.state.is_terminal
        with registry._fold_lock:
            registry._fold_through(self.sequence)
            series = [
                s.stat(
                    exact=exact,
                    method=registry._percentile_method,
                    early_stopping=registry._early_stopping,
                )
                for s in registry._series.values()
            ]
        return MetricsSnapshot(
            counter=self.sequence,
            timestamp_ns=self.timestamp_ns,
            state=self.state,
            n_pending_tasks=self.n_pending_tasks,
            metrics=[*self._counters, *series],
        )
