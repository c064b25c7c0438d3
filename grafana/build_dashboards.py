"""Generate the Grafana dashboards of bench-metrics from code.

Run ``python grafana/build_dashboards.py`` after changing this file; it
rewrites ``grafana/dashboards/*.json`` and a test fails while the committed
files differ from what this module builds. ``--check`` only compares.

Every query is built on the binding metric catalogue (namespace ``bench``)
and filters ``{run_id=~"$run_id", instance=~"$instance"}`` so one dashboard
serves any run and any set of exporters; the Server row's queries of the
inference server's own metrics (vLLM, SGLang) filter ``{job=~"$server_job"}``.
This module is a build tool, not part of the installed package: it must never
import the package, talk to a server, or write anywhere but
``grafana/dashboards/``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

DASHBOARD_DIR = Path(__file__).resolve().parent / "dashboards"

#: The provisioned datasource (grafana/provisioning/datasources/prometheus.yml).
DATASOURCE_UID = "bench-prometheus"
#: Panels and targets point at the datasource variable, whose default is the provisioned one.
DS: dict[str, str] = {"type": "prometheus", "uid": "${datasource}"}

#: The filter every selector carries; Grafana fills in the variables.
RUN = 'run_id=~"$run_id", instance=~"$instance"'

#: Custom Grafana units: Grafana has no built-in token units.
TOKENS = "suffix: tok"
TOKENS_PER_S = "suffix: tok/s"

#: The two windows of the sample counters (catalogue: window="all" | "tracked").
ALL = 'window="all"'
TRACKED = 'window="tracked"'

#: Summary families are ``bench_<series>_quantiles_<unit>`` (promtool lints a metric type
#: such as "summary" inside a metric name, so the exporter says "quantiles").
SUMMARY_INFIX = "quantiles"

#: The summary quantiles shown (catalogue: quantile labels are fractions of the snapshot grid).
QUANTILES = (("0.5", "p50"), ("0.9", "p90"), ("0.99", "p99"))

#: The inference server's own histograms for the Server row: vLLM's and SGLang's names
#: (vllm/v1/metrics/loggers.py, python/sglang/srt/metrics/collector.py), by our series.
SERVER_HISTOGRAMS = {
    "ttft": ("vllm:time_to_first_token_seconds", "sglang:time_to_first_token_seconds"),
    "tpot": ("vllm:inter_token_latency_seconds", "sglang:inter_token_latency_seconds"),
    "sample_latency": ("vllm:e2e_request_latency_seconds", "sglang:e2e_request_latency_seconds"),
}
#: The one filter every server selector carries (the server_job variable).
SERVER = 'job=~"$server_job"'

#: Colours of the verdict states (bench_verdict_state / bench_constraint_state).
VERDICT_COLORS = {
    "pending": "yellow",
    "on_track": "green",
    "failing": "red",
    "pass": "blue",
    "fail": "dark-red",
    "invalid": "dark-red",
}
#: Colours of LoadGen's validity states (bench_validity_state).
VALIDITY_COLORS = {
    "pending": "yellow",
    "on_track": "green",
    "failing": "red",
    "valid": "blue",
    "invalid": "dark-red",
}

Json = dict[str, Any]


def sel(metric: str, extra: str = "") -> str:
    """``metric{extra, run_id=~…, instance=~…}``: the one way queries pick series."""
    matchers = f"{extra}, {RUN}" if extra else RUN
    return f"{metric}{{{matchers}}}"


def rate(metric: str, extra: str = "") -> str:
    return f"rate({sel(metric, extra)}[$__rate_interval])"


def server_rate(stem: str, suffix: str) -> str:
    """rate() of the inference server's histogram for ``stem`` (vLLM's or SGLang's name)."""
    names = "|".join(f"{n}_{suffix}" for n in SERVER_HISTOGRAMS[stem])
    return f'rate({{__name__=~"{names}", {SERVER}}}[$__rate_interval])'


def limit_line(stem: str) -> tuple[str, str]:
    """The configured limits on a series, one line per constraint (threshold lines)."""
    limits = sel("bench_constraint_limit_seconds", f'series="{stem}"')
    return f"max by (constraint) ({limits})", "limit {{constraint}}"


def summary(stem: str, unit: str) -> str:
    """The summary family of series ``stem``: ``bench_<stem>_<SUMMARY_INFIX>_<unit>``."""
    return f"bench_{stem}_{SUMMARY_INFIX}_{unit}"


def quantile_lines(summary_metric: str) -> list[tuple[str, str]]:
    """p50/p90/p99 of a summary family, one line per instance (summaries do not add up)."""
    return [
        (sel(summary_metric, f'quantile="{q}"'), f"{label} {{{{instance}}}}")
        for q, label in QUANTILES
    ]


