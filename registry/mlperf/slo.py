"""Latency constraints: what ``--ruleset NAME`` and ``--slo SERIES:pP<=VALUE`` mean (SPEC §10).

A :class:`Constraint` says "the ``P``-th percentile of ``SERIES`` must not
exceed ``limit_ns``"; per sample it means "a value above ``limit_ns`` is over
the limit" (LoadGen counts ``latency > target`` as over-latency, so a value
exactly at the limit is within it). Only the three per-sample series can be
constrained: ``ttft_ns``, ``tpot_ns`` and ``sample_latency_ns``.

Each constraint has a stable *key* (``ttft_p99``, ``sample_latency_p99_9``)
that names its counters on the snapshot stream and its ``constraint`` label in
Prometheus; :func:`parse_key` reads a key back, so a snapshot alone says what
was constrained.

Parsing only: no registry, no I/O. Errors are ``ValueError`` with one line
saying what is wrong, ready for a command line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from registry.core.percentiles import percent_to_fraction
from registry.mlperf.rulesets import get_ruleset

__all__ = [
    "CONSTRAINED_SERIES",
    "Constraint",
    "build_constraints",
    "format_limit",
    "parse_key",
    "parse_slo",
]

#: The names ``--slo`` accepts → the registry series they constrain.
CONSTRAINED_SERIES: dict[str, str] = {
    "ttft": "ttft_ns",
    "tpot": "tpot_ns",
    "sample_latency": "sample_latency_ns",
    "latency": "sample_latency_ns",
    "ttft_ns": "ttft_ns",
    "tpot_ns": "tpot_ns",
    "sample_latency_ns": "sample_latency_ns",
}
_STEMS = ("ttft", "tpot", "sample_latency")

_UNITS_NS: dict[str, int] = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "µs": 1_000}

_SLO_RE = re.compile(
    r"^\s*(?P<series>[A-Za-z_]+)\s*:\s*[pP](?P<pct>[0-9]+(?:\.[0-9]+)?)\s*<=\s*"
    r"(?P<value>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*(?P<unit>s|ms|us|µs)\s*$"
)
_KEY_RE = re.compile(r"^(?P<stem>ttft|tpot|sample_latency)_p(?P<int>[0-9]+)(?:_(?P<frac>[0-9]+))?$")


def _percent_text(p: Decimal) -> str:
    text = format(p.normalize(), "f")
    return text.replace(".", "_")


@dataclass(frozen=True, slots=True)
class Constraint:
    """``percentile`` (in percent, 0 < p < 100) of ``series`` at most ``limit_ns``."""

    series: str
    percentile: float
    limit_ns: int
    _key: str = field(init=False, repr=False, compare=False, default="")

    def __post_init__(self) -> None:
        if self.series not in _STEMS_BY_SERIES:
            raise ValueError(
                f"cannot constrain series {self.series!r}: choose ttft, tpot or sample_latency"
            )
        if not 0.0 < float(self.percentile) < 100.0:
            raise ValueError(
                f"percentile must lie strictly between 0 and 100, got {self.percentile}"
            )
        if (
            not isinstance(self.limit_ns, int)
            or isinstance(self.limit_ns, bool)
            or self.limit_ns < 1
        ):
            raise ValueError(
                f"limit must be a whole number of nanoseconds >= 1, got {self.limit_ns!r}"
            )
        # the key names counters written at every snapshot: made once
        pct = _percent_text(Decimal(repr(float(self.percentile))))
        object.__setattr__(self, "_key", f"{_STEMS_BY_SERIES[self.series]}_p{pct}")

    @property
    def stem(self) -> str:
        """The series without ``_ns`` (``ttft``): its name in Prometheus."""
        return _STEMS_BY_SERIES[self.series]

    @property
    def key(self) -> str:
        """``<stem>_p<percent>`` with ``_`` for the decimal point: ``ttft_p99``, ``tpot_p99_9``."""
        return self._key

    @property
    def fraction(self) -> float:
        """The percentile as LoadGen holds it: the double nearest ``percentile / 100``."""
        return percent_to_fraction(self.percentile)

    def describe(self) -> str:
        """``ttft p99 <= 2000 ms``."""
        pct = format(Decimal(repr(float(self.percentile))).normalize(), "f")
        return f"{self.stem} p{pct} <= {format_limit(self.limit_ns)}"


_STEMS_BY_SERIES = {"ttft_ns": "ttft", "tpot_ns": "tpot", "sample_latency_ns": "sample_latency"}


def format_limit(ns: int | float) -> str:
    """A limit in the largest unit that keeps it short: ``2000 ms``, ``1.5 s``, ``250 us``."""
    if ns >= 10_000_000_000 and ns % 1_000_000_000 == 0:
        return f"{ns / 1e9:g} s"
    if ns >= 1_000_000:
        return f"{ns / 1e6:g} ms"
    if ns >= 1_000:
        return f"{ns / 1e3:g} us"
    return f"{ns:g} ns"


def parse_key(key: str) -> tuple[str, float]:
    """A constraint key back into ``(registry series, percentile)`` (``ValueError``: not one)."""
    m = _KEY_RE.match(key)
    if m is None:
        raise ValueError(f"{key!r} is not a constraint key (<series>_p<percent>)")
    text = m["int"] + (f".{m['frac']}" if m["frac"] else "")
    return f"{m['stem']}_ns", float(text)


def parse_slo(text: str) -> Constraint:
    """``SERIES:pP<=VALUE`` with a unit (``ttft:p99<=500ms``, ``latency:p90<=2.5s``)."""
    m = _SLO_RE.match(text)
    if m is None:
        raise ValueError(
            f"--slo {text!r}: expected SERIES:pP<=VALUE with a unit, e.g. ttft:p99<=500ms "
            "(series ttft, tpot or latency; units s, ms, us)"
        )
    name = m["series"].lower()
    series = CONSTRAINED_SERIES.get(name)
    if series is None:
        raise ValueError(
            f"--slo {text!r}: cannot constrain {m['series']!r}; choose ttft, tpot or latency"
        )
    try:
        pct = Decimal(m["pct"])
        value = Decimal(m["value"])
    except InvalidOperation:  # the pattern admits only numbers; kept for safety
        raise ValueError(f"--slo {text!r}: not a number") from None
    if not Decimal(0) < pct < Decimal(100):
        raise ValueError(f"--slo {text!r}: the percentile must lie strictly between 0 and 100")
    limit = value * _UNITS_NS[m["unit"]]
    if limit != limit.to_integral_value():
        raise ValueError(f"--slo {text!r}: the limit is not a whole number of nanoseconds")
    if limit < 1:
        raise ValueError(f"--slo {text!r}: the limit must be > 0")
    return Constraint(series, float(pct), int(limit))


def build_constraints(ruleset: str | None, slos: Iterable[str] = ()) -> tuple[Constraint, ...]:
    """The constraints of ``--ruleset`` (TTFT then TPOT) followed by each ``--slo``.

    ``ValueError`` for an unknown ruleset, a malformed SLO, or two constraints
    on the same series and percentile (their counters would share a name).
    """
    out: list[Constraint] = []
    if ruleset is not None:
        rules = get_ruleset(ruleset)
        out.append(Constraint("ttft_ns", rules.percentile, rules.ttft_limit_ns))
        out.append(Constraint("tpot_ns", rules.percentile, rules.tpot_limit_ns))
    for text in slos:
        out.append(parse_slo(text))
    _check_unique(out)
    return tuple(out)


def _check_unique(constraints: Sequence[Constraint]) -> None:
    seen: dict[str, Constraint] = {}
    for c in constraints:
        if c.key in seen:
            raise ValueError(
                f"two constraints on {c.stem} p{c.percentile:g}: {seen[c.key].describe()} and "
                f"{c.describe()}; give one"
            )
        seen[c.key] = c
