"""The metric computations of SPEC §6: from event records to counters and series.

:class:`AggregatorMetrics` registers the aggregator's counters and series on a
:class:`~registry.MetricsRegistry`, in mlcommons/endpoints' order, and turns
each :class:`EventRecord` into registry updates by upstream's rules, so the
same events give the same numbers (the fixture tests compare field by field):

- ``sample.issued`` while tracking is on opens a row (a duplicate issue of a
  sample with a row reuses it and counts again); ``sample.complete`` closes
  it. Sample events for a uuid without a row move only the ``total_``
  counters.
- Series, tracked rows only, recorded at the event that ends the interval,
  failed and still-running samples included: ``isl`` at issue,
  ``ttft_ns`` at the first receive, ``chunk_delta_ns`` at every receive after
  the first, ``sample_latency_ns``, ``osl`` and ``tpot_ns`` at completion.
- ``total_samples_failed`` counts every error event; ``tracked_samples_failed``
  those whose sample has a row (the error precedes the ``sample.complete``).
  ``total_samples_completed`` counts failed completions too.
- Finish reasons: tracked completions with a ``finish_reason`` string; the
  five known ones by name, any other string as ``other``, none when absent.
- ``tracked_duration_ns``: Σ over tracking windows of (latest completion of a
  sample issued in it, or the window start) - window start.
  ``legacy_loadgen_window_duration_ns``: first tracked issue → completion of
  the latest-issued tracked sample that completed. ``total_duration_ns``:
  ``session.started`` → the latest event (by timestamp), ``session.ended`` included. All three are
  kept current at every batch (upstream refreshes the first two only at
  ``stop_performance_tracking`` and the end; the final values are equal).
- Token counts: the producer's ``input_tokens``/``output_tokens`` (our
  extension) take precedence; else ISL is the number of ``token_ids`` (read
  from the msgpack array header, no list built). Text prompts, chat prompts
  and outputs need a tokenizer (``tokens=``); without one they are skipped, as
  upstream skips them. With one, the handler submits the payload to the
  :class:`~registry.tokens.TokenizerPool` and the counts are recorded when
  its workers are done: ``isl`` for the prompt, ``osl`` (also added to
  ``tracked_output_tokens``) and ``tpot_ns`` = (complete - first receive) /
  tokens after the first chunk, skipped when that is 0. What is tokenized is
  :mod:`registry.tokens.rules`. ``n_pending_tasks`` counts tokenizations not
  yet recorded; ``tokenization_errors`` those the tokenizer raised on (each
  costs its own value only).
- Events after ``session.ended`` are ignored, the rest of its batch included.

With constraints (``--ruleset`` / ``--slo``, SPEC §10), every tracked
sample is also judged once by a :class:`~registry.mlperf.ConstraintTracker`
(:meth:`AggregatorMetrics.judge_sample`): at its completion, or, when its TPOT
and output tokens come from the tokenizer, when those counts arrive. The
verdict counters of :mod:`registry.mlperf.verdict_counters` follow the aggregator's own.

Ours in addition: ``tracked_output_tokens`` and the data-quality counters
``events_malformed`` (undecodable payloads, unknown event types, broken
frames, sample events without a uuid), ``events_unmatched`` (sample events
for no sample in flight, duplicate issues), ``events_out_of_order`` (a
receive or completion whose timestamp precedes its sample's previous one;
rejected so no negative latency is recorded) and ``session_errors`` (error
events naming no sample). One warning is logged per kind, not per event.

The hot path keeps counts in plain attributes and folds them into the registry
once per batch. This module never touches sockets, files or the event loop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from registry.aggregator.chunk_batch import HeldReceives, finish, settle
from registry.aggregator.rows import NO_COUNT, UNSET, SampleTable
from registry.aggregator.session import SessionMachine
from registry.core.catalogue import (
    COUNTERS,
    DIAGNOSTIC_COUNTERS,
    FINISH_REASONS,
    NS_SERIES_BOUNDS,
    SETTABLE_COUNTERS,
    STREAMING_SERIES,
    TAIL_LATENCY_SERIES,
    TOKEN_SERIES_BOUNDS,
    register_standard_metrics,
    series_names,
)
from registry.core.metrics_registry import MetricsRegistry
from registry.events import EventCodec, EventRecord, EventType
from registry.events.data import ErrorData, PromptData, TextModelOutput, array_length
from registry.mlperf.constraints import ConstraintTracker
from registry.mlperf.requirements import Requirements
from registry.mlperf.slo import Constraint
from registry.mlperf.verdict_counters import VerdictCounters
from registry.store.sample_log import SampleLog
from registry.tokens import OUTPUT, PROMPT, TokenCounter, TokenizerPool, TokenJob
from registry.tokens.pool import Count
from registry.tokens.rules import needs_after_first_chunk_count, needs_output_count

# The catalogue's names (declared in registry/core/catalogue.py) are re-exported
# for older imports.
__all__ = [
    "COUNTERS",
    "DIAGNOSTIC_COUNTERS",
    "FINISH_REASONS",
    "NS_SERIES_BOUNDS",
    "SETTABLE_COUNTERS",
    "STREAMING_SERIES",
    "TAIL_LATENCY_SERIES",
    "TOKEN_SERIES_BOUNDS",
    "AggregatorEventCodec",
    "AggregatorMetrics",
    "series_names",
]

logger = logging.getLogger(__name__)

_MAX_WARNED_KINDS = 64
#: Batches shorter than this are applied record by record: holding chunk receives
#: back pays off only over many records.
_BATCHED_MIN = 32
#: With ``hold_receives``: records applied before held receives are settled anyway
#: (settling costs a few numpy calls however many are held; this bounds the memory).
_HOLD_RECORDS = 8192
_SESSION_KINDS = frozenset(t for t in EventType if t.is_session)

Handler = Callable[[EventRecord], None]


class AggregatorMetrics:
    """SPEC §6 computations over ``registry``, driving ``session``.

    Feed it with :meth:`handle_many` (one call per received batch). Read
    :attr:`n_pending_tasks` for the snapshot's pending count. With ``tokens``
    (a counter over a loaded tokenizer) text is tokenized by :attr:`tokenizer`
    in ``tokenizer_workers`` threads; its results are recorded on the event
    loop that called :meth:`handle_many`. With a ``sample_log``, every tracked
    sample's record is appended to it when the sample completes
    (:meth:`log_in_flight` adds those still running).
    """

    def __init__(
        self,
        registry: MetricsRegistry,
        *,
        streaming: bool,
        session: SessionMachine | None = None,
        sig_figs: int = 3,
        n_histogram_buckets: int = 30,
        tokens: TokenCounter | None = None,
        tokenizer_workers: int = 2,
        constraints: Sequence[Constraint] = (),
        sample_log: SampleLog | None = None,
        hold_receives: bool = False,
        requirements: Requirements | None = None,
    ) -> None:
        for c in constraints:
            if c.series in STREAMING_SERIES and not streaming:
                raise ValueError(f"constraint {c.describe()} needs streaming mode ({c.series})")
        self.registry = registry
        self.sample_log = sample_log
        self.streaming = streaming
        self.session = session if session is not None else SessionMachine()
        # the catalogue's counters and series (the verdict counters below come after them)
        register_standard_metrics(
            registry,
            streaming=streaming,
            sig_figs=sig_figs,
            n_histogram_buckets=n_histogram_buckets,
        )
        # Chunk receives held back (see _apply_batched); with hold_receives they may
        # stay held across batches, up to _HOLD_RECORDS records, and every reader of
        # what they change settles them first (snapshot captures through the hook).
        self._held = HeldReceives()
        self._hold_across = hold_receives
        self._held_records = 0
        registry.add_capture_hook(self.settle_receives)
        #: the run's constraint accounting (``None`` without constraints)
        self.tracker: ConstraintTracker | None = None
        self._verdict: VerdictCounters | None = None
        self._verdict_end: tuple[bool, bool] = (False, True)  # (final, complete)
        # LoadGen's Server duration runs to the last tracked issue (see _validity_duration)
        self._last_tracked_issue: int | None = None
        if constraints or requirements is not None:
            self.tracker = ConstraintTracker(constraints)
            self._verdict = VerdictCounters(registry, self.tracker, requirements)
            # The verdict is derived from the tracker's counts: written when a snapshot
            # is captured, not at every batch (the publisher captures on this loop).
            registry.add_capture_hook(self._write_verdict)
        self.rows = SampleTable()
        # Untracked samples in flight, only so that events for unknown samples can be
        # told from those of warm-up samples (events_unmatched).
        self._untracked: set[str] = set()
        self._tracking = False
        self._blocks_start: list[int] = []
        self._blocks_last: list[int] = []  # per window: latest completion (or start)
        self._session_start: int | None = None
        self._ended = False
        #: a ``session.interrupted`` marker was received (newer upstream sessions)
        self.interrupted_marker = False
        self._legacy_start: int | None = None
        self._legacy_max_issued = -1
        self._legacy_end: int | None = None

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
        self._n_out_of_order = 0
        self._n_complete_before_chunk = 0
        self._n_session_errors = 0
        self._n_token_errors = 0
        self._tracked_duration = 0
        self._total_duration = 0
        self._finish = dict.fromkeys(FINISH_REASONS, 0)
        self._flushed: dict[str, int] = {}
        self._warned: set[str] = set()

        record = registry.record
        self._record = record
        #: the tokenization backlog (``None`` without a tokenizer)
        self.tokenizer: TokenizerPool | None = None
        if tokens is not None:
            self.tokenizer = TokenizerPool(
                tokens,
                workers=tokenizer_workers,
                on_counts=self._on_token_counts,
                after_batch=self._flush,
            )
        series = registry.series_names
        self._has_ttft = "ttft_ns" in series
        self._append_gap: Callable[[int], None] = (
            registry.appender("chunk_delta_ns") if self._has_ttft else self._ignore_value
        )
        # The handlers' own series, bound once (a value of the wrong kind raises the
        # array's TypeError, which handle_many counts like any handler failure).
        self._append_isl = registry.appender("isl")
        self._append_latency = registry.appender("sample_latency_ns")
        self._append_ttft: Callable[[int], None] = (
            registry.appender("ttft_ns") if self._has_ttft else self._ignore_value
        )
        noop: Handler = self._ignore
        self._dispatch: dict[EventType, Handler] = {
            EventType.SESSION_STARTED: self._on_started,
            EventType.SESSION_ENDED: self._on_ended,
            EventType.SESSION_STOP_LOADGEN: noop,
            EventType.SESSION_START_PERFORMANCE_TRACKING: self._on_start_tracking,
            EventType.SESSION_STOP_PERFORMANCE_TRACKING: self._on_stop_tracking,
            EventType.SESSION_INTERRUPTED: self._on_interrupted,
            EventType.SAMPLE_ISSUED: self._on_issued,
            EventType.SAMPLE_RECV_FIRST: self._on_recv_first,
            EventType.SAMPLE_RECV_NON_FIRST: self._on_recv_non_first,
            EventType.SAMPLE_COMPLETE: self._on_complete,
            EventType.ERROR_GENERIC: self._on_error,
            EventType.ERROR_LOADGEN: self._on_error,
            EventType.ERROR_SESSION: self._on_error,
            EventType.ERROR_CLIENT: self._on_error,
        }

    # -- reading ---------------------------------------------------------------

    @property
    def n_pending_tasks(self) -> int:
        """Tokenizations not yet recorded (0 without a tokenizer)."""
        pool = self.tokenizer
        return pool.pending if pool is not None else 0

    @property
    def n_in_flight(self) -> int:
        """Tracked samples issued and not completed yet."""
        return len(self.rows)

    @property
    def tracking(self) -> bool:
        return self._tracking

    @property
    def ended(self) -> bool:
        """``session.ended`` was applied: later events are ignored."""
        return self._ended

    # -- ingest ----------------------------------------------------------------

    def handle_many(self, records: Sequence[EventRecord]) -> None:
        """Apply a batch of events in order, then fold the counts into the registry."""
        if not records or self._ended:
            return
        if self._session_start is None or not self._has_ttft or len(records) < _BATCHED_MIN:
            self.settle_receives()
            self._apply_in_order(records)
        else:
            self._apply_batched(records)
            self._held_records += len(records)
            if self._ended or not self._hold_across or self._held_records >= _HOLD_RECORDS:
                self.settle_receives()
        self._flush()

    def settle_receives(self) -> None:
        """Apply every chunk receive still held back (a no-op when none is).

        Without ``hold_receives`` nothing is held between :meth:`handle_many`
        calls. With it, call this before reading :attr:`rows` directly; snapshot
        captures, :meth:`timeline`, :meth:`log_in_flight`,
        :meth:`refresh_durations` and :meth:`finalize_verdict` call it themselves.
        """
        self._held_records = 0
        if self._held:
            self._note_latest(self._finish_held(self._held))
            self._flush()

    def _apply_in_order(self, records: Sequence[EventRecord]) -> None:
        """Every record in turn: until ``session.started`` (each record may then change
        what ``total_duration_ns`` is measured from), without the chunk series
        (nothing to gain from holding receives back) and for short batches."""
        dispatch = self._dispatch
        index_get = self.rows.index.get
        last_recv = self.rows.last_recv
        chunks = self.rows.chunks
        chunk = EventType.SAMPLE_RECV_NON_FIRST if self._has_ttft else None
        append_gap = self._append_gap
        # Until session.started is seen, each record checks for it; after that the
        # latest timestamp of the batch is kept in a local (the hot loop's common case).
        before_start = self._session_start is None
        latest = -(2**63)
        for rec in records:
            try:
                ts = rec.timestamp_ns
                if before_start:
                    start = self._session_start
                    if start is not None and ts - start > self._total_duration:
                        self._total_duration = ts - start
                elif ts > latest:
                    latest = ts
                kind = rec.event_type
                # Chunks are most events of a streaming run: their common case (a
                # tracked sample past its first receive, in order) is handled inline.
                if kind is chunk:
                    slot = index_get(rec.sample_uuid)
                    if slot is not None:
                        prev = last_recv[slot]
                        if ts >= prev:  # never true while unset (UNSET is the maximum)
                            append_gap(ts - prev)
                            last_recv[slot] = ts
                            chunks[slot] += 1
                            continue
                dispatch[kind](rec)
                if self._ended:
                    break
                if before_start and self._session_start is not None:
                    before_start = False
                    latest = self._session_start + self._total_duration
            except Exception as exc:  # bad input must never stop the service
                self.count_malformed(f"event a handler could not process ({type(exc).__name__})")
                logger.debug("event %r failed: %s", rec, exc)
        self._note_latest(latest)

    def _apply_batched(self, records: Sequence[EventRecord]) -> None:
        """The batch in order, with chunk receives held back.

        A sample's held receives are applied just before its next event of another
        type, before a session event, or by :meth:`settle_receives`
        (:mod:`registry.aggregator.chunk_batch` says why that is exact); the rest
        of the batch goes exactly as in :meth:`_apply_in_order`.
        """
        chunk = EventType.SAMPLE_RECV_NON_FIRST
        session_kinds = _SESSION_KINDS
        dispatch = self._dispatch
        held = self._held
        by_uuid = held.by_uuid
        held_get = by_uuid.get
        latest = -(2**63)
        for rec in records:
            try:
                kind = rec.event_type
                if kind is chunk:
                    waiting = held_get(rec.sample_uuid)
                    if waiting is None:
                        by_uuid[rec.sample_uuid] = [rec.timestamp_ns]
                    else:
                        waiting.append(rec.timestamp_ns)
                    continue
                ts = rec.timestamp_ns
                if ts > latest:
                    latest = ts
                if by_uuid:
                    if kind in session_kinds:
                        latest = max(latest, self._finish_held(held))
                        by_uuid = held.by_uuid
                        held_get = by_uuid.get
                    else:
                        waiting = by_uuid.pop(rec.sample_uuid, None)
                        if waiting is not None:
                            latest = max(latest, self._settle_one(rec.sample_uuid, waiting))
                dispatch[kind](rec)
                if self._ended:
                    break
            except Exception as exc:  # bad input must never stop the service
                self.count_malformed(f"event a handler could not process ({type(exc).__name__})")
                logger.debug("event %r failed: %s", rec, exc)
        self._note_latest(latest)

    def _finish_held(self, held: HeldReceives) -> int:
        """Apply and record every receive ``held`` keeps; their latest timestamp."""
        gaps, latest, back, no_row = finish(self.rows, held)
        if len(gaps):
            self.registry.record_many("chunk_delta_ns", gaps)
        if back:
            latest = max(latest, self._apply_one_by_one(back))
        for uuid, stamps in no_row:
            latest = max(latest, self._receives_without_row(uuid, stamps))
        return latest

    def _settle_one(self, uuid: str, stamps: list[int]) -> int:
        """A sample's held receives, before its next other event; their latest."""
        rows = self.rows
        slot = rows.index.get(uuid)
        if slot is None:
            return self._receives_without_row(uuid, stamps)
        if settle(rows, self._held, slot, stamps):
            return stamps[-1]  # the common case: in order
        return self._apply_one_by_one({slot: stamps})

    def _receives_without_row(self, uuid: str, stamps: list[int]) -> int:
        """Held receives of a sample without a row, as :meth:`_no_row` counts each."""
        kind = EventType.SAMPLE_RECV_NON_FIRST
        if not uuid:
            for _ in stamps:
                self._no_uuid_kind(kind)
        elif uuid not in self._untracked:
            for _ in stamps:
                self._unmatched_kind(kind, "for no sample in flight")
        return max(stamps)

    def _apply_one_by_one(self, held: dict[int, list[int]]) -> int:
        """Held chunk receives one by one by the full rule (:meth:`_late_receive`);
        their latest."""
        late_receive = self._late_receive
        latest = -(2**63)
        for slot, stamps in held.items():
            for ts in stamps:
                if ts > latest:
                    latest = ts
                late_receive(slot, ts)
        return latest

    def _note_latest(self, latest: int) -> None:
        start = self._session_start
        if start is not None and latest - start > self._total_duration:
            self._total_duration = latest - start

    def handle(self, record: EventRecord) -> None:
        """One event (tests and slow paths; the service uses :meth:`handle_many`)."""
        self.handle_many((record,))

    def count_malformed(self, kind: str, n: int = 1) -> None:
        """Count ``n`` malformed events (logged once per ``kind``) and fold the count."""
        self._n_malformed += n
        self._warn_once(kind, "skipping malformed event: %s (counted in events_malformed)")
        self._flush()

    def refresh_durations(self) -> None:
        """Fold the counts now (the final snapshot must see every duration)."""
        self.settle_receives()
        self._flush()

    def judge_sample(
        self,
        *,
        failed: bool,
        ttft_ns: int | None,
        tpot_ns: float | None,
        latency_ns: int | None,
        output_tokens: int | None,
    ) -> None:
        """Judge one tracked sample against the run's constraints (no-op without any).

        Call it exactly once per tracked sample, when every value a constraint
        looks at is known. The aggregator judges at ``sample.complete``, where
        TPOT is known when the producer sent ``output_tokens``; when TPOT comes
        from tokenization the completion leaves it to :meth:`_on_token_counts`,
        which calls this with the TTFT, latency and failed flag the completion
        saw and the TPOT and output tokens it computed (``None`` for a value
        the sample does not have). The counts
        reach the registry's verdict counters at the next snapshot capture.
        """
        tracker = self.tracker
        if tracker is not None:
            tracker.observe(
                failed=failed,
                ttft_ns=ttft_ns,
                tpot_ns=tpot_ns,
                latency_ns=latency_ns,
                output_tokens=output_tokens,
            )

    def finalize_verdict(self, *, complete: bool) -> None:
        """Judge the counts as the run's end from now on (states pass/fail).

        ``complete``: the run ended normally; an incomplete run's verdict is fail.
        Call it once, just before the terminal snapshot is captured.
        """
        self.settle_receives()
        self._flush()
        self._verdict_end = (True, complete)
        self._write_verdict()

    def _write_verdict(self) -> None:
        """Bring the verdict counters up to date (a capture hook: every snapshot sees them)."""
        if self._verdict is not None:
            final, complete = self._verdict_end
            self._verdict.write(
                tracked_duration_ns=self._tracked_duration,
                final=final,
                complete=complete,
                validity_duration_ns=self._validity_duration(),
                queries=self._n_tracked_issued,
            )

    def _validity_duration(self) -> int:
        """LoadGen's min-duration figure (``results.cc`` ``MinDurationMet``).

        Server: from the first tracking start to the last tracked issue (LoadGen:
        the final query's scheduled time). Offline: the tracked duration, to the
        latest completion (LoadGen: ``max_latency``).
        """
        verdict = self._verdict
        req = verdict.requirements if verdict is not None else None
        if req is None or req.scenario == "offline":
            return self._tracked_duration
        if self._last_tracked_issue is None or not self._blocks_start:
            return 0
        return max(0, self._last_tracked_issue - self._blocks_start[0])

    def timeline(self) -> dict[str, Any]:
        """The timestamps behind the three durations (producer's clock), for merging runs.

        ``windows``: per tracking window ``[start, latest completion or start]``;
        ``legacy``: first tracked issue, issue time of the latest-issued tracked
        sample that completed, and its completion; ``session_start_ns`` and
        ``latest_event_ns`` bound ``total_duration_ns``. ``None`` where unknown.
        """
        self.settle_receives()
        start = self._session_start
        return {
            "session_start_ns": start,
            "latest_event_ns": None if start is None else start + self._total_duration,
            "windows": [
                [s, last] for s, last in zip(self._blocks_start, self._blocks_last, strict=True)
            ],
            "legacy": {
                "first_issued_ns": self._legacy_start,
                "latest_issued_ns": self._legacy_max_issued
                if self._legacy_end is not None
                else None,
                "end_ns": self._legacy_end,
            },
        }

    def log_in_flight(self) -> int:
        """Append a record for every tracked sample still in flight (at the end); how many."""
        log = self.sample_log
        if log is None:
            return 0
        self.settle_receives()
        rows = self.rows
        for uuid, slot in rows.index.items():
            log.append(self._row(uuid, slot, None, None, None, None, None))
        return len(rows.index)

    def _row(
        self,
        uuid: str,
        slot: int,
        rec: EventRecord | None,
        complete_ns: int | None,
        tpot: float | None,
        osl: int | None,
        finish_reason: str | None,
        issued: int | None = None,
        first: int | None = None,
    ) -> tuple[Any, ...]:
        """The sample log's tuple for the row at ``slot`` (``issued`` and ``first``:
        its columns' values, when the caller has them at hand)."""
        rows = self.rows
        tags = rows.tags.get(slot) if rows.tags else None
        conversation, turn = tags if tags is not None else ("", None)
        worker = None
        if rec is not None:
            if rec.conversation_id and not conversation:
                conversation, turn = rec.conversation_id, rec.turn
            if rec.worker_id is not msgspec.UNSET:
                worker = rec.worker_id
        if issued is None:
            issued = rows.issued[slot]
        if first is None:
            first = rows.recv_first[slot]
        isl = rows.isl[slot]
        return (
            uuid,
            conversation,
            turn,
            worker,
            rows.block[slot],
            issued,
            None if first == UNSET else first,
            complete_ns,
            tpot,
            rows.chunks[slot],
            None if isl == NO_COUNT else isl,
            osl,
            finish_reason,
            rows.error_type(slot),
        )

    # -- internals -------------------------------------------------------------

    def _warn_once(self, kind: str, fmt: str) -> None:
        # Kinds can carry input text (unknown type names): cap them so hostile
        # input cannot turn the log into one line per event.
        if kind not in self._warned and len(self._warned) < _MAX_WARNED_KINDS:
            self._warned.add(kind)
            logger.warning(fmt + "; further ones are not logged", kind)

    def _no_uuid(self, rec: EventRecord) -> None:
        self._no_uuid_kind(rec.event_type)

    def _no_uuid_kind(self, kind: EventType) -> None:
        self._n_malformed += 1
        self._warn_once(
            f"{kind.value} without sample_uuid",
            "skipping malformed event: %s (counted in events_malformed)",
        )

    def _unmatched(self, rec: EventRecord, why: str) -> None:
        self._unmatched_kind(rec.event_type, why)

    def _unmatched_kind(self, kind: EventType, why: str) -> None:
        self._n_unmatched += 1
        self._warn_once(f"{kind.value} {why}", "ignoring %s (counted in events_unmatched)")

    def _out_of_order(self, rec: EventRecord) -> None:
        self._out_of_order_kind(rec.event_type)

    def _out_of_order_kind(self, kind: EventType) -> None:
        self._n_out_of_order += 1
        self._warn_once(
            f"{kind.value} timestamped before its sample's previous event",
            "rejecting %s (counted in events_out_of_order)",
        )

    def _flush(self) -> None:
        """Fold the local counts into the registry."""
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
            ("events_out_of_order", self._n_out_of_order),
            ("samples_complete_before_chunk", self._n_complete_before_chunk),
            ("session_errors", self._n_session_errors),
            ("tokenization_errors", self._n_token_errors),
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
        reg.set_counter("total_duration_ns", self._total_duration)
        legacy = 0
        if self._legacy_start is not None and self._legacy_end is not None:
            legacy = max(0, self._legacy_end - self._legacy_start)
        reg.set_counter("legacy_loadgen_window_duration_ns", legacy)

    # -- handlers (one per event type) ----------------------------------------

    def _ignore(self, rec: EventRecord) -> None:
        return None

    def _ignore_value(self, value: int) -> None:
        return None

    def _on_started(self, rec: EventRecord) -> None:
        if self.session.start():
            self._session_start = rec.timestamp_ns

    def _on_ended(self, rec: EventRecord) -> None:
        self._ended = True
        self.session.end()

    def _on_interrupted(self, rec: EventRecord) -> None:
        self.interrupted_marker = True
        logger.warning("session.interrupted received: the final snapshot will be INTERRUPTED")

    def _on_start_tracking(self, rec: EventRecord) -> None:
        if self._tracking:
            self._warn_once("start_performance_tracking while tracking", "ignoring %s")
            return
        self._tracking = True
        self._blocks_start.append(rec.timestamp_ns)
        self._blocks_last.append(rec.timestamp_ns)

    def _on_stop_tracking(self, rec: EventRecord) -> None:
        self._tracking = False

    def _on_issued(self, rec: EventRecord) -> None:
        uuid = rec.sample_uuid
        if not uuid:
            self._no_uuid(rec)
            return
        # Read the prompt before changing anything: a prompt whose token ids are not
        # an array raises here, and the record is then not applied at all.
        known = rec.input_tokens
        if known is msgspec.UNSET:
            data = rec.data
            isl = array_length(data.token_ids) if isinstance(data, PromptData) else None
        else:
            isl = known
        self._n_issued += 1
        if not self._tracking:
            if uuid in self.rows:
                # Upstream counts a re-issue of a sample that still has a row as tracked.
                self._n_tracked_issued += 1
                self._unmatched(rec, "for a sample already in flight")
                return
            if uuid in self._untracked:
                self._unmatched(rec, "for a sample already in flight")
            self._untracked.add(uuid)
            return
        rows = self.rows
        slot = rows.index.get(uuid)
        if slot is None:
            slot = rows.open(uuid, rec.timestamp_ns, len(self._blocks_start) - 1, isl)
            if self._legacy_start is None:
                self._legacy_start = rec.timestamp_ns
        else:
            # Upstream reuses the row of a repeated issue (a retry) and counts it again.
            self._unmatched(rec, "for a sample already in flight (row reused)")
            rows.issued[slot] = rec.timestamp_ns
            if isl is not None:
                rows.set_isl(slot, isl)
        self._n_tracked_issued += 1
        self._last_tracked_issue = rec.timestamp_ns
        if rec.conversation_id or rec.turn is not None:
            rows.tags[slot] = (rec.conversation_id, rec.turn)
        if isl is not None:
            self._append_isl(isl)
            return
        pool = self.tokenizer
        data = rec.data
        if pool is not None and isinstance(data, PromptData) and (data.text or data.has_messages):
            pool.submit(TokenJob(PROMPT, data))

    def _on_recv_first(self, rec: EventRecord) -> None:
        uuid = rec.sample_uuid
        rows = self.rows
        slot = rows.index.get(uuid)
        if slot is None:
            self._no_row(rec)
            return
        ts = rec.timestamp_ns
        prev = rows.last_recv[slot]
        issued = rows.issued[slot]
        if ts < issued or (prev != UNSET and ts < prev):
            self._out_of_order(rec)
            return
        self._append_ttft(ts - issued)
        if prev != UNSET:  # a repeated first receive: upstream takes its gap too
            self._append_gap(ts - prev)
        rows.recv_first[slot] = ts
        rows.last_recv[slot] = ts
        rows.chunks[slot] += 1

    def _on_recv_non_first(self, rec: EventRecord) -> None:
        # The common case is also inlined in _apply_in_order and done for many at
        # once by chunk_batch; without the chunk series every receive comes here.
        slot = self.rows.index.get(rec.sample_uuid)
        if slot is None:
            self._no_row(rec)
        else:
            self._late_receive(slot, rec.timestamp_ns)

    def _late_receive(self, slot: int, ts: int) -> None:
        """A later chunk receive of the row at ``slot``, by the full rule: the
        common case first, exactly as the hot loops apply it."""
        rows = self.rows
        prev = rows.last_recv[slot]
        if ts >= prev:  # after an earlier receive (UNSET is the int64 maximum)
            self._append_gap(ts - prev)  # a no-op without the chunk series
            rows.last_recv[slot] = ts
            rows.chunks[slot] += 1
            return
        if ts < rows.issued[slot] or prev != UNSET:
            self._out_of_order_kind(EventType.SAMPLE_RECV_NON_FIRST)
            return
        rows.last_recv[slot] = ts  # the sample's first receive: no gap
        rows.chunks[slot] += 1

    def _no_row(self, rec: EventRecord) -> None:
        uuid = rec.sample_uuid
        if not uuid:
            self._no_uuid(rec)
        elif uuid not in self._untracked:
            self._unmatched(rec, "for no sample in flight")

    def _on_complete(self, rec: EventRecord) -> None:
        uuid = rec.sample_uuid
        if not uuid:
            self._no_uuid(rec)
            return
        rows = self.rows
        slot = rows.index.get(uuid)
        if slot is None:
            self._n_completed += 1
            if uuid in self._untracked:
                self._untracked.discard(uuid)
            else:
                self._unmatched(rec, "for no sample in flight")
            return
        ts = rec.timestamp_ns
        issued = rows.issued[slot]
        # Never rejected (SPEC §6): upstream's real client stamps a completion in its
        # worker and the receives in its main process, so a completion stamped before
        # its sample's latest receive is normal input. It is applied as upstream
        # applies it and counted, so the Report can say its TPOT is unreliable.
        if ts < rows.last_recv[slot] != UNSET:
            self._n_complete_before_chunk += 1
            self._warn_once(
                "sample.complete stamped before its sample's latest chunk receive",
                "applying %s as upstream does (counted in samples_complete_before_chunk: "
                "TPOT and chunk figures of such samples are unreliable)",
            )
        elif ts < issued:
            self._warn_once(
                "sample.complete stamped before its sample.issued",
                "applying %s as upstream does (its sample_latency_ns is negative)",
            )
        rows.close(uuid)
        self._n_completed += 1
        self._n_tracked_completed += 1
        record = self._record
        self._append_latency(ts - issued)
        out = rec.output_tokens
        osl = None if out is msgspec.UNSET else out
        first = rows.recv_first[slot]
        tpot: float | None = None
        ttft = first - issued if first != UNSET and self._has_ttft else None
        verdict_pending = False
        if osl is not None:
            record("osl", osl)
            self._n_output_tokens += osl
            if self._has_ttft and first != UNSET and osl > 1:
                tpot = (ts - first) / (osl - 1)
                record("tpot_ns", tpot)
        elif self.tokenizer is not None and isinstance(rec.data, TextModelOutput):
            verdict = (rows.failed[slot] != 0, ttft, ts - issued) if self.tracker else None
            if self._submit_output(rec.data, ts - first if ttft is not None else None, verdict):
                # its TPOT and output tokens come from the tokenizer: the sample is
                # judged when they do (_on_token_counts), not here
                verdict_pending = True
        tracker = self.tracker
        if tracker is not None and not verdict_pending:
            # judge_sample, called directly here: one call less per completion
            tracker.add(rows.failed[slot] != 0, ttft, tpot, ts - issued, osl)
        reason = rec.finish_reason
        if reason.__class__ is str:
            reasons = self._finish
            if reason in reasons:
                reasons[reason] += 1
            else:
                reasons["other"] += 1
        else:
            reason = None
        log = self.sample_log
        if log is not None:
            log.append(self._row(uuid, slot, rec, ts, tpot, osl, reason, issued, first))
        if rows.tags:
            rows.release_tags(slot)
        w = rows.block[slot]
        if 0 <= w < len(self._blocks_last) and ts > self._blocks_last[w]:
            self._tracked_duration += ts - self._blocks_last[w]
            self._blocks_last[w] = ts
        if issued > self._legacy_max_issued:
            self._legacy_max_issued = issued
            self._legacy_end = ts

    def _submit_output(
        self,
        data: TextModelOutput,
        tpot_span: int | None,
        verdict: tuple[bool, int | None, int] | None = None,
    ) -> bool:
        """Queue an output's OSL and, given complete - first receive, TPOT's denominator.

        ``verdict``: the sample's (failed, TTFT, latency) when it is to be judged once
        its counts are known. Returns whether a job was queued.
        """
        osl = needs_output_count(data)
        tpot = tpot_span is not None and needs_after_first_chunk_count(data)
        if osl or tpot:
            assert self.tokenizer is not None
            job = TokenJob(
                OUTPUT,
                data,
                after_first_chunk=tpot,
                context=(tpot_span, verdict),
                weight=osl + tpot,
            )
            self.tokenizer.submit(job)
            return True
        return False

    def _on_token_counts(self, job: TokenJob, first: Count, second: Count) -> None:
        """A finished job (on the loop): record by upstream's rules; errors cost their value."""
        if job.kind == PROMPT:
            if isinstance(first, int):
                self._record("isl", first)
            elif isinstance(first, Exception):
                self._token_error(first)
            return
        span, verdict = job.context
        if isinstance(first, int):
            self._record("osl", first)
            self._n_output_tokens += first
        elif isinstance(first, Exception):
            self._token_error(first)
        tpot: float | None = None
        if isinstance(second, int):
            if second > 0:
                tpot = span / second
                self._record("tpot_ns", tpot)
        elif isinstance(second, Exception) and second is not first:
            self._token_error(second)
        if verdict is not None:
            # the completion left this sample's verdict to its token counts (SPEC §10)
            failed, ttft, latency = verdict
            self.judge_sample(
                failed=failed,
                ttft_ns=ttft,
                tpot_ns=tpot,
                latency_ns=latency,
                output_tokens=first if isinstance(first, int) else None,
            )

    def _token_error(self, exc: Exception) -> None:
        self._n_token_errors += 1
        if "tokenization" not in self._warned:
            self._warned.add("tokenization")
            logger.warning(
                "the tokenizer failed on an input (%s: %s); its value is skipped and counted "
                "in tokenization_errors; further failures are not logged",
                type(exc).__name__,
                " ".join(str(exc).split())[:200],
            )

    def _on_error(self, rec: EventRecord) -> None:
        self._n_failed += 1
        uuid = rec.sample_uuid
        if not uuid:
            self._n_session_errors += 1
            return
        rows = self.rows
        slot = rows.index.get(uuid)
        if slot is not None:
            self._n_tracked_failed += 1
            data = rec.data
            kind = data.error_type if isinstance(data, ErrorData) and data.error_type else ""
            rows.mark_failed(slot, kind or rec.event_type.value)
        elif uuid not in self._untracked:
            self._unmatched(rec, "for no sample in flight (after its completion, or unknown)")


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
        self._metrics.count_malformed(classify_bad_payload(payload, exc))
        return None


_KNOWN_TYPES = frozenset(t.value for t in EventType)


def classify_bad_payload(payload: bytes | memoryview, exc: Exception | None = None) -> str:
    """A short kind for an undecodable event payload (for one log line per kind).

    The decoder's own reason (which field broke which rule, never a value) is
    kept when the payload is a map of a known type.
    """
    try:
        obj: Any = msgspec.msgpack.decode(payload)
    except (msgspec.DecodeError, ValueError, TypeError):
        return "payload is not msgpack"
    except RecursionError:  # msgspec's depth limit: a hostile payload, not a crash
        return "payload nested too deep"
    if not isinstance(obj, dict):
        return f"payload is a msgpack {type(obj).__name__}, not a map"
    event_type = obj.get("event_type")
    if isinstance(event_type, str) and event_type not in _KNOWN_TYPES:
        return f"unknown event type {event_type[:60]!r}"
    reason = str(exc).removeprefix("invalid event payload: ") if exc is not None else ""
    return f"invalid record: {reason[:120]}" if reason else "map with missing or mistyped fields"