class Layout:
    """Hands out unique panel ids and flows panels left to right, row by row."""

    WIDTH = 24

    def __init__(self) -> None:
        self._next_id = 1
        self.x = 0
        self.y = 0
        self._line_height = 0

    def next_id(self) -> int:
        panel_id = self._next_id
        self._next_id += 1
        return panel_id

    def place(self, w: int, h: int) -> Json:
        if self.x + w > self.WIDTH:
            self.newline()
        pos = {"h": h, "w": w, "x": self.x, "y": self.y}
        self.x += w
        self._line_height = max(self._line_height, h)
        return pos

    def newline(self) -> None:
        self.y += self._line_height
        self.x = 0
        self._line_height = 0


def target(expr: str, legend: str = "", ref: str = "A", **extra: Any) -> Json:
    t: Json = {"datasource": DS, "expr": expr, "legendFormat": legend or "__auto", "refId": ref}
    t.update(extra)
    return t


def targets(*pairs: tuple[str, str], **extra: Any) -> list[Json]:
    """Several (expr, legend) queries with refIds A, B, C…"""
    return [target(e, lg, chr(ord("A") + i), **extra) for i, (e, lg) in enumerate(pairs)]


def thresholds(*steps: tuple[float | None, str]) -> Json:
    return {
        "mode": "absolute",
        "steps": [{"color": color, "value": value} for value, color in steps],
    }


GREEN_ONLY = thresholds((None, "green"))


def dashed_limit_lines(panel: Json) -> None:
    """Draw the ``limit ...`` series of ``panel`` as dashed red threshold lines."""
    panel["fieldConfig"]["overrides"].append(
        {
            "matcher": {"id": "byRegexp", "options": "^limit .*"},
            "properties": [
                {"id": "color", "value": {"fixedColor": "red", "mode": "fixed"}},
                {"id": "custom.lineStyle", "value": {"dash": [10, 10], "fill": "dash"}},
                {"id": "custom.fillOpacity", "value": 0},
                {"id": "custom.lineWidth", "value": 2},
            ],
        }
    )


def state_colors(panel: Json, colors: dict[str, str], *, regex: bool = False) -> None:
    """Show a stat panel as the name of the state it holds (an instant query), on a
    background coloured by that state."""
    panel["options"]["textMode"] = "name"
    panel["options"]["colorMode"] = "background"
    panel["targets"][0].update({"instant": True, "range": False})
    panel["fieldConfig"]["overrides"] = [
        {
            "matcher": {
                "id": "byRegexp" if regex else "byName",
                "options": f".*: {name}$" if regex else name,
            },
            "properties": [{"id": "color", "value": {"fixedColor": color, "mode": "fixed"}}],
        }
        for name, color in colors.items()
    ]


