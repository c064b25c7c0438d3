"""Which string or chat message is tokenized for ISL, OSL and TPOT (SPEC §6, upstream's rules).

mlcommons/endpoints counts tokens of exactly these renderings, so the same
events give the same counts (``tests/data/mlcommons-endpoints/README.md``
states them; ``tests/registry/test_token_rules.py`` pins each case):

- ISL of a prompt: ``len(token_ids)`` when token ids are present (the
  aggregator reads that from the msgpack header, no tokenizer); else a
  non-empty ``text``, tokenized without special tokens; else the chat
  ``messages`` (with ``tools``, ``chat_template_kwargs``, ``chat_template``,
  ``tool_choice``) through the chat template with the generation prompt.
- OSL of an output: with reasoning or tool calls, the assistant message
  (content = all output chunks joined, reasoning = all reasoning chunks
  joined, the tool calls) through the chat template, minus the template's own
  framing; otherwise the text = reasoning chunks then output chunks joined
  with no separator, so a word split across two chunks is one word. An empty
  output gives no value.
- TPOT's denominator: what came after the first chunk. The first chunk is
  ``reasoning[0]`` when the reasoning is streamed, else ``output[0]``; a
  string (non-streamed) field has no "after". With reasoning or tool calls
  it is again an assistant message (the tool calls count whole: they arrive
  at the end of the stream); otherwise plain text. Nothing after the first
  chunk gives no value.

This module only decides inputs from decoded values. It never loads or calls
a tokenizer and never records a metric.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from registry.events.data import PromptData, TextModelOutput, array_length

__all__ = [
    "ChatMessage",
    "ChatPrompt",
    "PlainText",
    "TokenInput",
    "after_first_chunk_input",
    "after_first_chunk_rule",
    "needs_after_first_chunk_count",
    "needs_output_count",
    "output_input",
    "output_rule",
    "prompt_input",
    "template_tool_calls",
]

#: An output or reasoning field: one string, or the tuple of streamed chunks.
Chunks = str | tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PlainText:
    """Text counted by the tokenizer itself, without special tokens."""

    text: str


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One assistant message, counted through the chat template minus its framing."""

    content: str
    reasoning: str | None
    tool_calls: Sequence[Any] | None


@dataclass(frozen=True, slots=True)
class ChatPrompt:
    """A whole chat prompt, counted through the chat template with the generation prompt."""

    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None = None
    chat_template_kwargs: dict[str, Any] | None = None
    chat_template: str | None = None
    tool_choice: str | dict[str, Any] | None = None


TokenInput = PlainText | ChatMessage | ChatPrompt


def _joined(value: Chunks | None) -> str:
    if not value:
        return ""
    return value if isinstance(value, str) else "".join(value)


def prompt_input(prompt: PromptData) -> PlainText | ChatPrompt | None:
    """What a prompt *without token ids* is counted from (``None``: nothing to count).

    The caller takes token ids first (their number is the ISL); this is the rest.
    """
    if prompt.text:
        return PlainText(prompt.text)
    messages = prompt.message_list()
    if messages is None:
        return None
    return ChatPrompt(
        messages=messages,
        tools=prompt.tools_value(),
        chat_template_kwargs=prompt.chat_template_kwargs_value(),
        chat_template=prompt.chat_template,
        tool_choice=prompt.tool_choice_value(),
    )


def output_input(output: TextModelOutput) -> PlainText | ChatMessage | None:
    """What OSL is counted from (``None``: an empty output, no value)."""
    return output_rule(output.output_value(), output.reasoning_value(), output.tool_calls_value())


def output_rule(
    out: Chunks, reasoning: Chunks | None, tool_calls: Sequence[Any] | None
) -> PlainText | ChatMessage | None:
    """:func:`output_input` on decoded fields."""
    if reasoning or tool_calls:
        return ChatMessage(_joined(out), _joined(reasoning) if reasoning else None, tool_calls)
    text = _joined(reasoning) + _joined(out)
    return PlainText(text) if text else None


def after_first_chunk_input(output: TextModelOutput) -> PlainText | ChatMessage | None:
    """What TPOT's denominator is counted from (``None``: nothing after the first chunk)."""
    return after_first_chunk_rule(
        output.output_value(), output.reasoning_value(), output.tool_calls_value()
    )


def after_first_chunk_rule(
    out: Chunks, reasoning: Chunks | None, tool_calls: Sequence[Any] | None
) -> PlainText | ChatMessage | None:
    """:func:`after_first_chunk_input` on decoded fields."""
    streamed = reasoning if isinstance(reasoning, tuple) else ()
    streamed_reasoning = len(streamed) > 0
    # The reasoning's tail exists (possibly "") once it had a second chunk.
    reasoning_tail = "".join(streamed[1:]) if len(streamed) > 1 else None
    content = ""
    if out:
        if isinstance(out, str):
            # A one-piece output follows the first chunk only if that was streamed reasoning.
            if streamed_reasoning:
                content = out
        elif reasoning:
            # Streamed output after (any) reasoning: the first chunk was reasoning.
            content = "".join(out)
        elif len(out) > 1:
            content = "".join(out[1:])
    if reasoning or tool_calls:
        return ChatMessage(content, reasoning_tail, tool_calls)
    return PlainText(content) if content else None


def template_tool_calls(tool_calls: Sequence[Any]) -> list[Any]:
    """Tool calls as chat templates expect them: ``function.arguments`` as a mapping.

    On the wire (OpenAI style) the arguments are a JSON string; templates
    iterate them as a mapping and fail on a string. A string that is not a
    JSON object is left as it is. The input is not modified.
    """
    fixed: list[Any] = []
    for call in tool_calls:
        fn = call.get("function") if isinstance(call, dict) else None
        args = fn.get("arguments") if isinstance(fn, dict) else None
        if isinstance(args, str):
            try:
                parsed = json.loads(args)
            except ValueError:
                parsed = None
            if isinstance(parsed, dict):
                call = {**call, "function": {**fn, "arguments": parsed}}  # type: ignore[dict-item]
        fixed.append(call)
    return fixed


# Canonical msgpack encodings of nil, "" and [] (what every msgpack encoder writes).
_EMPTY_RAW = (b"\xc0", b"\xa0", b"\x90")


def _raw_truthy(raw: Any) -> bool:
    return len(raw) > 1 or bytes(raw) not in _EMPTY_RAW


def needs_output_count(output: TextModelOutput) -> bool:
    """Whether OSL has anything to count (from the msgpack headers, nothing decoded)."""
    return (
        _raw_truthy(output.output)
        or _raw_truthy(output.reasoning)
        or _raw_truthy(output.tool_calls)
    )


def needs_after_first_chunk_count(output: TextModelOutput) -> bool:
    """Whether TPOT's denominator has anything to count (headers only, as above)."""
    if _raw_truthy(output.reasoning) or _raw_truthy(output.tool_calls):
        return True
    return array_length_or_zero(output.output) > 1


def array_length_or_zero(raw: Any) -> int:
    """The element count of a raw msgpack array, 0 for anything else."""
    try:
        return array_length(raw) or 0
    except ValueError:
        return 0
