"""Charts as inline SVG, drawn with matplotlib (no pyplot, no display, no JavaScript).

Why matplotlib: well kept, already a wheel on every platform we run on, and
its SVG is plain markup the page inlines, so the file opens offline with no
script at all (plotly or bokeh would inline ~3-4 MB of JavaScript per page).
Text stays text (``svg.fonttype: none``): searchable and small. Each figure
gets its own ``svg.hashsalt`` so the ids of several inlined SVGs never clash.

What it draws is bounded whatever the run's length: histograms of
:data:`~registry.compare.distribution.HIST_BINS` log bins, CDFs through a few
hundred exact order statistics, timelines of at most
:data:`~registry.compare.timeline.MAX_BINS` bins. It draws only numbers it is
given (from :mod:`registry.compare`); it computes none.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from registry.compare.distribution import cdf_points, log_histogram
from registry.compare.timeline import Timeline

__all__ = ["Limit", "distribution_svg", "timeline_svgs", "to_svg"]

_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
_PROLOG = re.compile(r"^.*?(?=<svg)", re.S)


@dataclass(frozen=True)
class Limit:
    """A constraint's limit drawn as a line (value in the series' base unit)."""

    label: str
    value: float


def _mpl() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    return matplotlib


def to_svg(fig: Any, name: str) -> str:
    """``fig`` as an ``<svg>`` element (no XML prolog), ids salted with ``name``."""
    mpl = _mpl()
    buf = io.StringIO()
    with mpl.rc_context({"svg.fonttype": "none", "svg.hashsalt": name}):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    return _PROLOG.sub("", buf.getvalue(), count=1)


def _figure(width_in: float, height_in: float, ncols: int = 1) -> tuple[Any, Any]:
    from matplotlib.figure import Figure

    # fixed margins: a layout engine measures every label twice (half the drawing time)
    fig = Figure(figsize=(width_in, height_in))
    fig.subplots_adjust(
        left=0.7 / width_in, right=1 - 0.15 / width_in, bottom=0.17, top=0.9, wspace=0.18
    )
    axes = fig.subplots(1, ncols)
    return fig, axes


def _log_x(ax: Any) -> None:
    """A log x axis labelled 1, 2, 5, 10, 20, ... in plain numbers (no 2x10^1 mathtext)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

    ax.set_xscale("log")
    # few ticks: each one costs milliseconds to draw, and 1-2-5 reads well enough
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0), numticks=12))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.6g}"))
    ax.xaxis.set_minor_locator(NullLocator())


def _scale(unit: str) -> tuple[float, str]:
    return (1e6, "ms") if unit == "ns" else (1.0, unit)


def distribution_svg(
    name: str,
    title: str,
    unit: str,
    runs: Sequence[tuple[str, npt.NDArray[np.float64]]],
    limits: Sequence[Limit] = (),
) -> str:
    """Histogram (log bins) and CDF (log x) of each run's sorted values, overlaid."""
    div, shown_unit = _scale(unit)
    fig, (hist_ax, cdf_ax) = _figure(11.0, 3.0, ncols=2)
    overlay = len(runs) > 1
    notes = []
    for i, (label, values) in enumerate(runs):
        colour = _COLOURS[i % len(_COLOURS)]
        edges, counts, skipped = log_histogram(values)
        if skipped:
            notes.append(f"{label}: {skipped:,} values <= 0 not on the log axis")
        if edges.size:
            heights = counts / counts.sum() if overlay else counts
            hist_ax.stairs(
                heights, edges / div, color=colour, fill=not overlay, alpha=0.8, label=label
            )
        x, f = cdf_points(values)
        x = x / div
        keep = x > 0
        if keep.any():
            cdf_ax.step(x[keep], f[keep], where="post", color=colour, label=label, lw=1.3)
            for q, style in ((0.5, ":"), (0.99, "--")):
                k = min(max(math.ceil(q * values.size), 1), values.size) - 1
                cdf_ax.axvline(values[k] / div, color=colour, ls=style, lw=0.8)
    for ax in (hist_ax, cdf_ax):
        _log_x(ax)
        ax.set_xlabel(shown_unit)
        ax.grid(True, which="major", alpha=0.3)
        for lim in limits:
            ax.axvline(lim.value / div, color="black", lw=1.2, ls="-.")
    for lim in limits:
        cdf_ax.annotate(
            lim.label, (lim.value / div, 0.05), rotation=90, fontsize=7, ha="right", va="bottom"
        )
    hist_ax.set_title(
        f"{title}: histogram ({'share' if overlay else 'count'} per log bin)", fontsize=9
    )
    cdf_ax.set_title(f"{title}: CDF (dotted p50, dashed p99)", fontsize=9)
    cdf_ax.set_ylim(0, 1.0)
    if overlay:
        cdf_ax.legend(fontsize=7, loc="lower right")
    if notes:
        hist_ax.text(
            0.01, 0.98, "; ".join(notes), transform=hist_ax.transAxes, fontsize=6, va="top"
        )
    return to_svg(fig, name)


