"""Upstream's rules for what is tokenized (SPEC §6), case by case, without a tokenizer.

Each row is an output shape mlcommons/endpoints sends (a string, or the tuple of streamed
chunks; reasoning streamed or not; tool calls) and the input our rules make of it for OSL
and for TPOT's denominator. The fixture README states the rules; session A exercises
them end to end in ``test_upstream_compat.py``.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from registry.events.data import PromptData, TextModelOutput
from registry.tokens.rules import (
    ChatMessage,
    ChatPrompt,
    PlainText,
    after_first_chunk_input,
    needs_after_first_chunk_count,
    needs_output_count,
    output_input,
    prompt_input,
    template_tool_calls,
)

CALL = {"id": "c1", "type": "function", "function": {"name": "get", "arguments": '{"a": 1}'}}

# (output, reasoning, tool_calls) -> (OSL input, TPOT input)
CASES: list[tuple[Any, Any, Any, Any, Any]] = [
    # plain streamed text: chunks joined without separator; TPOT skips the first chunk
    (("the", " mod", "el is"), None, None, PlainText("the model is"), PlainText(" model is")),
    # one chunk, or a non-streamed string: nothing after the first chunk
    (("the model",), None, None, PlainText("the model"), None),
    ("the model", None, None, PlainText("the model"), None),
    # empty output (content_filter with no chunk at all): no value at all
    ((), None, None, None, None),
    ("", None, None, None, None),
    # streamed reasoning: the first chunk is reasoning[0]; the whole output comes after it
    (
        "out",
        ("r0", " r1"),
        None,
        ChatMessage("out", "r0 r1", None),
        ChatMessage("out", " r1", None),
    ),
    # one reasoning chunk: its tail does not exist (None), the output still follows it
    ("out", ("r0",), None, ChatMessage("out", "r0", None), ChatMessage("out", None, None)),
    # reasoning as one string, output streamed: every output chunk follows the first chunk
    (("a", "b"), "r", None, ChatMessage("ab", "r", None), ChatMessage("ab", None, None)),
    # reasoning as one string, output as one string: nothing of the content follows
    ("out", "r", None, ChatMessage("out", "r", None), ChatMessage("", None, None)),
    # tool calls: a message even without reasoning; they always count whole for TPOT
    (
        ("a", "b", "c"),
        None,
        [CALL],
        ChatMessage("abc", None, [CALL]),
        ChatMessage("bc", None, [CALL]),
    ),
    ("hello", None, [CALL], ChatMessage("hello", None, [CALL]), ChatMessage("", None, [CALL])),
    # empty containers count as absent
    (("a", "b"), (), [], PlainText("ab"), PlainText("b")),
]


@pytest.mark.parametrize(("out", "reasoning", "calls", "osl", "tpot"), CASES)
def test_output_rules(out: Any, reasoning: Any, calls: Any, osl: Any, tpot: Any) -> None:
    data = TextModelOutput.build(output=out, reasoning=reasoning, tool_calls=calls)
    # through the wire format, as the aggregator sees it
    data = msgspec.msgpack.decode(msgspec.msgpack.encode(data), type=TextModelOutput)
    assert output_input(data) == osl
    assert after_first_chunk_input(data) == tpot
    # the header-only predicates agree with the rules on every case
    assert needs_output_count(data) is (osl is not None)
    assert needs_after_first_chunk_count(data) is (tpot is not None)


def test_prompt_rules_text_first_then_messages() -> None:
    assert prompt_input(PromptData.build(text="the model")) == PlainText("the model")
    msgs = [{"role": "user", "content": "why"}]
    tools = [{"type": "function", "function": {"name": "get"}}]
    p = PromptData.build(
        text="",  # empty text falls through to the messages, as upstream's does
        messages=msgs,
        tools=tools,
        chat_template_kwargs={"enable_thinking": False},
        chat_template="{{ messages }}",
        tool_choice="auto",
    )
    assert prompt_input(p) == ChatPrompt(
        msgs, tools, {"enable_thinking": False}, "{{ messages }}", "auto"
    )
    assert prompt_input(PromptData.build()) is None


def test_template_tool_calls_parses_json_arguments_without_touching_the_input() -> None:
    calls = [CALL, {"function": {"name": "x", "arguments": "not json"}}, {"function": {}}]
    fixed = template_tool_calls(calls)
    assert fixed[0]["function"]["arguments"] == {"a": 1}
    assert fixed[1] == calls[1] and fixed[2] == calls[2]
    assert CALL["function"]["arguments"] == '{"a": 1}'
