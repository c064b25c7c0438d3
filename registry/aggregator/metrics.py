"""The metric computations of SPEC §6: from event records to counters and series.

:class:`AggregatorMetrics` registers the aggregator's counters and series on a
:class:`~registry.MetricsRegistry` and turns each :class:`EventRecord` into
registry updates through a dispatch table keyed by event type.

Rules (SPEC §6), and the choices where the SPEC is silent:

- A sample is *tracked* when it is issued while performance tracking is on.
  Only tracked samples get a row (their timestamps, kept while they are in
  flight); only successful tracked samples put values into the series. Every
  in-flight sample, tracked or not, is remembered by uuid with a failed flag,
  so the ``total_`` counters obey issued = completed + failed + in flight too.
- A sample *fails* when an error event for it arrives while it is in flight;
  it is counted failed at once, and its later ``sample.complete`` closes it
  without recording anything. An error arriving *after* the completion finds
  no sample in flight: the sample stays a success and the error is counted in
  ``events_unmatched``. A second error for a failed sample changes nothing.
- Per-sample values wait in the row until the completion says the sample
  succeeded: TTFT, the chunk deltas and the input length (taken from
  ``sample.issued``) are recorded only then, so every series counts the same
  samples (``isl.count == osl.count == tracked_samples_completed``).
- ``tracked_duration_ns``: per tracking window, from its start to the latest
  completion (successful or failed) of a sample issued in it, summed over
  windows. ``total_duration_ns``: first event received → the latest event
  received (its timestamp, never moving backwards).
- A successful tracked completion without a known ``finish_reason`` counts
  as ``other``.
- Diagnostic counters besides the SPEC's: ``events_malformed`` (undecodable
  payloads, unknown event types, sample events without a uuid, events a
  handler could not process), ``events_unmatched`` (sample and error events
  for no sample in flight, duplicate issues, chunks out of order) and
  ``session_errors`` (error events that name no sample). One warning is
  logged per kind of problem, not per event.

The hot path keeps counts in plain attributes and buffers chunk arrival
times; :meth:`AggregatorMetrics.handle_many` folds them into the registry once
per batch (chunk deltas are taken there with numpy). This module never touches
sockets, files or the event loop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import msgspec
import numpy as np

from registry.aggregator.session import SessionMachine
from registry.events import EventCodec, EventRecord, EventType
from registry.metrics_registry import MetricsRegistry

__all__ = [
    "COUNTERS",
    "DIAGNOSTIC_COUNTERS",
    "FINISH_REASONS",
    "NS_SERIES_BOUNDS",
    "STREAMING_SERIES",
    "TOKEN_SERIES_BOUNDS",
    "AggregatorEventCodec",
    "AggregatorMetrics",
    "series_names",
]

logger = logging.getLogger(__name__)

FINISH_REASONS: tuple[str, ...] = (
    "stop",
    "length",
    "tool_calls",
    "content_filter",
    "function_call",
    "other",
)

#: The SPEC §6 counters in registration order; the last two are settable.
COUNTERS: tuple[str, ...] = (
    "total_samples_issued",
    "total_samples_completed",
    "total_samples_failed",
    "tracked_samples_issued",
    "tracked_samples_completed",
    "tracked_samples_failed",
    *(f"tracked_finish_reason_{r}" for r in FINISH_REASONS),
    "tracked_output_tokens",
    "tracked_duration_ns",
    "total_duration_ns",
)
SETTABLE_COUNTERS: frozenset[str] = frozenset({"tracked_duration_ns", "total_duration_ns"})
#: Data-quality counters of this aggregator (monotonic).
DIAGNOSTIC_COUNTERS: tuple[str, ...] = ("events_malformed", "events_unmatched", "session_errors")

NS_SERIES_BOUNDS: dict[str, int] = {"hdr_low": 1, "hdr_high": 3_600_000_000_000, "sig_figs": 3}
TOKEN_SERIES_BOUNDS: dict[str, int] = {"hdr_low": 1, "hdr_high": 10_000_000, "sig_figs": 3}
#: Series that exist only in streaming mode.
STREAMING_SERIES: frozenset[str] = frozenset({"ttft_ns", "chunk_delta_ns", "tpot_ns"})

# (name, dtype, bounds) in SPEC §6 order.
_SERIES: tuple[tuple[str, type, dict[str, int]], ...] = (
    ("ttft_ns", int, NS_SERIES_BOUNDS),
    ("sample_latency_ns", int, NS_SERIES_BOUNDS),
    ("chunk_delta_ns", int, NS_SERIES_BOUNDS),
    ("tpot_ns", float, NS_SERIES_BOUNDS),
    ("isl", int, TOKEN_SERIES_BOUNDS),
    ("osl", int, TOKEN_SERIES_BOUNDS),
)

# Row layout: a list, because it is created and mutated on the hot path.
# _CHUNKS is None until recv_first, then the list of chunk arrival times
# (recv_first first); the ingest loop appends to it inline (index 3).
_ISSUED, _WINDOW, _ISL, _CHUNKS, _FAILED = range(5)

_MAX_WARNED_KINDS = 64

Handler = Callable[[EventRecord], None]


def series_names(*, streaming: bool) -> tuple[str, ...]:
    """The series the aggregator registers, in order."""
    return tuple(n for n, _, _ in _SERIES if streaming or n not in STREAMING_SERIES)


class AggregatorMetrics:
    """SPEC §6 computations over ``registry``, driving ``session``.

    Feed it with :meth:`handle_many` (one call per received batch). Read
    :attr:`n_pending_tasks` for the snapshot's pending count.
    """

    def __init__(
        self,
        registry: MetricsRegistry,
        *,
        streaming: bool,
        session: SessionMachine | None = None,
    ) -> None:
        self.registry = registry
        self.streaming = streaming
        self.session = session if session is not None else SessionMachine()
        for name in COUNTERS:
            registry.register_counter(name, settable=name in SETTABLE_COUNTERS)
        for name in DIAGNOSTIC_COUNTERS:
            registry.register_counter(name)
        for name, dtype, bounds in _SERIES:
            if streaming or name not in STREAMING_SERIES:
                registry.register_series(
                    name,
                    hdr_low=bounds["hdr_low"],
                    hdr_high=bounds["hdr_high"],
                    sig_figs=bounds["sig_figs"],
                    dtype=dtype,
                )

        self._rows: dict[str, list[Any]] = {}
        self._untracked: dict[str, bool] = {}  # uuid -> failed, for untracked samples in flight
        self._n_failed_open = 0  # tracked rows that failed and await their completion
        self._tracking = False
        self._window = -1
        self._window_last: list[int] = []  # per tracking window: latest completion (or start)
        self._first_ts: int | None = None
        self._last_ts: int | None = None

        # Local counts, folded into the registry once per batch (see _flush).
        self._n_issued = 0
        self._n_completed = 0
        self._n_failed = 0
        self._n_tracked_issued = 0
        self._n_tracked_completed = 0
        self._n_tracked_failed = 0
        self._n_output_tokens = 0
        self._n_malformed = 0
        self._n_unmatched = 0
        self._n_session_errors = 0
        self._tracked_duration = 0
        self._finish = dict.fromkeys(FINISH_REASONS, 0)
        self._flushed: dict[str, int] = {}
        # Chunk times of successful samples, flat, and where each sample starts:
        # the deltas are taken with numpy once per batch.
        self._chunk_times: list[int] = []
        self._chunk_starts: list[int] = []
        self._warned: set[str] = set()

        record = registry.record
        self._record = record
        noop: Handler = self._ignore
        self._dispatch: dict[EventType, Handler] = {
            EventType.SESSION_STARTED: self._on_started,
            EventType.SESSION_START_PERFORMANCE_TRACKING: self._on_start_tracking,
            EventType.SESSION_STOP_PERFORMANCE_TRACKING: self._on_stop_tracking,
            EventType.SESSION_ENDED: self._on_ended,
            EventType.SAMPLE_ISSUED: self._on_issued,
            EventType.SAMPLE_RECV_FIRST: self._on_recv_first if streaming else noop,
            EventType.SAMPLE_RECV_NON_FIRST: self._on_recv_non_first if streaming else noop,
            EventType.SAMPLE_COMPLETE: self._on_complete,
            EventType.ERROR_GENERIC: self._on_error,
            EventType.ERROR_CLIENT: self._on_error,
        }

    # -- reading ---------------------------------------------------------------

    @property
    def n_pending_tasks(self) -> int:
        """Tracked samples in flight that have not failed (their metrics are missing)."""
        return len(self._rows) - self._n_failed_open

    @property
    def n_in_flight(self) -> int:
        """All samples in flight (tracked or not, failed or not)."""
        return len(self._rows) + len(self._untracked)

    @property
    def tracking(self) -> bool:
        return self._tracking

    # -- ingest ----------------------------------------------------------------

    def handle_many(self, records: Sequence[EventRecord]) -> None:
        """Apply a batch of events in order, then fold the counts into the registry."""
        if not records:
            return
        if self._first_ts is None:
            self._first_ts = records[0].timestamp_ns
        dispatch = self._dispatch
        rows_get = self._rows.get
        # Chunks are most events of a streaming run: their common case (a
        # tracked sample past its first chunk) is handled inline, saving a call.
        chunk = EventType.SAMPLE_RECV_NON_FIRST if self.streaming else None
        for rec in records:
            try:
                kind = rec.event_type
                if kind is chunk:
                    row = rows_get(rec.sample_uuid)
                    if row is not None and row[3] is not None:
                        row[3].append(rec.timestamp_ns)
                        continue
                dispatch[kind](rec)
            except Exception as exc:  # bad input must never stop the service
                self.count_malformed(f"event a handler could not process ({type(exc).__name__})")
                logger.debug("event %r failed: %s", rec, exc)
        # "Latest event": the last one received; never let the duration shrink
        # when producers' clocks interleave.
        last = records[-1].timestamp_ns
        if self._last_ts is None or last > self._last_ts:
            self._last_ts = last
        self._flush()

    def handle(self, record: EventRecord) -> None:
        """One event (tests and slow paths; the service uses :meth:`handle_many`)."""
        self.handle_many((record,))

    def count_malformed(self, kind: str, n: int = 1) -> None:
        """Count ``n`` malformed events (logged once per ``kind``) and fold the count."""
        self._n_malformed += n
        self._warn_once(kind, "skipping malformed event: %s (counted in events_malformed)")
        self._flush()

    # -- internals -------------------------------------------------------------

    def _warn_once(self, kind: str, fmt: str) -> None:
        # Kinds can carry input text (unknown type names): cap them so hostile
        # input cannot turn the log into one line per event.
        if kind not in self._warned and len(self._warned) < _MAX_WARNED_KINDS:
            self._warned.add(kind)
            logger.warning(fmt + "; further ones are not logged", kind)

    def _unmatched(self, rec: EventRecord, why: str) -> None:
        if not rec.sample_uuid:
            self._n_malformed += 1
            self._warn_once(
                f"{rec.event_type.value} without sample_uuid",
                "skipping malformed event: %s (counted in events_malformed)",
            )
            return
        self._n_unmatched += 1
        self._warn_once(
            f"{rec.event_type.value} {why}", "ignoring %s (counted in events_unmatched)"
        )

    def _flush(self) -> None:
        """Fold the local counts and buffered chunk deltas into the registry."""
        reg = self.registry
        flushed = self._flushed
        for name, value in (
            ("total_samples_issued", self._n_issued),
            ("total_samples_completed", self._n_completed),
            ("total_samples_failed", self._n_failed),
            ("tracked_samples_issued", self._n_tracked_issued),
            ("tracked_samples_completed", self._n_tracked_completed),
            ("tracked_samples_failed", self._n_tracked_failed),
            ("tracked_output_tokens", self._n_output_tokens),
            ("events_malformed", self._n_malformed),
            ("events_unmatched", self._n_unmatched),
            ("session_errors", self._n_session_errors),
        ):
            delta = value - flushed.get(name, 0)
            if delta:
                reg.increment(name, delta)
                flushed[name] = value
        for reason, value in self._finish.items():
            name = f"tracked_finish_reason_{reason}"
            delta = value - flushed.get(name, 0)
            if delta:
                reg.increment(name, delta)
                flushed[name] = value
        reg.set_counter("tracked_duration_ns", self._tracked_duration)
        if self._first_ts is not None and self._last_ts is not None:
            reg.set_counter("total_duration_ns", self._last_ts - self._first_ts)
        if self._chunk_times:
            times = np.asarray(self._chunk_times, dtype=np.int64)
            starts = np.asarray(self._chunk_starts, dtype=np.int64)
            self._chunk_times, self._chunk_starts = [], []
            keep = np.ones(times.size - 1, dtype=bool)
            keep[starts[1:] - 1] = False  # no delta across two samples
            reg.record_many("chunk_delta_ns", np.diff(times)[keep])

    # -- handlers (one per event type) ----------------------------------------

    def _ignore(self, rec: EventRecord) -> None:
        return None

    def _on_started(self, rec: EventRecord) -> None:
        self.session.start()

    def _on_ended(self, rec: EventRecord) -> None:
        self.session.end()

    def _on_start_tracking(self, rec: EventRecord) -> None:
        if self._tracking:
            self._warn_once("start_performance_tracking while tracking", "ignoring %s")
            return
        self._tracking = True
        self._window += 1
        self._window_last.append(rec.timestamp_ns)

    def _on_stop_tracking(self, rec: EventRecord) -> None:
        if not self._tracking:
            self._warn_once("stop_performance_tracking while not tracking", "ignoring %s")
            return
        self._tracking = False

    def _on_issued(self, rec: EventRecord) -> None:
        uuid = rec.sample_uuid
        if not uuid or uuid in self._rows or uuid in self._untracked:
            self._unmatched(rec, "for a sample already in flight")
            return
        self._n_issued += 1
        if self._tracking:
            self._n_tracked_issued += 1
            self._rows[uuid] = [rec.timestamp_ns, self._window, rec.input_tokens, None, False]
        else:
            self._untracked[uuid] = False

    def _on_recv_first(self, rec: EventRecord) -> None:
        row = self._rows.get(rec.sample_uuid)
        if row is None:
            if rec.sample_uuid not in self._untracked:
                self._unmatched(rec, "for no sample in flight")
            return
        if row[_CHUNKS] is not None:
            self._unmatched(rec, "repeated for the same sample")
            return
        row[_CHUNKS] = [rec.timestamp_ns]

    def _on_recv_non_first(self, rec: EventRecord) -> None:
        # The common case is inlined in handle_many; this is the rest.
        row = self._rows.get(rec.sample_uuid)
        if row is None:
            if rec.sample_uuid not in self._untracked:
                self._unmatched(rec, "for no sample in flight")
            return
        chunks = row[_CHUNKS]
        if chunks is None:
            self._unmatched(rec, "before the sample's recv_first")
            return
        chunks.append(rec.timestamp_ns)

    def _on_complete(self, rec: EventRecord) -> None:
        uuid = rec.sample_uuid
        row = self._rows.pop(uuid, None)
        if row is None:
            failed = self._untracked.pop(uuid, None)
            if failed is None:
                self._unmatched(rec, "for no sample in flight")
            elif not failed:
                self._n_completed += 1
            return
        ts = rec.timestamp_ns
        window_last = self._window_last
        w = row[_WINDOW]
        if ts > window_last[w]:
            self._tracked_duration += ts - window_last[w]
            window_last[w] = ts
        if row[_FAILED]:
            self._n_failed_open -= 1
            return
        self._n_completed += 1
        self._n_tracked_completed += 1
        issued = row[_ISSUED]
        record = self._record
        record("sample_latency_ns", ts - issued)
        if row[_ISL] is not None:
            record("isl", row[_ISL])
        out = rec.output_tokens
        if out is not None:
            record("osl", out)
            self._n_output_tokens += out
        if self.streaming:
            chunks = row[_CHUNKS]
            if chunks is not None:
                first = chunks[0]
                record("ttft_ns", first - issued)
                if len(chunks) > 1:
                    self._chunk_starts.append(len(self._chunk_times))
                    self._chunk_times.extend(chunks)
                if out is not None and out > 1:
                    record("tpot_ns", (ts - first) / (out - 1))
        reason = rec.finish_reason
        if reason in self._finish:
            self._finish[reason] += 1
        else:
            self._finish["other"] += 1

    def _on_error(self, rec: EventRecord) -> None:
        uuid = rec.sample_uuid
        if not uuid:
            self._n_session_errors += 1
            return
        row = self._rows.get(uuid)
        if row is not None:
            if not row[_FAILED]:
                row[_FAILED] = True
                self._n_failed_open += 1
                self._n_failed += 1
                self._n_tracked_failed += 1
            return
        failed = self._untracked.get(uuid)
        if failed is None:
            self._unmatched(rec, "for no sample in flight (after its completion, or unknown)")
        elif not failed:
            self._untracked[uuid] = True
            self._n_failed += 1


class AggregatorEventCodec(EventCodec):
    """The event codec with the aggregator's bookkeeping for undecodable payloads:
    each is counted in ``events_malformed`` and skipped; the log names the
    kind (unknown event type, or why the payload is malformed) once."""

    def __init__(self, metrics: AggregatorMetrics) -> None:
        super().__init__()
        self._metrics = metrics
        #: payloads counted as malformed here
        self.errors = 0

    def on_decode_error(self, payload: bytes, exc: Exception) -> EventRecord | None:
        self.errors += 1
        self._metrics.count_malformed(classify_bad_payload(payload))
        return None


_KNOWN_TYPES = frozenset(t.value for t in EventType)


def classify_bad_payload(payload: bytes | memoryview) -> str:
    """A short kind for an undecodable event payload (for one log line per kind)."""
    try:
        obj = msgspec.msgpack.decode(payload)
    except (msgspec.DecodeError, ValueError, TypeError):
        return "payload is not msgpack"
    if not isinstance(obj, dict):
        return f"payload is a msgpack {type(obj).__name__}, not a map"
    event_type = obj.get("event_type")
    if isinstance(event_type, str) and event_type not in _KNOWN_TYPES:
        return f"unknown event type {event_type[:60]!r}"
    return "map with missing or mistyped fields"
