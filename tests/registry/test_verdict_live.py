"""The verdict with a real Prometheus: two demo runs, one passing and one failing (SPEC §8, §10).

One real Prometheus (Debian ``prometheus``) loads ``prometheus/rules/bench-metrics.rules.yml``,
evaluates it every second and scrapes, every second, two real ``bench-metrics demo`` runs
judged against the MLPerf ``llama2-70b-interactive`` Server limits (TTFT p99 <= 450 ms,
TPOT p99 <= 40 ms): the nominal profile (passes) and ``--ttft-median 300`` (about a fifth
of its TTFTs are over 450 ms: fails). Both run at once to keep the suite fast. Checked
through the Prometheus HTTP API:

* the verdict families move during the run (samples judged rise, queries still needed fall
  to 0, the state goes from pending to on_track to pass);
* ``BenchVerdictFailing`` fires for the failing run and no verdict alert ever names the
  passing one;
* ``histogram_quantile`` over each run's final fixed buckets is within 10 % of the exact
  p50, p90 and p99 of TTFT, TPOT and latency in its final_snapshot.json (printed).
"""

from __future__ import annotations

import json
import shutil
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from registry import snapshot_from_dict
from tests.support.cli_process import bench_metrics
from tests.support.exporter_support import Child, free_tcp_port
from tests.support.helpers import wait_until

PROMETHEUS = shutil.which("prometheus")
RULES = Path(__file__).resolve().parents[2] / "prometheus" / "rules" / "bench-metrics.rules.yml"

pytestmark = [
    pytest.mark.prometheus,
    pytest.mark.skipif(
        PROMETHEUS is None, reason="prometheus is not installed (Debian: prometheus)"
    ),
]

RULESET = "llama2-70b-interactive"
RUNS = {
    "verdict-pass": [],
    "verdict-fail": ["--ttft-median", "300"],
}
DURATION_S = 8
QPS = 100


class PromAPI:
    def __init__(self, base: str) -> None:
        self.base = base

    def _get(self, path: str, **params: Any) -> Any:
        url = f"{self.base}{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=5) as resp:
            body = json.loads(resp.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        return list(self._get("/api/v1/query", query=expr)["result"])

    def value(self, expr: str) -> float | None:
        result = self.query(expr)
        return float(result[0]["value"][1]) if len(result) == 1 else None

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base}/-/ready", timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False


@dataclass
class Stack:
    prom: PromAPI
    out: dict[str, Path]


def _prometheus(workdir: Path, targets: list[str]) -> tuple[Child, str]:
    port = free_tcp_port()
    config = workdir / "prometheus.yml"
    config.write_text(
        "global:\n"
        "  scrape_interval: 1s\n"
        "  scrape_timeout: 900ms\n"
        "  evaluation_interval: 1s\n"
        f"rule_files: ['{RULES}']\n"
        "scrape_configs:\n"
        "  - job_name: bench-metrics\n"
        "    static_configs:\n"
        f"      - targets: {targets!r}\n"
    )
    child = Child(
        [
            str(PROMETHEUS),
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ]
    )
    return child, f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("verdict-live")
    ports = {run: free_tcp_port() for run in RUNS}
    prometheus, url = _prometheus(workdir, [f"127.0.0.1:{p}" for p in ports.values()])
    prom = PromAPI(url)
    demos: list[Child] = []
    try:
        assert wait_until(prom.ready, 30), "\n".join(prometheus.err[-20:])
        out = {run: workdir / run for run in RUNS}
        for run, extra in RUNS.items():
            demos.append(
                Child(
                    [
                        *bench_metrics(), "demo", "--no-tui", "--duration", str(DURATION_S),
                        "--qps", str(QPS), "--seed", "1", "--run-id", run,
                        "--ruleset", RULESET, "--min-duration", "1s", *extra,
                        "--listen", f"127.0.0.1:{ports[run]}", "--linger", "60",
                        "--output-dir", str(out[run]),
                    ]
                )
            )  # fmt: skip
        for run in RUNS:
            done = f'bench_session_state{{run_id="{run}",bench_session_state="complete"}}'
            ok = wait_until(lambda q=done: prom.value(q) == 1.0, DURATION_S + 60, 0.2)
            assert ok, f"{run} never completed:\n" + "\n".join(d.err[-15] for d in demos)
        yield Stack(prom, out)
    finally:
        for d in demos:
            d.stop()
        prometheus.stop()


