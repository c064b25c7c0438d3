"""Test support for the Grafana dashboards: their panel queries, made concrete.

Reads the generated dashboard JSON, lists every panel query, and replaces
Grafana's template variables the way Grafana's Prometheus datasource does, so
a test can parse a query or send it to a real Prometheus. Also a small HTTP
client for Prometheus' query API and a deadline poll. Test code only: it
never edits the dashboards.
"""

from __future__ import annotations

import json
import re
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
GRAFANA_DIR = REPO / "grafana"
DASHBOARD_PATH = GRAFANA_DIR / "dashboards" / "llm-benchmark-run.json"

#: What Grafana puts in for "All" of the instance variable (its allValue).
ALL_INSTANCES = ".*"


@dataclass(frozen=True)
class PanelQuery:
    panel_id: int
    title: str
    ref_id: str
    expr: str

    def label(self) -> str:
        return f"panel {self.panel_id} {self.title!r} query {self.ref_id}"


def load_dashboard(path: Path = DASHBOARD_PATH) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def iter_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows included, also those nested inside collapsed rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def panel_queries(dashboard: dict[str, Any]) -> list[PanelQuery]:
    return [
        PanelQuery(panel["id"], panel["title"], t["refId"], t["expr"])
        for panel in iter_panels(dashboard)
        for t in panel.get("targets", [])
        if "expr" in t
    ]


def _regular_escape(value: str) -> str:
    # Grafana's prometheusRegularEscape: single value, no regex escaping.
    return value.replace("\\", "\\\\").replace("'", "\\\\'")


def _regex_escape(value: str) -> str:
    # Grafana's prometheusSpecialRegexEscape: each regex metacharacter gets a
    # backslash, itself doubled inside the PromQL string literal.
    value = value.replace("\\", "\\\\\\\\")
    return re.sub(r"[$^*{}\[\]'+?.()|]", lambda m: "\\\\" + m.group(0), value)


def grafana_multi_value(values: Sequence[str]) -> str:
    """A multi-value variable in a regex matcher, as Grafana formats it."""
    escaped = [_regex_escape(v) for v in values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def substitute(
    expr: str,
    *,
    run_id: str,
    instance: str = ALL_INSTANCES,
    rate_interval: str = "1m",
    server_job: str = "vllm",
) -> str:
    """``expr`` with the dashboard's variables filled in.

    ``instance`` is the already formatted value (``ALL_INSTANCES`` or the
    result of :func:`grafana_multi_value`); ``server_job`` is the Server row's
    single-valued job.
    """
    values = {
        "run_id": _regular_escape(run_id),
        "instance": instance,
        "server_job": _regular_escape(server_job),
        "__rate_interval": rate_interval,
        "__interval": rate_interval,
        "__range": rate_interval,
    }

    def fill(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in values:
            raise KeyError(f"unknown Grafana variable ${name} in {expr!r}")
        return values[name]

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", fill, expr)


class Prometheus:
    """The few calls of Prometheus' HTTP API the tests need (loopback only)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")

    def _get(self, path: str, **params: str) -> Any:
        url = f"{self.base_url}{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.loads(response.read())

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base_url}/-/ready", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """Instant query; the result vector (empty list when nothing matched)."""
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        body = self._get("/api/v1/query", **params)
        if body.get("status") != "success":
            raise RuntimeError(f"query failed: {expr!r}: {body}")
        result = body["data"]["result"]
        # A scalar or string result is one value, not a vector.
        return result if isinstance(result, list) else [{"value": result}]


def wait_until(
    predicate: Callable[[], bool], timeout: float, interval: float = 0.2, what: str = ""
) -> None:
    """Poll ``predicate`` until it is true; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what or predicate}")
        time.sleep(interval)


def empty_panels(
    prometheus: Prometheus,
    dashboard: dict[str, Any],
    *,
    run_id: str,
    instance: str = ALL_INSTANCES,
    rate_interval: str,
    at: float | None = None,
    server_job: str = "vllm",
) -> list[str]:
    """Every panel query that returns no series, as readable labels."""
    empty = []
    for q in panel_queries(dashboard):
        expr = substitute(
            q.expr,
            run_id=run_id,
            instance=instance,
            rate_interval=rate_interval,
            server_job=server_job,
        )
        if not prometheus.query(expr, at):
            empty.append(f"{q.label()}: {expr}")
    return empty
