"""The generated Grafana dashboards: up to date, hygienic, and valid PromQL.

Queries are parsed with promql-parser (a port of Prometheus' own parser) after
Grafana's variables are filled in the way Grafana fills them.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import promql_parser
import pytest
import yaml

from registry.delivery.snapshot import DEFAULT_PERCENTILES
from tests.support.grafana_queries import (
    ALL_INSTANCES,
    DASHBOARD_PATH,
    GRAFANA_DIR,
    grafana_multi_value,
    iter_panels,
    load_dashboard,
    panel_queries,
    substitute,
)


def load_builder() -> ModuleType:
    path = GRAFANA_DIR / "build_dashboards.py"
    spec = importlib.util.spec_from_file_location("build_dashboards", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# The binding metric catalogue (briefs/catalogue.md), as the sample names Prometheus stores.
# Summaries are bench_<series>_summary_<unit> there; the exporter proposes "quantiles" for
# the infix (promtool lints "summary" in a name). The builder holds the one choice.
SUMMARY_INFIX = load_builder().SUMMARY_INFIX
assert SUMMARY_INFIX in ("summary", "quantiles")
_HISTOGRAM_SERIES = {
    "ttft": "seconds",
    "tpot": "seconds",
    "sample_latency": "seconds",
    "chunk_delta": "seconds",
    "isl": "tokens",
    "osl": "tokens",
}
CATALOGUE_SAMPLES = {
    "bench_samples_issued_total",
    "bench_samples_completed_total",
    "bench_samples_failed_total",
    "bench_finish_reason_total",
    "bench_output_tokens_total",
    "bench_tracked_duration_seconds",
    "bench_total_duration_seconds",
    "bench_session_state",
    "bench_pending_tasks",
    "bench_run_info",
    "bench_exporter_last_snapshot_age_seconds",
    "bench_exporter_snapshot_sequence",
    "bench_exporter_snapshots_received_total",
    "bench_exporter_decode_errors_total",
    "bench_exporter_up",
}
# The verdict families (SPEC §10; exporter/prometheus/naming.py VerdictNames).
CATALOGUE_SAMPLES |= {
    "bench_good_samples_total",
    "bench_good_output_tokens_total",
    "bench_goodput_samples_per_second",
    "bench_goodput_tokens_per_second",
    "bench_verdict_state",
    "bench_constraint_samples_total",
    "bench_constraint_violations_total",
    "bench_constraint_queries_needed",
    "bench_constraint_limit_seconds",
    "bench_constraint_target_ratio",
    "bench_constraint_state",
    # LoadGen's validity (issue 23)
    "bench_validity_state",
    "bench_validity_reason",
    "bench_validity_submittable",
    "bench_validity_duration_seconds",
    "bench_validity_min_duration_seconds",
    "bench_validity_duration_needed_seconds",
    "bench_validity_queries",
    "bench_validity_min_queries",
    "bench_validity_queries_needed",
    "bench_validity_eta_seconds",
}
#: The inference servers' histograms the Server row reads (vLLM's and SGLang's names).
SERVER_HISTOGRAMS = {
    f"{server}:{name}_seconds_{suffix}"
    for server in ("vllm", "sglang")
    for name in ("time_to_first_token", "inter_token_latency", "e2e_request_latency")
    for suffix in ("bucket", "sum", "count")
}
for _stem, _unit in _HISTOGRAM_SERIES.items():
    CATALOGUE_SAMPLES |= {f"bench_{_stem}_{_unit}_{s}" for s in ("bucket", "sum", "count")}
    CATALOGUE_SAMPLES |= {
        f"bench_{_stem}_{SUMMARY_INFIX}_{_unit}{s}" for s in ("", "_sum", "_count")
    }
#: Summary quantile labels: the default grid as fractions ("0.99", "0.5", "0.999").
GRID_QUANTILES = {f"{p / 100:g}" for p in DEFAULT_PERCENTILES}
WINDOWS = {"all", "tracked"}

RUN_SENTINEL = "RUN_SENTINEL"
INSTANCE_SENTINEL = "INSTANCE_SENTINEL"
SERVER_SENTINEL = "SERVER_SENTINEL"


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return load_dashboard()


@pytest.fixture(scope="module")
def provisioned_uid() -> str:
    config = yaml.safe_load(
        (GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )
    (source,) = config["datasources"]
    assert source["type"] == "prometheus"
    return str(source["uid"])


def content_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in iter_panels(dashboard) if p["type"] != "row"]


def selectors(expr: str) -> Iterator[promql_parser.VectorSelector]:
    found: list[promql_parser.VectorSelector] = []

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            found.append(node)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return iter(found)


def matchers(selector: promql_parser.VectorSelector) -> list[tuple[str, str, str]]:
    return [(m.name, str(m.op), m.value) for m in selector.matchers.matchers]


def server_names(selector: promql_parser.VectorSelector) -> set[str] | None:
    """The server metric names a Server-row selector picks by ``__name__``, else None."""
    for name, op, value in matchers(selector):
        if name == "__name__" and op == "MatchOp.Re":
            return set(value.split("|"))
    return None


def filled(expr: str) -> str:
    return substitute(
        expr, run_id=RUN_SENTINEL, instance=INSTANCE_SENTINEL, server_job=SERVER_SENTINEL
    )


# --- generated files -------------------------------------------------------------------------


def test_generated_dashboards_are_current() -> None:
    builder = load_builder()
    stale = [
        str(path.relative_to(GRAFANA_DIR.parent))
        for path, text in builder.rendered()
        if not path.exists() or path.read_text(encoding="utf-8") != text
    ]
    assert not stale, f"out of date, run `python grafana/build_dashboards.py`: {stale}"
    on_disk = {p.name for p in (GRAFANA_DIR / "dashboards").glob("*.json")}
    assert on_disk == set(builder.DASHBOARDS), "dashboards/ holds files the builder does not make"


def test_builder_check_mode_reports_a_stale_file(tmp_path, monkeypatch, capsys) -> None:
    builder = load_builder()
    monkeypatch.setattr(builder, "DASHBOARD_DIR", tmp_path)
    (tmp_path / "llm-benchmark-run.json").write_text("{}\n")
    assert builder.main(["--check"]) == 1
    assert "out of date" in capsys.readouterr().err
    assert builder.main([]) == 0
    assert builder.main(["--check"]) == 0
    assert (tmp_path / "llm-benchmark-run.json").read_text() == DASHBOARD_PATH.read_text()


# --- hygiene ---------------------------------------------------------------------------------


def test_panel_ids_are_unique(dashboard) -> None:
    ids = [p["id"] for p in iter_panels(dashboard)]
    assert all(isinstance(i, int) for i in ids)
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)


def test_panels_do_not_overlap(dashboard) -> None:
    taken: dict[tuple[int, int], str] = {}
    for panel in iter_panels(dashboard):
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in taken, f"{panel['title']!r} overlaps {taken[(x, y)]!r}"
                taken[(x, y)] = panel["title"]


def test_every_panel_uses_the_provisioned_datasource(dashboard, provisioned_uid) -> None:
    allowed = {"${datasource}", "$datasource", provisioned_uid}
    for panel in content_panels(dashboard):
        assert panel["datasource"]["uid"] in allowed, panel["title"]
        assert panel["targets"], f"{panel['title']!r} has no query"
        for t in panel["targets"]:
            assert t.get("datasource", panel["datasource"])["uid"] in allowed, panel["title"]
    (ds_var,) = [v for v in dashboard["templating"]["list"] if v["name"] == "datasource"]
    assert ds_var["current"]["value"] == provisioned_uid


def test_every_panel_has_a_unit_and_a_description(dashboard) -> None:
    for panel in content_panels(dashboard):
        unit = panel["fieldConfig"]["defaults"].get("unit")
        assert unit, f"{panel['title']!r} has no unit"
        if panel["type"] == "heatmap":
            assert panel["options"]["yAxis"].get("unit"), f"{panel['title']!r} y axis unit"
        description = panel.get("description", "")
        assert len(description) >= 40, f"{panel['title']!r} needs a description"


def test_no_hard_coded_instances(dashboard) -> None:
    host_port = re.compile(r"(localhost|127\.0\.0\.1|\b[\w.-]+:\d{2,5}\b)")
    for q in panel_queries(dashboard):
        assert not host_port.search(q.expr), q.label()
        for s in selectors(filled(q.expr)):
            if server_names(s) is not None:
                continue  # the inference server's metrics: picked by job, not instance
            on_instance = [m for m in matchers(s) if m[0] == "instance"]
            assert on_instance == [("instance", "MatchOp.Re", INSTANCE_SENTINEL)], q.label()


def test_every_selector_filters_run_and_instance(dashboard) -> None:
    for q in panel_queries(dashboard):
        found = list(selectors(filled(q.expr)))
        assert found, q.label()
        for s in found:
            m = matchers(s)
            if server_names(s) is not None:
                # the server's own metrics carry no run_id: the Server job variable picks them
                assert ("job", "MatchOp.Re", SERVER_SENTINEL) in m, f"{q.label()}: {s}"
                assert not {n for n, _, _ in m} & {"run_id", "instance"}, f"{q.label()}: {s}"
                continue
            assert ("run_id", "MatchOp.Re", RUN_SENTINEL) in m, f"{q.label()}: {s}"
            assert ("instance", "MatchOp.Re", INSTANCE_SENTINEL) in m, f"{q.label()}: {s}"


def test_queries_use_only_catalogue_names_and_labels(dashboard) -> None:
    labels = {"run_id", "instance", "window", "quantile", "reason", "series", "constraint"}
    for q in panel_queries(dashboard):
        for s in selectors(filled(q.expr)):
            picked = server_names(s)
            if picked is not None:
                assert picked <= SERVER_HISTOGRAMS, f"{q.label()}: {picked - SERVER_HISTOGRAMS}"
                continue
            assert s.name in CATALOGUE_SAMPLES, f"{q.label()}: {s.name} is not in the catalogue"
            for name, _op, value in matchers(s):
                if name == "window":
                    assert value in WINDOWS, q.label()
                if name == "quantile":
                    assert value in GRID_QUANTILES, q.label()
                if name == "series":
                    assert value in _HISTOGRAM_SERIES, q.label()
                assert name in labels, q.label()


# --- PromQL ----------------------------------------------------------------------------------

# Grafana passes the single-valued run_id into the regex matcher unescaped, so
# run ids are expected to be plain (letters, digits, "-", "_", ".", ":");
# docs/grafana.md says so. Instance values go through Grafana's regex escaping.
VARIABLE_VALUES = {
    "all instances": ("run-20260101T000000Z-1a2b", ALL_INSTANCES),
    "one instance": ("demo", grafana_multi_value(["demo:9464"])),
    "several instances": (
        "2f1c9a7e-6b0d-4c55-9d61-0c1f2e3a4b5c",
        grafana_multi_value(["10.0.0.1:9464", "gpu-box.example:9464", "odd|name[1]\\x"]),
    ),
}


@pytest.mark.parametrize("case", sorted(VARIABLE_VALUES))
def test_every_query_parses_as_promql(dashboard, case) -> None:
    run_id, instance = VARIABLE_VALUES[case]
    queries = panel_queries(dashboard)
    assert len(queries) >= 30
    for q in queries:
        expr = substitute(
            q.expr, run_id=run_id, instance=instance, rate_interval="20s", server_job="vllm"
        )
        try:
            promql_parser.parse(expr)
        except ValueError as exc:
            pytest.fail(f"{q.label()} does not parse: {exc}\n{expr}")


def test_substitution_matches_what_grafana_sends() -> None:
    # A regex matcher must match the literal instance names, not more.
    value = grafana_multi_value(["a.b:1", "c|d"])
    (s,) = selectors(substitute('up{instance=~"$instance"}', run_id="r", instance=value))
    pattern = matchers(s)[0][2]
    assert re.fullmatch(pattern, "a.b:1") and re.fullmatch(pattern, "c|d")
    assert not re.fullmatch(pattern, "axb:1")
    with pytest.raises(KeyError):
        substitute("rate(x[$__unknown])", run_id="r")


def test_a_broken_query_is_caught() -> None:
    # The parser really rejects what Prometheus would reject.
    with pytest.raises(ValueError):
        promql_parser.parse('sum(rate(bench_ttft_seconds_bucket{run_id=~"x"}[1m])')
    with pytest.raises(ValueError):
        promql_parser.parse('histogram_quantile(0.9, rate(bench_x{run_id=~"x"}))')


# --- content and variables -------------------------------------------------------------------


def test_variables_and_refresh(dashboard) -> None:
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert list(variables) == ["datasource", "run_id", "instance", "server_job"]
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["run_id"]["query"] == "label_values(bench_run_info, run_id)"
    instance = variables["instance"]
    assert instance["query"] == 'label_values(bench_run_info{run_id=~"$run_id"}, instance)'
    assert instance["multi"] and instance["includeAll"] and instance["allValue"] == ".*"
    server_job = variables["server_job"]
    assert "vllm:" in server_job["query"] and "sglang:" in server_job["query"]
    assert not server_job["multi"]
    for name in ("run_id", "instance", "server_job"):
        assert variables[name]["datasource"]["uid"] == "${datasource}"
        promql_parser.parse(
            re.sub(r"label_values\((.*), \w+\)", r"\1", variables[name]["query"]).replace(
                "$run_id", "r"
            )
        )
    assert dashboard["refresh"] == "5s"
    assert dashboard["title"] == "LLM benchmark run"


def test_dashboard_shows_what_the_issue_asks_for(dashboard) -> None:
    panels = content_panels(dashboard)
    titles = [p["title"] for p in panels]
    for title in ("Session state", "QPS", "Output tokens/s", "Completed", "Failed", "Pending"):
        assert title in titles
    rows = [p for p in iter_panels(dashboard) if p["type"] == "row"]
    assert rows[0]["title"] == "Verdict", "the verdict comes first"
    (overview,) = [r for r in rows if r["title"] == "Run overview"]
    stat_row = [p for p in panels if p["gridPos"]["y"] == overview["gridPos"]["y"] + 1]
    assert [p["type"] for p in stat_row] == ["stat"] * 6

    exprs = " ".join(q.expr for q in panel_queries(dashboard))
    for stem in ("ttft", "tpot", "sample_latency"):
        assert f"histogram_quantile(0.99, sum by (le) (rate(bench_{stem}_seconds_bucket" in exprs
        assert f'bench_{stem}_{SUMMARY_INFIX}_seconds{{quantile="0.99"' in exprs
    heatmaps = {
        t["expr"].split("{")[0].split("(")[-1]
        for p in panels
        if p["type"] == "heatmap"
        for t in p["targets"]
    }
    assert heatmaps == {f"bench_{s}_{u}_bucket" for s, u in _HISTOGRAM_SERIES.items()}, (
        "a heatmap per histogram"
    )
    for name in (
        "bench_finish_reason_total",
        "bench_samples_failed_total",
        "bench_exporter_up",
        "bench_exporter_last_snapshot_age_seconds",
        "bench_exporter_decode_errors_total",
        "bench_isl_tokens_bucket",
        "bench_osl_tokens_bucket",
    ):
        assert name in exprs
    units = {p["fieldConfig"]["defaults"]["unit"] for p in panels}
    assert {"s", "reqps"} <= units


def test_verdict_row_threshold_lines_and_server_row(dashboard) -> None:
    rows = [p for p in iter_panels(dashboard) if p["type"] == "row"]
    titles = [r["title"] for r in rows]
    assert titles[0] == "Verdict" and any(t.startswith("Server") for t in titles)
    by_title = {p["title"]: p for p in content_panels(dashboard)}
    for title in ("Verdict", "Constraint states", "Attainment", "Goodput", "Queries still needed"):
        assert by_title[title]["gridPos"]["y"] == rows[0]["gridPos"]["y"] + 1, title
    verdict_exprs = " ".join(t["expr"] for p in by_title.values() for t in p["targets"])
    for name in (
        "bench_verdict_state",
        "bench_constraint_state",
        "bench_constraint_violations_total",
        "bench_constraint_samples_total",
        "bench_goodput_samples_per_second",
        "bench_constraint_queries_needed",
    ):
        assert name in verdict_exprs
    # every latency panel draws the constraint limits of its series as dashed lines
    for stem, title in (
        ("ttft", "TTFT"),
        ("tpot", "TPOT"),
        ("sample_latency", "End-to-end latency"),
    ):
        for panel_title in (f"{title} p50 / p90 / p99", f"{title} across instances"):
            panel = by_title[panel_title]
            limits = [t for t in panel["targets"] if t["legendFormat"].startswith("limit")]
            assert [f'series="{stem}"' in t["expr"] for t in limits] == [True], panel_title
            assert any(
                o["matcher"]["options"] == "^limit .*" for o in panel["fieldConfig"]["overrides"]
            ), panel_title
    # the Server row: ours next to vLLM's and SGLang's own histograms, plus the difference
    for name in SERVER_HISTOGRAMS:
        if name.endswith("_bucket"):
            assert name in verdict_exprs, name
    server_panels = [p for t, p in by_title.items() if t.endswith("client vs server")]
    assert len(server_panels) == 3
    for p in server_panels:
        legends = [t["legendFormat"] for t in p["targets"]]
        assert "client - server (mean)" in legends and "server p99" in legends
        assert "network" in p["description"] and "queueing" in p["description"]


def test_whole_run_panels_add_every_load_generators_buckets(dashboard) -> None:
    """SPEC §11: Prometheus is the live distributed engine; the whole-run quantiles over
    all instances come from their cumulative buckets summed by ``le`` (no rate)."""
    exprs = [q.expr for q in panel_queries(dashboard)]
    for stem in ("ttft", "tpot", "sample_latency"):
        want = f"histogram_quantile(0.99, sum by (le) (bench_{stem}_seconds_bucket{{"
        assert any(e.startswith(want) for e in exprs), stem
