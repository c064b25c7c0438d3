"""The live terminal view of a snapshot stream (``demo`` and ``watch``, SPEC §9).

:func:`render_live` is a pure function from a snapshot (plus the rates seen
over the last few snapshots and some context) to a rich renderable, so it can
be rendered headless and tested; :func:`progress_line` is its one-line
plain-text twin for ``--no-tui``. :class:`LiveView` keeps the little state a
live display needs (the rate window) and hands both out.

It only displays: it must never decide a number that the report relies on,
never block on I/O, and never crash on a stream it does not know (foreign
counter and series names are shown as they are).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from exporter.view_format import (
    SeriesRow,
    format_count,
    format_ns,
    format_rate,
    format_value,
    order_series,
    series_table,
    state_text,
)
from registry.snapshot import MetricsSnapshot, SeriesStat, SessionState, percentile_key

__all__ = [
    "LIVE_GRID",
    "LiveView",
    "RateWindow",
    "Rates",
    "ViewContext",
    "progress_line",
    "render_live",
]

#: The percentiles the live table shows (when the stream's grid has them).
LIVE_GRID: tuple[float, ...] = (50.0, 90.0, 99.0)

_NS = 1e9


@dataclass(frozen=True)
class ViewContext:
    """What the view knows besides the snapshots: a title, where the stream comes
    from, and, when the caller knows the run's plan, the samples expected (for
    the progress bar) and the planned duration."""

    title: str = "bench-metrics"
    source: str = ""
    expected_samples: int | None = None
    planned_duration_s: float | None = None


@dataclass(frozen=True)
class Rates:
    """Completions and output tokens per second over the recent window."""

    qps: float | None = None
    tps: float | None = None


class RateWindow:
    """Recent (timestamp, completed, tokens) points of one stream, for current rates.

    Snapshot timestamps are the producer's monotonic clock, so rates come out
    right whatever the delivery delay; a snapshot from an earlier sequence
    (a restarted producer) clears the window.
    """

    def __init__(self, span_s: float = 5.0) -> None:
        self._span_ns = int(span_s * _NS)
        self._points: deque[tuple[int, float, float]] = deque()
        self._last_counter: int | None = None

    def update(self, snap: MetricsSnapshot) -> Rates:
        points = self._points
        restarted = self._last_counter is not None and snap.counter < self._last_counter
        if points and (restarted or snap.timestamp_ns < points[-1][0]):
            points.clear()
        self._last_counter = snap.counter
        if not points or snap.timestamp_ns != points[-1][0]:
            c = snap.counters
            done = c.get("total_samples_completed", 0)  # failed completions included
            points.append((snap.timestamp_ns, done, c.get("tracked_output_tokens", 0)))
            while len(points) > 2 and snap.timestamp_ns - points[1][0] >= self._span_ns:
                points.popleft()
        if len(self._points) < 2:
            return Rates()
        (t0, d0, k0), (t1, d1, k1) = self._points[0], self._points[-1]
        dt = (t1 - t0) / _NS
        if dt <= 0:
            return Rates()
        return Rates(qps=(d1 - d0) / dt, tps=(k1 - k0) / dt)


def _series_rows(snap: MetricsSnapshot, grid: Sequence[float]) -> list[SeriesRow]:
    series = snap.series
    rows = []
    for name in order_series(series):
        s: SeriesStat = series[name]
        rows.append(
            SeriesRow(
                name=name,
                count=s.count,
                mean=s.mean,
                minimum=s.min,
                maximum=s.max,
                std_dev=s.std_dev,
                percentiles={p: s.percentiles.get(percentile_key(p)) for p in grid},
            )
        )
    return rows


def _done(c: dict[str, int | float]) -> int:
    # SPEC §6: completions count failed samples too.
    return int(c.get("total_samples_completed", 0))


def _average_qps(c: dict[str, int | float]) -> float | None:
    dur = c.get("tracked_duration_ns", 0)
    return c.get("tracked_samples_completed", 0) / (dur / _NS) if dur else None


def _progress(snap: MetricsSnapshot | None, ctx: ViewContext) -> RenderableType:
    """A bar and its label side by side: samples done of those expected, if known."""
    done = _done(snap.counters) if snap is not None else 0
    terminal = snap is not None and snap.is_terminal
    label = Text(f"{format_count(done)}")
    if ctx.expected_samples:
        # Poisson arrivals can overshoot the plan; a completed run is 100 % by definition.
        total = max(ctx.expected_samples, done)
        complete = snap is not None and snap.state is SessionState.COMPLETE
        frac = 1.0 if complete else done / total
        bar = ProgressBar(total=1.0, completed=frac, complete_style="cyan", finished_style="green")
        label.append(f" / ~{format_count(ctx.expected_samples)} samples  ")
        label.append(f"{100.0 * frac:5.1f}%", style="bold")
    else:
        bar = ProgressBar(
            total=1.0 if terminal else None,
            completed=1.0 if terminal else 0,
            complete_style="cyan",
            finished_style="green",
        )
        label.append(" samples done")
    row = Table.grid(padding=(0, 2), expand=True)
    row.add_column(ratio=1)
    row.add_column(no_wrap=True, justify="right")
    row.add_row(bar, label)
    return row


def _header(snap: MetricsSnapshot | None, ctx: ViewContext) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True)
    grid.add_column(no_wrap=True)
    grid.add_column(no_wrap=True)
    if snap is None:
        grid.add_row(Text("waiting for the first snapshot", style="dim italic"), "", "")
        return grid
    c = snap.counters
    elapsed = c.get("total_duration_ns")
    elapsed_text = format_ns(elapsed) if elapsed is not None else "-"
    if ctx.planned_duration_s:
        elapsed_text += f" of ~{ctx.planned_duration_s:g} s planned"
    grid.add_row(
        Text.assemble("State ", state_text(snap.state.value)),
        Text.assemble("Elapsed ", (elapsed_text, "bold")),
        Text(f"snapshot #{snap.counter}", style="dim"),
    )
    return grid


def _counts(snap: MetricsSnapshot, rates: Rates | None) -> Table:
    c = snap.counters
    grid = Table.grid(padding=(0, 3))
    for _ in range(4):
        grid.add_column(no_wrap=True)

    def kv(label: str, value: str, style: str = "bold") -> Text:
        return Text.assemble((label + " ", "dim"), (value, style))

    issued = c.get("total_samples_issued")
    completed = c.get("total_samples_completed")
    failed = c.get("total_samples_failed", 0)
    in_flight = None
    if issued is not None and completed is not None:
        in_flight = issued - completed  # failed samples complete too
    grid.add_row(
        kv("Issued", format_count(issued)),
        kv("Completed", format_count(completed), "bold green"),
        kv("Failed", format_count(failed), "bold red" if failed else "bold"),
        kv("In flight", format_count(in_flight)),
    )
    rates = rates or Rates()
    grid.add_row(
        kv("QPS", format_rate(rates.qps, "")),
        kv("avg QPS", format_rate(_average_qps(c), "")),
        kv("Tokens/s", format_rate(rates.tps, "")),
        kv("Pending", format_count(snap.n_pending_tasks)),
    )
    return grid


def _finish_reasons(snap: MetricsSnapshot) -> Text | None:
    prefix = "tracked_finish_reason_"
    parts = [
        (n.removeprefix(prefix), v) for n, v in snap.counters.items() if n.startswith(prefix) and v
    ]
    if not parts:
        return None
    text = Text.assemble(("Finish reasons  ", "dim"))
    for i, (reason, v) in enumerate(sorted(parts, key=lambda kv: -kv[1])):
        if i:
            text.append(" · ", style="dim")
        text.append(f"{reason} ", style="")
        text.append(format_count(v), style="bold")
    return text


def _other_counters(snap: MetricsSnapshot) -> Text | None:
    """Counters this view has no place for (a foreign stream's, say), listed as they are."""
    shown = (
        "total_samples_",
        "tracked_samples_",
        "tracked_finish_reason_",
        "tracked_output_tokens",
        "tracked_duration_ns",
        "total_duration_ns",
    )
    rest = [(n, v) for n, v in snap.counters.items() if not n.startswith(shown)]
    if not rest:
        return None
    listed = "  ".join(f"{n}={format_value(n, v)}" for n, v in rest)
    return Text.assemble(("Other counters  ", "dim"), listed)


def render_live(
    snap: MetricsSnapshot | None,
    *,
    context: ViewContext | None = None,
    rates: Rates | None = None,
    dropped: int = 0,
    notes: Sequence[str] = (),
) -> RenderableType:
    """The whole live view for one moment: state, progress, counts, rates, quantiles.

    ``dropped`` is the subscriber's count of frames it lost or could not
    decode; ``notes`` are extra lines from the caller (e.g. what the source sent).
    """
    ctx = context or ViewContext()
    parts: list[RenderableType] = [_header(snap, ctx), _progress(snap, ctx)]
    if snap is not None:
        parts += [Text(""), _counts(snap, rates)]
        rows = _series_rows(snap, LIVE_GRID)
        if rows:
            exact = "exact" if snap.is_terminal else "live, HDR"
            parts += [Text(""), series_table(rows, grid=LIVE_GRID, title=f"Quantiles ({exact})")]
        for extra in (_finish_reasons(snap), _other_counters(snap)):
            if extra is not None:
                parts.append(extra)
    parts += [Text(n, style="cyan") for n in notes]
    subtitle = f"{dropped} frames dropped" if dropped else None
    title = ctx.title + (f" · {ctx.source}" if ctx.source else "")
    return Panel(
        Group(*parts),
        title=Text(title, style="bold"),
        title_align="left",
        subtitle=subtitle,
        subtitle_align="right",
        border_style="blue",
    )


def progress_line(snap: MetricsSnapshot | None, *, rates: Rates | None = None) -> str:
    """One plain line for ``--no-tui``: state, counts, rate and the headline quantiles."""
    if snap is None:
        return "waiting for the first snapshot"
    c = snap.counters
    elapsed = c.get("total_duration_ns", 0) / _NS
    parts = [
        f"[{elapsed:7.1f}s]",
        f"{snap.state.value:<11}",
        f"issued {format_count(c.get('total_samples_issued'))}",
        f"completed {format_count(c.get('total_samples_completed'))}",
        f"failed {format_count(c.get('total_samples_failed', 0))}",
    ]
    qps = rates.qps if rates is not None else None
    parts.append(f"qps {format_rate(qps if qps is not None else _average_qps(c), '')}")
    series = snap.series
    for name, label in (("ttft_ns", "ttft"), ("tpot_ns", "tpot"), ("sample_latency_ns", "latency")):
        s = series.get(name)
        if s is None or not s.count:
            continue
        p50 = s.percentiles.get(percentile_key(50))
        p99 = s.percentiles.get(percentile_key(99))
        parts.append(f"{label} p50 {format_ns(p50)} p99 {format_ns(p99)}")
    return "  ".join(parts)


class LiveView:
    """A live display's state: the context and the rate window of one stream."""

    def __init__(self, context: ViewContext | None = None, rate_span_s: float = 5.0) -> None:
        self.context = context or ViewContext()
        self.window = RateWindow(rate_span_s)
        self.snapshot: MetricsSnapshot | None = None
        self.rates = Rates()

    def update(self, snap: MetricsSnapshot | None) -> None:
        if snap is not None:
            self.snapshot = snap
            self.rates = self.window.update(snap)

    def render(self, *, dropped: int = 0, notes: Sequence[str] = ()) -> RenderableType:
        return render_live(
            self.snapshot, context=self.context, rates=self.rates, dropped=dropped, notes=notes
        )

    def line(self) -> str:
        return progress_line(self.snapshot, rates=self.rates)
