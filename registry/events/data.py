"""The tagged ``data`` payloads of an event record, as mlcommons/endpoints sends them (SPEC §5).

On the wire each variant is a msgpack array whose first element is its tag:
``["PromptData", text, token_ids, messages, tools, chat_template_kwargs,
chat_template, tool_choice]``, ``["TextModelOutput", output, reasoning,
tool_calls]`` and ``["ErrorData", error_type, error_message]``; trailing
fields may be missing (they default to nil / ``""``).

The bulky fields (token ids, chat messages, streamed output chunks) are kept
as :class:`msgspec.Raw`: the decoder checks that they are well-formed msgpack
and hands over the bytes without building a Python object per token or chunk.
An ``sample.issued`` record carries hundreds of token ids and the aggregator
only needs their number, which the msgpack array header states
(:func:`array_length`). Whoever needs the values (the tokenizer) decodes them
on demand with the accessors.

Producers build records with the ``build`` constructors, which encode the
values once; the bytes then equal what upstream's own encoder writes for the
same values. This module holds data only: it never counts, tokenizes or
touches a socket.
"""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = [
    "NIL",
    "ErrorData",
    "PromptData",
    "TextModelOutput",
    "array_length",
    "decode_raw",
]

#: A msgpack nil, as a raw value.
NIL = msgspec.Raw(b"\xc0")
_EMPTY_STR = msgspec.Raw(b"\xa0")
_encode = msgspec.msgpack.encode


def _raw(value: Any) -> msgspec.Raw:
    return NIL if value is None else msgspec.Raw(_encode(value))


def array_length(raw: msgspec.Raw) -> int | None:
    """The element count of a raw msgpack array, ``None`` for nil.

    Reads only the header. ``ValueError`` when the value is neither.
    """
    b = memoryview(raw)
    if not b:
        raise ValueError("empty raw value")
    head = b[0]
    # byte by byte, no slices: this runs for every prompt of token ids
    if head == 0xDC:  # the usual prompt: 16 to 65,535 ids
        return (b[1] << 8) | b[2]
    if 0x90 <= head <= 0x9F:
        return head & 0x0F
    if head == 0xDD:
        return (b[1] << 24) | (b[2] << 16) | (b[3] << 8) | b[4]
    if head == 0xC0:
        return None
    raise ValueError(f"expected a msgpack array or nil, found type byte 0x{head:02x}")


def decode_raw(raw: msgspec.Raw, type: Any = Any) -> Any:
    """The value behind a raw field (``msgspec.ValidationError`` if not of ``type``)."""
    return msgspec.msgpack.decode(raw, type=type)


def _is_nil(raw: msgspec.Raw) -> bool:
    return len(raw) == 1 and memoryview(raw)[0] == 0xC0


class PromptData(msgspec.Struct, tag=True, array_like=True, frozen=True, gc=False):
    """The prompt on ``sample.issued``: one of token ids, plain text or chat messages."""

    text: str | None = None
    token_ids: msgspec.Raw = NIL
    messages: msgspec.Raw = NIL
    tools: msgspec.Raw = NIL
    chat_template_kwargs: msgspec.Raw = NIL
    chat_template: str | None = None
    tool_choice: msgspec.Raw = NIL

    @classmethod
    def build(
        cls,
        *,
        text: str | None = None,
        token_ids: list[int] | tuple[int, ...] | None = None,
        messages: list[dict[str, Any]] | None = None,
        tools: list[dict[str, Any]] | None = None,
        chat_template_kwargs: dict[str, Any] | None = None,
        chat_template: str | None = None,
        tool_choice: Any = None,
    ) -> PromptData:
        return cls(
            text=text,
            token_ids=_raw(token_ids),
            messages=_raw(messages),
            tools=_raw(tools),
            chat_template_kwargs=_raw(chat_template_kwargs),
            chat_template=chat_template,
            tool_choice=_raw(tool_choice),
        )

    @property
    def n_token_ids(self) -> int | None:
        """How many token ids the prompt carries (``None`` when it carries none)."""
        return array_length(self.token_ids)

    def token_id_list(self) -> list[int] | None:
        return decode_raw(self.token_ids, list[int] | None)

    def message_list(self) -> list[dict[str, Any]] | None:
        return decode_raw(self.messages, list[dict[str, Any]] | None)

    @property
    def has_messages(self) -> bool:
        return not _is_nil(self.messages)

    def tools_value(self) -> list[dict[str, Any]] | None:
        value: list[dict[str, Any]] | None = decode_raw(self.tools, list[dict[str, Any]] | None)
        return value

    def chat_template_kwargs_value(self) -> dict[str, Any] | None:
        value: dict[str, Any] | None = decode_raw(self.chat_template_kwargs, dict[str, Any] | None)
        return value

    def tool_choice_value(self) -> str | dict[str, Any] | None:
        return decode_raw(self.tool_choice, str | dict[str, Any] | None)


class TextModelOutput(msgspec.Struct, tag=True, array_like=True, frozen=True, gc=False):
    """The response on ``sample.complete``: output and reasoning are a string or the
    tuple of streamed chunks; ``tool_calls`` a list of calls or nil."""

    output: msgspec.Raw = _EMPTY_STR
    reasoning: msgspec.Raw = NIL
    tool_calls: msgspec.Raw = NIL

    @classmethod
    def build(
        cls,
        *,
        output: str | list[str] | tuple[str, ...] = "",
        reasoning: str | list[str] | tuple[str, ...] | None = None,
        tool_calls: list[Any] | None = None,
    ) -> TextModelOutput:
        return cls(output=_raw(output), reasoning=_raw(reasoning), tool_calls=_raw(tool_calls))

    def output_value(self) -> str | tuple[str, ...]:
        v = decode_raw(self.output, str | tuple[str, ...] | None)
        return "" if v is None else v

    def reasoning_value(self) -> str | tuple[str, ...] | None:
        return decode_raw(self.reasoning, str | tuple[str, ...] | None)

    def tool_calls_value(self) -> list[Any] | None:
        return decode_raw(self.tool_calls, list[Any] | None)


class ErrorData(msgspec.Struct, tag=True, array_like=True, frozen=True, gc=False):
    """What went wrong, on an ``error.*`` record."""

    error_type: str = ""
    error_message: str = ""

    def __str__(self) -> str:
        return f"{self.error_type}: {self.error_message}" if self.error_message else self.error_type
