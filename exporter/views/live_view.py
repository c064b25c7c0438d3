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

import msgspec
from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from exporter.views.format import (
    SeriesRow,
    format_count,
    format_ns,
    format_rate,
    format_value,
    order_series,
    series_table,
    state_text,
)
from exporter.views.safe_text import has_control, terminal_safe
from exporter.views.verdict_view import from_snapshot_counters, verdict_panel
from registry.delivery.snapshot import (
    MetricsSnapshot,
    SeriesStat,
    SessionState,
    percentile_key,
    run_tag,
)
from registry.mlperf.verdict_counters import is_verdict_counter, read_verdict

__all__ = [
    "LIVE_GRID",
    "LiveView",
    "RateWindow",
    "Rates",
    "ViewContext",
    "intro_lines",
    "progress_line",
    "render_live",
    "terminal_safe_snapshot",
]

#: The percentiles the live table shows (when the stream's grid has them).
LIVE_GRID: tuple[float, ...] = (50.0, 90.0, 99.0)

_NS = 1e9


#: The longest plain (``--no-tui``) line: it must not wrap on a 120-column terminal.
MAX_PLAIN_LINE = 119

#: What "whole run" means, said once under the rates (and before the plain lines).
RATES_NOTE = (
    "Whole run = tracked completions ÷ tracked time (start → latest completion): below the "
    "offered rate by the ramp-up and the tail."
)


@dataclass(frozen=True)
class ViewContext:
    """What the view knows besides the snapshots: a title, where the stream comes
    from, and, when the caller knows the run's plan, the samples expected (for
    the progress bar), the planned duration and the offered load (the mean
    request rate the source aims at)."""

    title: str = "bench-metrics"
    source: str = ""
    expected_samples: int | None = None
    planned_duration_s: float | None = None
    offered_qps: float | None = None


@dataclass(frozen=True)
class Rates:
    """Completions, issues and output tokens per second over the recent window."""

    qps: float | None = None
    tps: float | None = None
    issued: float | None = None
    span_s: float | None = None


class RateWindow:
    """Recent (timestamp, completed, tokens) points of one stream, for current rates.

    Snapshot timestamps are the producer's monotonic clock, so rates come out
    right whatever the delivery delay; a snapshot from an earlier sequence
    (a restarted producer) clears the window.
    """

    def __init__(self, span_s: float = 5.0) -> None:
        self.span_s = span_s
        self._span_ns = int(span_s * _NS)
        self._points: deque[tuple[int, float, float, float]] = deque()
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
            issued = c.get("total_samples_issued", 0)
            points.append((snap.timestamp_ns, done, c.get("tracked_output_tokens", 0), issued))
            while len(points) > 2 and snap.timestamp_ns - points[1][0] >= self._span_ns:
                points.popleft()
        if len(self._points) < 2:
            return Rates()
        (t0, d0, k0, i0), (t1, d1, k1, i1) = self._points[0], self._points[-1]
        dt = (t1 - t0) / _NS
        if dt <= 0:
            return Rates()
        return Rates(qps=(d1 - d0) / dt, tps=(k1 - k0) / dt, issued=(i1 - i0) / dt, span_s=dt)


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
    """Whole run: tracked completions over the tracked time (the Report's ``qps``)."""
    dur = c.get("tracked_duration_ns", 0)
    return c.get("tracked_samples_completed", 0) / (dur / _NS) if dur else None


def _average_tps(c: dict[str, int | float]) -> float | None:
    """Whole run: tracked output tokens over the tracked time (the Report's ``tps``)."""
    dur = c.get("tracked_duration_ns", 0)
    return c.get("tracked_output_tokens", 0) / (dur / _NS) if dur else None


def _window(rates: Rates) -> str:
    """``last 5 s``: the span the recent rates were measured over."""
    return "last 5 s" if rates.span_s is None else f"last {rates.span_s:.0f} s"


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


def _where(snap: MetricsSnapshot | None) -> Text | None:
    """The run id and where its ``/metrics`` is served, as the stream says (slot 5)."""
    if snap is None:
        return None
    tag = run_tag(snap)
    parts: list[tuple[str, str] | str] = []
    if tag.run_id:
        parts += [("Run ", "dim"), (tag.run_id, "bold")]
    if tag.metrics_url:
        parts += [("   /metrics at ", "dim") if parts else ("/metrics at ", "dim"), tag.metrics_url]
    return Text.assemble(*parts) if parts else None