class Dashboard:
    """Collects panels for one dashboard; each add_* method returns the panel it added."""

    def __init__(self) -> None:
        self.layout = Layout()
        self.panels: list[Json] = []

    def _panel(self, kind: str, title: str, description: str, w: int, h: int, unit: str) -> Json:
        panel: Json = {
            "datasource": DS,
            "description": description,
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "gridPos": self.layout.place(w, h),
            "id": self.layout.next_id(),
            "options": {},
            "targets": [],
            "title": title,
            "type": kind,
        }
        self.panels.append(panel)
        return panel

    def row(self, title: str) -> None:
        self.layout.newline()
        self.panels.append(
            {
                "collapsed": False,
                "gridPos": self.layout.place(Layout.WIDTH, 1),
                "id": self.layout.next_id(),
                "panels": [],
                "title": title,
                "type": "row",
            }
        )
        self.layout.newline()

    def stat(
        self,
        title: str,
        description: str,
        expr: str,
        unit: str,
        *,
        w: int = 4,
        h: int = 4,
        legend: str = "",
        steps: Json = GREEN_ONLY,
        decimals: int | None = None,
        sparkline: bool = True,
    ) -> Json:
        p = self._panel("stat", title, description, w, h, unit)
        defaults = p["fieldConfig"]["defaults"]
        defaults.update({"color": {"mode": "thresholds"}, "mappings": [], "thresholds": steps})
        if decimals is not None:
            defaults["decimals"] = decimals
        p["options"] = {
            "colorMode": "value",
            "graphMode": "area" if sparkline else "none",
            "justifyMode": "auto",
            "orientation": "auto",
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "showPercentChange": False,
            "textMode": "auto",
            "wideLayout": True,
        }
        p["targets"] = [target(expr, legend)]
        return p

    def timeseries(
        self,
        title: str,
        description: str,
        queries: list[tuple[str, str]],
        unit: str,
        *,
        w: int = 8,
        h: int = 8,
        log_scale: bool = False,
        min_zero: bool = True,
    ) -> Json:
        p = self._panel("timeseries", title, description, w, h, unit)
        custom: Json = {
            "drawStyle": "line",
            "fillOpacity": 10,
            "lineWidth": 1,
            "showPoints": "never",
            "spanNulls": False,
        }
        if log_scale:
            custom["scaleDistribution"] = {"log": 10, "type": "log"}
        defaults = p["fieldConfig"]["defaults"]
        defaults.update({"color": {"mode": "palette-classic"}, "custom": custom})
        if min_zero and not log_scale:
            defaults["min"] = 0
        p["options"] = {
            "legend": {
                "calcs": [],
                "displayMode": "list",
                "placement": "bottom",
                "showLegend": True,
            },
            "tooltip": {"mode": "multi", "sort": "desc"},
        }
        p["targets"] = targets(*queries)
        return p

    def heatmap(
        self,
        title: str,
        description: str,
        bucket_metric: str,
        y_unit: str,
        *,
        w: int = 8,
        h: int = 8,
    ) -> Json:
        p = self._panel("heatmap", title, description, w, h, y_unit)
        p["options"] = {
            "calculate": False,
            "cellGap": 1,
            "cellValues": {"unit": "short"},
            "color": {
                "exponent": 0.5,
                "fill": "dark-orange",
                "mode": "scheme",
                "reverse": False,
                "scale": "exponential",
                "scheme": "Oranges",
                "steps": 64,
            },
            "filterValues": {"le": 1e-09},
            "legend": {"show": True},
            "rowsFrame": {"layout": "auto"},
            "tooltip": {"mode": "single", "showColorScale": False, "yHistogram": True},
            "yAxis": {"axisPlacement": "left", "reverse": False, "unit": y_unit},
        }
        expr = f"sum by (le) ({rate(bucket_metric)})"
        p["targets"] = [target(expr, "{{le}}", format="heatmap")]
        return p

    def bargauge(
        self,
        title: str,
        description: str,
        expr: str,
        legend: str,
        unit: str,
        *,
        w: int = 8,
        h: int = 8,
        heatmap_format: bool = False,
    ) -> Json:
        p = self._panel("bargauge", title, description, w, h, unit)
        defaults = p["fieldConfig"]["defaults"]
        defaults.update(
            {"color": {"mode": "continuous-BlYlRd"}, "min": 0, "thresholds": GREEN_ONLY}
        )
        p["options"] = {
            "displayMode": "gradient",
            "maxVizHeight": 300,
            "minVizHeight": 10,
            "minVizWidth": 0,
            "namePlacement": "auto",
            "orientation": "horizontal",
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "showUnfilled": True,
            "sizing": "auto",
            "valueMode": "color",
        }
        extra: Json = {"instant": True, "range": False}
        if heatmap_format:
            extra["format"] = "heatmap"
        p["targets"] = [target(expr, legend, **extra)]
        return p

    def table(self, title: str, description: str, expr: str, *, w: int, h: int = 4) -> Json:
        p = self._panel("table", title, description, w, h, "none")
        p["options"] = {"cellHeight": "sm", "showHeader": True}
        p["targets"] = [target(expr, "", format="table", instant=True, range=False)]
        p["transformations"] = [
            {
                "id": "organize",
                "options": {
                    "excludeByName": {"Time": True, "Value": True, "__name__": True, "job": True},
                    "indexByName": {"run_id": 0, "instance": 1, "model": 2, "scenario": 3},
                    "renameByName": {"version": "bench-metrics"},
                },
            }
        ]
        return p


# --- the main dashboard -------------------------------------------------------------------------

LATENCY_SERIES = (
    # (catalogue stem, title, what it measures)
    ("ttft", "TTFT", "time to first token: first streamed chunk minus request issue"),
    ("tpot", "TPOT", "time per output token after the first: (complete - first chunk) / (n - 1)"),
    ("sample_latency", "End-to-end latency", "request issue to completion"),
)


