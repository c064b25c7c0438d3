"""``bench-metrics compare`` in a terminal: one table per run against the base.

:func:`render_comparison` turns a :class:`registry.compare.Comparison` into
a rich table: per series and statistic the base and run values, the
difference with its 95 % interval (absolute and relative to the base) and
the verdict ("no detectable difference" when the interval spans 0), then the
series that could not be compared and why, and the methods by name. It only
formats the numbers it is given: it never computes a statistic.
"""

from __future__ import annotations

import math

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from exporter.views.format import SERIES_LABELS, format_ns, is_time_series
from registry.compare.compare import Comparison, Row
from registry.compare.intervals import QUANTILE_METHOD

__all__ = ["format_amount", "format_relative", "render_comparison", "series_label"]

_THROUGHPUT_LABELS = {"qps": "QPS", "tps": "Tokens/s"}


def series_label(name: str) -> str:
    return SERIES_LABELS.get(name) or _THROUGHPUT_LABELS.get(name) or name


def format_amount(series: str, v: float, *, signed: bool = False) -> str:
    """``v`` in the series' unit (ms for times), with a sign when ``signed``."""
    if not math.isfinite(v):
        return "-"
    sign = "+" if signed and v > 0 else ""
    if is_time_series(series):
        return sign + format_ns(v)
    a = abs(v)
    text = f"{v:,.0f}" if a >= 100 else f"{v:.3g}" if a >= 1 or a == 0 else f"{v:.2g}"
    return sign + text


def format_relative(row: Row, v: float) -> str:
    r = row.relative(v)
    return "-" if not math.isfinite(r) else f"{r * 100:+.1f}%"


def _verdict(row: Row) -> Text:
    if not row.detectable:
        return Text("no detectable difference", style="dim")
    return Text(row.verdict, style="bold yellow")


def render_comparison(c: Comparison) -> RenderableType:
    """The comparison of one run against the base, as a table with its notes."""
    pct = f"{c.level * 100:g}%"
    table = Table(
        title=f"{c.run}  vs  base {c.base}",
        title_justify="left",
        box=None,
        pad_edge=False,
    )
    table.add_column("series", style="bold", no_wrap=True)
    table.add_column("stat", no_wrap=True)
    table.add_column("base", justify="right", no_wrap=True)
    table.add_column("run", justify="right", no_wrap=True)
    table.add_column("diff", justify="right", no_wrap=True)
    table.add_column(f"{pct} interval", justify="right", no_wrap=True)
    table.add_column("relative", justify="right", no_wrap=True)
    table.add_column("verdict")
    previous = None
    for row in c.rows:
        name = series_label(row.series) if row.series != previous else ""
        previous = row.series
        interval = (
            f"[{format_amount(row.series, row.low, signed=True)}, "
            f"{format_amount(row.series, row.high, signed=True)}]"
        )
        rel = (
            f"{format_relative(row, row.diff)} "
            f"[{format_relative(row, row.low)}, {format_relative(row, row.high)}]"
        )
        table.add_row(
            name,
            row.stat,
            format_amount(row.series, row.base),
            format_amount(row.series, row.run),
            format_amount(row.series, row.diff, signed=True),
            interval,
            rel,
            _verdict(row),
        )
    parts: list[RenderableType] = [table]
    for series, why in c.skipped.items():
        parts.append(Text(f"not compared: {series_label(series)}: {why}", style="yellow"))
    methods = sorted({r.method for r in c.rows})
    caveats = sorted({r.series for r in c.rows if ";" in r.method})
    for series in caveats:
        row = next(r for r in c.rows if r.series == series)
        parts.append(Text(f"{series_label(series)}: {row.method.split('; ', 1)[1]}", style="dim"))
    parts.append(Text(f"{pct} intervals of run - base:", style="dim"))
    for stat, m in (
        ("mean", [m for m in methods if m.startswith("Welch t interval on the per-sample")]),
        ("p50/p90/p99", [m for m in methods if m == QUANTILE_METHOD]),
        ("QPS, tokens/s", [m for m in methods if m.startswith("batch means")]),
    ):
        if m:
            parts.append(Text(f"  {stat}: {m[0]}", style="dim"))
    return Group(*parts)
