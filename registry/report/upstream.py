"""Reading mlcommons/endpoints' ``result_summary.json`` as our Report (SPEC §7).

Upstream's aggregator runs end with upstream's own ``Report`` (its keys:
``n_samples_issued``, ``ttft``, ``tpot``, ``latency``,
``output_sequence_lengths``, ``input_sequence_lengths``, ``qps`` over the
legacy LoadGen window, ``finish_reason_counts`` ...). :func:`from_upstream_summary`
turns one into a dict of our Report's shape, so ``bench-metrics report``
renders either. What upstream's file does not say stays ``null`` (the ``all``
window's counts, total duration, per-series counts come from the histogram
counts); nothing is invented. This module only converts; it never reads files.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Mapping
from typing import Any

from registry.report.summary import REPORT_SCHEMA_VERSION, _versions, empty_series_entry

__all__ = ["from_upstream_summary", "is_upstream_summary"]

# upstream's series key -> ours, with the unit of the values
_SERIES = (
    ("ttft", "ttft_ns", "ns"),
    ("tpot", "tpot_ns", "ns"),
    ("latency", "sample_latency_ns", "ns"),
    ("input_sequence_lengths", "isl", "tokens"),
    ("output_sequence_lengths", "osl", "tokens"),
)


def is_upstream_summary(data: Any) -> bool:
    """Whether ``data`` looks like upstream's ``Report.to_json`` output."""
    return (
        isinstance(data, Mapping)
        and "n_samples_issued" in data
        and "latency" in data
        and "samples" not in data
    )


def _num(v: Any) -> float | int | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    return v if math.isfinite(v) else None


def _series(entry: Any, unit: str) -> dict[str, Any]:
    if not isinstance(entry, Mapping) or not entry:
        return empty_series_entry(unit)
    hist = entry.get("histogram") or {}
    buckets = hist.get("buckets") or [] if isinstance(hist, Mapping) else []
    counts = hist.get("counts") or [] if isinstance(hist, Mapping) else []
    histogram = [
        {"lo": _num(b[0]), "hi": _num(b[1]), "count": int(c)}
        for b, c in zip(buckets, counts, strict=False)
        if isinstance(b, list | tuple) and len(b) == 2 and isinstance(c, int)
    ]
    es = entry.get("early_stopping_percentiles", entry.get("early_stopping"))
    return {
        "unit": unit,
        # upstream's series carry no count; its display histogram counts every value
        "count": sum(h["count"] for h in histogram),
        "min": _num(entry.get("min")),
        "max": _num(entry.get("max")),
        "avg": _num(entry.get("avg")),
        "median": _num(entry.get("median")),
        "std_dev": _num(entry.get("std_dev")),
        "percentiles": {str(k): _num(v) for k, v in (entry.get("percentiles") or {}).items()},
        "early_stopping_percentiles": (
            {str(k): _num(v) for k, v in es.items()} if isinstance(es, Mapping) else None
        ),
        "histogram": histogram,
    }


def from_upstream_summary(data: Mapping[str, Any]) -> dict[str, Any]:
    """Our Report's shape for upstream's ``result_summary.json`` ``data``."""
    state = data.get("state") if isinstance(data.get("state"), str) else "interrupted"
    complete = bool(data.get("complete"))
    duration_ns = _num(data.get("duration_ns"))
    legacy_ns = _num(data.get("legacy_loadgen_window_duration_ns"))
    issued = data.get("n_samples_issued")
    completed = data.get("n_samples_completed")
    series = {ours: _series(data.get(theirs), unit) for theirs, ours, unit in _SERIES}
    osl_total = _num((data.get("output_sequence_lengths") or {}).get("total"))
    qps, tps = _num(data.get("qps")), _num(data.get("tps"))
    tracked = {
        "issued": issued if isinstance(issued, int) else None,
        "completed": completed if isinstance(completed, int) else None,
        "failed": data.get("n_samples_failed")
        if isinstance(data.get("n_samples_failed"), int)
        else None,
        "in_flight": issued - completed
        if isinstance(issued, int) and isinstance(completed, int)
        else None,
    }
    unknown = {"issued": None, "completed": None, "failed": None, "in_flight": None}
    return {
        "schema_version": REPORT_SCHEMA_VERSION,
        "state": state,
        "complete": complete,
        "incomplete_reason": None if complete else "upstream's report says it is incomplete",
        "source": "file",
        "source_reason": "converted from mlcommons/endpoints' result_summary.json",
        "n_pending_tasks": 0,
        "samples": {"all": unknown, "tracked": tracked},
        "duration_s": duration_ns / 1e9 if duration_ns is not None else None,
        "total_duration_s": None,
        # upstream's qps/tps use the legacy LoadGen window when it reports one
        "qps": None if legacy_ns is not None else qps,
        "tps": None if legacy_ns is not None else tps,
        "legacy_window_s": legacy_ns / 1e9 if legacy_ns is not None else None,
        "qps_legacy": qps if legacy_ns is not None else None,
        "tps_legacy": tps if legacy_ns is not None else None,
        "output_tokens": int(osl_total) if osl_total is not None else None,
        "percentile_method": "numpy-lower",
        "finish_reasons": {
            str(k): int(v)
            for k, v in (data.get("finish_reason_counts") or {}).items()
            if isinstance(v, int)
        },
        "series": series,
        "counters": {},
        "snapshot": {"counter": 0, "timestamp_ns": 0},
        "run": {
            "run_id": None,
            "labels": {},
            "versions": _versions(),
            "upstream_version": data.get("version"),
            "run_config": data.get("run_config"),
        },
        "generated_at": _dt.datetime.now(_dt.UTC).isoformat().replace("+00:00", "Z"),
    }
