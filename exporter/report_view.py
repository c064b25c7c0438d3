"""A final snapshot or result summary file, rendered for a person (``bench-metrics report``).

:func:`load_report_file` reads either kind of file of SPEC §7
(``final_snapshot.json`` or ``result_summary.json``) and yields the Report
(for a snapshot, the one :func:`registry.report.build_report` makes of it, so
both kinds read the same); :func:`render_report` turns that into rich tables.
Anything wrong with the file raises :class:`ReportFileError` with one line
saying what.

It only reads and displays: it must never write a file, and never show a
number that is not in the Report.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from exporter.view_format import (
    SeriesRow,
    format_count,
    format_rate,
    order_series,
    series_table,
    state_text,
)
from registry.snapshot import percentile_key
from registry.snapshot_codec import SnapshotDecodeError
from registry.upstream_report import from_upstream_summary, is_upstream_summary

__all__ = [
    "REPORT_GRID",
    "ReportDocument",
    "ReportFileError",
    "load_report_file",
    "render_report",
]

#: The percentiles the report table shows, when the file has them.
REPORT_GRID: tuple[float, ...] = (50.0, 90.0, 95.0, 99.0, 99.9)

Kind = Literal["snapshot", "summary"]
_KIND_TEXT = {"snapshot": "final snapshot", "summary": "result summary"}


class ReportFileError(ValueError):
    """The file cannot be shown; the message (one line) says why."""


@dataclass(frozen=True)
class ReportDocument:
    """A loaded file: its path, what kind it was, and the Report to show."""

    path: Path
    kind: Kind
    report: Mapping[str, Any]


def _kind_of(data: Any) -> Kind:
    if is_upstream_summary(data):
        return "summary"
    if isinstance(data, dict):
        if isinstance(data.get("metrics"), list) and "state" in data:
            return "snapshot"
        if isinstance(data.get("series"), dict) and isinstance(data.get("samples"), dict):
            return "summary"
    raise ReportFileError(
        "neither a final snapshot (an object with 'state' and a 'metrics' list) nor a "
        "result summary (an object with 'samples' and 'series', or mlcommons/endpoints' "
        "with 'n_samples_issued' and 'latency')"
    )


def _check_summary(report: Mapping[str, Any]) -> None:
    """The fields the renderer relies on, with their types (a clear error beats a traceback)."""
    if not isinstance(report.get("state"), str):
        raise ReportFileError("result summary: 'state' must be a string")
    for name, entry in report["series"].items():
        if not isinstance(entry, dict) or not isinstance(entry.get("count"), int):
            raise ReportFileError(f"result summary: series {name!r} has no integer 'count'")
        if not isinstance(entry.get("percentiles", {}), dict):
            raise ReportFileError(f"result summary: series {name!r}: 'percentiles' is not a map")
    for window, counts in report["samples"].items():
        if not isinstance(counts, dict):
            raise ReportFileError(f"result summary: samples[{window!r}] is not an object")


def load_report_file(path: str | Path) -> ReportDocument:
    """Read ``path`` (either kind of file); :class:`ReportFileError` when it cannot be shown."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ReportFileError(f"cannot read {p}: {exc.strerror or exc}") from exc
    try:
        data = json.loads(raw)
    except UnicodeDecodeError as exc:
        raise ReportFileError(f"{p} is not JSON text: {exc.reason}") from exc
    except json.JSONDecodeError as exc:
        raise ReportFileError(
            f"{p} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from exc
    try:
        kind = _kind_of(data)
    except ReportFileError as exc:
        raise ReportFileError(f"{p} is {exc}") from None
    if kind == "snapshot":
        from registry.report import build_report

        try:
            report = build_report(data, source="file")
        except SnapshotDecodeError as exc:
            raise ReportFileError(f"{p}: {exc}") from exc
    else:
        report = from_upstream_summary(data) if is_upstream_summary(data) else data
        try:
            _check_summary(report)
        except ReportFileError as exc:
            raise ReportFileError(f"{p}: {exc}") from None
    return ReportDocument(path=p, kind=kind, report=report)


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    return v if math.isfinite(v) else None


def _grid(series: Mapping[str, Any]) -> list[float]:
    keys: set[str] = set()
    for entry in series.values():
        keys.update(entry.get("percentiles") or {})
    return [p for p in REPORT_GRID if percentile_key(p) in keys]


def _series_rows(series: Mapping[str, Any], grid: list[float]) -> list[SeriesRow]:
    rows = []
    for name in order_series(series):
        e = series[name]
        pct = e.get("percentiles") or {}
        rows.append(
            SeriesRow(
                name=name,
                count=e["count"],
                mean=_num(e.get("avg")),
                minimum=_num(e.get("min")),
                maximum=_num(e.get("max")),
                std_dev=_num(e.get("std_dev")),
                percentiles={p: _num(pct.get(percentile_key(p))) for p in grid},
            )
        )
    return rows


def _samples_table(samples: Mapping[str, Any]) -> Table:
    table = Table(box=None, pad_edge=False, title="Samples", title_justify="left")
    table.add_column("", style="bold")
    for col in ("issued", "completed", "failed", "in flight"):
        table.add_column(col, justify="right")
    for window in ("all", "tracked", *sorted(set(samples) - {"all", "tracked"})):
        counts = samples.get(window)
        if not isinstance(counts, dict):
            continue
        table.add_row(
            window,
            *(format_count(_num(counts.get(k))) for k in ("issued", "completed", "failed")),
            format_count(_num(counts.get("in_flight"))),
        )
    return table


def _seconds(v: Any) -> str:
    n = _num(v)
    return "-" if n is None or not math.isfinite(n) else f"{n:,.2f} s"


def _headline(r: Mapping[str, Any]) -> Table:
    grid = Table.grid(padding=(0, 3))
    for _ in range(4):
        grid.add_column(no_wrap=True)

    def kv(label: str, value: str) -> Text:
        return Text.assemble((label + " ", "dim"), (value, "bold"))

    grid.add_row(
        kv("Duration", _seconds(r.get("duration_s"))),
        kv("QPS", format_rate(_num(r.get("qps")), "")),
        kv("Tokens/s", format_rate(_num(r.get("tps")), "")),
        kv("Output tokens", format_count(_num(r.get("output_tokens")))),
    )
    grid.add_row(
        kv("Total duration", _seconds(r.get("total_duration_s"))),
        kv("Pending", format_count(_num(r.get("n_pending_tasks")))),
        # MLPerf LoadGen's window (what mlcommons/endpoints reports as its QPS/TPS)
        kv("LoadGen QPS", format_rate(_num(r.get("qps_legacy")), "")),
        kv("LoadGen tokens/s", format_rate(_num(r.get("tps_legacy")), "")),
    )
    return grid


def _finish_reasons(r: Mapping[str, Any]) -> Text | None:
    reasons = r.get("finish_reasons")
    if not isinstance(reasons, dict) or not reasons:
        return None
    text = Text.assemble(("Finish reasons  ", "dim"))
    items = sorted(
        ((k, v) for k, v in reasons.items() if _num(v)), key=lambda kv: -(_num(kv[1]) or 0)
    )
    if not items:
        return None
    for i, (reason, n) in enumerate(items):
        if i:
            text.append(" · ", style="dim")
        text.append(f"{reason} ")
        text.append(format_count(_num(n)), style="bold")
    return text


def _run_info(r: Mapping[str, Any], kind: Kind) -> Text:
    run = r.get("run") if isinstance(r.get("run"), dict) else {}
    assert isinstance(run, dict)
    parts = []
    if run.get("run_id"):
        parts.append(f"run_id {run['run_id']}")
    labels = run.get("labels")
    if isinstance(labels, dict) and labels:
        parts.append(" ".join(f"{k}={v}" for k, v in labels.items()))
    # A report built here from a snapshot file was generated just now: not worth showing.
    if kind == "summary" and r.get("generated_at"):
        parts.append(f"generated {r['generated_at']}")
    versions = run.get("versions")
    if isinstance(versions, dict):
        shown = [f"{k} {v}" for k, v in versions.items() if k in ("bench_metrics", "python") and v]
        if shown:
            parts.append(", ".join(shown))
    return Text("  ·  ".join(parts), style="dim")


def render_report(doc: ReportDocument) -> RenderableType:
    """The Report of ``doc`` as a panel: state and verdict, counts, rates, quantile table."""
    r = doc.report
    state = str(r.get("state", "?"))
    complete = r.get("complete") is True
    verdict = (
        Text(" complete ", style="bold white on green")
        if complete
        else Text(" incomplete ", style="bold white on red")
    )
    parts: list[RenderableType] = [Text.assemble("State ", state_text(state), "  ", verdict)]
    if not complete and r.get("incomplete_reason"):
        parts.append(Text(f"Why: {r['incomplete_reason']}", style="red"))
    source = r.get("source")
    if source and source != "file":
        parts.append(Text(f"Source: {source}", style="yellow"))
    parts += [Text(""), _headline(r), Text(""), _samples_table(r["samples"])]
    series = r["series"]
    if series:
        grid = _grid(series)
        exact = "exact" if state in ("complete", "interrupted") else "live, HDR"
        parts += [
            Text(""),
            series_table(
                _series_rows(series, grid),
                grid=grid,
                title=f"Series ({exact})",
                show_min=True,
                show_std=True,
            ),
        ]
    reasons = _finish_reasons(r)
    if reasons is not None:
        parts += [Text(""), reasons]
    parts.append(_run_info(r, doc.kind))
    title = Text.assemble((f"{doc.path.name}", "bold"), f" — {_KIND_TEXT[doc.kind]}")
    return Panel(Group(*parts), title=title, title_align="left", border_style="blue")