def _counts(snap: MetricsSnapshot) -> Table:
    c = snap.counters
    grid = Table.grid(padding=(0, 3))
    for _ in range(4):
        grid.add_column(no_wrap=True)

    issued = c.get("total_samples_issued")
    completed = c.get("total_samples_completed")
    failed = c.get("total_samples_failed", 0)
    in_flight = None
    if issued is not None and completed is not None:
        in_flight = issued - completed  # failed samples complete too
    grid.add_row(
        _kv("Issued", format_count(issued)),
        _kv("Completed", format_count(completed), "bold green"),
        _kv("Failed", format_count(failed), "bold red" if failed else "bold"),
        _kv("In flight", format_count(in_flight)),
    )
    return grid


def _kv(label: str, value: str, style: str = "bold") -> Text:
    return Text.assemble((label + " ", "dim"), (value, style))


def _rates(snap: MetricsSnapshot, rates: Rates | None, ctx: ViewContext) -> Table:
    """Recent and whole-run rates side by side, each column saying which it is."""
    c = snap.counters
    rates = rates or Rates()
    table = Table(box=None, pad_edge=False, padding=(0, 2), show_edge=False)
    table.add_column("", style="dim", no_wrap=True)
    table.add_column(_window(rates), justify="right", no_wrap=True, header_style="dim")
    table.add_column("whole run", justify="right", no_wrap=True, header_style="dim")
    table.add_column("", no_wrap=True)
    offered = f"offered {ctx.offered_qps:g}/s (Poisson mean)" if ctx.offered_qps else ""
    table.add_row("QPS", format_rate(rates.qps, ""), format_rate(_average_qps(c), ""), offered)
    table.add_row("Tokens/s", format_rate(rates.tps, ""), format_rate(_average_tps(c), ""), "")
    table.add_row("Issued/s", format_rate(rates.issued, ""), "", "")
    return table


def _pending(snap: MetricsSnapshot) -> Text:
    # SPEC §6: n_pending_tasks counts tokenizations, not requests: "In flight" is those.
    return Text.assemble(
        _kv("Tokenizations pending", format_count(snap.n_pending_tasks)),
        ("  (texts the tokenizer has not counted yet)", "dim"),
    )


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


def _data_quality(snap: MetricsSnapshot) -> Text | None:
    """Completions stamped before one of their chunks (SPEC §6): counted as upstream
    counts them, but their TPOT and chunk figures cannot be trusted: said in words."""
    n = snap.counters.get("samples_complete_before_chunk")
    if not n:
        return None
    done = snap.counters.get("tracked_samples_completed") or 0
    share = f" ({100 * n / done:.0f} % of completions)" if done else ""
    return Text.assemble(
        ("Data quality    ", "dim"),
        (f"{format_count(n)} completions stamped before a chunk{share}", "yellow"),
        (": their TPOT and chunk gaps are unreliable", "dim"),
    )


def _other_counters(snap: MetricsSnapshot) -> Text | None:
    """Counters this view has no place for (a foreign stream's, say), listed as they are."""
    shown = (
        "total_samples_",
        "tracked_samples_",
        "tracked_finish_reason_",
        "tracked_output_tokens",
        "tracked_duration_ns",
        "total_duration_ns",
        "legacy_loadgen_window_duration_ns",
        "samples_complete_before_chunk",
    )
    # Zero-valued ones (no malformed events, no session errors) say nothing: left out.
    rest = [
        (n, v)
        for n, v in snap.counters.items()
        if v and not n.startswith(shown) and not is_verdict_counter(n)
    ]
    if not rest:
        return None
    listed = "  ".join(f"{n}={format_value(n, v)}" for n, v in rest)
    return Text.assemble(("Other counters  ", "dim"), listed)


