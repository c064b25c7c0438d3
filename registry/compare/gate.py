"""``--fail-if`` gates: "is this statistic worse than that, beyond doubt?" for CI.

A gate is ``SERIES:STAT OP THRESHOLD``, e.g. ``ttft:p99>+5%`` (the p99 TTFT
rose by more than 5 % of the base's) or ``qps<-10%``, ``latency:mean>+20ms``,
``osl:p50<-3``. SERIES is a short name of :data:`SERIES_ALIASES`, a series
name, ``qps`` or ``tps``; STAT one of mean, p50, p90, p99 (throughput has
only its rate, so no STAT). THRESHOLD is a percentage of the base's value or
an absolute amount in the series' unit (ns, us, ms or s for times; a plain
number for tokens and rates). A gate trips only when the whole confidence
interval of the difference lies beyond the threshold: a difference the data
cannot tell from noise never fails a build. :func:`parse_gate` raises
:class:`GateError` (one line) for a malformed gate. Pure logic.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from registry.compare.compare import SERIES_ALIASES, STATS, THROUGHPUT, Comparison, series_unit

__all__ = ["Gate", "GateError", "parse_gate"]

_GATE = re.compile(
    r"^\s*(?P<series>[A-Za-z_][A-Za-z0-9_]*)(?::(?P<stat>[A-Za-z0-9]+))?\s*"
    r"(?P<op>[<>])\s*(?P<num>[+-]?(?:\d+(?:\.\d*)?|\.\d+))\s*(?P<unit>%|ns|us|ms|s)?\s*$"
)
_TIME_UNITS = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}


class GateError(ValueError):
    """A ``--fail-if`` expression that cannot be read (one line)."""


@dataclass(frozen=True)
class Gate:
    """One parsed ``--fail-if``."""

    text: str
    series: str
    stat: str
    op: str
    threshold: float
    #: the threshold is a fraction of the base's value (else absolute, base unit)
    relative: bool

    def limit(self, base: float) -> float:
        """The threshold on the difference, in the series' base unit."""
        return self.threshold * abs(base) if self.relative else self.threshold

    def trips(self, comparison: Comparison) -> bool | None:
        """True when the interval lies wholly beyond the threshold, None when the
        comparison has no such row (the series was skipped)."""
        row = comparison.row(self.series, self.stat)
        if row is None:
            return None
        limit = self.limit(row.base)
        if not (math.isfinite(row.low) and math.isfinite(row.high)):
            return False
        return row.low > limit if self.op == ">" else row.high < limit


def parse_gate(text: str) -> Gate:
    """``SERIES[:STAT]>+5%`` and friends (:class:`GateError` when malformed)."""
    m = _GATE.match(text)
    if m is None:
        raise GateError(
            f"--fail-if {text!r}: expected SERIES:STAT>THRESHOLD or SERIES:STAT<THRESHOLD, "
            "e.g. 'ttft:p99>+5%', 'latency:mean>+20ms', 'qps<-10%'"
        )
    name = m["series"]
    series = SERIES_ALIASES.get(name, name)
    known = set(SERIES_ALIASES) | set(SERIES_ALIASES.values()) | set(THROUGHPUT)
    if name not in known:
        raise GateError(
            f"--fail-if {text!r}: unknown series {name!r} (one of "
            + ", ".join([*SERIES_ALIASES, *THROUGHPUT])
            + ")"
        )
    if series in THROUGHPUT:
        if m["stat"] not in (None, "rate"):
            raise GateError(f"--fail-if {text!r}: {series} is a rate: no ':{m['stat']}'")
        stat = "rate"
    else:
        stat = m["stat"] or ""
        if stat not in STATS:
            raise GateError(
                f"--fail-if {text!r}: STAT must be one of {', '.join(STATS)} "
                f"(got {stat or 'nothing'!r})"
            )
    value = float(m["num"])
    unit = m["unit"]
    if unit == "%":
        return Gate(text, series, stat, m["op"], value / 100.0, True)
    if unit is not None:
        if series_unit(series) != "ns":
            raise GateError(f"--fail-if {text!r}: {series} is not a time: no unit {unit!r}")
        value *= _TIME_UNITS[unit]
    elif series_unit(series) == "ns":
        raise GateError(
            f"--fail-if {text!r}: say the unit of a time threshold (%, ns, us, ms or s)"
        )
    return Gate(text, series, stat, m["op"], value, False)
