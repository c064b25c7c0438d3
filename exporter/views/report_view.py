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
import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from exporter.views.format import (
    SeriesRow,
    format_count,
    format_rate,
    order_series,
    series_table,
    state_text,
)
from exporter.views.safe_text import terminal_safe, terminal_safe_tree
from exporter.views.verdict_view import from_report, verdict_panel
from registry.delivery.snapshot import SessionState, percentile_key
from registry.delivery.snapshot_codec import SnapshotDecodeError
from registry.mlperf.requirements import Requirements
from registry.mlperf.slo import Constraint
from registry.mlperf.verdict import VerdictUndecided, verdict_block
from registry.report.upstream import from_upstream_summary, is_upstream_summary

__all__ = [
    "QPS_NOTE",
    "REPORT_GRID",
    "ReportDocument",
    "ReportFileError",
    "judge_report_file",
    "load_report_file",
    "render_report",
]

#: The largest file ``report`` reads: a final file is a few megabytes; a device, or a
#: file a mistake made huge, is refused instead of filling memory.
MAX_REPORT_FILE_BYTES = 256 * 1024 * 1024

#: The deepest nesting a final file may have (ours and upstream's are under 8 deep).
MAX_REPORT_DEPTH = 64

_STATES = frozenset(s.value for s in SessionState)

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
    state = report.get("state")
    if not isinstance(state, str):
        raise ReportFileError("result summary: 'state' must be a string")
    if state not in _STATES:
        raise ReportFileError(
            f"result summary: 'state' is {state[:40]!r}, not one of " + ", ".join(sorted(_STATES))
        )
    if "complete" in report and not isinstance(report["complete"], bool):
        raise ReportFileError("result summary: 'complete' must be true or false")
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
    return _load(Path(path), None, None)


def judge_report_file(
    path: str | Path,
    constraints: Sequence[Constraint],
    *,
    ruleset: str | None = None,
    requirements: Requirements | None = None,
) -> ReportDocument:
    """:func:`load_report_file` with the Report's verdict judged on exactly ``constraints``.

    A final snapshot is judged from its exact counts when the run kept them for
    these constraints, else from its HDR histograms; a result summary only from
    its counts. :class:`ReportFileError` when a constraint cannot be judged.
    ``requirements``: judge validity (VALID/INVALID) on them too.
    """
    return _load(Path(path), tuple(constraints), ruleset, requirements)


def _judge_summary(
    p: Path,
    report: dict[str, Any],
    constraints: Sequence[Constraint],
    ruleset: str | None,
    requirements: Requirements | None = None,
) -> dict[str, Any]:
    counters = report.get("counters")
    if not isinstance(counters, dict):
        raise ReportFileError(f"{p}: result summary has no 'counters' map to judge from")
    state = report.get("state")
    try:
        verdict = verdict_block(
            {k: v for k, v in counters.items() if isinstance(v, int | float)},
            terminal=state in ("complete", "interrupted"),
            complete=report.get("complete") is True,
            incomplete_reason=report.get("incomplete_reason"),
            constraints=constraints,
            ruleset=ruleset,
            tracked_duration_s=_num(report.get("duration_s")),
            requirements=requirements,
        )
    except VerdictUndecided as exc:
        raise ReportFileError(
            f"{p}: cannot judge: {exc} (a result summary keeps no histograms: judge "
            "final_snapshot.json instead)"
        ) from None
    return {**report, "verdict": verdict}


_FILE_TYPES = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _not_regular(mode: int) -> str | None:
    """What a non-regular file is (``None`` for a regular one)."""
    if stat.S_ISREG(mode):
        return None
    return next((what for test, what in _FILE_TYPES if test(mode)), "not a regular file")


def _read_bounded(p: Path) -> bytes:
    """The bytes of the regular file ``p`` (a link to one is fine), at most
    :data:`MAX_REPORT_FILE_BYTES`; :class:`ReportFileError` for anything else.

    A FIFO or a device is refused from ``stat`` before it is opened (an open for
    reading would block on a FIFO with no writer); the open itself is
    non-blocking and checked again, so a swap in between cannot hang it either.
    """
    raw = b""
    try:
        what = _not_regular(os.stat(p).st_mode)
        if what is None:
            fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            try:
                info = os.fstat(fd)
                what = _not_regular(info.st_mode)
                if what is None:
                    if info.st_size > MAX_REPORT_FILE_BYTES:
                        raise ReportFileError(
                            f"{p} is {info.st_size:,} bytes: more than the "
                            f"{MAX_REPORT_FILE_BYTES:,} a final file can be"
                        )
                    with os.fdopen(os.dup(fd), "rb") as f:
                        raw = f.read(MAX_REPORT_FILE_BYTES + 1)
            finally:
                os.close(fd)
    except OSError as exc:
        raise ReportFileError(f"cannot read {p}: {exc.strerror or exc}") from exc
    if what is not None:
        raise ReportFileError(f"{p} is {what}, not a regular file: not read")
    if len(raw) > MAX_REPORT_FILE_BYTES:  # it grew while being read
        raise ReportFileError(f"{p} is larger than the {MAX_REPORT_FILE_BYTES:,} bytes allowed")
    return raw


