"""A synthetic LLM-serving load: timed event records for demos and benchmarks (SPEC §5).

:class:`SyntheticLoad` describes the traffic (Poisson arrivals at a QPS, lognormal
TTFT and per-token gaps, lognormal input/output lengths, an error rate and a
finish-reason mix); :meth:`SyntheticLoad.events` turns it into the exact event
sequence a streaming benchmark would emit, in timestamp order, and is
deterministic for a given seed and start time. :func:`drive` sends that
sequence through an event publisher in real time and counts what it sent
(:class:`SourceStats`), so a run can be checked against what the aggregator
reports.

This module speaks only the event format: it must never touch a registry,
compute a metric, or reach the aggregator by any other path than the events it
publishes.
"""

from __future__ import annotations

import asyncio
import heapq
import math
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

import msgspec

from registry.events.data import ErrorData, PromptData, TextModelOutput
from registry.events.record import EventRecord, EventType

__all__ = [
    "DEFAULT_ERRORS",
    "DEFAULT_FINISH_REASONS",
    "EventSink",
    "SourceStats",
    "SyntheticLoad",
    "drive",
]

#: Default finish-reason mix of successful completions (weights, normalised on use).
DEFAULT_FINISH_REASONS: tuple[tuple[str, float], ...] = (
    ("stop", 0.82),
    ("length", 0.12),
    ("tool_calls", 0.05),
    ("content_filter", 0.01),
)

#: What a failing synthetic request reports in its ``error.client`` event:
#: ``(error_type, error_message)``.
DEFAULT_ERRORS: tuple[tuple[str, str], ...] = (
    ("HTTPError", "503 Service Unavailable"),
    ("HTTPError", "429 Too Many Requests"),
    ("ClientConnectionResetError", "connection reset by peer"),
    ("TimeoutError", "read timeout"),
)
# Words a synthetic response is made of (one per token).
_WORDS = ("the", "model", "answer", "is", "token", "stream", "of", "text", "and", "reply")

_NS_PER_S = 1_000_000_000
_NS_PER_MS = 1_000_000


