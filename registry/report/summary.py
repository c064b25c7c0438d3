"""The Report: ``result_summary.json``, the readable summary of a final snapshot (SPEC §7).

:func:`build_report` turns a snapshot (the struct or its dict form) into a
JSON-ready dict that follows ``registry/schemas/result_summary.schema.json``;
:func:`write_report` writes it atomically (tmp → fsync → rename → fsync dir).

The report is honest about where it came from: ``complete`` is true only for
a COMPLETE snapshot with no pending tasks, and otherwise
``incomplete_reason`` says why in plain words. It never invents numbers:
a counter the snapshot lacks is ``null``, a rate over a zero duration is
``null``, and non-finite floats become ``null`` (strict JSON).

It reads upstream's (mlcommons/endpoints) final files as well as ours and
reproduces upstream's own Report numbers where both have them: the legacy
LoadGen rates (``qps_legacy``/``tps_legacy``, upstream's ``qps``/``tps``), the
sample standard deviation, the early-stopping maps.

Building never touches the network; writing only touches the given path.
"""

from __future__ import annotations

import datetime as _dt
import functools
import importlib.metadata
import json
import math
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from registry.delivery.atomic_file import write_json_atomic
from registry.delivery.snapshot import MetricsSnapshot, SeriesStat, SessionState, percentile_key
from registry.delivery.snapshot_codec import SnapshotDecodeError, run_block, snapshot_from_dict
from registry.mlperf.requirements import Requirements, requirements_from_entry
from registry.mlperf.slo import Constraint
from registry.mlperf.verdict import verdict_block
from registry.schemas import RESULT_SUMMARY_SCHEMA_PATH

__all__ = [
    "REPORT_HTML_NAME",
    "REPORT_NAME",
    "REPORT_SCHEMA_VERSION",
    "SCHEMA_PATH",
    "SOURCES",
    "UPSTREAM_MODE_REPORT_NAME",
    "build_report",
    "load_schema",
    "write_report",
]

#: The report's file name in a run's output directory, beside the final snapshot.
REPORT_NAME = "result_summary.json"
#: Its name under upstream's ``--metrics-output-dir`` (``<report dir>/metrics``), where
#: upstream's benchmark writes its own, differently shaped ``result_summary.json`` under
#: ``performance/``: a name that cannot be mistaken for it.
UPSTREAM_MODE_REPORT_NAME = "bench_metrics_summary.json"
#: The shareable page ``--html`` writes beside the final files (exporter.html renders it).
REPORT_HTML_NAME = "report.html"
REPORT_SCHEMA_VERSION = 2
#: Where the snapshot behind a report came from, in the order SPEC §7 prefers them.
SOURCES: tuple[str, ...] = ("file", "terminal_frame", "latest_live")
SCHEMA_PATH = RESULT_SUMMARY_SCHEMA_PATH

_FINISH_PREFIX = "tracked_finish_reason_"
# Distribution names whose versions identify how a report was produced.
_VERSIONED = {
    "bench_metrics": "bench-metrics",
    "numpy": "numpy",
    "msgspec": "msgspec",
    "pyzmq": "pyzmq",
    "hdrhistogram": "hdrhistogram",
    "prometheus_client": "prometheus-client",
    "pyarrow": "pyarrow",
    "scipy": "scipy",
}
_SOURCE_TEXT = {
    "terminal_frame": "taken from the terminal frame of the snapshot stream, "
    "not from final_snapshot.json",
    "latest_live": "taken from the latest live snapshot of the stream: "
    "no final snapshot was available",
}


def load_schema() -> dict[str, Any]:
    """The JSON Schema that every report validates against."""
    with SCHEMA_PATH.open(encoding="utf-8") as f:
        schema: dict[str, Any] = json.load(f)
    return schema


def _finite(v: float | int | None) -> float | int | None:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return None
    return v


def _unit(name: str) -> str | None:
    if name.endswith("_ns"):
        return "ns"
    if name in ("isl", "osl") or name.endswith("_tokens"):
        return "tokens"
    return None


