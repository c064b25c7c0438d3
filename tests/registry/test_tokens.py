"""Token counts from the text (SPEC §6): loading, counting, and the worker pool in the aggregator.

Every tokenizer here is real: built by the test with the ``tokenizers`` library, saved as
a Hugging Face directory with a chat template, loaded back through
``transformers.AutoTokenizer`` (``tests/support/tokenizer_factory.py``). Worker threads are real
threads and the aggregator's results arrive on a real asyncio loop. The word-level
tokenizer makes every expected count a number of words, counted by hand in the comments.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from registry import MetricsRegistry, SessionState
from registry.aggregator import AggregatorMetrics
from registry.events import EventRecord, EventType
from registry.events.data import PromptData, TextModelOutput
from registry.tokens import (
    PROMPT,
    TokenCounter,
    TokenizerPool,
    TokenizerUnavailable,
    TokenJob,
    load_tokenizer,
)
from registry.tokens.rules import ChatMessage, ChatPrompt, PlainText
from tests.support.aggregator_scenario import ev
from tests.support.helpers import async_wait_until
from tests.support.tokenizer_factory import library_count, make_bpe_tokenizer, make_word_tokenizer

pytest.importorskip("transformers", reason="needs the extra bench-metrics[tokenizer]")

T = EventType
CALL = {
    "id": "c1",
    "type": "function",
    # arguments as sent on the wire: a JSON string (the template needs a mapping)
    "function": {"name": "get", "arguments": '{"city": "paris", "unit": "celsius"}'},
}


@pytest.fixture(scope="module")
def word_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_word_tokenizer(tmp_path_factory.mktemp("word"))


@pytest.fixture(scope="module")
def word(word_dir: Path) -> TokenCounter:
    return TokenCounter(load_tokenizer(word_dir))


# -- loading -------------------------------------------------------------------


def test_loader_refuses_what_is_not_a_tokenizer_in_one_line(tmp_path: Path) -> None:
    a_file = tmp_path / "f"
    a_file.write_text("x")
    empty = tmp_path / "empty"
    empty.mkdir()
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "tokenizer.json").write_text("{not json")
    cases = {
        tmp_path / "missing": "no such directory",
        a_file: "not a directory",
        empty: "not a tokenizer directory",
        broken: "not a usable tokenizer",
    }
    for path, why in cases.items():
        with pytest.raises(TokenizerUnavailable) as info:
            load_tokenizer(path)
        message = str(info.value)
        assert why in message and str(path) in message and "\n" not in message, message


def test_loading_never_reaches_the_network(tmp_path: Path) -> None:
    """A Hub name, and a directory whose config names a Hub model but holds no vocabulary:
    both fail at once, and a Hub endpoint on this machine sees no request at all."""
    import http.server

    hits: list[str] = []

    class Hub(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_error(404)

        do_HEAD = do_GET

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    cfg_only = tmp_path / "cfg-only"
    cfg_only.mkdir()
    (cfg_only / "tokenizer_config.json").write_text('{"name_or_path": "gpt2"}')
    code = (
        "import os, sys\n"
        "from registry.tokens import load_tokenizer, TokenizerUnavailable\n"
        "for path in sys.argv[1:]:\n"
        "    try:\n"
        "        load_tokenizer(path)\n"
        "    except TokenizerUnavailable as exc:\n"
        "        print(exc)\n"
        "print(os.environ['HF_HUB_OFFLINE'], os.environ['TRANSFORMERS_OFFLINE'])\n"
    )
    env = {
        **os.environ,
        "HF_ENDPOINT": f"http://127.0.0.1:{server.server_address[1]}",
        "HF_HUB_OFFLINE": "0",
        "TRANSFORMERS_OFFLINE": "0",
    }
    try:
        done = subprocess.run(
            [sys.executable, "-c", code, "gpt2", str(cfg_only)],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
    finally:
        server.shutdown()
        server.server_close()
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "gpt2: no such directory" in lines[0]
    assert "not a usable tokenizer" in lines[1]
    assert lines[2] == "1 1"  # forced offline, whatever the environment said
    assert hits == []


def test_without_transformers_the_error_names_the_extra(word_dir: Path) -> None:
    code = (
        "import sys; sys.modules['transformers'] = None\n"
        "from registry.tokens import load_tokenizer, TokenizerUnavailable\n"
        "try:\n"
        f"    load_tokenizer({str(word_dir)!r})\n"
        "except TokenizerUnavailable as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    line = done.stdout.strip()
    assert "bench-metrics[tokenizer]" in line and "\n" not in line, line


# -- counting ------------------------------------------------------------------


def test_text_counts_without_special_tokens(word: TokenCounter, tmp_path: Path) -> None:
    # 5 words, 2 of them outside the vocabulary ([UNK] is one token each)
    assert word.count_texts(["the model zebra is xyzzy", "", "answer"]) == [5, 0, 1]
    bpe_dir = make_bpe_tokenizer(tmp_path / "bpe")
    bpe = TokenCounter(load_tokenizer(bpe_dir))
    texts = ["the answer is not the first result", "weather in paris, celsius!", "tokenization"]
    assert bpe.count_texts(texts) == [library_count(bpe_dir, t) for t in texts]
    assert bpe.count_texts(["tokenization"])[0] > 1  # BPE pieces, not words


def test_chat_prompt_through_the_template_with_tools_and_generation_prompt(
    word: TokenCounter,
) -> None:
    msgs = [
        {"role": "system", "content": "you are a model"},
        {"role": "user", "content": "what is the weather"},
    ]
    # "<|system|> you are a model\n<|user|> what is the weather\n<|assistant|>\n"
    assert word.count(ChatPrompt(msgs)) == (1 + 4) + (1 + 4) + 1
    tools = [{"type": "function", "function": {"name": "get"}}]
    # + "<tools> get </tools>\n"
    assert word.count(ChatPrompt(msgs, tools=tools, tool_choice="auto")) == 11 + 3
    # a historical assistant tool call with JSON-string arguments renders (normalised)
    history = [*msgs, {"role": "assistant", "content": "x", "tool_calls": [CALL]}]
    # + "<|assistant|> x <tool> get city paris unit celsius </tool>\n"
    assert word.count(ChatPrompt(history)) == 11 + 2 + 7
    # the prompt's own template wins over the tokenizer's
    assert word.count(ChatPrompt(msgs, chat_template="{{ 'the model' }}")) == 2


def test_assistant_message_counts_its_payload_only(word: TokenCounter) -> None:
    assert (word.prefix_len, word.baseline) == (1, 1)  # "<|user|>", "<|assistant|>"
    # reasoning adds its words and the two <think> markers
    assert word.count(ChatMessage("the answer", "why is it", None)) == 2 + 3 + 2
    # tool calls: <tool> get city paris unit celsius </tool>
    assert word.count(ChatMessage("", None, [CALL])) == 7
    assert word.count(ChatMessage("", None, None)) == 0


def test_one_failing_input_costs_itself_only(word: TokenCounter, tmp_path: Path) -> None:
    out = word.count_many([PlainText("the model"), ChatMessage("boom here", None, None)])
    assert out[0] == 2 and isinstance(out[1], Exception) and "boom" in str(out[1])
    # a real tokenizer that fails on words outside its vocabulary: the batch call raises
    # as a whole, then each text is retried alone
    strict_dir = make_word_tokenizer(tmp_path / "s", unknown_words_fail=True)
    strict = TokenCounter(load_tokenizer(strict_dir))
    with pytest.raises(Exception, match="Missing \\[UNK\\]"):
        strict.count_texts(["the model", "the zebra"])
    got = strict.count_many([PlainText("the model"), PlainText("the zebra"), PlainText("why")])
    assert got[0] == 2 and isinstance(got[1], Exception) and got[2] == 1


def test_a_tokenizer_without_chat_template_fails_messages_but_counts_text(
    tmp_path: Path,
) -> None:
    plain = TokenCounter(load_tokenizer(make_word_tokenizer(tmp_path / "p", chat_template=None)))
    assert plain.template_error is not None
    out = plain.count_many([PlainText("a b c"), ChatMessage("x", "y", None)])
    assert out[0] == 3 and isinstance(out[1], Exception)


# -- the aggregator with a tokenizer ------------------------------------------


def prompt(uuid: str, ts: int, **kw: Any) -> EventRecord:
    return ev(T.SAMPLE_ISSUED, ts, uuid, data=PromptData.build(**kw))


def complete(uuid: str, ts: int, out: Any = "", **kw: Any) -> EventRecord:
    reasoning = kw.pop("reasoning", None)
    calls = kw.pop("tool_calls", None)
    data = TextModelOutput.build(output=out, reasoning=reasoning, tool_calls=calls)
    return ev(T.SAMPLE_COMPLETE, ts, uuid, data=data, finish_reason="stop", **kw)


def first(uuid: str, ts: int) -> EventRecord:
    return ev(T.SAMPLE_RECV_FIRST, ts, uuid)


async def run_aggregator(
    counter: TokenCounter, events: list[EventRecord], *, workers: int = 2
) -> tuple[MetricsRegistry, AggregatorMetrics]:
    reg = MetricsRegistry()
    agg = AggregatorMetrics(reg, streaming=True, tokens=counter, tokenizer_workers=workers)
    assert agg.tokenizer is not None
    agg.tokenizer.start()
    for i in range(0, len(events), 3):
        agg.handle_many(events[i : i + 3])
        await asyncio.sleep(0)
    assert await agg.tokenizer.drain(None) == 0
    agg.tokenizer.close()
    return reg, agg


def test_every_prompt_and_output_shape_through_the_aggregator(word: TokenCounter) -> None:
    s = 1_000_000
    events = [
        ev(T.SESSION_STARTED, 0),
        ev(T.SESSION_START_PERFORMANCE_TRACKING, 1),
        # ISL: token ids (header only) > text > messages; our input_tokens first of all
        prompt("ids", 10, token_ids=[1, 2, 3], text="not counted"),
        prompt("txt", 11, text="the model answer zebra"),  # 4
        prompt("msg", 12, messages=[{"role": "user", "content": "why"}]),  # 1+1+1 = 3
        ev(T.SAMPLE_ISSUED, 13, "ext", input_tokens=99, data=PromptData.build(text="a b")),
        prompt("bad", 14, messages=[{"role": "user", "content": "boom"}]),  # template raises
        prompt("empty", 15, text=""),  # nothing to count
        # outputs
        first("txt", 2 * s),
        # "the model is a reply": osl 5; after the first chunk 4 words: tpot 10 ms / 4
        complete("txt", 12 * s, ("the", " mod", "el is", " a reply")),
        first("msg", 3 * s),
        # reasoning streamed: osl = 2 + 3 + 2 markers; after the first chunk: content 2,
        # reasoning " is it" 2, markers 2
        complete("msg", 9 * s, "the answer", reasoning=("why", " is it")),
        first("ids", 4 * s),
        complete("ids", 5 * s, ("single chunk",)),  # osl 2, no tpot (nothing after)
        complete("ext", 6 * s, ("a", " b"), output_tokens=7),  # extension: 7, tpot skipped
        first("bad", 7 * s),
        complete("bad", 8 * s, "", tool_calls=[CALL]),  # osl 7; tpot 7 (tool calls whole)
        complete("empty", 9 * s, ()),  # empty output: no osl
        ev(T.SESSION_ENDED, 20 * s),
    ]
    reg, agg = asyncio.run(run_aggregator(word, events))
    snap = reg.build_snapshot(state=SessionState.COMPLETE, n_pending_tasks=agg.n_pending_tasks)
    assert snap.n_pending_tasks == 0
    isl = snap.series["isl"]
    assert (isl.count, isl.total, isl.min, isl.max) == (4, 3 + 4 + 3 + 99, 3, 99)
    osl = snap.series["osl"]
    # txt 5, msg 7, ids 2, ext 7 (extension), bad 7
    assert (osl.count, osl.total, osl.min, osl.max) == (5, 5 + 7 + 2 + 7 + 7, 2, 7)
    tpot = snap.series["tpot_ns"]
    # txt: 10 ms / 4; msg: 6 ms / 6; bad: 1 ms / 7
    assert tpot.count == 3
    assert tpot.total == pytest.approx(10 * s / 4 + 6 * s / 6 + 1 * s / 7, rel=1e-12)
    assert tpot.min == pytest.approx(s / 7) and tpot.max == pytest.approx(10 * s / 4)
    assert snap.counters["tracked_output_tokens"] == 28
    assert snap.counters["tokenization_errors"] == 1


def test_snapshots_captured_on_the_loop_always_add_up(word: TokenCounter) -> None:
    """At every capture: isl values recorded + n_pending_tasks = prompts submitted."""
    n = 3000

    async def main() -> list[tuple[int, int, int]]:
        reg = MetricsRegistry()
        agg = AggregatorMetrics(reg, streaming=False, tokens=word, tokenizer_workers=2)
        assert agg.tokenizer is not None
        agg.tokenizer.start()
        agg.handle_many([ev(T.SESSION_STARTED, 0), ev(T.SESSION_START_PERFORMANCE_TRACKING, 1)])
        seen: list[tuple[int, int, int]] = []
        submitted = 0
        for i in range(0, n, 100):
            batch = [
                prompt(f"u{j}", 10 + j, text="the model " * (j % 50 + 1)) for j in range(i, i + 100)
            ]
            agg.handle_many(batch)
            submitted += len(batch)
            await asyncio.sleep(0)
            cap = reg.capture(state=SessionState.LIVE, n_pending_tasks=agg.n_pending_tasks)
            seen.append((submitted, cap.build().series["isl"].count, cap.n_pending_tasks))
        while agg.n_pending_tasks:
            cap = reg.capture(state=SessionState.LIVE, n_pending_tasks=agg.n_pending_tasks)
            seen.append((submitted, cap.build().series["isl"].count, cap.n_pending_tasks))
            await asyncio.sleep(0.001)
        cap = reg.capture(state=SessionState.LIVE, n_pending_tasks=agg.n_pending_tasks)
        seen.append((submitted, cap.build().series["isl"].count, cap.n_pending_tasks))
        agg.tokenizer.close()
        return seen

    seen = asyncio.run(main())
    assert all(recorded + pending == submitted for submitted, recorded, pending in seen), seen
    assert seen[-1] == (n, n, 0)
    # the pool worked while events arrived: some capture saw a partial backlog
    assert any(0 < pending < submitted for submitted, _, pending in seen)


def test_tokenization_runs_in_worker_threads_never_on_the_loop(word_dir: Path) -> None:
    threads: set[str] = set()

    class Recording(TokenCounter):
        def count_many(self, items: Any, should_stop: Any = None) -> list[int | Exception]:
            threads.add(threading.current_thread().name)
            return super().count_many(items, should_stop)

    counter = Recording(load_tokenizer(word_dir))

    async def main() -> str:
        pool = TokenizerPool(counter, on_counts=lambda *a: None, workers=3, max_batch=8)
        pool.start()
        for i in range(200):
            pool.submit(TokenJob(PROMPT, PromptData.build(text=f"the model {i}")))
            if i % 10 == 0:
                await asyncio.sleep(0)
        assert await pool.drain(None) == 0
        pool.close()
        return threading.current_thread().name

    loop_thread = asyncio.run(main())
    assert threads and loop_thread not in threads
    assert all(name.startswith("tokenizer-") for name in threads), threads


def test_workers_0_defers_everything_to_the_drain(word: TokenCounter) -> None:
    async def main() -> None:
        got: list[Any] = []
        pool = TokenizerPool(word, on_counts=lambda job, a, b: got.append(a), workers=0)
        pool.start()
        for _ in range(50):
            pool.submit(TokenJob(PROMPT, PromptData.build(text="a b c"), weight=1))
        # the loop turns and time passes, but nothing is counted before the drain
        assert not await async_wait_until(lambda: got, 0.2)
        assert pool.pending == 50
        assert await pool.drain(None) == 0
        assert got == [3] * 50 and pool.pending == 0
        pool.close()

    asyncio.run(main())


def test_results_after_close_are_dropped_and_pending_stays(word: TokenCounter) -> None:
    async def main() -> None:
        got: list[Any] = []
        pool = TokenizerPool(word, on_counts=lambda job, a, b: got.append(a), workers=1)
        pool.start()
        for _ in range(20):
            pool.submit(TokenJob(PROMPT, PromptData.build(text="a b c")))
        pool.close()  # before the dispatch callback ran: nothing may be recorded any more
        await asyncio.sleep(0.05)
        assert got == [] and pool.pending == 20
        pool.submit(TokenJob(PROMPT, PromptData.build(text="late")))  # ignored once closed
        assert pool.pending == 20

    asyncio.run(main())