def verdict(d: Dashboard) -> None:
    d.row("Verdict")
    run_state = d.stat(
        "Verdict",
        "Will this run pass its latency constraints (--ruleset / --slo)? pending: within the "
        "limits so far but not enough samples yet for MLPerf early stopping; on_track: would "
        "pass if it ended now; failing: a constraint's percentile is over its limit now; pass / "
        "fail: the final decision, as MLPerf LoadGen's Server scenario decides it; invalid: "
        "every latency constraint passes but LoadGen's min duration or min queries does not. "
        "One entry per state held by a selected instance. No data: the run has no constraints.",
        f"count by (bench_verdict_state) ({sel('bench_verdict_state')} == 1)",
        "none",
        legend="{{bench_verdict_state}}",
        sparkline=False,
    )
    state_colors(run_state, VERDICT_COLORS)
    per_constraint = d.stat(
        "Constraint states",
        "The state of each constraint (its key: series and percentile, e.g. ttft_p99), worst "
        "first when instances disagree. Exact: counted per sample as it completes, not from "
        "histograms.",
        f"count by (constraint, bench_constraint_state) ({sel('bench_constraint_state')} == 1)",
        "none",
        w=6,
        legend="{{constraint}}: {{bench_constraint_state}}",
        sparkline=False,
    )
    state_colors(per_constraint, VERDICT_COLORS, regex=True)
    d.stat(
        "Attainment",
        "Share of the judged samples within each constraint's limit, over the whole run so far "
        "and all selected instances: 1 - violations / samples. A p99 constraint needs at least "
        "99 % (red below).",
        f"1 - sum by (constraint) ({sel('bench_constraint_violations_total')})"
        f" / (sum by (constraint) ({sel('bench_constraint_samples_total')}) > 0)",
        "percentunit",
        w=5,
        legend="{{constraint}}",
        decimals=2,
        steps=thresholds((None, "red"), (0.99, "green")),
    )
    d.stat(
        "Goodput",
        "Good samples per second of tracked duration, summed over the selected instances: a "
        "good sample succeeded and met every latency limit it has a value for.",
        f"sum({sel('bench_goodput_samples_per_second')})",
        "reqps",
        w=3,
    )
    d.stat(
        "Queries still needed",
        "More samples each constraint needs before the run can pass with the violations it has "
        "(MLPerf early stopping at confidence 0.99: max(0, h(t) + t - n)); 0 once there are "
        "enough. Largest among the selected instances.",
        f"max by (constraint) ({sel('bench_constraint_queries_needed')})",
        "short",
        w=6,
        legend="{{constraint}}",
        decimals=0,
    )
    d.layout.newline()
    d.timeseries(
        "Attainment and target",
        "Attainment of each constraint over time (all selected instances) against the share "
        "its percentile asks for (dashed).",
        [
            (
                f"1 - sum by (constraint) ({sel('bench_constraint_violations_total')})"
                f" / (sum by (constraint) ({sel('bench_constraint_samples_total')}) > 0)",
                "{{constraint}}",
            ),
            (
                f"max by (constraint) ({sel('bench_constraint_target_ratio')})",
                "target {{constraint}}",
            ),
        ],
        "percentunit",
        min_zero=False,
    )
    d.timeseries(
        "Goodput rate",
        "Good samples per second over the last rate interval against all successful tracked "
        "completions: the gap is samples that succeeded but missed a latency limit.",
        [
            (f"sum({rate('bench_good_samples_total')})", "good"),
            (f"sum({rate('bench_samples_completed_total', TRACKED)})", "completed"),
        ],
        "reqps",
    )
    d.layout.newline()
    validity = d.stat(
        "LoadGen validity",
        "VALID or INVALID as MLPerf LoadGen decides it (mlperf_log_summary.txt): performance "
        "constraints, min duration, min queries and early stopping must all be satisfied. "
        "Live: pending, on_track or failing. No data: the run has no ruleset and no "
        "--min-duration / --min-queries.",
        f"count by (bench_validity_state) ({sel('bench_validity_state')} == 1)",
        "none",
        w=4,
        legend="{{bench_validity_state}}",
        sparkline=False,
    )
    state_colors(validity, VALIDITY_COLORS)
    reasons = d.stat(
        "LoadGen reasons",
        "Each of LoadGen's four reasons: 1 satisfied, 0 not (the worst among the selected "
        "instances). Offline has no performance constraint.",
        f"min by (reason) ({sel('bench_validity_reason')})",
        "none",
        w=8,
        legend="{{reason}}",
        sparkline=False,
        steps=thresholds((None, "red"), (1, "green")),
    )
    reasons["targets"][0].update({"instant": True, "range": False})
    d.stat(
        "Duration still needed",
        "Time the run still needs before LoadGen's min duration is met (Server: to the last "
        "issue; Offline: to the latest completion). Largest among the selected instances.",
        f"max({sel('bench_validity_duration_needed_seconds')})",
        "s",
        w=4,
    )
    d.stat(
        "Validity queries still needed",
        "Queries still needed: the larger of LoadGen's min query count and what early stopping "
        "needs. Largest among the selected instances.",
        f"max({sel('bench_validity_queries_needed')})",
        "short",
        w=4,
        decimals=0,
    )
    d.stat(
        "ETA to valid",
        "When both the duration and the queries still needed will be reached at the current "
        "rate (no value once nothing is needed).",
        f"max({sel('bench_validity_eta_seconds')})",
        "s",
        w=4,
    )
    d.layout.newline()
    d.timeseries(
        "Queries still needed over time",
        "Samples each constraint still needs for MLPerf early stopping, over time: it falls as "
        "samples arrive within the limit and jumps with every violation.",
        [(f"max by (constraint) ({sel('bench_constraint_queries_needed')})", "{{constraint}}")],
        "short",
    )


