"""Tokenization through the aggregator against the tokenizer library's own batch encode.

Run: ``.venv/bin/python bench/tokenizer.py`` (or ``make bench``). Needs the extra
``bench-metrics[tokenizer]``. Prints the median of several repeats for each figure and
its ratio to a baseline measured in the same run, the two run alternately; the targets
come from issue 10:

1. tokens/s through the aggregator's pipeline: ``--samples`` samples, each a
   512-token text prompt and a 256-token output streamed one token per chunk, as
   encoded event records; decoded by the aggregator's codec and handled by
   ``AggregatorMetrics`` on an asyncio loop with its tokenizer pool
   (``--workers`` threads), until every ``isl``, ``osl`` and ``tpot_ns`` value is
   recorded. Baseline: the ``tokenizers`` library's ``encode_batch_fast`` of the
   very texts those values need (prompt, joined output, output after the first
   chunk), on the same cores, the faster of two ways: all texts in one call, and
   batches of the pool's size (256) one after the other. Target: >= 0.8 of the
   baseline.
2. the event loop's worst stall meanwhile: the largest lateness of a 1 ms ticker
   task on the aggregator's loop while it tokenizes. Baseline: the same pipeline
   without a tokenizer (counts from the ``output_tokens`` extension), which shows
   what the loop's own event handling costs. Target: <= 10 ms.

The tokenizer is a byte-level BPE (32k vocabulary, like GPT-2's) trained here on
generated text and loaded back through ``transformers.AutoTokenizer``: nothing is
downloaded.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Run as a script, this file's folder comes first on sys.path: put the repository
# root there instead, so the packages import from this checkout.
sys.path[0] = str(Path(__file__).resolve().parents[1])

from registry import MetricsRegistry  # noqa: E402
from registry.aggregator import AggregatorMetrics  # noqa: E402
from registry.aggregator.service import APPLY_SLICE, TOKENIZER_APPLY_SLICE  # noqa: E402
from registry.events import EventCodec, EventRecord, EventType  # noqa: E402
from registry.events.data import PromptData, TextModelOutput  # noqa: E402
from registry.tokens import TokenCounter, load_tokenizer  # noqa: E402
from registry.tokens.pool import DEFAULT_MAX_BATCH  # noqa: E402

T = EventType
PROMPT_TOKENS, OUTPUT_TOKENS = 512, 256
BATCH = 1000  # records per received batch: upstream's publisher flushes at 1,000


# -- the tokenizer and the texts ---------------------------------------------------


def _words(rng: random.Random, n: int) -> list[str]:
    syllables = [c + v for c in "bcdfghjklmnprstvwz" for v in "aeiou"] + ["th", "st", "qu"]
    return ["".join(rng.choices(syllables, k=rng.choice((1, 1, 2, 2, 3, 4)))) for _ in range(n)]


def _text(rng: random.Random, vocab: list[str], weights: list[float], n_words: int) -> str:
    words = rng.choices(vocab, weights, k=n_words)
    out = []
    for i, w in enumerate(words):
        if i and rng.random() < 0.08:
            out.append(rng.choice((",", ".", ";")))
        out.append(" " + w if i else w.capitalize())
    return "".join(out) + "."


def build_tokenizer(directory: Path, rng: random.Random) -> tuple[Path, Any, list[str]]:
    """A byte-level BPE trained on generated text; its directory, raw tokenizer, vocabulary."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    vocab = _words(rng, 20_000)
    weights = [1.0 / (r + 1) for r in range(len(vocab))]  # Zipf, as in natural text
    corpus = [_text(rng, vocab, weights, 200) for _ in range(3_000)]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=32_000,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer)
    directory.mkdir(parents=True, exist_ok=True)
    tok.save(str(directory / "tokenizer.json"))
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 1_000_000}
    (directory / "tokenizer_config.json").write_text(json.dumps(config))
    return directory, tok, vocab


