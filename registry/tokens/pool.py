"""The tokenization backlog: jobs from the event loop, counted in worker threads (SPEC §6).

The aggregator's handlers :meth:`TokenizerPool.submit` a :class:`TokenJob`
(a prompt to count for ISL, or an output to count for OSL and TPOT) on the
event loop; that is an append and an add. Batches of waiting jobs go to
``workers`` daemon threads, which decode the payloads, apply
:mod:`registry.tokens.rules` and count with :class:`TokenCounter` (the
tokenizers library releases the GIL while it encodes). Each finished batch
comes back to the loop with ``call_soon_threadsafe`` and is handed, job by
job, to ``on_counts`` there, followed by one ``after_batch()``.

Choices:

* Results are delivered on the loop, in one callback per batch, so whatever
  ``on_counts`` records lands between two snapshot captures (the publisher
  captures on the loop between callbacks): at every capture, values recorded
  + :attr:`TokenizerPool.pending` = tokenizations submitted.
* Dispatch is continuous, not on a timer: a batch leaves as soon as a worker
  is free, holding everything that waited (at most ``max_batch`` jobs), so
  the backlog stays near zero while the pool keeps up and batches grow by
  themselves when it does not. ``max_batch`` also bounds how long one batch
  (which cannot be stopped) holds a worker after a drain gives up.
* ``workers=0`` is upstream's "no tokenization while the run goes": jobs
  wait until :meth:`drain`, which then uses one thread.
* Every batch has a time budget (``job_timeout_s``; ``None``: none). A
  watchdog thread raises :class:`Overtime` inside a worker whose batch ran
  past it (``PyThreadState_SetAsyncExc``: a chat template is Python code, so
  the loop of a hostile template stops at its next bytecode; native code is
  left to finish first). The batch's jobs are then counted again one by one,
  each with the same budget, so only a job that is slow on its own is
  skipped: it is delivered as a :class:`TokenizationTimeout` (counted by the
  owner as a failed tokenization) and in :attr:`TokenizerPool.jobs_timed_out`.
  A hostile template can therefore never hold the drain, and the final files,
  for longer than twice the budget per job.
* Worker threads are daemons, so a tokenizer stuck on one input can never
  keep the process from exiting; but the interpreter aborts a daemon thread
  caught in the tokenizer's native code while it finalises, so the owner
  :meth:`join` s them after :meth:`close` (a closing batch skips its
  remaining chat inputs, so that is quick) and ends the process with
  ``os._exit`` if one is still stuck. Results that arrive after
  :meth:`close` are dropped, never recorded after the final snapshot.

Never runs tokenization on the event loop, never raises out of a worker, and
never loses a job silently: every submitted job is either delivered or still
counted in :attr:`pending`.
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from registry.events.data import PromptData, TextModelOutput
from registry.tokens.counter import TokenCounter
from registry.tokens.rules import (
    TokenInput,
    after_first_chunk_rule,
    output_rule,
    prompt_input,
)

__all__ = [
    "DEFAULT_JOB_TIMEOUT_S",
    "OUTPUT",
    "PROMPT",
    "Count",
    "TokenJob",
    "TokenizationTimeout",
    "TokenizerPool",
]

log = logging.getLogger(__name__)

#: Job kinds: a prompt (ISL) or an output (OSL, and TPOT's denominator when asked).
PROMPT = 0
OUTPUT = 1

#: One tokenization's outcome: a count, ``None`` when the rules leave nothing to
#: count, or the exception the tokenizer raised.
Count = int | None | Exception

#: Jobs per batch handed to a worker. Small batches keep each stretch a worker holds
#: the GIL short (building the texts, taking the encodings back, freeing them), so the
#: loop is never late by more than ~10 ms; bench/tokenizer.py measured 256 at 15-60 ms
#: worst stall with the same tokens/s within its noise.
DEFAULT_MAX_BATCH = 64

#: Seconds one batch (and, after it ran over, each of its jobs alone) may take. A
#: prompt's template and encoding take milliseconds; a batch of 64 huge prompts takes a
#: few seconds; a job that takes 10 s alone is a template that loops, not a prompt.
DEFAULT_JOB_TIMEOUT_S = 10.0


class TokenizationTimeout(Exception):
    """A job's result when its tokenization ran past the pool's time budget (skipped)."""


class Overtime(BaseException):
    """Raised inside a worker thread whose batch ran past its budget.

    A ``BaseException``, so that no ``except Exception`` in a template engine or a
    tokenizer can swallow it."""


_set_async_exc = ctypes.pythonapi.PyThreadState_SetAsyncExc


def _raise_in(ident: int, exc: type[BaseException] | None) -> None:
    """Make thread ``ident`` raise ``exc`` at its next bytecode (``None``: cancel that)."""
    _set_async_exc(ctypes.c_ulong(ident), ctypes.py_object(exc) if exc else ctypes.c_void_p())


class TokenJob:
    """One sample's tokenization work. ``context`` is the submitter's, handed back."""

    __slots__ = ("after_first_chunk", "context", "data", "kind", "weight")

    def __init__(
        self,
        kind: int,
        data: PromptData | TextModelOutput,
        *,
        after_first_chunk: bool = False,
        context: Any = None,
        weight: int = 1,
    ) -> None:
        self.kind = kind
        self.data = data
        self.after_first_chunk = after_first_chunk
        self.context = context
        #: tokenizations this job stands for in the backlog
        self.weight = weight


OnCounts = Callable[[TokenJob, Count, Count], None]


def count_jobs(
    counter: TokenCounter,
    jobs: Sequence[TokenJob],
    should_stop: Callable[[], bool] | None = None,
) -> list[tuple[Count, Count]]:
    """``(first, second)`` per job: a prompt's ``(isl, None)``, an output's ``(osl, tpot_n)``.

    Runs in a worker thread. Every plain text of the batch goes to the
    tokenizer in one call; a job whose payload cannot be decoded gets the
    exception in both places it asked for.
    """
    inputs: list[TokenInput] = []
    # Per job, two places: an index into inputs, None (nothing to count) or the exception.
    plan: list[tuple[int | Exception | None, int | Exception | None]] = []

    def slot(item: TokenInput | None) -> int | None:
        if item is None:
            return None
        inputs.append(item)
        return len(inputs) - 1

    for job in jobs:
        try:
            data = job.data
            if job.kind == PROMPT:
                assert isinstance(data, PromptData)
                plan.append((slot(prompt_input(data)), None))
                continue
            assert isinstance(data, TextModelOutput)
            out, reasoning, calls = (
                data.output_value(),
                data.reasoning_value(),
                data.tool_calls_value(),
            )
            first = slot(output_rule(out, reasoning, calls))
            second = (
                slot(after_first_chunk_rule(out, reasoning, calls))
                if job.after_first_chunk
                else None
            )
            plan.append((first, second))
        except Exception as exc:
            plan.append((exc, exc if job.after_first_chunk else None))
    counts = counter.count_many(inputs, should_stop) if inputs else []

    def value(p: int | Exception | None) -> Count:
        return counts[p] if isinstance(p, int) else p

    return [(value(a), value(b)) for a, b in plan]


class TokenizerPool:
    """Batches :class:`TokenJob` from the loop through ``workers`` threads; see the module doc."""

    def __init__(
        self,
        counter: TokenCounter,
        *,
        on_counts: OnCounts,
        workers: int = 2,
        max_batch: int = DEFAULT_MAX_BATCH,
        after_batch: Callable[[], None] | None = None,
        job_timeout_s: float | None = DEFAULT_JOB_TIMEOUT_S,
    ) -> None:
        if job_timeout_s is not None and not job_timeout_s > 0:
            raise ValueError(f"job_timeout_s must be > 0 or None, got {job_timeout_s!r}")
        #: seconds a batch (then each of its jobs alone) may take (``None``: no budget);
        #: may be changed before :meth:`start`
        self.job_timeout_s = job_timeout_s
        if workers < 0:
            raise ValueError(f"workers must be >= 0, got {workers}")
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.counter = counter
        self.workers = workers
        self.max_batch = max_batch
        self._on_counts = on_counts
        self._after_batch = after_batch
        self._loop: asyncio.AbstractEventLoop | None = None
        self._work: queue.SimpleQueue[list[TokenJob] | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._waiting: list[TokenJob] = []
        self._pending = 0
        self._busy = 0  # batches handed to threads and not delivered yet
        self._scheduled = False
        self._draining = False
        self._closed = False
        self._idle: asyncio.Event | None = None
        #: jobs and tokenizations delivered so far, and batches that failed whole
        self.jobs_done = 0
        self.batches_done = 0
        self.batch_failures = 0
        #: the largest batch handed to a worker
        self.largest_batch = 0
        #: jobs skipped because they alone took longer than ``job_timeout_s``
        self.jobs_timed_out = 0
        #: batches interrupted for running past the budget (then counted job by job)
        self.batches_overtime = 0
        # worker thread id -> monotonic deadline of the batch it counts; the watchdog's
        self._deadlines: dict[int, float] = {}
        self._guard = threading.Condition()

    # -- reading -----------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Tokenizations submitted and not delivered yet (waiting or being counted)."""
        return self._pending

    @property
    def closed(self) -> bool:
        return self._closed

    def _is_closed(self) -> bool:
        return self._closed

    # -- the loop side -----------------------------------------------------------

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Bind to ``loop`` (default: the running one) and start the worker threads."""
        if self._loop is not None:
            return
        if self._closed:
            raise RuntimeError("the tokenizer pool is closed")
        self._loop = loop if loop is not None else asyncio.get_running_loop()
        for i in range(max(1, self.workers)):
            t = threading.Thread(target=self._run, name=f"tokenizer-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        if self.job_timeout_s is not None:
            threading.Thread(target=self._watchdog, name="tokenizer-watchdog", daemon=True).start()

    def submit(self, job: TokenJob) -> None:
        """Queue ``job`` (on the loop's thread). Dispatch happens after the current callback,
        so the jobs of one event batch travel together."""
        if self._closed:
            # After the final snapshot: nothing more can be recorded; nothing to count.
            return
        if self._loop is None:
            self.start()
        self._waiting.append(job)
        self._pending += job.weight
        if not self._scheduled:
            self._scheduled = True
            assert self._loop is not None
            self._loop.call_soon(self._dispatch)

    def _dispatch(self) -> None:
        self._scheduled = False
        if self._closed:
            return
        limit = len(self._threads) if self._draining else self.workers
        waiting = self._waiting
        while waiting and self._busy < limit:
            # Share what waits among the free workers, so a backlog keeps them all busy.
            free = limit - self._busy
            size = min(self.max_batch, -(-len(waiting) // free))
            batch = waiting[:size]
            del waiting[:size]
            self._busy += 1
            self.largest_batch = max(self.largest_batch, size)
            self._work.put(batch)

    def _deliver(self, batch: list[TokenJob], results: list[tuple[Count, Count]]) -> None:
        self._busy -= 1
        if self._closed:
            return
        on_counts = self._on_counts
        for job, (a, b) in zip(batch, results, strict=True):
            self._pending -= job.weight
            try:
                on_counts(job, a, b)
            except Exception:
                log.exception("recording a token count failed")
        self.jobs_done += len(batch)
        self.batches_done += 1
        if self._after_batch is not None:
            try:
                self._after_batch()
            except Exception:
                log.exception("after-batch hook failed")
        if self._idle is not None and self._pending == 0:
            self._idle.set()
        self._dispatch()

    async def drain(self, timeout: float | None) -> int:
        """Count everything submitted, within ``timeout`` seconds (``None``: no limit).

        Returns the tokenizations still not delivered (0 when the drain finished).
        """
        if self._closed:
            return self._pending
        if self._pending == 0:
            return 0
        if self._loop is None:
            self.start()
        self._draining = True
        self._idle = asyncio.Event()
        self._dispatch()
        t0 = time.monotonic()
        try:
            if timeout is None:
                await self._idle.wait()
            else:
                await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            log.warning(
                "tokenizer drain: %.3g s budget spent; %d tokenizations had not finished",
                timeout,
                self._pending,
            )
        else:
            log.info("tokenizer drain finished in %.3f s", time.monotonic() - t0)
        return self._pending

    def close(self) -> None:
        """Stop: later results are dropped; each thread ends after the input it is counting
        (a batch in progress skips the rest of its chat inputs)."""
        if self._closed:
            return
        self._closed = True
        for _ in self._threads:
            self._work.put(None)
        with self._guard:
            self._guard.notify_all()  # the watchdog ends once no batch is being counted

    def join(self, timeout: float) -> bool:
        """After :meth:`close`: wait up to ``timeout`` s for the threads; whether all ended.

        A process must not finalise while a worker is inside the tokenizer's native
        code (the interpreter would abort it there): exit only once this is true, or
        with ``os._exit``.
        """
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self._threads)

    # -- the worker side ---------------------------------------------------------

    def _run(self) -> None:
        while True:
            batch = self._work.get()
            if batch is None:
                return
            try:
                results = self._count_batch(batch)
            except Overtime:  # a budget's end that came as the batch finished: skip it all
                results = [self._timed_out(j) for j in batch]
            loop = self._loop
            if loop is None or self._closed:
                continue
            try:
                loop.call_soon_threadsafe(self._deliver, batch, results)
            except RuntimeError:  # the loop is closed: nobody left to record
                return

    def _count_batch(self, batch: list[TokenJob]) -> list[tuple[Count, Count]]:
        counter = self.counter
        try:
            if self.job_timeout_s is None:
                return count_jobs(counter, batch, self._is_closed)
            try:
                return self._within_budget(lambda: count_jobs(counter, batch, self._is_closed))
            except Overtime:
                self.batches_overtime += 1
            # One by one, each with the whole budget: only a job slow on its own is skipped.
            results: list[tuple[Count, Count]] = []
            for job in batch:
                try:
                    results += self._within_budget(
                        functools.partial(count_jobs, counter, [job], self._is_closed)
                    )
                except Overtime:
                    results.append(self._timed_out(job))
            return results
        except Exception as exc:  # a bug, or a tokenizer that broke the whole batch
            self.batch_failures += 1
            return [(exc, exc if j.after_first_chunk else None) for j in batch]

    def _timed_out(self, job: TokenJob) -> tuple[Count, Count]:
        self.jobs_timed_out += 1
        if self.jobs_timed_out == 1:
            log.warning(
                "a tokenization took longer than %g s (a chat template that loops?): it is "
                "skipped and counted in tokenization_errors; further ones are not logged",
                self.job_timeout_s,
            )
        exc = TokenizationTimeout(f"tokenization took longer than {self.job_timeout_s:g} s")
        return (exc, exc if job.after_first_chunk else None)

    def _within_budget(
        self, count: Callable[[], list[tuple[Count, Count]]]
    ) -> list[tuple[Count, Count]]:
        """``count()`` in this worker, interrupted by :class:`Overtime` past the budget.

        The watchdog raises only while this thread's deadline is registered, and
        registering and removing it hold the same lock; an interruption that was
        already on its way when ``count()`` returned is cancelled under that lock
        (or, if it lands first, is still inside this ``try`` and is re-raised).
        """
        ident = threading.get_ident()
        assert self.job_timeout_s is not None
        try:
            with self._guard:
                self._deadlines[ident] = time.monotonic() + self.job_timeout_s
                self._guard.notify_all()
            results = count()
            with self._guard:
                self._deadlines.pop(ident, None)
                _raise_in(ident, None)
            return results
        except Overtime:
            with self._guard:
                self._deadlines.pop(ident, None)
                _raise_in(ident, None)
            raise

    def _watchdog(self) -> None:
        """Raise :class:`Overtime` in each worker whose batch is past its deadline."""
        guard = self._guard
        with guard:
            while not (self._closed and not self._deadlines):
                now = time.monotonic()
                for ident, deadline in list(self._deadlines.items()):
                    if deadline <= now:
                        del self._deadlines[ident]  # one interruption per deadline
                        _raise_in(ident, Overtime)
                soonest = min(self._deadlines.values(), default=None)
                guard.wait(None if soonest is None else max(0.0, soonest - now))