def _early_stopping_entry(s: SeriesStat) -> dict[str, float | None] | None:
    esp = s.early_stopping_percentiles
    return None if esp is None else {k: _finite(v) for k, v in esp.items()}


def empty_series_entry(unit: str | None, early_stopping: Any = None) -> dict[str, Any]:
    """The Report entry of a series without values (everything unknown is ``null``)."""
    return {
        "unit": unit,
        "count": 0,
        "min": None,
        "max": None,
        "avg": None,
        "median": None,
        "std_dev": None,
        "percentiles": {},
        "early_stopping_percentiles": early_stopping,
        "histogram": [],
    }


def _series_entry(s: SeriesStat) -> dict[str, Any]:
    if s.count == 0:
        return empty_series_entry(_unit(s.name), _early_stopping_entry(s))
    median = s.percentiles.get(percentile_key(50))
    return {
        "unit": _unit(s.name),
        "count": s.count,
        "min": _finite(s.min),
        "max": _finite(s.max),
        "avg": _finite(s.mean),
        "median": _finite(median),
        "std_dev": _finite(s.std_dev),
        "percentiles": {k: _finite(v) for k, v in s.percentiles.items()},
        "early_stopping_percentiles": _early_stopping_entry(s),
        "histogram": [
            {"lo": _finite(lo), "hi": _finite(hi), "count": n} for (lo, hi), n in s.histogram
        ],
    }


def _int_or_none(counters: Mapping[str, int | float], name: str) -> int | None:
    v = counters.get(name)
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return None
    return int(v)


def _window(counters: Mapping[str, int | float], prefix: str) -> dict[str, int | None]:
    issued = _int_or_none(counters, f"{prefix}_samples_issued")
    completed = _int_or_none(counters, f"{prefix}_samples_completed")
    failed = _int_or_none(counters, f"{prefix}_samples_failed")
    # Completions count failed samples too (SPEC §6), so in flight = issued - completed.
    in_flight = None
    if issued is not None and completed is not None:
        in_flight = issued - completed
    return {"issued": issued, "completed": completed, "failed": failed, "in_flight": in_flight}


def _output_tokens(snap: MetricsSnapshot, counters: Mapping[str, int | float]) -> int | None:
    """Our counter when the snapshot has it, else the ``osl`` total (upstream's source)."""
    if "tracked_output_tokens" in counters:
        return _int_or_none(counters, "tracked_output_tokens")
    osl = snap.series.get("osl")
    if osl is None or osl.count == 0 or _finite(osl.total) is None:
        return None
    return int(osl.total)


def _legacy_rates(
    completed: int | None, output_tokens: int | None, window_ns: int | None
) -> tuple[float | None, float | None]:
    """Upstream's legacy LoadGen QPS/TPS: ``(completed - 1) / window`` and ``tokens / window``.

    Both ``None`` unless the window is positive and at least two samples completed
    (QPS over ``[first issue, last completion)`` is undefined below two).
    """
    if completed is None or completed < 2 or not window_ns or window_ns <= 0:
        return None, None
    window_s = window_ns / 1e9
    tps = output_tokens / window_s if output_tokens is not None else None
    return (completed - 1) / window_s, tps


def _run_entry(
    file_run: Mapping[str, Any] | None, run_id: str | None, labels: Mapping[str, str] | None
) -> dict[str, Any]:
    """The file's run block with the caller's run id / labels over it and our versions."""
    run = dict(file_run or {})
    file_versions = run.pop("versions", None)
    file_labels = run.get("labels")
    merged_labels = dict(file_labels) if isinstance(file_labels, Mapping) else {}
    merged_labels.update(labels or {})
    file_run_id = run.get("run_id")
    run["run_id"] = (
        run_id if run_id is not None else (str(file_run_id) if file_run_id is not None else None)
    )
    run["labels"] = {str(k): str(v) for k, v in merged_labels.items()}
    run["versions"] = _versions()
    if file_versions is not None:
        # what produced the snapshot; ``versions`` is what built this report
        run["snapshot_versions"] = file_versions
    return run


