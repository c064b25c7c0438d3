"""The registry's error messages: which metric, what it is, what was expected (SPEC §3).

A wrong call on the hot path (``record`` into a counter, a float into an int
series, a misspelt name) must tell the caller which metric it was and what to
do instead, not surface a bare ``KeyError('ttf_ns')`` or numpy's wording.
:class:`~registry.core.metrics_registry.MetricsRegistry` keeps its fast path
unchanged and calls the builders here only after that path has raised, so the
cost of a good message is paid by the failing call alone.

The exception classes keep the built-in ones as bases, so code that caught
``KeyError`` or ``TypeError`` before still catches them:

- :class:`UnknownMetricError` (a ``KeyError``): no metric has that name; the
  message lists close matches.
- :class:`MetricKindError` (a ``KeyError`` and a ``TypeError``): the name is a
  counter where a series was wanted, or the other way round; the message names
  the right method.
- A value of the wrong type is a plain ``TypeError`` (``OverflowError`` for an
  integer outside int64) naming the series and its type.

This module only builds messages; it never reads or changes a number.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection

__all__ = [
    "MetricKindError",
    "UnknownMetricError",
    "counter_delta_error",
    "lookup_error",
    "series_value_error",
]

#: How many close matches an unknown name's message lists.
_MAX_MATCHES = 3
#: Below this many metrics of the wanted kind, an unknown name's message lists them all.
_LIST_ALL_BELOW = 12


class UnknownMetricError(KeyError):
    """No counter or series is registered under the name."""

    def __str__(self) -> str:
        # KeyError's own str() is the repr of its argument: quotes around a sentence.
        return str(self.args[0]) if self.args else ""


class MetricKindError(UnknownMetricError, TypeError):
    """The name is registered, but as the other kind (a counter given to ``record``...)."""


def _describe(value: object) -> str:
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{text} ({type(value).__name__})"


def lookup_error(
    name: object,
    *,
    wanted: str,
    counters: Collection[str],
    series: Collection[str],
) -> UnknownMetricError:
    """The error for ``name`` not being a ``wanted`` (``"counter"`` or ``"series"``)."""
    if isinstance(name, str) and wanted == "series" and name in counters:
        return MetricKindError(
            f"{name!r} is a counter, not a series: use increment({name!r}, delta)"
            " (or set_counter for a settable counter)"
        )
    if isinstance(name, str) and wanted == "counter" and name in series:
        return MetricKindError(f"{name!r} is a series, not a counter: use record({name!r}, value)")
    if not isinstance(name, str):
        return UnknownMetricError(f"unknown {wanted} {_describe(name)}: metric names are strings")
    same_kind = sorted(series if wanted == "series" else counters)
    other_kind = sorted(counters if wanted == "series" else series)
    hint = _matches(name, same_kind, other_kind, wanted)
    return UnknownMetricError(f"unknown {wanted} {name!r}; {hint}")


def _close(name: str, candidates: list[str]) -> list[str]:
    # difflib catches typos (ttf_ns); a substring catches a part of the name (latency)
    folded = name.casefold()
    found = difflib.get_close_matches(name, candidates, n=_MAX_MATCHES, cutoff=0.6)
    for c in candidates:
        if len(found) >= _MAX_MATCHES:
            break
        if c not in found and len(folded) >= 3 and folded in c.casefold():
            found.append(c)
    return found


def _matches(name: str, same_kind: list[str], other_kind: list[str], wanted: str) -> str:
    close = _close(name, same_kind)
    if close:
        return "did you mean " + " or ".join(repr(c) for c in close) + "?"
    plural = "counters" if wanted == "counter" else "series"
    close = _close(name, other_kind)
    if close:
        other, method = ("counters", "increment") if wanted == "series" else ("series", "record")
        listed = ", ".join(repr(c) for c in close)
        return f"no {wanted} is close to it; close {other}: {listed} (use {method})"
    if not same_kind:
        return f"no {wanted} is registered (register it first)"
    if len(same_kind) < _LIST_ALL_BELOW:
        return f"registered {plural}: " + ", ".join(same_kind)
    return f"none of the {len(same_kind)} registered {plural} is close to it (register it first)"


def series_value_error(name: str, dtype: type, value: object, exc: BaseException) -> Exception:
    """The error for ``value`` refused by series ``name`` of type ``dtype``."""
    kind = dtype.__name__
    if isinstance(exc, OverflowError):
        bound = "int64" if dtype is int else "float64"
        return OverflowError(
            f"series {name!r} ({kind}) cannot hold {_describe(value)}: outside the {bound} range"
        )
    if dtype is int and isinstance(value, float):
        advice = f"round it (round(value)), or register {name!r} with dtype=float"
    elif dtype is int:
        advice = "pass an int"
    else:
        advice = "pass an int or a float"
    return TypeError(f"series {name!r} holds {kind} values, got {_describe(value)}: {advice}")


def counter_delta_error(name: str, dtype: type, delta: object) -> TypeError:
    """The error for ``delta`` refused by counter ``name`` of type ``dtype``."""
    kind = dtype.__name__
    if dtype is int and isinstance(delta, float):
        advice = f"round it, or register {name!r} with dtype=float"
    else:
        advice = "pass an int" if dtype is int else "pass an int or a float"
    return TypeError(
        f"counter {name!r} counts {kind} values, got delta {_describe(delta)}: {advice}"
    )