def _windows(ax: Any, timeline: Timeline) -> None:
    for a, b in timeline.windows:
        ax.axvspan(a, b, color="#2ca02c", alpha=0.06, lw=0)
        for edge in (a, b):
            ax.axvline(edge, color="#2ca02c", lw=0.6, ls=":")


def timeline_svgs(
    runs: Sequence[tuple[str, Timeline]],
    limits: dict[str, Sequence[Limit]] | None = None,
    *,
    prefix: str = "",
) -> list[tuple[str, str, str]]:
    """(name, caption, svg) of each time-series chart for the runs, overlaid."""
    limits = limits or {}
    single = len(runs) == 1
    out: list[tuple[str, str, str]] = []
    first = runs[0][1]

    def chart(name: str, title: str, ylabel: str, draw: Any, caption: str) -> None:
        fig, ax = _figure(5.4, 2.6)
        for i, (label, tl) in enumerate(runs):
            draw(ax, label, tl, _COLOURS[i % len(_COLOURS)])
        _windows(ax, first)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("s since session start")
        ax.set_ylabel(ylabel, fontsize=8)
        ax.grid(True, alpha=0.3)
        if len(ax.get_legend_handles_labels()[0]) > 1:
            ax.legend(fontsize=7)
        out.append((prefix + name, caption, to_svg(fig, prefix + name)))

    def rates(ax: Any, label: str, tl: Timeline, colour: str) -> None:
        t = tl.t_s + tl.bin_s / 2
        if single:
            ax.plot(t, tl.issued_per_s, color="#7f7f7f", lw=1, label="issued")
            ax.plot(t, tl.completed_per_s, color=colour, lw=1.2, label="completed")
            ax.plot(t, tl.failed_per_s, color="#d62728", lw=1, label="failed")
        else:
            ax.plot(t, tl.completed_per_s, color=colour, lw=1.2, label=f"{label} completed")

    bin_note = f"bins of {first.bin_s:g} s; shaded: tracking windows"
    chart(
        "requests-per-second",
        "Samples per second",
        "samples/s",
        rates,
        ("Issued, completed and failed" if single else "Completed")
        + f" samples per second ({bin_note})",
    )
    chart(
        "in-flight",
        "Samples in flight",
        "samples",
        lambda ax, label, tl, c: ax.step(
            tl.t_s + tl.bin_s, tl.in_flight, where="pre", color=c, label=label
        ),
        f"Samples issued and not yet completed, at each bin's end ({bin_note})",
    )
    chart(
        "tokens-per-second",
        "Output tokens per second",
        "tokens/s",
        lambda ax, label, tl, c: ax.plot(
            tl.t_s + tl.bin_s / 2, tl.tokens_per_s, color=c, label=label, lw=1.2
        ),
        f"Output tokens of the samples completing in each bin ({bin_note})",
    )
    for series, title in (("ttft_ns", "TTFT"), ("sample_latency_ns", "Request latency")):
        if not any(
            series in tl.rolling and np.isfinite(tl.rolling[series]["p50"]).any() for _, tl in runs
        ):
            continue

        def pct(ax: Any, label: str, tl: Timeline, colour: str, series: str = series) -> None:
            t = tl.t_s + tl.bin_s
            roll = tl.rolling.get(series, {})
            tag = "" if single else f"{label} "
            ax.plot(t, roll["p50"] / 1e6, color=colour, lw=1.0, ls=":", label=f"{tag}p50")
            ax.plot(t, roll["p99"] / 1e6, color=colour, lw=1.3, label=f"{tag}p99")
            for lim in limits.get(series, ()):
                ax.axhline(lim.value / 1e6, color="black", lw=1.1, ls="-.")
                ax.annotate(
                    lim.label, (t[0] if t.size else 0, lim.value / 1e6), fontsize=7, va="bottom"
                )

        name = "ttft-over-time" if series == "ttft_ns" else "latency-over-time"
        chart(
            name,
            f"{title} p50 / p99 over a rolling {first.rolling_s:g} s",
            "ms",
            pct,
            f"{title} percentiles of the samples completing in the trailing "
            f"{first.rolling_s:g} s ({bin_note}; dash-dot: constraint limits)",
        )
    return out