def overview(d: Dashboard) -> None:
    d.row("Run overview")
    state = d.stat(
        "Session state",
        "State of the run as the exporter last saw it: initialize, live, draining, then complete "
        "(every sample accounted for) or interrupted (stopped early by a signal). One entry per "
        "state held by at least one selected instance.",
        f"count by (bench_session_state) ({sel('bench_session_state')} == 1)",
        "none",
        legend="{{bench_session_state}}",
        sparkline=False,
    )
    state_colors(
        state,
        {
            "initialize": "text",
            "live": "green",
            "draining": "orange",
            "complete": "blue",
            "interrupted": "red",
        },
    )

    per_instance_duration = f"max by (instance) ({sel('bench_tracked_duration_seconds')} > 0)"
    d.stat(
        "QPS",
        "Completed requests per second over the tracked part of the run: successful tracked "
        "completions divided by the tracked duration, summed over the selected instances. The "
        "same figure as `qps` in result_summary.json once the run is complete.",
        "sum(sum by (instance) ("
        + sel("bench_samples_completed_total", TRACKED)
        + f") / {per_instance_duration})",
        "reqps",
    )
    d.stat(
        "Output tokens/s",
        "Output tokens per second over the tracked part of the run: tracked output tokens "
        "divided by the tracked duration, summed over the selected instances (`tps` in the "
        "report).",
        "sum(sum by (instance) ("
        + sel("bench_output_tokens_total", TRACKED)
        + f") / {per_instance_duration})",
        TOKENS_PER_S,
    )
    d.stat(
        "Completed",
        "Tracked samples that completed successfully (performance-tracking window only), summed "
        "over the selected instances.",
        f"sum({sel('bench_samples_completed_total', TRACKED)})",
        "short",
        decimals=0,
    )
    d.stat(
        "Failed",
        "Tracked samples that failed: an error event arrived while the request was in flight. "
        "Their latencies are not recorded. Red as soon as one fails.",
        f"sum({sel('bench_samples_failed_total', TRACKED)})",
        "short",
        decimals=0,
        steps=thresholds((None, "green"), (1, "red")),
    )
    d.stat(
        "Pending",
        "Work whose metrics could not be recorded. In the final snapshot: tracked samples still in "
        "flight when the session ended, so their latencies are missing from the report. Non-zero "
        "at the end means the run is not complete.",
        f"sum({sel('bench_pending_tasks')})",
        "short",
        decimals=0,
        steps=thresholds((None, "green"), (1, "orange")),
    )
    d.layout.newline()

    d.stat(
        "Issued (all)",
        "Every request issued so far, inside or outside the tracking window. Issued = completed "
        "+ failed + in flight.",
        f"sum({sel('bench_samples_issued_total', ALL)})",
        "short",
        decimals=0,
    )
    d.stat(
        "In flight",
        "Requests issued but neither completed nor failed yet (all windows): issued - completed - "
        "failed.",
        f"sum({sel('bench_samples_issued_total', ALL)})"
        f" - sum({sel('bench_samples_completed_total', ALL)})"
        f" - sum({sel('bench_samples_failed_total', ALL)})",
        "short",
        decimals=0,
    )
    d.stat(
        "Failure ratio",
        "Tracked failures divided by tracked issued requests.",
        f"sum({sel('bench_samples_failed_total', TRACKED)})"
        f" / sum({sel('bench_samples_issued_total', TRACKED)})",
        "percentunit",
        steps=thresholds((None, "green"), (0.01, "orange"), (0.05, "red")),
    )
    d.stat(
        "Tracked duration",
        "Start of performance tracking to the last tracked completion (summed over tracking "
        "windows): the denominator of QPS and tokens/s. Longest among the selected instances.",
        f"max({sel('bench_tracked_duration_seconds')})",
        "s",
    )
    d.table(
        "Run",
        "The run's metadata from bench_run_info: run id, exporter instance, model and scenario "
        "(from the run's --label model=/scenario=, empty when not given), bench-metrics version.",
        sel("bench_run_info"),
        w=8,
    )


def throughput(d: Dashboard) -> None:
    d.row("Throughput")
    d.timeseries(
        "Request rate",
        "Requests per second over the last rate interval, all windows, summed over the selected "
        "instances: issued, completed successfully, failed.",
        [
            (f"sum({rate('bench_samples_issued_total', ALL)})", "issued"),
            (f"sum({rate('bench_samples_completed_total', ALL)})", "completed"),
            (f"sum({rate('bench_samples_failed_total', ALL)})", "failed"),
        ],
        "reqps",
        w=12,
    )
    d.timeseries(
        "Output token rate",
        "Output tokens per second of tracked successful completions over the last rate interval, "
        "per instance and in total.",
        [
            (f"sum({rate('bench_output_tokens_total', TRACKED)})", "total"),
            (
                f"sum by (instance) ({rate('bench_output_tokens_total', TRACKED)})",
                "{{instance}}",
            ),
        ],
        TOKENS_PER_S,
        w=12,
    )