def _rate(amount: int | None, seconds: float | None) -> float | None:
    if amount is None or not seconds or seconds <= 0:
        return None
    return amount / seconds


def _seconds(ns: int | None) -> float | None:
    return ns / 1e9 if ns is not None else None


@functools.cache
def _installed_versions() -> tuple[tuple[str, str | None], ...]:
    # importlib.metadata parses every package's METADATA: once per process is enough
    return tuple(_versions_uncached().items())


def _versions() -> dict[str, str | None]:
    return dict(_installed_versions())


def _versions_uncached() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for key, dist in _VERSIONED.items():
        try:
            out[key] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[key] = None
    return out


def _incomplete_reason(
    snap: MetricsSnapshot, source: str, reason: str | None, run: Mapping[str, Any] | None
) -> tuple[bool, str | None]:
    why: list[str] = []
    # the final file's run block (a snapshot from the stream carries the stream's in slot 5)
    if run is None:
        run = snap.run if isinstance(snap.run, Mapping) else {}
    if snap.state is SessionState.INTERRUPTED and run.get("interrupted_by") == "producer_gone":
        why.append(
            "the event producer went away before the session ended (its connection closed "
            "and did not come back within the producer timeout)"
        )
    elif snap.state is SessionState.INTERRUPTED:
        why.append("the run was interrupted (SIGTERM/SIGINT) before the session ended")
    elif snap.state is not SessionState.COMPLETE:
        why.append(f"the snapshot is in state {snap.state.value!r}: the session had not finished")
    if snap.n_pending_tasks:
        n = snap.n_pending_tasks
        why.append(
            f"{n} tokenization{'s' if n != 1 else ''} had not finished when the final snapshot "
            f"was taken; the token series (isl, osl, tpot_ns) miss {'them' if n != 1 else 'it'}"
        )
    complete = not why
    if not complete and source != "file":
        text = _SOURCE_TEXT[source]
        why.append(f"{text} ({reason})" if reason else text)
    return complete, ("; ".join(why) if why else None)


def _warnings(
    snap: MetricsSnapshot, counters: Mapping[str, int | float], tracked: Mapping[str, int | None]
) -> list[dict[str, Any]]:
    """What a reader must know before trusting some figures: data-quality findings that
    do not make the run incomplete (SPEC §6, §7). Each is counted, never guessed."""
    out: list[dict[str, Any]] = []
    before = _int_or_none(counters, "samples_complete_before_chunk")
    if before:
        out.append(
            {
                "code": "complete_before_chunk",
                "count": before,
                "message": (
                    f"{before} tracked sample{'s were' if before != 1 else ' was'} stamped "
                    "complete before one of their own chunk receives (the producer stamps "
                    "completions and chunks with different clocks or processes, as "
                    "mlcommons/endpoints' client does). They are counted as upstream counts "
                    "them, but their tpot_ns (possibly negative) and chunk_delta_ns figures "
                    "are unreliable"
                ),
            }
        )
    in_flight = tracked.get("in_flight")
    if snap.is_terminal and in_flight and in_flight > 0:
        out.append(
            {
                "code": "never_completed",
                "count": in_flight,
                "message": (
                    f"{in_flight} tracked sample{'s were' if in_flight != 1 else ' was'} "
                    "issued but never completed before the session ended: qps, tps and "
                    "sample_latency_ns exclude them (their isl, ttft_ns and chunk_delta_ns "
                    "values are included)"
                ),
            }
        )
    return out


