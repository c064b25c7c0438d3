"""``compare --html``: several runs on one page, overlaid (issue 25).

The comparison tables (as the terminal shows them: difference, 95 % interval,
relative change, verdict, the methods named), then each series' distribution
with every run overlaid (histogram as shares, CDF), then the time series of
every run on shared charts (each run's time from its own session start).
Numbers come from :mod:`registry.compare`; this module only lays them out.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from exporter.html.charts import distribution_svg, timeline_svgs
from exporter.html.page import document, esc, figure, table, write_page
from exporter.html.report_page import TIMELINE_COLUMNS
from exporter.views.compare_view import format_amount, format_relative, series_label
from exporter.views.format import order_series
from registry.compare.compare import Comparison
from registry.compare.intervals import MEAN_METHOD, QUANTILE_METHOD
from registry.compare.run_data import RunData, SeriesUnavailable
from registry.compare.throughput import THROUGHPUT_METHOD
from registry.compare.timeline import Timeline, build_timeline

__all__ = ["compare_page", "write_compare_page"]


def _comparison_table(c: Comparison) -> str:
    pct = f"{c.level * 100:g}%"
    rows = []
    for r in c.rows:
        verdict_cls = {"higher": "higher", "lower": "lower"}.get(r.verdict, "note")
        rows.append(
            [
                esc(series_label(r.series)),
                esc(r.stat),
                esc(format_amount(r.series, r.base)),
                esc(format_amount(r.series, r.run)),
                esc(format_amount(r.series, r.diff, signed=True)),
                esc(
                    f"[{format_amount(r.series, r.low, signed=True)}, "
                    f"{format_amount(r.series, r.high, signed=True)}]"
                ),
                esc(
                    f"{format_relative(r, r.diff)} [{format_relative(r, r.low)}, "
                    f"{format_relative(r, r.high)}]"
                ),
                f'<span class="{verdict_cls}">{esc(r.verdict)}</span>',
            ]
        )
    header = ["series", "stat", "base", "run", "diff", f"{pct} interval", "relative", "verdict"]
    parts = [f"<h3>{esc(c.run)} vs base {esc(c.base)}</h3>", table(header, rows, raw=True)]
    for series, why in c.skipped.items():
        parts.append(f'<p class="note">not compared: {esc(series_label(series))}: {esc(why)}</p>')
    return "\n".join(parts)


def _timeline(data: RunData) -> Timeline | None:
    try:
        samples = data.samples(TIMELINE_COLUMNS)
    except SeriesUnavailable:
        return None
    block: Mapping[str, Any] = data.run.get("timeline") or {}
    start = block.get("session_start_ns")
    return build_timeline(samples, origin_ns=start if isinstance(start, int | float) else None)


def compare_page(base: RunData, runs: Sequence[RunData], comparisons: Sequence[Comparison]) -> str:
    everyone = [base, *runs]
    title = f"bench-metrics compare: {base.label} vs " + ", ".join(r.label for r in runs)
    parts = [
        f"<h1>{esc(title)}</h1>",
        '<p class="sub">'
        + esc(" · ".join(f"{'base' if i == 0 else 'run'} {r.path}" for i, r in enumerate(everyone)))
        + "</p>",
        "<h2>Differences</h2>",
        *(_comparison_table(c) for c in comparisons),
        '<p class="note">95% intervals of run - base. Mean: '
        + esc(MEAN_METHOD)
        + ". Quantiles: "
        + esc(QUANTILE_METHOD)
        + ". QPS, tokens/s: "
        + esc(THROUGHPUT_METHOD)
        + ". 'no detectable difference': the interval spans 0.</p>",
        "<h2>Distributions</h2>",
    ]
    for name in order_series(base.series_names):
        label = series_label(name)
        overlaid: list[tuple[str, np.ndarray]] = []
        missing = []
        for r in everyone:
            try:
                overlaid.append((r.label, r.values(name)))
            except SeriesUnavailable as exc:
                missing.append(str(exc))
        overlaid = [(lbl, v) for lbl, v in overlaid if v.size]
        if overlaid:
            unit = "ns" if name.endswith("_ns") else "tokens"
            svg = distribution_svg(f"cmp-{name}", label, unit, overlaid)
            parts.append(figure(f"distribution-{name}", f"{label}, every run overlaid", svg))
        for why in missing:
            parts.append(f'<p class="note">{esc(label)}: not drawn for a run: {esc(why)}</p>')
    timelines = [(r.label, tl) for r in everyone if (tl := _timeline(r)) is not None]
    parts.append("<h2>Over time</h2>")
    if timelines:
        charts = timeline_svgs(timelines, prefix="cmp-")
        parts += ['<div class="charts">', *(figure(n, c, s) for n, c, s in charts), "</div>"]
    if len(timelines) < len(everyone):
        parts.append('<p class="note">Runs without samples.parquet have no time series.</p>')
    return document(title, parts)


def write_compare_page(
    out: str | os.PathLike[str],
    base: RunData,
    runs: Sequence[RunData],
    comparisons: Sequence[Comparison],
) -> None:
    write_page(out, compare_page(base, runs, comparisons))