def summary_latency(d: Dashboard) -> None:
    d.row("Latency: run quantiles (exact at the end)")
    for stem, title, meaning in LATENCY_SERIES:
        panel = d.timeseries(
            f"{title} p50 / p90 / p99",
            f"{title}, {meaning}. Quantiles over every tracked sample of the run so far, as the "
            "registry computes them (HDR while live, exact from the raw values once the run is "
            "complete), one line per selected instance: summary quantiles cannot be added "
            "across instances; see the histogram row for that. Dashed red: the limits of the "
            "run's constraints on this series.",
            [*quantile_lines(summary(stem, "seconds")), limit_line(stem)],
            "s",
        )
        dashed_limit_lines(panel)


def histogram_latency(d: Dashboard) -> None:
    d.row("Latency: recent quantiles across instances (histogram_quantile)")
    for stem, title, meaning in LATENCY_SERIES:
        buckets = f"sum by (le) ({rate(f'bench_{stem}_seconds_bucket')})"
        panel = d.timeseries(
            f"{title} across instances",
            f"{title}, {meaning}. Quantiles of the samples completed during the last rate "
            "interval, over all selected instances together (histogram_quantile over the summed "
            "bucket rates; accurate to the fixed bucket bounds, which put every limit exactly on "
            "a bound), and the mean from _sum/_count. Dashed red: the constraint limits.",
            [
                *[(f"histogram_quantile({q}, {buckets})", label) for q, label in QUANTILES],
                (
                    f"sum({rate(f'bench_{stem}_seconds_sum')})"
                    f" / sum({rate(f'bench_{stem}_seconds_count')})",
                    "mean",
                ),
                limit_line(stem),
            ],
            "s",
        )
        dashed_limit_lines(panel)


def run_across_instances(d: Dashboard) -> None:
    d.row("Latency: whole run across load generators (summed buckets)")
    for stem, title, meaning in LATENCY_SERIES:
        buckets = f"sum by (le) ({sel(f'bench_{stem}_seconds_bucket')})"
        d.timeseries(
            f"{title}, all load generators",
            f"{title}, {meaning}. Quantiles over every sample of the run so far from all "
            "selected instances together: histogram_quantile over the cumulative bucket counts "
            "summed across instances (every instance exports the same fixed bounds), accurate "
            "to those bounds. The exact figures of the union come from `bench-metrics merge` "
            "over the instances' output directories at the end.",
            [
                *[(f"histogram_quantile({q}, {buckets})", label) for q, label in QUANTILES],
                (
                    f"sum({sel(f'bench_{stem}_seconds_sum')})"
                    f" / sum({sel(f'bench_{stem}_seconds_count')})",
                    "mean",
                ),
            ],
            "s",
        )


def distributions(d: Dashboard) -> None:
    d.row("Latency distributions")
    for stem, title, meaning in LATENCY_SERIES:
        d.heatmap(
            f"{title} heatmap",
            f"{title}, {meaning}. Each column is one rate interval; the colour of a cell is the "
            "number of samples per second that fell in that latency bucket, over the selected "
            "instances.",
            f"bench_{stem}_seconds_bucket",
            "s",
        )


SERVER_SERIES = (
    # (our stem, title, what the server measures)
    (
        "ttft",
        "TTFT",
        "from the request's arrival in the server to its first token (vLLM, SGLang)",
    ),
    (
        "tpot",
        "TPOT vs inter-token latency",
        "the gap between consecutive output tokens (vLLM's and SGLang's inter-token latency); "
        "ours is each request's (completion - first chunk) / (tokens - 1), so the two agree "
        "on average",
    ),
    (
        "sample_latency",
        "End-to-end latency",
        "from the request's arrival in the server to its last token",
    ),
)


def server(d: Dashboard) -> None:
    d.row("Server: client (bench-metrics) vs the inference server's own histograms")
    for stem, title, server_meaning in SERVER_SERIES:
        ours = f"sum by (le) ({rate(f'bench_{stem}_seconds_bucket')})"
        theirs = f"sum by (le) ({server_rate(stem, 'bucket')})"
        client_mean = (
            f"sum({rate(f'bench_{stem}_seconds_sum')}) / sum({rate(f'bench_{stem}_seconds_count')})"
        )
        server_mean = f"sum({server_rate(stem, 'sum')}) / sum({server_rate(stem, 'count')})"
        d.timeseries(
            f"{title}: client vs server",
            f"{title} as the benchmark client measured it (bench-metrics, the selected run and "
            f"instances) next to what the inference server of job $server_job measured, "
            f"{server_meaning}, when the same Prometheus scrapes the server (vLLM or SGLang "
            "/metrics). p50 and p99 over the last rate interval, from each side's histogram "
            "buckets. client - server (mean) is the time spent outside the server: the network "
            "and any queueing in front of it (proxies, load balancers, the client's own event "
            "loop). No server data: pick the server's job in the Server job variable.",
            [
                (f"histogram_quantile(0.5, {ours})", "client p50"),
                (f"histogram_quantile(0.99, {ours})", "client p99"),
                (f"histogram_quantile(0.5, {theirs})", "server p50"),
                (f"histogram_quantile(0.99, {theirs})", "server p99"),
                (f"{client_mean} - {server_mean}", "client - server (mean)"),
            ],
            "s",
            min_zero=False,
        )


