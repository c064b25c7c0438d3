"""The verdict when TPOT comes from tokenization (SPEC §6, §10).

With a tokenizer the aggregator learns a sample's TPOT and output tokens only when the
worker pool has counted its text: the completion then leaves the sample's verdict to the
token counts, and the sample is judged once they arrive, with the TTFT, latency and
failed flag its completion saw. A real tokenizer (word level: a count is a number of
words) runs in real worker threads feeding a real asyncio loop.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from registry import MetricsRegistry, SessionState
from registry.aggregator import AggregatorMetrics
from registry.events import EventRecord, EventType
from registry.events.data import ErrorData, PromptData, TextModelOutput
from registry.mlperf import build_constraints
from registry.mlperf.verdict_counters import read_verdict
from registry.tokens import TokenCounter, load_tokenizer
from tests.support.aggregator_scenario import ev
from tests.support.tokenizer_factory import make_word_tokenizer

pytest.importorskip("transformers", reason="needs the extra bench-metrics[tokenizer]")

T = EventType
MS = 1_000_000


def sample(uuid: str, t0: int, chunks: tuple[str, ...], *, total_ms: int) -> list[EventRecord]:
    """Issued at ``t0``, first chunk 10 ms later, complete ``total_ms`` after issue."""
    return [
        ev(T.SAMPLE_ISSUED, t0, uuid, data=PromptData.build(text="why is it")),
        ev(T.SAMPLE_RECV_FIRST, t0 + 10 * MS, uuid),
        ev(
            T.SAMPLE_COMPLETE,
            t0 + total_ms * MS,
            uuid,
            data=TextModelOutput.build(output=chunks),
            finish_reason="stop",
        ),
    ]


def test_samples_whose_tpot_comes_from_the_tokenizer_are_judged_with_it(tmp_path: Path) -> None:
    counter = TokenCounter(load_tokenizer(make_word_tokenizer(tmp_path / "w")))
    events = [ev(T.SESSION_STARTED, 0), ev(T.SESSION_START_PERFORMANCE_TRACKING, 0)]
    # a: 4 words after the first chunk over 40 ms: TPOT 10 ms (at the limit: within)
    events += sample("a", 1 * MS, ("the", " model answer is a"), total_ms=50)
    # b: 2 words after the first chunk over 90 ms: TPOT 45 ms, over 10 ms
    events += sample("b", 2 * MS, ("the", " model answer"), total_ms=100)
    # c: one chunk: no TPOT (nothing after the first chunk); OSL 3
    events += sample("c", 3 * MS, ("the model answer",), total_ms=30)
    # d: failed before completing: nothing to tokenize, judged at once, never good
    events += [
        ev(T.SAMPLE_ISSUED, 4 * MS, "d", data=PromptData.build(text="why")),
        ev(T.SAMPLE_RECV_FIRST, 14 * MS, "d"),
        ev(T.ERROR_CLIENT, 20 * MS, "d", data=ErrorData("HTTPError", "503")),
        ev(T.SAMPLE_COMPLETE, 20 * MS, "d"),
    ]

    async def main() -> tuple[MetricsRegistry, AggregatorMetrics, tuple[int, ...]]:
        reg = MetricsRegistry()
        agg = AggregatorMetrics(
            reg,
            streaming=True,
            tokens=counter,
            tokenizer_workers=0,  # nothing is counted before the drain: the order is ours
            constraints=build_constraints(None, ["tpot:p50<=10ms", "ttft:p50<=100ms"]),
        )
        assert agg.tokenizer is not None
        agg.tokenizer.start()
        agg.handle_many(events)
        before = read_verdict(
            reg.build_snapshot(state=SessionState.LIVE, n_pending_tasks=0).counters
        )
        assert before is not None
        # only d (no text to count) is judged before its tokens are counted
        judged_early = tuple(c.samples for c in before.constraints)
        assert await agg.tokenizer.drain(None) == 0
        agg.tokenizer.close()
        return reg, agg, judged_early

    reg, agg, early = asyncio.run(main())
    assert early == (0, 1)  # TPOT: nobody yet; TTFT: d
    snap = reg.build_snapshot(state=SessionState.LIVE, n_pending_tasks=0)
    verdict = read_verdict(snap.counters)
    assert verdict is not None
    tpot, ttft = verdict.constraints
    assert (tpot.samples, tpot.over_limit) == (2, 1) == (snap.series["tpot_ns"].count, 1)
    assert (ttft.samples, ttft.over_limit) == (4, 0)
    # good: a (TPOT 10 ms within) and c (no TPOT, TTFT within); their output tokens 5 + 3
    assert verdict.good_samples == 2 and verdict.good_output_tokens == 5 + 3
    assert agg.tracker is not None and agg.tracker.samples_observed == 4  # each judged once
