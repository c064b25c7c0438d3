"""Text from a file or the stream, made safe to print on a terminal (SPEC §9).

A run id, a label, a counter name or a path can hold anything, escape
sequences among them (set the window title, clear the screen, move the
cursor, hide text behind a bidirectional override). Every terminal view —
``report``, ``watch`` (live and ``--no-tui``), the live view of ``demo`` and
the one-line errors — passes such text through :func:`terminal_safe`, which
shows each control character as a visible escape (``\\x1b``, ``\\u202e``)
instead of sending it to the terminal.

It is the one place that decides what is escaped. It must never drop or
reorder a character (an escaped name still says what the file holds), never
import rich (the command line's start-up imports it), and never do I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["has_control", "terminal_safe", "terminal_safe_tree"]

# C0 controls (newline and tab too: every field is shown on one line), DEL, C1
# controls (0x9b is a one-byte CSI on some terminals), and the invisible
# format characters that reorder or hide text: bidirectional marks, embeddings,
# overrides and isolates, the line and paragraph separators, the BOM.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u2028-\u202e\u2066-\u2069\ufeff]")

#: Containers deeper than this are not walked by :func:`terminal_safe_tree`: no
#: view shows anything that deep, and a hostile file must not exhaust the stack.
MAX_TREE_DEPTH = 32


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def has_control(text: str) -> bool:
    """Whether ``text`` holds a character :func:`terminal_safe` would escape."""
    return _CONTROL.search(text) is not None


def terminal_safe(text: str) -> str:
    """``text`` with every control character shown as a visible escape."""
    return _CONTROL.sub(_escape, text)


def terminal_safe_tree(value: Any, _depth: int = 0) -> Any:
    """A copy of a JSON-like value with every string (keys too) :func:`terminal_safe`.

    Containers nested deeper than :data:`MAX_TREE_DEPTH` become the string
    ``"…"`` (nothing that deep is ever shown).
    """
    if isinstance(value, str):
        return terminal_safe(value)
    if isinstance(value, Mapping | list | tuple):
        if _depth >= MAX_TREE_DEPTH:
            return "…"
        if isinstance(value, Mapping):
            return {
                terminal_safe(k) if isinstance(k, str) else k: terminal_safe_tree(v, _depth + 1)
                for k, v in value.items()
            }
        return [terminal_safe_tree(v, _depth + 1) for v in value]
    return value