def cut(tok: Any, text: str, n_tokens: int) -> list[str]:
    """``text`` as its first ``n_tokens`` tokens' pieces (one streamed chunk per token)."""
    enc = tok.encode(text, add_special_tokens=False)
    assert len(enc.ids) >= n_tokens, "generated text too short"
    starts = [start for start, _ in enc.offsets[:n_tokens]] + [enc.offsets[n_tokens - 1][1]]
    return [text[a:b] for a, b in itertools.pairwise(starts)]


# -- the events ---------------------------------------------------------------------


def make_samples(
    tok: Any, vocab: list[str], rng: random.Random, n: int
) -> tuple[list[bytes], list[str]]:
    """The encoded records of ``n`` samples, and the texts their token values need."""
    weights = [1.0 / (r + 1) for r in range(len(vocab))]
    codec = EventCodec()
    payloads: list[bytes] = []
    texts: list[str] = []

    def add(rec: EventRecord) -> None:
        payloads.append(codec.encode(rec)[1])

    add(EventRecord(T.SESSION_STARTED, 0))
    add(EventRecord(T.SESSION_START_PERFORMANCE_TRACKING, 1))
    ts = 10
    for i in range(n):
        prompt = "".join(cut(tok, _text(rng, vocab, weights, 700), PROMPT_TOKENS))
        chunks = cut(tok, _text(rng, vocab, weights, 400), OUTPUT_TOKENS)
        uid = f"s{i:06d}"
        add(EventRecord(T.SAMPLE_ISSUED, ts, uid, data=PromptData.build(text=prompt)))
        add(EventRecord(T.SAMPLE_RECV_FIRST, ts + 1_000_000, uid))
        out = TextModelOutput.build(output=tuple(chunks))
        add(EventRecord(T.SAMPLE_COMPLETE, ts + 9_000_000, uid, data=out, finish_reason="stop"))
        texts += [prompt, "".join(chunks), "".join(chunks[1:])]
        ts += 10
    return payloads, texts


def strip_text(payloads: list[bytes]) -> list[bytes]:
    """The same records with token counts instead of text (the no-tokenizer baseline)."""
    codec = EventCodec()
    out: list[bytes] = []
    for p in payloads:
        rec = codec.decode(p)
        if rec.event_type is T.SAMPLE_ISSUED:
            rec = EventRecord(T.SAMPLE_ISSUED, rec.timestamp_ns, rec.sample_uuid, input_tokens=512)
        elif rec.event_type is T.SAMPLE_COMPLETE:
            rec = EventRecord(
                T.SAMPLE_COMPLETE, rec.timestamp_ns, rec.sample_uuid, output_tokens=256
            )
        out.append(codec.encode(rec)[1])
    return out


# -- the runs -------------------------------------------------------------------------


async def pipeline(
    payloads: list[bytes], counter: TokenCounter | None, workers: int
) -> tuple[float, float, int]:
    """Decode and handle every record; wait until every token value is recorded.

    Returns (seconds, worst ticker lateness in seconds, values recorded).
    """
    reg = MetricsRegistry()
    agg = AggregatorMetrics(reg, streaming=True, tokens=counter, tokenizer_workers=workers)
    pool = agg.tokenizer
    codec = EventCodec()
    loop = asyncio.get_running_loop()
    if pool is not None:
        pool.start(loop)
    done = asyncio.Event()
    worst = 0.0

    async def ticker() -> None:
        nonlocal worst
        period = 0.001
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(period)
            now = time.perf_counter()
            worst = max(worst, now - last - period)
            last = now

    tick = asyncio.create_task(ticker())
    await asyncio.sleep(0.01)  # the ticker is running
    t0 = time.perf_counter()
    decode = codec.decode
    step = APPLY_SLICE if pool is None else TOKENIZER_APPLY_SLICE  # as the service steps
    for i in range(0, len(payloads), BATCH):
        # as the service applies a received message: decoded whole, applied in slices
        batch = [decode(p) for p in payloads[i : i + BATCH]]
        for j in range(0, len(batch), step):
            if j:
                await asyncio.sleep(0)
            agg.handle_many(batch[j : j + step])
        await asyncio.sleep(0)
    if pool is not None:
        await pool.drain(None)
    elapsed = time.perf_counter() - t0
    done.set()
    await tick
    if pool is not None:
        pool.close()
        pool.join(5.0)
    snap = reg.capture(state=agg.session.state, n_pending_tasks=agg.n_pending_tasks).build()
    recorded = sum(snap.series[n].count for n in ("isl", "osl", "tpot_ns"))
    return elapsed, worst, recorded