def terminal_safe_snapshot(snap: MetricsSnapshot) -> MetricsSnapshot:
    """``snap`` with the strings a view shows (metric names, the run block's run id,
    labels and URL) :func:`~exporter.views.safe_text.terminal_safe`; ``snap`` itself when
    none holds a control character (the usual case: nothing is copied)."""
    tag = run_tag(snap)
    texts = [m.name for m in snap.metrics]
    texts += [t for t in (tag.run_id, tag.metrics_url) if t]
    texts += [t for kv in tag.labels.items() for t in kv]
    if not any(has_control(t) for t in texts):
        return snap
    metrics = [
        msgspec.structs.replace(m, name=terminal_safe(m.name)) if has_control(m.name) else m
        for m in snap.metrics
    ]
    run = snap.run
    if isinstance(run, dict):
        run = {
            **run,
            "run_id": terminal_safe(tag.run_id or ""),
            "labels": {terminal_safe(k): terminal_safe(v) for k, v in tag.labels.items()},
            "metrics_url": terminal_safe(tag.metrics_url or ""),
        }
    return msgspec.structs.replace(snap, metrics=metrics, run=run)


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
    snap = terminal_safe_snapshot(snap) if snap is not None else None
    parts: list[RenderableType] = [_header(snap, ctx)]
    where = _where(snap)
    if where is not None:
        parts.append(where)
    parts.append(_progress(snap, ctx))
    if snap is not None:
        parts += [
            Text(""),
            _counts(snap),
            _pending(snap),
            Text(""),
            _rates(snap, rates, ctx),
            Text(RATES_NOTE, style="dim"),
        ]
        rows = _series_rows(snap, LIVE_GRID)
        if rows:
            exact = "exact" if snap.is_terminal else "live, HDR"
            parts += [Text(""), series_table(rows, grid=LIVE_GRID, title=f"Quantiles ({exact})")]
        verdict = from_snapshot_counters(snap.counters, terminal=snap.is_terminal)
        if verdict is not None:
            parts += [Text(""), verdict_panel(verdict)]
        for extra in (_finish_reasons(snap), _data_quality(snap), _other_counters(snap)):
            if extra is not None:
                parts.append(extra)
    parts += [Text(terminal_safe(n), style="cyan") for n in notes]
    subtitle = f"{dropped} frames dropped" if dropped else None
    title = terminal_safe(ctx.title + (f" · {ctx.source}" if ctx.source else ""))
    return Panel(
        Group(*parts),
        title=Text(title, style="bold"),
        title_align="left",
        subtitle=subtitle,
        subtitle_align="right",
        border_style="blue",
    )


def _compact_ns(v: float | int | None) -> str:
    return format_ns(v).replace(" ", "")


def progress_line(snap: MetricsSnapshot | None, *, rates: Rates | None = None) -> str:
    """One plain line for ``--no-tui``: state, counts, rate and the headline quantiles.

    At most :data:`MAX_PLAIN_LINE` characters: the least telling parts (latency,
    TPOT, then TTFT quantiles) are left out of a line that would be longer.
    """
    if snap is None:
        return "waiting for the first snapshot"
    snap = terminal_safe_snapshot(snap)
    c = snap.counters
    elapsed = c.get("total_duration_ns", 0) / _NS
    qps = rates.qps if rates is not None else None
    qps_text = (
        f"qps {format_rate(qps, '')} (5 s)"
        if qps is not None
        else f"qps {format_rate(_average_qps(c), '')} (run)"
    )
    parts = [
        f"[{elapsed:6.1f}s] {snap.state.value:<11}",
        f"issued {format_count(c.get('total_samples_issued'))}",
        f"completed {format_count(c.get('total_samples_completed'))}",
        f"failed {format_count(c.get('total_samples_failed', 0))}",
        qps_text,
    ]
    required = len(parts)
    verdict = read_verdict(c)
    if verdict is not None:
        view = from_snapshot_counters(c, terminal=snap.is_terminal)
        if view is not None and view.validity_headline:
            # LoadGen's validity: INVALID (min duration) / ON TRACK, 9m40s and ... still needed
            parts.append(f"verdict {view.validity_headline}")
        else:
            needed = max((r.queries_needed for r in verdict.constraints), default=0)
            parts.append(
                f"verdict {verdict.state}" + (f" (needs {needed:,} more)" if needed else "")
            )
        required += 1
    series = snap.series
    for name, label in (("ttft_ns", "ttft"), ("tpot_ns", "tpot"), ("sample_latency_ns", "lat")):
        s = series.get(name)
        if s is None or not s.count:
            continue
        p50 = s.percentiles.get(percentile_key(50))
        p99 = s.percentiles.get(percentile_key(99))
        parts.append(f"{label} p50/p99 {_compact_ns(p50)}/{_compact_ns(p99)}")
    while len(parts) > required and len("  ".join(parts)) > MAX_PLAIN_LINE:
        parts.pop()
    return "  ".join(parts)[:MAX_PLAIN_LINE]


def intro_lines(snap: MetricsSnapshot | None) -> list[str]:
    """What the plain lines do not repeat: the run, where /metrics is, what qps means."""
    lines = []
    if snap is not None:
        tag = run_tag(terminal_safe_snapshot(snap))
        if tag.run_id:
            lines.append(f"run {tag.run_id}"[:MAX_PLAIN_LINE])
        if tag.metrics_url:
            lines.append(f"/metrics at {tag.metrics_url}"[:MAX_PLAIN_LINE])
    lines.append("qps (5 s): completions/s over the last 5 s; (run): over the tracked time so far")
    lines.append("p50/p99: live HDR quantiles until the final line, which is exact")
    return lines


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