def _depth_exceeds(data: Any, limit: int) -> bool:
    """Whether ``data`` nests containers deeper than ``limit`` (no recursion)."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > limit:
                return True
            children = value.values() if isinstance(value, dict) else value
            stack.extend((v, depth + 1) for v in children if isinstance(v, dict | list))
    return False


def _load(
    p: Path,
    constraints: Sequence[Constraint] | None,
    ruleset: str | None,
    requirements: Requirements | None = None,
) -> ReportDocument:
    raw = _read_bounded(p)
    try:
        data = json.loads(raw)
    except UnicodeDecodeError as exc:
        raise ReportFileError(f"{p} is not JSON text: {exc.reason}") from exc
    except json.JSONDecodeError as exc:
        raise ReportFileError(
            f"{p} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from exc
    except RecursionError:
        raise ReportFileError(f"{p} nests JSON deeper than the parser allows") from None
    except ValueError as exc:  # an integer longer than Python converts (4,300 digits)
        why = str(exc).split(";")[0]  # not the advice to raise the interpreter's limit
        raise ReportFileError(f"{p} holds a value that cannot be read: {why}") from None
    if _depth_exceeds(data, MAX_REPORT_DEPTH):
        raise ReportFileError(
            f"{p} nests JSON deeper than {MAX_REPORT_DEPTH} levels: not a final file"
        )
    try:
        kind = _kind_of(data)
    except ReportFileError as exc:
        raise ReportFileError(f"{p} is {exc}") from None
    if kind == "snapshot":
        from registry.report.summary import build_report

        try:
            report = build_report(
                data,
                source="file",
                constraints=constraints,
                ruleset=ruleset,
                requirements=requirements,
            )
        except VerdictUndecided as exc:
            raise ReportFileError(f"{p}: cannot judge: {exc}") from None
        except SnapshotDecodeError as exc:
            raise ReportFileError(f"{p}: {exc}") from exc
    else:
        report = from_upstream_summary(data) if is_upstream_summary(data) else data
        try:
            _check_summary(report)
        except ReportFileError as exc:
            raise ReportFileError(f"{p}: {exc}") from None
        if constraints is not None and (constraints or requirements is not None):
            report = _judge_summary(p, report, constraints, ruleset, requirements)
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
            Text(window),  # a Text: a name from the file is never read as rich markup
            *(format_count(_num(counts.get(k))) for k in ("issued", "completed", "failed")),
            format_count(_num(counts.get("in_flight"))),
        )
    return table


def _seconds(v: Any) -> str:
    n = _num(v)
    return "-" if n is None or not math.isfinite(n) else f"{n:,.2f} s"


def _per_second(count: Any, seconds: Any, what: str) -> str:
    """``= 634 completions ÷ 4.79 s``: how a rate was computed, from the Report's own fields."""
    n, d = _num(count), _num(seconds)
    if n is None or d is None or d <= 0:
        return ""
    return f"= {format_count(n)} {what} ÷ {d:,.2f} s"


