"""Every dashboard panel returns data from a real Prometheus scraping a real demo run.

`bench-metrics demo --listen --ruleset ... --slo ...` serves the exporter while
a simulated run goes on; a real Prometheus (Debian `prometheus`) scrapes it
every second, and also scrapes two recorded stand-ins for an inference
server's /metrics (tests/support/server_standin.py: vLLM's and SGLang's real metric
names and bucket bounds with synthetic counts, not running servers) for the
Server row; then each panel query of grafana/dashboards/llm-benchmark-run.json,
with Grafana's variables filled in as Grafana would, goes to /api/v1/query.
The test lists every panel that comes back empty. It skips, saying why, when
`prometheus` is not installed or when `bench-metrics demo` does not take
`--listen` yet.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support.grafana_queries import (
    ALL_INSTANCES,
    Prometheus,
    empty_panels,
    grafana_multi_value,
    load_dashboard,
    panel_queries,
    substitute,
    wait_until,
)
from tests.support.server_standin import ServerStandIn

pytestmark = pytest.mark.prometheus

PROMETHEUS = shutil.which("prometheus")
SCRAPE_INTERVAL_S = 1
#: $__rate_interval as Grafana computes it for a 1 s scrape interval: 4 scrapes.
RATE_INTERVAL = "4s"
RUN_SECONDS = 15


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def demo_unavailable() -> str | None:
    """Why the demo cannot serve this test yet, or None when it can."""
    try:
        done = subprocess.run(
            [sys.executable, "-m", "exporter.cli.main", "demo", "--help"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except subprocess.TimeoutExpired:
        return "`bench-metrics demo --help` did not answer within 60 s"
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return f"`bench-metrics demo` is not available yet ({last})"
    missing = [flag for flag in ("--listen", "--linger") if flag not in done.stdout]
    if missing:
        return f"`bench-metrics demo` does not accept {', '.join(missing)} yet"
    return None


def demo_command(port: int, out_dir: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "exporter.cli.main",
        "demo",
        "--listen",
        f"127.0.0.1:{port}",
        "--no-tui",
        "--duration",
        str(RUN_SECONDS),
        "--qps",
        "50",
        "--linger",
        "30",
        # constraints on all three latency series, so every verdict panel and limit line has data
        "--ruleset",
        "llama2-70b",
        "--slo",
        "latency:p99<=10s",
        "--output-dir",
        str(out_dir),
    ]


def stop(process: subprocess.Popen[bytes], timeout: float) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def start_prometheus(
    workdir: Path, targets: list[str], servers: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """A real Prometheus scraping ``targets`` (and each ``servers`` job → target) every
    second; returns (process, base URL)."""
    assert PROMETHEUS is not None
    jobs = [{"job_name": "bench-metrics", "static_configs": [{"targets": targets}]}]
    for job, target in (servers or {}).items():
        jobs.append({"job_name": job, "static_configs": [{"targets": [target]}]})
    config = {"global": {"scrape_interval": f"{SCRAPE_INTERVAL_S}s"}, "scrape_configs": jobs}
    config_file = workdir / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config))
    port = free_port()
    log = (workdir / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={config_file}",
            f"--storage.tsdb.path={workdir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    return process, f"http://127.0.0.1:{port}"


def wait_for_live_data(prometheus: Prometheus, instance: str, timeout: float) -> str:
    """Wait until a few seconds of a live run are stored; return its run_id."""
    sel = f'instance="{instance}"'

    def run_is_live_with_history() -> bool:
        live = prometheus.query(f'bench_session_state{{{sel}, bench_session_state="live"}} == 1')
        scrapes = prometheus.query(f"count_over_time(bench_ttft_seconds_count{{{sel}}}[30s])")
        return bool(live and scrapes and float(scrapes[0]["value"][1]) >= 6)

    wait_until(run_is_live_with_history, timeout, 0.5, "6 scrapes of a live demo run")
    (info,) = prometheus.query(f"bench_run_info{{{sel}}}")
    return str(info["metric"]["run_id"])


def check_dashboard(prometheus: Prometheus, instance: str) -> None:
    """Every panel query returns data, for one chosen instance and for All."""
    run_id = wait_for_live_data(prometheus, instance, timeout=RUN_SECONDS + 30)
    dashboard = load_dashboard()
    at = time.time()
    problems = []
    for choice, server_job in (
        (grafana_multi_value([instance]), "vllm"),
        (ALL_INSTANCES, "sglang"),
    ):
        empty = empty_panels(
            prometheus,
            dashboard,
            run_id=run_id,
            instance=choice,
            rate_interval=RATE_INTERVAL,
            at=at,
            server_job=server_job,
        )
        problems += [f"[instance={choice}, server_job={server_job}] {e}" for e in empty]
    assert not problems, "panels without data:\n" + "\n".join(problems)

    # The headline numbers are not only present but plausible for a running load.
    by_title = {q.title: q.expr for q in panel_queries(dashboard) if q.ref_id == "A"}
    for title in ("QPS", "Output tokens/s", "Completed", "Issued (all)"):
        expr = substitute(by_title[title], run_id=run_id, rate_interval=RATE_INTERVAL)
        (sample,) = prometheus.query(expr, at)
        assert float(sample["value"][1]) > 0, f"{title} is not positive: {sample}"


@pytest.fixture
def demo_port(tmp_path: Path) -> Iterator[int]:
    reason = demo_unavailable()
    if reason:
        pytest.skip(reason)
    port = free_port()
    log = (tmp_path / "demo.log").open("wb")
    process = subprocess.Popen(
        demo_command(port, tmp_path / "out"), stdout=log, stderr=subprocess.STDOUT
    )
    try:
        yield port
    finally:
        stop(process, timeout=30)


@pytest.fixture
def server_standins() -> Iterator[dict[str, str]]:
    """The recorded vLLM and SGLang stand-ins, as job → target."""
    standins = {job: ServerStandIn(job, free_port()).start() for job in ("vllm", "sglang")}
    try:
        yield {job: f"127.0.0.1:{s.port}" for job, s in standins.items()}
    finally:
        for s in standins.values():
            s.stop()


@pytest.mark.skipif(PROMETHEUS is None, reason="prometheus not installed (Debian package)")
def test_every_panel_returns_data_from_a_demo_run(
    tmp_path: Path, demo_port: int, server_standins: dict[str, str]
) -> None:
    instance = f"127.0.0.1:{demo_port}"
    process, url = start_prometheus(tmp_path, [instance], server_standins)
    try:
        prometheus = Prometheus(url)
        wait_until(prometheus.ready, 30, 0.2, "Prometheus /-/ready")
        check_dashboard(prometheus, instance)
    finally:
        stop(process, timeout=15)