def build_report(
    snapshot: MetricsSnapshot | Mapping[str, Any],
    *,
    source: str = "file",
    reason: str | None = None,
    run_id: str | None = None,
    labels: Mapping[str, str] | None = None,
    run: Mapping[str, Any] | None = None,
    generated_at: _dt.datetime | None = None,
    constraints: Sequence[Constraint] | None = None,
    ruleset: str | None = None,
    requirements: Requirements | None = None,
) -> dict[str, Any]:
    """The Report of ``snapshot`` (a :class:`MetricsSnapshot` or its dict form).

    ``source``: one of :data:`SOURCES`; ``reason``: why the preferred source
    was not used (shown in the report). ``run``: the final file's run block
    (read from the dict form itself when not given); ``run_id`` and
    ``labels`` go over it. ``SnapshotDecodeError`` for a dict that is not a
    snapshot, ``ValueError`` for an unknown source.
    """
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    if isinstance(snapshot, MetricsSnapshot):
        snap = snapshot
    else:
        snap = snapshot_from_dict(snapshot)
        if run is None:
            run = run_block(snapshot)
    if run is not None and not isinstance(run, Mapping):
        raise SnapshotDecodeError(f"run block must be an object, got {run!r}")
    method = run.get("percentile_method") if run is not None else None
    counters = snap.counters
    complete, incomplete_reason = _incomplete_reason(snap, source, reason, run)
    tracked_ns = _int_or_none(counters, "tracked_duration_ns")
    total_ns = _int_or_none(counters, "total_duration_ns")
    duration_s = _seconds(tracked_ns)
    output_tokens = _output_tokens(snap, counters)
    tracked = _window(counters, "tracked")
    legacy_ns = _int_or_none(counters, "legacy_loadgen_window_duration_ns")
    qps_legacy, tps_legacy = _legacy_rates(tracked["completed"], output_tokens, legacy_ns)
    when = generated_at or _dt.datetime.now(_dt.UTC)
    if ruleset is None and constraints is None and run is not None:
        block = run.get("verdict")
        if isinstance(block, Mapping) and isinstance(block.get("ruleset"), str):
            ruleset = block["ruleset"]
        if isinstance(block, Mapping) and requirements is None:
            requirements = requirements_from_entry(block.get("requirements"))
    verdict = verdict_block(
        counters,
        terminal=snap.is_terminal,
        complete=complete,
        incomplete_reason=incomplete_reason,
        series=snap.series,
        constraints=constraints,
        ruleset=ruleset,
        tracked_duration_s=duration_s,
        requirements=requirements,
    )
    report = {
        "schema_version": REPORT_SCHEMA_VERSION,
        "state": snap.state.value,
        "complete": complete,
        "incomplete_reason": incomplete_reason,
        "source": source,
        "source_reason": reason,
        "n_pending_tasks": snap.n_pending_tasks,
        "samples": {"all": _window(counters, "total"), "tracked": tracked},
        "duration_s": duration_s,
        "total_duration_s": _seconds(total_ns),
        "qps": _rate(tracked["completed"], duration_s),
        "tps": _rate(output_tokens, duration_s),
        "legacy_window_s": _seconds(legacy_ns),
        "qps_legacy": qps_legacy,
        "tps_legacy": tps_legacy,
        "output_tokens": output_tokens,
        "percentile_method": str(method) if method is not None else None,
        "finish_reasons": {
            name.removeprefix(_FINISH_PREFIX): int(v)
            for name, v in counters.items()
            if name.startswith(_FINISH_PREFIX) and _finite(v) is not None
        },
        "warnings": _warnings(snap, counters, tracked),
        "series": {s.name: _series_entry(s) for s in snap.series.values()},
        "counters": {name: _finite(v) for name, v in counters.items()},
        "snapshot": {"counter": snap.counter, "timestamp_ns": snap.timestamp_ns},
        "run": _run_entry(run, run_id, labels),
        "generated_at": when.astimezone(_dt.UTC).isoformat().replace("+00:00", "Z"),
    }
    if verdict is not None:
        report["verdict"] = verdict
    return report


def write_report(path: str | Path, report: Mapping[str, Any]) -> None:
    """Write ``report`` to ``path`` atomically as strict JSON (never half-written)."""
    write_json_atomic(path, dict(report))