def test_verdict_families_move_during_the_run(stack: Stack) -> None:
    prom, run = stack.prom, 'run_id="verdict-pass"'
    ttft = f'{run},constraint="ttft_p99"'
    # 459 needed before the first sample, fewer with each one within the limit, then 0
    needed = prom.value(f"max_over_time(bench_constraint_queries_needed{{{ttft}}}[10m])")
    assert needed is not None and 0 < needed <= 459, needed
    assert prom.value(f"bench_constraint_queries_needed{{{ttft}}}") == 0.0
    first = prom.value(f"min_over_time(bench_constraint_samples_total{{{ttft}}}[10m])")
    last = prom.value(f"bench_constraint_samples_total{{{ttft}}}")
    assert first is not None and last is not None and first < 459 < last, (first, last)
    for state in ("pending", "on_track"):
        seen = f'max_over_time(bench_verdict_state{{{run},bench_verdict_state="{state}"}}[10m])'
        assert prom.value(seen) == 1.0, state
    assert prom.value(f'bench_verdict_state{{{run},bench_verdict_state="pass"}}') == 1.0
    assert prom.value(f"bench_constraint_violations_total{{{ttft}}}") == 0.0
    goodput = prom.value(f"bench_goodput_samples_per_second{{{run}}}")
    assert goodput is not None and 0.5 * QPS < goodput < 1.5 * QPS, goodput
    # the recording rules see the same
    assert (
        prom.value(
            f'run_id_constraint:bench_constraint_attainment:ratio{{{run},constraint="ttft_p99"}}'
        )
        == 1.0
    )
    # and the failing run is failing, then fails
    fail = 'run_id="verdict-fail"'
    assert prom.value(f'bench_verdict_state{{{fail},bench_verdict_state="fail"}}') == 1.0
    seen = f'max_over_time(bench_verdict_state{{{fail},bench_verdict_state="failing"}}[10m])'
    assert prom.value(seen) == 1.0


def test_alert_fires_for_the_failing_run_and_not_the_passing_one(stack: Stack) -> None:
    prom = stack.prom
    firing = 'ALERTS{alertname="BenchVerdictFailing",alertstate="firing",run_id="verdict-fail"}'
    assert wait_until(lambda: prom.query(firing), 30, 0.25), prom.query("ALERTS")
    attainment = 'ALERTS{alertname="BenchConstraintAttainmentBelowTarget",run_id="verdict-fail"}'
    assert prom.query(attainment), "the attainment alert is at least pending for the failing run"
    # no verdict alert, pending or firing, ever named the passing run (the exporter-health
    # alerts may go pending while its exporter waits for the first snapshot)
    verdict_alerts = 'alertname=~"BenchVerdictFailing|BenchConstraintAttainmentBelowTarget"'
    passing = f'count_over_time(ALERTS{{run_id="verdict-pass",{verdict_alerts}}}[10m])'
    assert prom.query(passing) == []


@pytest.mark.parametrize("run", list(RUNS))
def test_histogram_quantile_over_the_final_buckets_is_within_10_percent(
    stack: Stack, run: str
) -> None:
    final = snapshot_from_dict(json.loads((stack.out[run] / "final_snapshot.json").read_text()))
    errors = []
    for series, stem in (
        ("ttft_ns", "ttft"),
        ("tpot_ns", "tpot"),
        ("sample_latency_ns", "sample_latency"),
    ):
        exact = final.series[series]
        for p in (50, 90, 99):
            got = stack.prom.value(
                f"histogram_quantile({p / 100}, sum by (le) "
                f'(last_over_time(bench_{stem}_seconds_bucket{{run_id="{run}"}}[10m])))'
            )
            want = exact.percentile(p) / 1e9
            assert got is not None, (series, p)
            err = abs(got - want) / want
            errors.append((stem, p, got, want, err))
            print(f"{run} {stem} p{p}: histogram_quantile {got:.6f} s, exact {want:.6f} s, "
                  f"error {100 * err:.2f} %")  # fmt: skip
    worst = max(errors, key=lambda e: e[-1])
    assert all(e[-1] < 0.10 for e in errors), f"worst: {worst}"
