"""Shared pieces of the terminal views: number formatting and the series table.

Used by the live view (:mod:`exporter.views.live_view`) and the report view
(:mod:`exporter.views.report_view`) so that both show a metric the same way. It only
formats what it is given: it must never compute a statistic of its own beyond
unit conversion, nor do I/O.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from registry.delivery.snapshot import SessionState

__all__ = [
    "SERIES_LABELS",
    "STATE_STYLES",
    "SeriesRow",
    "SeriesTable",
    "format_count",
    "format_ns",
    "format_rate",
    "format_value",
    "is_time_series",
    "order_series",
    "series_table",
    "state_text",
]

#: Friendly names of the aggregator's series (SPEC §6), in display order.
SERIES_LABELS: dict[str, str] = {
    "ttft_ns": "TTFT",
    "tpot_ns": "TPOT",
    "chunk_delta_ns": "Chunk gap",
    "sample_latency_ns": "Request latency",
    "isl": "Input tokens",
    "osl": "Output tokens",
}

STATE_STYLES: dict[str, str] = {
    SessionState.INITIALIZE.value: "dim",
    SessionState.LIVE.value: "bold green",
    SessionState.DRAINING.value: "bold yellow",
    SessionState.COMPLETE.value: "bold white on green",
    SessionState.INTERRUPTED.value: "bold white on red",
}


def state_text(state: str) -> Text:
    return Text(f" {state.upper()} ", style=STATE_STYLES.get(state, "bold"))


def is_time_series(name: str) -> bool:
    """Series named ``*_ns`` hold nanoseconds (SPEC §6); the rest are plain numbers."""
    return name.endswith("_ns")


def _missing(v: float | int | None) -> bool:
    return v is None or (isinstance(v, float) and not math.isfinite(v))


def _three_digits(x: float) -> str:
    """Three significant digits, trailing zeros kept so that columns line up."""
    a = abs(x)
    if a >= 100:
        return f"{x:.0f}"
    return f"{x:.1f}" if a >= 10 else f"{x:.2f}"


def format_ns(v: float | int | None) -> str:
    """A duration in ns with a unit a person reads at a glance (``41.2 ms``)."""
    if _missing(v):
        return "-"
    assert v is not None
    a = abs(v)
    for scale, unit in ((1e9, "s"), (1e6, "ms"), (1e3, "µs")):
        if a >= scale:
            return f"{_three_digits(v / scale)} {unit}"
    return f"{v:.0f} ns"


def format_count(v: float | int | None) -> str:
    if _missing(v):
        return "-"
    assert v is not None
    if isinstance(v, int) or float(v).is_integer():
        return f"{int(v):,}"
    return f"{v:,.2f}"


def format_rate(v: float | None, unit: str = "/s") -> str:
    if _missing(v):
        return "-"
    assert v is not None
    return f"{v:,.1f}{unit}" if v < 1000 else f"{v:,.0f}{unit}"


def format_value(name: str, v: float | int | None) -> str:
    """``v`` of series ``name`` in its unit (time series in ns, others plain)."""
    if is_time_series(name):
        return format_ns(v)
    if _missing(v):
        return "-"
    assert v is not None
    return f"{v:,.0f}" if abs(v) >= 100 or float(v).is_integer() else f"{v:.3g}"


def order_series(names: Iterable[str]) -> list[str]:
    """Known series in their display order first, then the others by name."""
    names = list(names)
    known = [n for n in SERIES_LABELS if n in names]
    return known + sorted(n for n in names if n not in SERIES_LABELS)


@dataclass(frozen=True)
class SeriesRow:
    """One series as the tables show it; ``percentiles`` maps p -> value."""

    name: str
    count: int
    mean: float | None
    minimum: float | None
    maximum: float | None
    std_dev: float | None
    percentiles: Mapping[float, float | None]


def _table(
    rows: Sequence[SeriesRow],
    grid: Sequence[float],
    title: str | None,
    show_min: bool,
    show_std: bool,
) -> Table:
    table = Table(title=title, title_justify="left", expand=False, pad_edge=False, box=None)
    table.add_column("", style="bold", no_wrap=True)
    table.add_column("count", justify="right", no_wrap=True)
    if show_min:
        table.add_column("min", justify="right", no_wrap=True)
    table.add_column("mean", justify="right", no_wrap=True)
    for p in grid:
        table.add_column(f"p{p:g}", justify="right", no_wrap=True)
    table.add_column("max", justify="right", no_wrap=True)
    if show_std:
        table.add_column("std dev", justify="right", no_wrap=True)
    for row in rows:
        empty = row.count == 0
        # a Text: a series name from a file or the stream is never read as rich markup
        cells: list[str | Text] = [
            Text(SERIES_LABELS.get(row.name, row.name)),
            format_count(row.count),
        ]

        def fmt(v: float | int | None, row: SeriesRow = row, empty: bool = empty) -> str:
            return "-" if empty else format_value(row.name, v)

        if show_min:
            cells.append(fmt(row.minimum))
        cells.append(fmt(row.mean))
        cells.extend(fmt(row.percentiles.get(p)) for p in grid)
        cells.append(fmt(row.maximum))
        if show_std:
            cells.append(fmt(row.std_dev))
        table.add_row(*cells)
    return table


# Percentiles a narrow table gives up first (p50 and p99 are the ones people quote).
_DROP_FIRST = (95.0, 99.9, 90.0)


def _drop_rank(p: float) -> tuple[int, float]:
    return (_DROP_FIRST.index(p), 0.0) if p in _DROP_FIRST else (len(_DROP_FIRST), -p)


class SeriesTable:
    """A table of series, one row each: count, (min), mean, the ``grid`` percentiles,
    max, (std dev). On a terminal too narrow for every column it leaves out the
    least telling ones (std dev, min, then the inner percentiles) instead of
    wrapping numbers; p50 and p99 (or the highest percentile) always stay."""

    def __init__(
        self,
        rows: Sequence[SeriesRow],
        *,
        grid: Sequence[float],
        title: str | None = None,
        show_min: bool = False,
        show_std: bool = False,
    ) -> None:
        self.rows = list(rows)
        self.grid = list(grid)
        self.title = title
        self.show_min = show_min
        self.show_std = show_std

    def variants(self) -> Iterator[Table]:
        """The table with ever fewer columns, widest first."""
        show_min, show_std, grid = self.show_min, self.show_std, list(self.grid)
        yield _table(self.rows, grid, self.title, show_min, show_std)
        if show_std:
            show_std = False
            yield _table(self.rows, grid, self.title, show_min, show_std)
        if show_min:
            show_min = False
            yield _table(self.rows, grid, self.title, show_min, show_std)
        keep = {50.0, 99.0 if 99.0 in grid else max(grid, default=0.0)}
        for p in sorted((p for p in grid if p not in keep), key=_drop_rank):
            grid.remove(p)
            yield _table(self.rows, grid, self.title, show_min, show_std)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        last: Table | None = None
        unbounded = options.update_width(10_000)  # measurements are clamped to the width given
        for table in self.variants():
            last = table
            if Measurement.get(console, unbounded, table).maximum <= options.max_width:
                break
        assert last is not None
        yield last


def series_table(
    rows: Sequence[SeriesRow],
    *,
    grid: Sequence[float],
    title: str | None = None,
    show_min: bool = False,
    show_std: bool = False,
) -> SeriesTable:
    """See :class:`SeriesTable`."""
    return SeriesTable(rows, grid=grid, title=title, show_min=show_min, show_std=show_std)