def chunk_gaps(d: Dashboard) -> None:
    d.row("Streaming: inter-chunk gaps")
    d.timeseries(
        "Inter-chunk gap p50 / p90 / p99",
        "Gap between consecutive received chunks of a streamed response (first chunk to the "
        "next, and so on; completion is not a chunk). Run quantiles per selected instance.",
        quantile_lines(summary("chunk_delta", "seconds")),
        "s",
        w=12,
    )
    d.heatmap(
        "Inter-chunk gap heatmap",
        "Gaps between consecutive chunks per latency bucket: colour is chunks per second in "
        "that bucket during each rate interval, over the selected instances.",
        "bench_chunk_delta_seconds_bucket",
        "s",
        w=12,
    )


def lengths(d: Dashboard) -> None:
    d.row("Input / output lengths")
    for stem, title, meaning in (
        ("isl", "Input length", "prompt tokens per tracked request, recorded at issue"),
        ("osl", "Output length", "output tokens per successful tracked request"),
    ):
        d.bargauge(
            f"{title} distribution (whole run)",
            f"{title}: {meaning}. Number of requests per length bucket over the whole run so "
            "far, summed over the selected instances (bucket upper bounds on the left).",
            f"sum by (le) ({sel(f'bench_{stem}_tokens_bucket')})",
            "{{le}}",
            "short",
            w=8,
            heatmap_format=True,
        )
        d.timeseries(
            f"{title} p50 / p90 / p99",
            f"{title}: {meaning}. Run quantiles per selected instance.",
            quantile_lines(summary(stem, "tokens")),
            TOKENS,
            w=4,
        )
    d.layout.newline()
    for stem, title in (("isl", "Input length"), ("osl", "Output length")):
        d.heatmap(
            f"{title} heatmap",
            f"{title} in tokens per bucket over time: colour is requests per second in that "
            "length bucket during each rate interval, over the selected instances.",
            f"bench_{stem}_tokens_bucket",
            TOKENS,
            w=12,
        )


def outcomes(d: Dashboard) -> None:
    d.row("Outcomes")
    d.bargauge(
        "Finish reasons",
        "Successful tracked completions by the finish_reason the endpoint reported (stop, "
        "length, tool_calls, content_filter, function_call, other), summed over the selected "
        "instances.",
        f"sum by (reason) ({sel('bench_finish_reason_total')})",
        "{{reason}}",
        "short",
    )
    d.timeseries(
        "Failures",
        "Failed requests per second (all windows) over the last rate interval, in total and per "
        "selected instance.",
        [
            (f"sum({rate('bench_samples_failed_total', ALL)})", "total"),
            (f"sum by (instance) ({rate('bench_samples_failed_total', ALL)})", "{{instance}}"),
        ],
        "reqps",
    )
    d.timeseries(
        "Pending and in flight",
        "Requests in flight (issued, not yet completed or failed) and the pending-task count "
        "the aggregator reports; pending work at the end of a run has no metrics.",
        [
            (
                f"sum({sel('bench_samples_issued_total', ALL)})"
                f" - sum({sel('bench_samples_completed_total', ALL)})"
                f" - sum({sel('bench_samples_failed_total', ALL)})",
                "in flight",
            ),
            (f"sum({sel('bench_pending_tasks')})", "pending"),
        ],
        "short",
    )


def exporter_health(d: Dashboard) -> None:
    d.row("Exporter health")
    d.stat(
        "Exporter up",
        "1 when every selected exporter holds a snapshot fresher than its stale limit; 0 when "
        "at least one is serving stale data (its source stopped publishing).",
        f"min({sel('bench_exporter_up')})",
        "bool",
        h=8,
        steps=thresholds((None, "red"), (1, "green")),
        sparkline=False,
    )
    d.stat(
        "Snapshot sequence",
        "The `counter` of the last snapshot each exporter received (highest among the selected "
        "instances). It rises with every registry tick; a drop means the publisher restarted.",
        f"max({sel('bench_exporter_snapshot_sequence')})",
        "none",
        h=8,
        decimals=0,
    )
    d.timeseries(
        "Snapshot age",
        "Seconds since each exporter received its last snapshot, measured on the exporter's "
        "clock at scrape time. Grows steadily when the source stops publishing.",
        [(sel("bench_exporter_last_snapshot_age_seconds"), "{{instance}}")],
        "s",
        w=6,
    )
    d.timeseries(
        "Snapshots received",
        "Snapshots per second each exporter received from its source over the last rate interval.",
        [
            (
                f"sum by (instance) ({rate('bench_exporter_snapshots_received_total')})",
                "{{instance}}",
            )
        ],
        "suffix: snapshots/s",
        w=5,
    )
    d.timeseries(
        "Decode errors",
        "Malformed snapshot frames each exporter counted and skipped, cumulative. Anything above "
        "0 means a publisher sends frames this exporter cannot read.",
        [(f"sum by (instance) ({sel('bench_exporter_decode_errors_total')})", "{{instance}}")],
        "short",
        w=5,
    )


