"""A real Prometheus scrapes the exporter every second during a run; afterwards PromQL
returns the final counts and quantiles of the final snapshot, and a real Pushgateway
holds the values pushed once at the end (SPEC §8).

Two producers: a real ``bench-metrics demo`` run (synthetic traffic, its own
aggregator process, the in-process mirror), and a MetricsPublisher in a child
process (``tests/support/publisher_child.py``) bridged by ``bench-metrics export``.
"""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from registry import MetricsSnapshot, snapshot_from_dict
from tests.support.cli_process import bench_metrics
from tests.support.exporter_support import Child, free_tcp_port, start_export, start_publisher
from tests.support.helpers import wait_until

PROMETHEUS = shutil.which("prometheus")
PUSHGATEWAY = shutil.which("prometheus-pushgateway") or shutil.which("pushgateway")

pytestmark = [
    pytest.mark.prometheus,
    pytest.mark.skipif(
        PROMETHEUS is None, reason="prometheus is not installed (Debian: prometheus)"
    ),
    pytest.mark.skipif(
        PUSHGATEWAY is None, reason="pushgateway is not installed (Debian: prometheus-pushgateway)"
    ),
]

RUN_ID = 'it-run "1"'


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


@pytest.fixture
def pushgateway(tmp_path: Path) -> Iterator[str]:
    port = free_tcp_port()
    child = Child(
        [
            str(PUSHGATEWAY),
            f"--web.listen-address=127.0.0.1:{port}",
            f"--persistence.file={tmp_path / 'pushgateway.data'}",
        ]
    )
    url = f"http://127.0.0.1:{port}"
    try:
        assert wait_until(lambda: http_ok(url + "/-/ready"), 20), "\n".join(child.err[-20:])
        yield url
    finally:
        child.stop()


@pytest.fixture
def exporter_port() -> int:
    return free_tcp_port()


@pytest.fixture
def prometheus(tmp_path: Path, exporter_port: int) -> Iterator[str]:
    port = free_tcp_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n"
        "  scrape_interval: 1s\n"
        "  scrape_timeout: 900ms\n"
        "scrape_configs:\n"
        "  - job_name: bench\n"
        "    static_configs:\n"
        f"      - targets: ['127.0.0.1:{exporter_port}']\n"
    )
    child = Child(
        [
            str(PROMETHEUS),
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ]
    )
    url = f"http://127.0.0.1:{port}"
    try:
        assert wait_until(lambda: http_ok(url + "/-/ready"), 30), "\n".join(child.err[-20:])
        yield url
    finally:
        child.stop()


def promql(base: str, query: str) -> list[dict]:
    url = base + "/api/v1/query?" + urllib.parse.urlencode({"query": query})
    with urllib.request.urlopen(url, timeout=5) as resp:
        body = json.loads(resp.read())
    assert body["status"] == "success", body
    return body["data"]["result"]


def value_of(base: str, query: str) -> float | None:
    result = promql(base, query)
    return float(result[0]["value"][1]) if len(result) == 1 else None


def start_run(
    tmp_path: Path, exporter_port: int, prometheus: str, pushgateway: str
) -> tuple[Child, Child]:
    """The producer and its exporter (see the module docstring to use the demo instead)."""
    endpoint = f"ipc://{tmp_path}/snapshots.sock"
    export, _ = start_export(
        "--connect", endpoint, "--listen", f"127.0.0.1:{exporter_port}", "--run-id", RUN_ID,
        "--label", "model=tiny", "--linger", "3", "--pushgateway", pushgateway,
    )  # fmt: skip
    # Prometheus picks new targets up a few seconds after it starts: let it find the
    # exporter before the run begins, so that it scrapes the live run too.
    assert wait_until(lambda: value_of(prometheus, 'up{job="bench"}') == 1.0, 20)
    publisher = start_publisher(endpoint, tmp_path, "--ticks", "50", "--interval", "0.05")
    return export, publisher


