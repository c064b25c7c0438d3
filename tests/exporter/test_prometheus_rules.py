"""prometheus/rules/: promtool checks them, its unit tests pass, and they read what we export.

``promtool check rules`` and ``promtool test rules`` (Debian package ``prometheus``) are the
judges; they skip with a reason when promtool is absent. The rules' metric names are
checked against the exposition of a real run with constraints, so a renamed family cannot
leave a rule that silently matches nothing.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml

from exporter.prometheus.collector import SnapshotCollector
from registry import MetricsRegistry, SessionState
from registry.aggregator import AggregatorMetrics
from registry.mlperf import build_constraints
from registry.mlperf.requirements import requirements_for
from tests.support.exporter_support import openmetrics_exposition, samples

REPO = Path(__file__).resolve().parents[2]
RULES_DIR = REPO / "prometheus" / "rules"
RULES = RULES_DIR / "bench-metrics.rules.yml"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (Debian package prometheus)"
)


def promtool(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


@needs_promtool
def test_promtool_check_rules_passes() -> None:
    done = promtool("check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


@needs_promtool
def test_promtool_unit_tests_of_the_rules_pass() -> None:
    tests = sorted((RULES_DIR / "tests").glob("*.test.yml"))
    assert tests, "prometheus/rules/tests/ holds the rules' unit tests"
    done = promtool("test", "rules", *(t.name for t in tests), cwd=RULES_DIR / "tests")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


@needs_promtool
def test_promtool_catches_a_broken_rule(tmp_path: Path) -> None:
    broken = tmp_path / "broken.rules.yml"
    broken.write_text(
        "groups:\n  - name: x\n    rules:\n      - record: a:b:c\n        expr: sum(rate(x[1m])\n"
    )
    assert promtool("check", "rules", str(broken)).returncode != 0


def _rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def _selector_names(expr: str) -> set[str]:
    names: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.add(node.name)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


def test_the_rules_read_only_what_a_run_with_constraints_exports() -> None:
    reg = MetricsRegistry()
    metrics = AggregatorMetrics(
        reg,
        streaming=True,
        constraints=build_constraints("llama2-70b", ["latency:p99<=5s"]),
        requirements=requirements_for("llama2-70b"),
    )
    metrics.judge_sample(
        failed=False, ttft_ns=10**8, tpot_ns=5e6, latency_ns=10**9, output_tokens=10
    )
    for name, value in (("ttft_ns", 10**8), ("tpot_ns", 5e6), ("sample_latency_ns", 10**9)):
        reg.record(name, value)
    metrics.refresh_durations()
    collector = SnapshotCollector(labels={"run_id": "r"})
    collector.update(reg.build_snapshot(state=SessionState.LIVE, n_pending_tasks=0))
    exported = {s.name for s in samples(openmetrics_exposition(collector))}
    recorded = {r["record"] for r in _rules() if "record" in r}
    read = set().union(*(_selector_names(r["expr"]) for r in _rules()))
    outside = {"up"}  # Prometheus' own scrape health
    missing = read - exported - recorded - outside
    assert not missing, f"rules read metrics no exporter serves: {sorted(missing)}"
    for rule in _rules():
        if "record" in rule:
            level, _metric, _ops = rule["record"].split(":")  # level:metric:operations
            assert level and _metric and _ops, rule["record"]
        else:
            assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
            assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_prometheus_config_loads_the_rules() -> None:
    config = yaml.safe_load((REPO / "prometheus" / "prometheus.yml").read_text())
    patterns = config["rule_files"]
    assert all(not p.startswith("/") for p in patterns), "relative: the compose mount agrees"
    found = {p for pattern in patterns for p in (REPO / "prometheus").glob(pattern)}
    assert found == {RULES}, "the unit tests under rules/tests/ are not loaded as rules"
