"""Token counts of the inputs :mod:`registry.tokens.rules` decides, with one loaded tokenizer.

- Plain text: the fast (Rust) backend's batch encode without special tokens,
  one call per batch (the library spreads a batch over its own threads and
  releases the GIL meanwhile); a tokenizer without a fast backend encodes
  text by text. Truncation and padding a ``tokenizer.json`` may configure are
  switched off: a count is of the whole text.
- A chat prompt: ``apply_chat_template(messages, tools=…, chat_template=…,
  tool_choice=…, **chat_template_kwargs, tokenize=True,
  add_generation_prompt=True)``; its length is the ISL.
- An assistant message: the template of ``[{"role": "user", "content": ""},
  message]`` minus the tokens of that user prefix and of an empty assistant
  message (the *baseline*, measured once at start), so only the message's own
  payload counts (never below 0).

:meth:`TokenCounter.count_many` isolates failures: one input the tokenizer
raises on gives an exception in its place, the rest of the batch is counted.
A template that fails is such a failure; no fallback count is invented.

This module is thread-safe to call from worker threads (the backend and the
template renderer keep no per-call state) and never touches the event loop
or a registry.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from registry.tokens.rules import (
    ChatMessage,
    ChatPrompt,
    PlainText,
    TokenInput,
    template_tool_calls,
)

__all__ = ["Stopped", "TokenCounter"]

log = logging.getLogger(__name__)

_USER_PREFIX: dict[str, str] = {"role": "user", "content": ""}
_EMPTY_ASSISTANT: dict[str, str] = {"role": "assistant", "content": ""}


class Stopped(Exception):
    """An input left uncounted because its pool was closing."""


def _token_len(encoded: Any) -> int:
    """Length of what ``apply_chat_template(tokenize=True)`` returned (ids, or a mapping)."""
    if isinstance(encoded, Mapping):
        encoded = encoded["input_ids"]
    return len(encoded)


class TokenCounter:
    """Counts tokens with ``tokenizer`` (a ``transformers`` tokenizer) by upstream's rules."""

    def __init__(self, tokenizer: Any, *, name: str = "") -> None:
        self.tokenizer = tokenizer
        self.name = name or type(tokenizer).__name__
        backend = getattr(tokenizer, "backend_tokenizer", None)
        self._encode_batch: Any = None
        if backend is not None:
            # A count is of the whole text: a tokenizer.json may ship truncation or padding
            # (and transformers switches them off on its first template call anyway, which
            # would make counts depend on call order).
            if getattr(backend, "truncation", None):
                backend.no_truncation()
            if getattr(backend, "padding", None):
                backend.no_padding()
            self._encode_batch = getattr(backend, "encode_batch_fast", None) or getattr(
                backend, "encode_batch", None
            )
        #: tokens of the one-user-message prefix and of an empty assistant message
        self.prefix_len = 0
        self.baseline = 0
        #: why the baseline could not be measured (assistant counts then fail)
        self.template_error: str | None = None
        try:
            prefix = self._template([_USER_PREFIX], add_generation_prompt=False)
            both = self._template([_USER_PREFIX, _EMPTY_ASSISTANT], add_generation_prompt=False)
            self.prefix_len = prefix
            self.baseline = both - prefix
        except Exception as exc:
            self.template_error = f"{type(exc).__name__}: {exc}"
            log.warning(
                "tokenizer %s: its chat template cannot render [user, assistant] (%s); "
                "chat prompts and outputs with reasoning or tool calls will not be counted",
                self.name,
                self.template_error,
            )

    @property
    def has_fast_backend(self) -> bool:
        return self._encode_batch is not None

    def describe(self) -> dict[str, Any]:
        """What the final file's run block says about the tokenizer."""
        return {
            "name": self.name,
            "class": type(self.tokenizer).__name__,
            "fast_backend": self.has_fast_backend,
            "chat_template": self.template_error is None,
        }

    def _template(self, messages: list[dict[str, Any]], **kwargs: Any) -> int:
        encoded = self.tokenizer.apply_chat_template(
            messages, tokenize=True, return_dict=False, **kwargs
        )
        return _token_len(encoded)

    # -- one kind at a time ------------------------------------------------------

    def count_texts(self, texts: Sequence[str]) -> list[int]:
        """Tokens of each text (no special tokens). Raises if the tokenizer does."""
        if not texts:
            return []
        if self._encode_batch is not None:
            return [len(e) for e in self._encode_batch(list(texts), add_special_tokens=False)]
        encode = self.tokenizer.encode
        return [len(encode(t, add_special_tokens=False)) for t in texts]

    def count_message(self, msg: ChatMessage) -> int:
        """Tokens of one assistant message's payload (template minus framing)."""
        if self.template_error is not None:
            raise ValueError(f"the chat template is unusable: {self.template_error}")
        message: dict[str, Any] = {"role": "assistant", "content": msg.content or ""}
        if msg.reasoning:
            message["reasoning_content"] = msg.reasoning
        if msg.tool_calls:
            message["tool_calls"] = template_tool_calls(msg.tool_calls)
        n = self._template([_USER_PREFIX, message], add_generation_prompt=False)
        return max(0, n - self.prefix_len - self.baseline)

    def count_prompt(self, prompt: ChatPrompt) -> int:
        """Tokens of a whole chat prompt as the server receives it (generation prompt included)."""
        kwargs: dict[str, Any] = dict(prompt.chat_template_kwargs or {})
        kwargs["add_generation_prompt"] = True
        kwargs.pop("tokenize", None)
        kwargs.pop("return_dict", None)
        if prompt.tools is not None:
            kwargs["tools"] = list(prompt.tools)
        if prompt.chat_template is not None:
            kwargs["chat_template"] = prompt.chat_template
        if prompt.tool_choice is not None:
            kwargs["tool_choice"] = prompt.tool_choice
        messages = [
            {**m, "tool_calls": template_tool_calls(m["tool_calls"])}
            if isinstance(m, dict) and isinstance(m.get("tool_calls"), list | tuple)
            else m
            for m in prompt.messages
        ]
        return self._template(messages, **kwargs)

    def count(self, item: TokenInput) -> int:
        """Tokens of one input of any kind."""
        if isinstance(item, PlainText):
            return self.count_texts([item.text])[0]
        if isinstance(item, ChatMessage):
            return self.count_message(item)
        return self.count_prompt(item)

    # -- a mixed batch -----------------------------------------------------------

    def count_many(
        self, items: Sequence[TokenInput], should_stop: Callable[[], bool] | None = None
    ) -> list[int | Exception]:
        """One count per input, in order, or the exception that input raised.

        Plain texts go to the backend as one batch; if that batch raises, each
        text is retried alone so only the failing ones are lost. Chat inputs
        are rendered one by one; once ``should_stop()`` is true the rest get
        :class:`Stopped` instead (a closing pool must not be held up).
        """
        out: list[int | Exception] = [0] * len(items)
        text_at: list[int] = []
        texts: list[str] = []
        for i, item in enumerate(items):
            if isinstance(item, PlainText):
                text_at.append(i)
                texts.append(item.text)
                continue
            if should_stop is not None and should_stop():
                out[i] = Stopped("the tokenizer pool closed before this input was counted")
                continue
            try:
                out[i] = self.count(item)
            except Exception as exc:
                out[i] = exc
        if texts:
            try:
                counts: Sequence[int | Exception] = self.count_texts(texts)
                if len(counts) != len(texts):
                    raise RuntimeError(f"{len(counts)} counts for {len(texts)} texts")
            except Exception:
                counts = [self._count_alone(t) for t in texts]
            for i, n in zip(text_at, counts, strict=True):
                out[i] = n
        return out

    def _count_alone(self, text: str) -> int | Exception:
        try:
            return self.count_texts([text])[0]
        except Exception as exc:
            return exc
