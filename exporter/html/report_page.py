"""``report --html``: one run as one self-contained page (issue 25).

The page holds: the run's identity and configuration; the verdict block (the
terminal's own verdict view); the exact percentile table from the Report;
distributions (histogram and CDF on log axes) of TTFT, TPOT, chunk gap,
latency, ISL and OSL from the exact values; and the run over time from
``samples.parquet`` (samples issued, completed and failed per second, in
flight, output tokens per second, TTFT and latency p50/p99 over a rolling
window) with the tracking windows shaded and constraint limits drawn. A run
without per-sample data still gets its tables, and the page says what is
missing and why. Numbers come from the Report and :mod:`registry.compare`;
this module only lays them out.
"""

from __future__ import annotations

import datetime as _dt
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from exporter.html.charts import Limit, distribution_svg, timeline_svgs
from exporter.html.page import document, esc, figure, rich_html, table
from exporter.views.format import SERIES_LABELS, format_value, order_series
from exporter.views.report_view import REPORT_GRID, ReportDocument, render_report
from exporter.views.verdict_view import from_report, verdict_panel
from registry.compare.run_data import RunData, SeriesUnavailable
from registry.compare.timeline import build_timeline
from registry.delivery.snapshot import percentile_key
from registry.report.summary import REPORT_HTML_NAME

__all__ = [
    "HTML_NAME",
    "TIMELINE_COLUMNS",
    "constraint_limits",
    "report_page",
    "write_report_html",
    "write_run_page",
]

TIMELINE_COLUMNS = ["issued_ns", "complete_ns", "ttft_ns", "latency_ns", "osl", "failed"]


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    return float(v) if math.isfinite(v) else None


def constraint_limits(report: Mapping[str, Any]) -> dict[str, list[Limit]]:
    """series name -> the limits of the Report's verdict constraints on it."""
    out: dict[str, list[Limit]] = {}
    verdict = report.get("verdict")
    if not isinstance(verdict, Mapping):
        return out
    for c in verdict.get("constraints") or []:
        if not isinstance(c, Mapping) or _num(c.get("limit_ns")) is None:
            continue
        series = str(c.get("series"))
        pct = _num(c.get("percentile"))
        label = f"p{pct:g} <= {c.get('limit', '')}" if pct is not None else str(c.get("limit"))
        out.setdefault(series, []).append(Limit(label, float(c["limit_ns"])))
    return out


def _wall(ns: Any) -> str:
    v = _num(ns)
    if v is None:
        return "-"
    return _dt.datetime.fromtimestamp(v / 1e9, _dt.UTC).isoformat(timespec="seconds")


def _identity(report: Mapping[str, Any], run: Mapping[str, Any], path: Path) -> str:
    clock = run.get("clock") if isinstance(run.get("clock"), Mapping) else {}
    assert isinstance(clock, Mapping)
    start = clock.get("start") if isinstance(clock.get("start"), Mapping) else {}
    end = clock.get("end") if isinstance(clock.get("end"), Mapping) else {}
    assert isinstance(start, Mapping) and isinstance(end, Mapping)
    labels = run.get("labels") if isinstance(run.get("labels"), Mapping) else {}
    assert isinstance(labels, Mapping)
    versions = run.get("versions") if isinstance(run.get("versions"), Mapping) else {}
    assert isinstance(versions, Mapping)
    es = run.get("early_stopping") if isinstance(run.get("early_stopping"), Mapping) else None
    rows: list[tuple[str, str]] = [
        ("run id", str(run.get("run_id") or "-")),
        ("directory", str(path)),
        ("labels", " ".join(f"{k}={v}" for k, v in labels.items()) or "-"),
        ("state", f"{report.get('state')}" + ("" if report.get("complete") else " (incomplete)")),
        ("started (UTC)", _wall(start.get("wall_ns"))),
        ("ended (UTC)", _wall(end.get("wall_ns"))),
        ("host", str(clock.get("host") or "-")),
        ("streaming", str(run.get("streaming", "-"))),
        ("percentile method", str(run.get("percentile_method") or "-")),
        (
            "early stopping",
            f"confidence {es.get('confidence')}, tolerance {es.get('tolerance')}" if es else "-",
        ),
        ("tokenizer", str(run.get("tokenizer") or "none")),
        ("merged from", ", ".join(map(str, run.get("merged_from") or [])) or "-"),
        ("versions", ", ".join(f"{k} {v}" for k, v in versions.items() if v) or "-"),
    ]
    if not report.get("complete") and report.get("incomplete_reason"):
        rows.insert(4, ("why incomplete", str(report["incomplete_reason"])))
    return table(["", ""], rows, cls="data kv")


def _percentile_table(report: Mapping[str, Any]) -> str:
    series = report.get("series") if isinstance(report.get("series"), Mapping) else {}
    assert isinstance(series, Mapping)
    grid = [p for p in (1.0, 10.0, 25.0, *REPORT_GRID) if p not in (25.0,)]
    keys = {k for e in series.values() for k in (e.get("percentiles") or {})}
    grid = [p for p in grid if percentile_key(p) in keys]
    header = ["series", "count", "min", "mean", *[f"p{p:g}" for p in grid], "max", "std dev"]
    rows = []
    for name in order_series(series):
        e = series[name]
        pct = e.get("percentiles") or {}
        rows.append(
            [
                SERIES_LABELS.get(name, name),
                f"{e.get('count', 0):,}",
                format_value(name, _num(e.get("min"))),
                format_value(name, _num(e.get("avg"))),
                *[format_value(name, _num(pct.get(percentile_key(p)))) for p in grid],
                format_value(name, _num(e.get("max"))),
                format_value(name, _num(e.get("std_dev"))),
            ]
        )
    return table(header, rows)