def timed(fn: Any) -> float:
    gc.collect()
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--workers", type=int, default=2, help="--tokenizer-workers (default 2)")
    args = ap.parse_args()
    rng = random.Random(20261201)
    with tempfile.TemporaryDirectory(prefix="bm-bench-tok-") as tmp:
        t0 = time.perf_counter()
        directory, raw, vocab = build_tokenizer(Path(tmp) / "bpe", rng)
        tokenizer = load_tokenizer(directory)
        counter = TokenCounter(tokenizer, name="bench-bpe")
        backend = tokenizer.backend_tokenizer
        payloads, texts = make_samples(raw, vocab, rng, args.samples)
        plain = strip_text(payloads)
        gc.collect()
        gc.freeze()  # as `bench-metrics aggregate` does once it has loaded everything
        print(
            f"setup {time.perf_counter() - t0:.1f} s: {args.samples:,} samples, "
            f"{len(payloads):,} records, {os.cpu_count()} cores, workers {args.workers}"
        )

        n_tokens = sum(len(e) for e in backend.encode_batch_fast(texts, add_special_tokens=False))
        want_values = 3 * args.samples

        def one_call() -> None:
            counts = [len(e) for e in backend.encode_batch_fast(texts, add_special_tokens=False)]
            assert len(counts) == len(texts)

        def batches() -> None:
            counts: list[int] = []
            for i in range(0, len(texts), DEFAULT_MAX_BATCH):
                chunk = texts[i : i + DEFAULT_MAX_BATCH]
                counts += [
                    len(e) for e in backend.encode_batch_fast(chunk, add_special_tokens=False)
                ]
            assert len(counts) == len(texts)

        ours_t, one_t, batch_t, stalls, plain_stalls = [], [], [], [], []
        asyncio.run(pipeline(payloads[: 3 * 50 + 2], counter, args.workers))  # warm up
        for _ in range(args.repeats):
            gc.collect()
            elapsed, worst, recorded = asyncio.run(pipeline(payloads, counter, args.workers))
            assert recorded == want_values, (recorded, want_values)
            ours_t.append(elapsed)
            stalls.append(worst)
            one_t.append(timed(one_call))
            batch_t.append(timed(batches))
            gc.collect()
            _, worst_plain, _ = asyncio.run(pipeline(plain, None, args.workers))
            plain_stalls.append(worst_plain)

    ours, one, batch = (statistics.median(t) for t in (ours_t, one_t, batch_t))
    base = min(one, batch)
    print(f"texts: {len(texts):,} ({n_tokens:,} tokens: {n_tokens / args.samples:,.0f} per sample)")
    print(
        f"1. tokens/s through the aggregator  {n_tokens / ours:14,.0f}   "
        f"encode_batch_fast alone {n_tokens / base:14,.0f}   "
        f"ratio {base / ours:.2f} (target >= 0.8)"
    )
    print(
        f"   (encode_batch_fast in one call {n_tokens / one:,.0f} tokens/s, "
        f"in batches of {DEFAULT_MAX_BATCH} {n_tokens / batch:,.0f} tokens/s; "
        f"the pipeline's repeats {', '.join(f'{n_tokens / t:,.0f}' for t in ours_t)})"
    )
    stall, plain_stall = statistics.median(stalls), statistics.median(plain_stalls)
    print(
        f"2. worst loop stall while tokenizing {stall * 1e3:8.2f} ms   "
        f"without a tokenizer {plain_stall * 1e3:8.2f} ms   "
        f"(target <= 10 ms; max over repeats {max(stalls) * 1e3:.2f} ms)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