#: Jobs that expose a vLLM or SGLang end-to-end latency histogram.
SERVER_JOB_QUERY = (
    'label_values({__name__=~"vllm:e2e_request_latency_seconds_count'
    '|sglang:e2e_request_latency_seconds_count"}, job)'
)


def templating() -> Json:
    return {
        "list": [
            {
                "current": {"selected": False, "text": "Prometheus", "value": DATASOURCE_UID},
                "hide": 0,
                "includeAll": False,
                "label": "Data source",
                "multi": False,
                "name": "datasource",
                "options": [],
                "query": "prometheus",
                "refresh": 1,
                "regex": "",
                "type": "datasource",
            },
            {
                "current": {},
                "datasource": DS,
                "definition": "label_values(bench_run_info, run_id)",
                "hide": 0,
                "includeAll": False,
                "label": "Run",
                "multi": False,
                "name": "run_id",
                "options": [],
                "query": "label_values(bench_run_info, run_id)",
                "refresh": 2,
                "regex": "",
                "sort": 0,
                "type": "query",
            },
            {
                "allValue": ".*",
                "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
                "datasource": DS,
                "definition": 'label_values(bench_run_info{run_id=~"$run_id"}, instance)',
                "hide": 0,
                "includeAll": True,
                "label": "Instance",
                "multi": True,
                "name": "instance",
                "options": [],
                "query": 'label_values(bench_run_info{run_id=~"$run_id"}, instance)',
                "refresh": 2,
                "regex": "",
                "sort": 1,
                "type": "query",
            },
            {
                "current": {},
                "datasource": DS,
                "definition": SERVER_JOB_QUERY,
                "description": "The Prometheus job that scrapes the inference server (vLLM or "
                "SGLang) this run benchmarks, for the Server row.",
                "hide": 0,
                "includeAll": False,
                "label": "Server job",
                "multi": False,
                "name": "server_job",
                "options": [],
                "query": SERVER_JOB_QUERY,
                "refresh": 2,
                "regex": "",
                "sort": 1,
                "type": "query",
            },
        ]
    }


def llm_benchmark_run() -> Json:
    d = Dashboard()
    verdict(d)
    overview(d)
    throughput(d)
    summary_latency(d)
    histogram_latency(d)
    run_across_instances(d)
    distributions(d)
    server(d)
    chunk_gaps(d)
    lengths(d)
    outcomes(d)
    exporter_health(d)
    return {
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "description": "Live metrics of one LLM-inference benchmark run from bench-metrics "
        "exporters: the MLPerf verdict, throughput, TTFT/TPOT/end-to-end latency (beside the "
        "inference server's own), streaming gaps, lengths, outcomes and exporter health.",
        "editable": True,
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,
        "id": None,
        "links": [],
        "panels": d.panels,
        "refresh": "5s",
        "schemaVersion": 39,
        "tags": ["bench-metrics", "llm", "benchmark"],
        "templating": templating(),
        "time": {"from": "now-15m", "to": "now"},
        "timepicker": {"refresh_intervals": ["5s", "10s", "30s", "1m", "5m"]},
        "timezone": "browser",
        "title": "LLM benchmark run",
        "uid": "bench-llm-run",
        "version": 1,
    }


#: file name -> builder; the provider loads every JSON file in grafana/dashboards/.
DASHBOARDS = {"llm-benchmark-run.json": llm_benchmark_run}


def render(dashboard: Json) -> str:
    """The exact text written to disk (stable, so the up-to-date test can compare bytes)."""
    return json.dumps(dashboard, indent=2, ensure_ascii=False) + "\n"


def rendered() -> Iterator[tuple[Path, str]]:
    for name, build in DASHBOARDS.items():
        yield DASHBOARD_DIR / name, render(build())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="only report dashboards that are out of date"
    )
    args = parser.parse_args(argv)
    stale = []
    for path, text in rendered():
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        stale.append(path)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
    if args.check and stale:
        for path in stale:
            print(f"out of date: {path} (run python grafana/build_dashboards.py)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