def _distributions(data: RunData, limits: Mapping[str, Sequence[Limit]]) -> list[str]:
    parts = []
    for name in order_series(data.series_names):
        label = SERIES_LABELS.get(name, name)
        try:
            values = data.values(name)
        except SeriesUnavailable as exc:
            parts.append(f'<p class="note">{esc(label)}: no chart: {esc(exc)}</p>')
            continue
        if values.size == 0:
            parts.append(f'<p class="note">{esc(label)}: no values in this run</p>')
            continue
        unit = "ns" if name.endswith("_ns") else "tokens"
        svg = distribution_svg(
            f"dist-{name}", label, unit, [(data.label, values)], limits.get(name, ())
        )
        caption = (
            f"{label}: {values.size:,} exact values (from the {data.source_of(name)}); "
            "the CDF passes through a few hundred of them, the histogram counts all"
        )
        parts.append(figure(f"distribution-{name}", caption, svg))
    return parts


def _timeline(data: RunData, limits: Mapping[str, Sequence[Limit]]) -> list[str]:
    try:
        samples = data.samples(TIMELINE_COLUMNS)
    except SeriesUnavailable as exc:
        return [f'<p class="note">No time series: {esc(exc)}</p>']
    tl_block = data.run.get("timeline") if isinstance(data.run.get("timeline"), Mapping) else {}
    assert isinstance(tl_block, Mapping)
    windows = [
        (float(w[0]), float(w[1]))
        for w in tl_block.get("windows") or []
        if len(w) == 2 and all(_num(x) is not None for x in w)  # an open window has no end
    ]
    tl = build_timeline(
        samples, origin_ns=_num(tl_block.get("session_start_ns")), windows_ns=windows
    )
    charts = timeline_svgs([(data.label, tl)], dict(limits))
    return [figure(name, caption, svg) for name, caption, svg in charts]


def report_page(doc: ReportDocument, data: RunData | None, why_no_data: str | None = None) -> str:
    """The page of one run: ``doc`` is its Report (judged, when asked), ``data`` its samples."""
    report = doc.report
    run = report.get("run") if isinstance(report.get("run"), Mapping) else {}
    assert isinstance(run, Mapping)
    title = f"bench-metrics report: {run.get('run_id') or doc.path.parent.name}"
    limits = constraint_limits(report)
    parts = [
        f"<h1>{esc(title)}</h1>",
        f'<p class="sub">{esc(doc.path)} &middot; generated {esc(_wall(_now_ns()))}</p>',
        "<h2>Run</h2>",
        _identity(report, run, doc.path.parent),
    ]
    verdict = report.get("verdict")
    parts.append("<h2>Verdict</h2>")
    if isinstance(verdict, Mapping):
        parts.append(rich_html(verdict_panel(from_report(verdict))))
    else:
        parts.append('<p class="note">No constraints were set for this run (no verdict).</p>')
    parts += ["<h2>Exact percentiles</h2>", _percentile_table(report)]
    parts.append("<details><summary>The terminal report</summary>")
    parts.append(rich_html(render_report(doc)))
    parts.append("</details>")
    if data is None:
        parts.append(f'<p class="note">No charts: {esc(why_no_data or "no per-sample data")}</p>')
    else:
        parts += ["<h2>Distributions</h2>", *_distributions(data, limits)]
        parts += ["<h2>Over time</h2>", '<div class="charts">', *_timeline(data, limits), "</div>"]
    return document(title, parts)


def _now_ns() -> int:
    return time.time_ns()


def write_report_html(
    out: str | Path, doc: ReportDocument, *, held_by_caller: bool = False
) -> Path:
    """Write the page of the run ``doc`` was read from to ``out`` (atomically); its path.

    The per-sample data is read from the directory of ``doc``'s file; a run
    without it (an upstream file, a run without a raw store and samples) gets
    the page without charts, saying why.
    """
    from exporter.html.page import write_page
    from registry.compare.run_data import RunDataError, load_run_data

    data: RunData | None
    why: str | None = None
    try:
        data = load_run_data(doc.path, held_by_caller=held_by_caller)
    except RunDataError as exc:
        data, why = None, str(exc)
    write_page(out, report_page(doc, data, why))
    return Path(out)


#: The page ``aggregate --html`` and ``demo --html`` write beside the final files.
HTML_NAME = REPORT_HTML_NAME


def write_run_page(output_dir: str | Path) -> Path:
    """``report.html`` of the finished run in ``output_dir``, beside its final files,
    by the process that holds the directory's lock (``aggregate``/``demo``).

    Raises :class:`~exporter.views.report_view.ReportFileError` when the run has no
    final file to show, :class:`OSError` when the page cannot be written.
    """
    from exporter.views.report_view import load_report_file
    from registry.delivery.final_source import FINAL_SNAPSHOT_NAME

    out = Path(output_dir)
    doc = load_report_file(out / FINAL_SNAPSHOT_NAME)
    return write_report_html(out / HTML_NAME, doc, held_by_caller=True)