def test_prometheus_and_pushgateway_hold_the_final_values(
    tmp_path: Path, prometheus: str, pushgateway: str, exporter_port: int
) -> None:
    export, publisher = start_run(tmp_path, exporter_port, prometheus, pushgateway)
    try:
        assert wait_until(lambda: export.find("final snapshot #") is not None, 30)
        assert publisher.proc.wait(15) == 0
        final: MetricsSnapshot = snapshot_from_dict(
            json.loads((tmp_path / "final_snapshot.json").read_text())
        )
        run = 'run_id="it-run \\"1\\""'
        complete = f'bench_session_state{{{run},bench_session_state="complete"}}'
        # Prometheus saw the live run and then, within the linger, the final snapshot
        assert wait_until(lambda: value_of(prometheus, complete) == 1.0, 15)
        issued = value_of(prometheus, f'bench_samples_issued_total{{{run},window="all"}}')
        assert issued == final.counters["total_samples_issued"]
        ttft = final.series["ttft_ns"]
        for q, p in (("0.5", 50), ("0.99", 99), ("0.999", 99.9)):
            got = value_of(prometheus, f'bench_ttft_quantiles_seconds{{{run},quantile="{q}"}}')
            assert got == ttft.percentile(p) / 1e9, q
        count = value_of(prometheus, f"bench_ttft_seconds_count{{{run}}}")
        assert count == ttft.count
        # the fixed buckets make histogram_quantile work; HDR + bucket width bound the error
        hq = value_of(
            prometheus, f"histogram_quantile(0.5, sum by (le) (bench_ttft_seconds_bucket{{{run}}}))"
        )
        assert hq is not None and 0.2 < hq / (ttft.percentile(50) / 1e9) < 5
        # the live run was scraped too
        live = f'max_over_time(bench_session_state{{{run},bench_session_state="live"}}[1m])'
        assert value_of(prometheus, live) == 1.0
        info = promql(prometheus, "bench_run_info")
        assert info[0]["metric"]["model"] == "tiny" and info[0]["metric"]["run_id"] == RUN_ID
        assert value_of(prometheus, 'up{job="bench"}') == 1.0

        # the Pushgateway holds the final values under job + run_id
        assert export.find("pushed snapshot #") is not None, export.err[-10:]
        with urllib.request.urlopen(pushgateway + "/metrics", timeout=5) as resp:
            families = {f.name: f for f in text_string_to_metric_families(resp.read().decode())}
        pushed = [
            s for s in families["bench_samples_issued"].samples if s.labels.get("window") == "all"
        ]
        assert len(pushed) == 1
        assert pushed[0].labels["job"] == "bench_metrics" and pushed[0].labels["run_id"] == RUN_ID
        assert pushed[0].value == final.counters["total_samples_issued"]
        p99 = [
            s
            for s in families["bench_ttft_quantiles_seconds"].samples
            if s.labels.get("quantile") == "0.99"
        ]
        assert p99[0].value == ttft.percentile(99) / 1e9
        assert "bench_exporter_up" not in families  # health is not pushed
        assert export.proc.wait(20) == 0
    finally:
        publisher.stop()
        export.stop()


def test_prometheus_scraping_a_demo_run_every_second_holds_its_final_values(
    tmp_path: Path, prometheus: str, pushgateway: str, exporter_port: int
) -> None:
    out = tmp_path / "out"
    demo = Child(
        [
            *bench_metrics(), "demo", "--no-tui", "--duration", "4", "--qps", "100",
            "--seed", "3", "--interval", "0.25", "--run-id", "demo-it",
            "--listen", f"127.0.0.1:{exporter_port}", "--linger", "4",
            "--pushgateway", pushgateway, "--output-dir", str(out),
        ]
    )  # fmt: skip
    try:
        assert demo.proc.wait(60) == 0, "\n".join(demo.err[-20:])
        final = snapshot_from_dict(json.loads((out / "final_snapshot.json").read_text()))
        assert final.state.value == "complete"
        run = 'run_id="demo-it"'
        # Prometheus scraped the live run, then the final snapshot during the linger
        live = f'max_over_time(bench_session_state{{{run},bench_session_state="live"}}[5m])'
        assert value_of(prometheus, live) == 1.0
        complete = (
            f'last_over_time(bench_session_state{{{run},bench_session_state="complete"}}[5m])'
        )
        assert value_of(prometheus, complete) == 1.0
        for window, prefix in (("all", "total"), ("tracked", "tracked")):
            completed = value_of(
                prometheus,
                f'last_over_time(bench_samples_completed_total{{{run},window="{window}"}}[5m])',
            )
            assert completed == final.counters[f"{prefix}_samples_completed"], window
        latency = final.series["sample_latency_ns"]
        for q, p in (("0.5", 50), ("0.9", 90), ("0.99", 99)):
            got = value_of(
                prometheus,
                f'last_over_time(bench_sample_latency_quantiles_seconds{{{run},quantile="{q}"}}[5m])',
            )
            assert got == latency.percentile(p) / 1e9, q
        # and the Pushgateway holds the same final values under job + run_id
        with urllib.request.urlopen(pushgateway + "/metrics", timeout=5) as resp:
            families = {f.name: f for f in text_string_to_metric_families(resp.read().decode())}
        pushed = [
            s
            for s in families["bench_samples_completed"].samples
            if s.labels.get("window") == "tracked" and s.labels.get("run_id") == "demo-it"
        ]
        assert [s.value for s in pushed] == [final.counters["tracked_samples_completed"]]
    finally:
        demo.stop()