def _headline(r: Mapping[str, Any]) -> Table:
    """The durations and rates, each with what it was computed from (SPEC §7)."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="dim", no_wrap=True)
    table.add_column(style="bold", no_wrap=True, justify="right")
    table.add_column(ratio=1)  # explanations wrap at spaces, never mid-word
    samples = r.get("samples") if isinstance(r.get("samples"), dict) else {}
    assert isinstance(samples, dict)
    tracked = samples.get("tracked") if isinstance(samples.get("tracked"), dict) else {}
    assert isinstance(tracked, dict)
    completed = tracked.get("completed")
    duration = r.get("duration_s")
    legacy = r.get("legacy_window_s")
    dim = "dim"
    table.add_row(
        "Duration",
        _seconds(duration),
        Text("tracked: tracking start → latest completion", style=dim),
    )
    table.add_row(
        "Total duration",
        _seconds(r.get("total_duration_s")),
        Text("session start → latest event", style=dim),
    )
    table.add_row(
        "QPS",
        format_rate(_num(r.get("qps")), ""),
        Text(_per_second(completed, duration, "completions"), style=dim),
    )
    table.add_row(
        "Tokens/s",
        format_rate(_num(r.get("tps")), ""),
        Text(_per_second(r.get("output_tokens"), duration, "output tokens"), style=dim),
    )
    n_legacy = _num(completed)
    table.add_row(
        "LoadGen QPS",
        format_rate(_num(r.get("qps_legacy")), ""),
        Text(
            (
                f"= ({format_count(n_legacy)} - 1) ÷ {_seconds(legacy)}: first issue → "
                "completion of the last issued (mlcommons/endpoints' qps)"
            )
            if n_legacy is not None and _num(legacy)
            else "MLPerf LoadGen's window (mlcommons/endpoints' qps)",
            style=dim,
        ),
    )
    table.add_row(
        "LoadGen tokens/s",
        format_rate(_num(r.get("tps_legacy")), ""),
        Text(_per_second(r.get("output_tokens"), legacy, "output tokens"), style=dim),
    )
    table.add_row(
        "Pending",
        format_count(_num(r.get("n_pending_tasks"))),
        Text("tokenizations not counted (n_pending_tasks)", style=dim),
    )
    return table


#: Why the achieved QPS is below the offered rate: said under the rates of every report.
QPS_NOTE = (
    "QPS counts the whole tracked window: below the offered rate by the ramp-up (nothing "
    "completes before the first latency) and the tail after the last issue."
)


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


def _run_line(r: Mapping[str, Any]) -> Text | None:
    """The run id and labels, for the header."""
    run = r.get("run") if isinstance(r.get("run"), dict) else {}
    assert isinstance(run, dict)
    parts: list[tuple[str, str] | str] = []
    if run.get("run_id"):
        parts += [("Run ", "dim"), (str(run["run_id"]), "bold")]
    labels = run.get("labels")
    if isinstance(labels, dict) and labels:
        parts += ["   ", " ".join(f"{k}={v}" for k, v in labels.items())]
    return Text.assemble(*parts) if parts else None


def _run_info(r: Mapping[str, Any], kind: Kind) -> Text | None:
    """The trailer: when the summary was made and by what (from the file, not from here)."""
    run = r.get("run") if isinstance(r.get("run"), dict) else {}
    assert isinstance(run, dict)
    parts = []
    # A report built here from a snapshot file was generated just now: not worth showing.
    if kind == "summary" and r.get("generated_at"):
        parts.append(f"generated {r['generated_at']}")
    # Built here from a snapshot file, the Report's ``versions`` are this renderer's:
    # the file's own (what wrote the numbers) are its ``snapshot_versions``.
    versions = run.get("snapshot_versions" if kind == "snapshot" else "versions")
    if isinstance(versions, dict):
        shown = [f"{k} {v}" for k, v in versions.items() if k in ("bench_metrics", "python") and v]
        if shown:
            parts.append(", ".join(shown))
    return Text("  ·  ".join(parts), style="dim") if parts else None


def render_report(doc: ReportDocument) -> RenderableType:
    """The Report of ``doc`` as a panel: state and verdict, counts, rates, quantile table."""
    # Every string the file holds is shown with its control characters escaped.
    r = terminal_safe_tree(doc.report)
    state = str(r.get("state", "?"))
    complete = r.get("complete") is True
    # "complete" twice would say nothing: the state, then what it means for the numbers.
    meaning = (
        Text("every event counted, nothing pending: exact", style="green")
        if complete
        else Text(" INCOMPLETE ", style="bold white on red")
    )
    parts: list[RenderableType] = [Text.assemble("State ", state_text(state), "  ", meaning)]
    if not complete and r.get("incomplete_reason"):
        parts.append(Text(f"Why: {r['incomplete_reason']}", style="red"))
    warnings = r.get("warnings")
    if isinstance(warnings, list):
        for w in warnings:
            if isinstance(w, dict) and isinstance(w.get("message"), str):
                parts.append(Text(f"Warning: {w['message']}", style="yellow"))
    run_line = _run_line(r)
    if run_line is not None:
        parts.append(run_line)
    source = r.get("source")
    if source and source != "file":
        parts.append(Text(f"Source: {source}", style="yellow"))
    parts += [
        Text(""),
        _headline(r),
        Text(QPS_NOTE, style="dim"),
        Text(""),
        _samples_table(r["samples"]),
    ]
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
    judged = r.get("verdict")
    if isinstance(judged, dict):
        parts += [Text(""), verdict_panel(from_report(judged))]
    trailer = _run_info(r, doc.kind)
    if trailer is not None:
        parts.append(trailer)
    title = Text.assemble((terminal_safe(doc.path.name), "bold"), f" — {_KIND_TEXT[doc.kind]}")
    return Panel(Group(*parts), title=title, title_align="left", border_style="blue")