@dataclass(frozen=True)
class SyntheticLoad:
    """The shape of the synthetic traffic. Times in ms are medians of lognormals.

    Each request gets an input length (``isl_*``), an output length
    (``osl_*``), a time to first token (``ttft_*``) and, for each later chunk
    of up to ``tokens_per_chunk`` tokens, a gap of ``tokens x per-token gap``
    (``tpot_*``). One chunk is one ``sample.recv_non_first`` event, which keeps
    the event rate affordable at thousands of requests per second.
    ``error_rate`` of requests fail at a uniformly random point of their
    response with an ``error.client`` event, then ``sample.complete``.
    Requests issued before ``warmup_s`` are untracked.

    The records are shaped as mlcommons/endpoints sends them: the prompt as
    ``PromptData`` token ids, the response as ``TextModelOutput`` holding every
    streamed chunk (one word per token), the error as ``ErrorData`` before a
    ``sample.complete`` without data or finish reason. The completion also
    carries our ``output_tokens`` extension, so output lengths and TPOT are
    known without a tokenizer.

    ``text=True`` sends what an OpenAI-style client sends instead: the prompt
    as ``PromptData`` text (``isl`` words) and the streamed chunks only, no
    token ids and no ``output_tokens``, so the aggregator needs a tokenizer
    (``--tokenizer``) for ISL, OSL and TPOT. Every word is one of ten common
    English words, one token in any usual vocabulary.
    """

    qps: float = 200.0
    duration_s: float = 25.0
    seed: int = 0
    streaming: bool = True
    ttft_median_ms: float = 40.0
    ttft_sigma: float = 0.5
    tpot_median_ms: float = 4.0
    tpot_sigma: float = 0.3
    isl_median: float = 512.0
    isl_sigma: float = 0.8
    isl_max: int = 8192
    osl_median: float = 64.0
    osl_sigma: float = 0.7
    osl_max: int = 1024
    tokens_per_chunk: int = 6
    error_rate: float = 0.01
    finish_reasons: tuple[tuple[str, float], ...] = DEFAULT_FINISH_REASONS
    n_workers: int = 8
    warmup_s: float = 0.0
    text: bool = False

    def __post_init__(self) -> None:
        def positive(name: str) -> None:
            v = getattr(self, name)
            if not (isinstance(v, int | float) and math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {v!r}")

        for name in ("qps", "duration_s", "ttft_median_ms", "tpot_median_ms"):
            positive(name)
        for name in ("isl_median", "osl_median"):
            positive(name)
        for name in ("ttft_sigma", "tpot_sigma", "isl_sigma", "osl_sigma"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
        for name in ("isl_max", "osl_max", "tokens_per_chunk", "n_workers"):
            v = getattr(self, name)
            if not (isinstance(v, int) and v >= 1):
                raise ValueError(f"{name} must be an int >= 1, got {v!r}")
        if not 0.0 <= self.error_rate <= 1.0:
            raise ValueError(f"error_rate must be in [0, 1], got {self.error_rate!r}")
        if not 0.0 <= self.warmup_s < self.duration_s:
            raise ValueError(
                f"warmup_s must be in [0, duration_s={self.duration_s}), got {self.warmup_s!r}"
            )
        if not self.finish_reasons or any(w < 0 for _, w in self.finish_reasons):
            raise ValueError("finish_reasons needs at least one (reason, weight >= 0) pair")
        if sum(w for _, w in self.finish_reasons) <= 0:
            raise ValueError("finish_reasons weights must not all be zero")

    @property
    def expected_samples(self) -> int:
        """The mean number of requests a run issues (Poisson: qps x duration)."""
        return round(self.qps * self.duration_s)

    def events(self, t0_ns: int = 0) -> Iterator[EventRecord]:
        """Every event of the run in timestamp order; timestamps are ``t0_ns`` + offset.

        Lazy: requests are generated in arrival order and their events merged
        through a heap, so memory holds only the requests in flight.
        """
        return _EventStream(self, t0_ns).run()


class _EventStream:
    """One pass over a :class:`SyntheticLoad` (owns the seeded random source)."""

    def __init__(self, load: SyntheticLoad, t0_ns: int) -> None:
        self.load = load
        self.t0 = t0_ns
        self.rng = random.Random(load.seed)
        reasons = [r for r, _ in load.finish_reasons]
        weights = [w for _, w in load.finish_reasons]
        total = sum(weights)
        self.reasons = reasons
        self.cum_weights = [sum(weights[: i + 1]) / total for i in range(len(weights))]
        self.heap: list[tuple[int, int, EventRecord]] = []
        self.seq = 0  # heap tie-break: equal timestamps keep push order
        self.prompts: dict[int, PromptData] = {}
        self.chunk_texts: dict[tuple[bool, int], str] = {}

    def push(self, t: int, rec: EventRecord) -> None:
        heapq.heappush(self.heap, (t, self.seq, rec))
        self.seq += 1

    def lognormal(self, median: float, sigma: float) -> float:
        return median * math.exp(sigma * self.rng.gauss(0.0, 1.0)) if sigma else median

    def length(self, median: float, sigma: float, cap: int) -> int:
        return max(1, min(cap, round(self.lognormal(median, sigma))))

    def finish_reason(self) -> str:
        u = self.rng.random()
        for reason, cw in zip(self.reasons, self.cum_weights, strict=True):
            if u < cw:
                return reason
        return self.reasons[-1]

    def session(self, t: int, kind: EventType) -> EventRecord:
        return EventRecord(kind, self.t0 + t)

    def prompt(self, isl: int) -> PromptData:
        data = self.prompts.get(isl)
        if data is None:
            # Encoded once per length: a prompt is hundreds of ids, and encoding them
            # for every request would cost more than the rest of the request.
            if self.load.text:
                words = " ".join(_WORDS[(7 * i + 3) % len(_WORDS)] for i in range(isl))
                data = self.prompts[isl] = PromptData.build(text=words)
            else:
                ids = [(7919 * i + 13) % 128_000 for i in range(isl)]
                data = self.prompts[isl] = PromptData.build(token_ids=ids)
        return data

    def chunk_text(self, first: bool, n: int) -> str:
        key = (first, n)
        text = self.chunk_texts.get(key)
        if text is None:
            words = [_WORDS[i % len(_WORDS)] for i in range(n)]
            text = self.chunk_texts[key] = ("" if first else " ") + " ".join(words)
        return text

    def request(self, index: int, t_issue: int) -> None:
        """Push every event of request ``index`` issued at offset ``t_issue``."""
        load, rng, t0 = self.load, self.rng, self.t0
        uid = f"{rng.getrandbits(128):032x}"
        worker = index % load.n_workers
        isl = self.length(load.isl_median, load.isl_sigma, load.isl_max)
        osl = self.length(load.osl_median, load.osl_sigma, load.osl_max)
        fails = rng.random() < load.error_rate
        ttft = max(1, round(self.lognormal(load.ttft_median_ms, load.ttft_sigma) * _NS_PER_MS))
        tpot_ms = load.tpot_median_ms

        # The response timeline: chunk arrival offsets and the tokens each carries.
        chunks: list[tuple[int, int]] = []  # (offset, tokens)
        t = t_issue + ttft
        if load.streaming:
            chunks.append((t, 1))
            left = osl - 1
            while left > 0:
                n = min(load.tokens_per_chunk, left)
                t += max(1, round(n * self.lognormal(tpot_ms, load.tpot_sigma) * _NS_PER_MS))
                chunks.append((t, n))
                left -= n
        elif osl > 1:
            t += max(1, round((osl - 1) * self.lognormal(tpot_ms, load.tpot_sigma) * _NS_PER_MS))
        t_done = t

        self.push(
            t_issue,
            EventRecord(
                EventType.SAMPLE_ISSUED,
                t0 + t_issue,
                uid,
                data=self.prompt(isl),
                worker_id=worker,
            ),
        )
        if fails:
            t_err = t_issue + max(1, round(rng.random() * (t_done - t_issue)))
            for i, (tc, _) in enumerate(chunks):
                if tc >= t_err:
                    break
                kind = EventType.SAMPLE_RECV_FIRST if i == 0 else EventType.SAMPLE_RECV_NON_FIRST
                self.push(tc, EventRecord(kind, t0 + tc, uid, worker_id=worker))
            error_type, message = DEFAULT_ERRORS[rng.randrange(len(DEFAULT_ERRORS))]
            self.push(
                t_err,
                EventRecord(
                    EventType.ERROR_CLIENT,
                    t0 + t_err,
                    uid,
                    data=ErrorData(error_type, message),
                    worker_id=worker,
                ),
            )
            self.push(
                t_err, EventRecord(EventType.SAMPLE_COMPLETE, t0 + t_err, uid, worker_id=worker)
            )
            return
        for i, (tc, _) in enumerate(chunks):
            kind = EventType.SAMPLE_RECV_FIRST if i == 0 else EventType.SAMPLE_RECV_NON_FIRST
            self.push(tc, EventRecord(kind, t0 + tc, uid, worker_id=worker))
        if chunks:
            output: str | tuple[str, ...] = tuple(
                self.chunk_text(i == 0, n) for i, (_, n) in enumerate(chunks)
            )
        else:
            output = self.chunk_text(True, osl)
        self.push(
            t_done,
            EventRecord(
                EventType.SAMPLE_COMPLETE,
                t0 + t_done,
                uid,
                data=TextModelOutput.build(output=output),
                finish_reason=self.finish_reason(),
                worker_id=worker,
                output_tokens=msgspec.UNSET if load.text else osl,
            ),
        )

    def run(self) -> Iterator[EventRecord]:
        load = self.load
        end = round(load.duration_s * _NS_PER_S)
        warmup = round(load.warmup_s * _NS_PER_S)
        mean_gap_ns = _NS_PER_S / load.qps
        yield self.session(0, EventType.SESSION_STARTED)
        self.push(warmup, self.session(warmup, EventType.SESSION_START_PERFORMANCE_TRACKING))
        heap = self.heap
        index = 0
        t_next: int | None = round(self.rng.expovariate(1.0) * mean_gap_ns)
        last = 0
        while True:
            if t_next is not None and t_next >= end:
                t_next = None
            if t_next is not None and (not heap or t_next <= heap[0][0]):
                self.request(index, t_next)
                index += 1
                t_next += round(self.rng.expovariate(1.0) * mean_gap_ns)
                continue
            if not heap:
                break
            last, _, rec = heapq.heappop(heap)
            yield rec
        t_end = max(last, end)
        yield self.session(t_end, EventType.SESSION_STOP_PERFORMANCE_TRACKING)
        yield self.session(t_end, EventType.SESSION_ENDED)


@dataclass
class SourceStats:
    """What a source has sent, counted from the events themselves, by the rules the
    aggregator counts them (SPEC §6): ``completed`` counts every ``sample.complete``
    (failed ones included), ``failed`` every error event, ``output_tokens`` the
    ``output_tokens`` of the completions that carry them. ``in_flight`` =
    issued - completed.
    """

    issued: int = 0
    completed: int = 0
    failed: int = 0
    events_sent: int = 0
    output_tokens: int = 0

    @property
    def in_flight(self) -> int:
        return self.issued - self.completed

    def observe(self, rec: EventRecord) -> None:
        """Count one sent event."""
        self.events_sent += 1
        kind = rec.event_type
        if kind is EventType.SAMPLE_ISSUED:
            self.issued += 1
        elif kind is EventType.SAMPLE_COMPLETE:
            self.completed += 1
            if isinstance(rec.output_tokens, int):
                self.output_tokens += rec.output_tokens
        elif kind.is_error:
            self.failed += 1


#: Where :func:`drive` sends the records that are due, a batch at a time: a plain
#: or async callable taking a list (e.g. an event publisher's ``send_many``).
EventSink = Callable[[list[EventRecord]], object]


async def drive(
    load: SyntheticLoad,
    send: EventSink,
    *,
    stop: asyncio.Event | None = None,
    stats: SourceStats | None = None,
    t0_ns: int | None = None,
    max_batch: int = 256,
) -> SourceStats:
    """Send ``load``'s events through ``send`` at their scheduled times.

    Timestamps are the scheduled times on :func:`time.monotonic_ns` (the run
    starts at ``t0_ns``, default now), so what the aggregator measures is the
    generated latency even when the sender runs a little late; no event is
    sent before its timestamp. Events that are due together go out as one
    batch of at most ``max_batch``. ``stop`` ends the run early without
    sending ``session.ended`` (the caller decides how an interrupted run
    finishes). ``stats``, if given, is updated as batches go out so a live
    view can read it; it is also returned.
    """
    if max_batch < 1:
        raise ValueError(f"max_batch must be >= 1, got {max_batch}")
    stats = stats if stats is not None else SourceStats()
    t0 = time.monotonic_ns() if t0_ns is None else t0_ns
    batch: list[EventRecord] = []

    async def flush() -> bool:
        if stop is not None and stop.is_set():
            return False
        out = batch.copy()  # the sink may keep the list; ours is reused
        batch.clear()
        result = send(out)
        if isinstance(result, Awaitable):
            await result
        for rec in out:
            stats.observe(rec)
        return True

    now = time.monotonic_ns()
    for rec in load.events(t0):
        if rec.timestamp_ns > now or len(batch) >= max_batch:
            if batch and not await flush():
                return stats
            if stop is not None and stop.is_set():
                return stats
            now = time.monotonic_ns()
            if rec.timestamp_ns > now:
                await asyncio.sleep((rec.timestamp_ns - now) / _NS_PER_S)
                now = time.monotonic_ns()
            else:
                # Running behind schedule: still give the event loop (the live view) a turn.
                await asyncio.sleep(0)
        batch.append(rec)
    if batch:
        await flush()
    return stats
