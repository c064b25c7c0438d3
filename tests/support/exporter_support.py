"""Test support for the exporter: real registries with the SPEC §6 metric set, and
the two external judges of an exposition (the strict OpenMetrics parser and promtool)."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import IO

import numpy as np
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from exporter.prometheus.collector import SnapshotCollector, collector_registry
from registry import MetricsRegistry, MetricsSnapshot, SessionState
from tests.support.cli_process import bench_metrics
from tests.support.helpers import wait_until

NS_SERIES = ("ttft_ns", "tpot_ns", "sample_latency_ns", "chunk_delta_ns")
TOKEN_SERIES = ("isl", "osl")
WINDOWED = ("samples_issued", "samples_completed", "samples_failed")
REASONS = ("stop", "length", "tool_calls", "content_filter", "function_call", "other")


def spec_registry() -> MetricsRegistry:
    """A registry with every counter and series of SPEC §6, nothing recorded."""
    reg = MetricsRegistry()
    for base in WINDOWED:
        reg.register_counter(f"total_{base}")
        reg.register_counter(f"tracked_{base}")
    for reason in REASONS:
        reg.register_counter(f"tracked_finish_reason_{reason}")
    reg.register_counter("tracked_output_tokens")
    reg.register_counter("tracked_duration_ns", settable=True)
    reg.register_counter("total_duration_ns", settable=True)
    for name in NS_SERIES:
        dtype = float if name == "tpot_ns" else int
        reg.register_series(name, hdr_low=1_000, hdr_high=3_600_000_000_000, dtype=dtype)
    for name in TOKEN_SERIES:
        reg.register_series(name, hdr_low=1, hdr_high=1_000_000)
    return reg


def fill(reg: MetricsRegistry, n: int = 2_000, seed: int = 7) -> None:
    """Record a plausible run of ``n`` samples into a :func:`spec_registry`."""
    rng = np.random.default_rng(seed)
    reg.increment("total_samples_issued", n + 5)
    reg.increment("tracked_samples_issued", n)
    reg.increment("total_samples_completed", n)
    reg.increment("tracked_samples_completed", max(0, n - 3))
    reg.increment("tracked_samples_failed", 3)
    reg.increment("total_samples_failed", 3)
    reg.increment("tracked_finish_reason_stop", max(0, n - 10))
    reg.increment("tracked_finish_reason_length", 7)
    reg.increment("tracked_output_tokens", 128 * n)
    reg.set_counter("tracked_duration_ns", 12_500_000_000)
    reg.set_counter("total_duration_ns", 13_000_000_000)
    reg.record_many("ttft_ns", rng.lognormal(18, 0.6, n).astype(np.int64))
    reg.record_many("tpot_ns", rng.lognormal(16, 0.3, n))
    reg.record_many("sample_latency_ns", rng.lognormal(21, 0.5, n).astype(np.int64))
    reg.record_many("chunk_delta_ns", rng.lognormal(16, 0.4, 4 * n).astype(np.int64))
    reg.record_many("isl", rng.integers(50, 2_000, n))
    reg.record_many("osl", rng.integers(1, 512, n))


def spec_snapshot(
    state: SessionState = SessionState.LIVE, n: int = 2_000, pending: int = 0
) -> MetricsSnapshot:
    reg = spec_registry()
    if n:
        fill(reg, n)
    return reg.build_snapshot(state=state, n_pending_tasks=pending)


def registry_of(*collectors: SnapshotCollector) -> CollectorRegistry:
    """The registry the exporter serves them from (``name[]`` reaches them)."""
    return collector_registry(*collectors)


def text_exposition(collector: SnapshotCollector) -> str:
    return generate_latest(registry_of(collector)).decode("utf-8")


def openmetrics_exposition(collector: SnapshotCollector) -> str:
    return generate_openmetrics(registry_of(collector)).decode("utf-8")


def parse_strict(text: str) -> dict[str, object]:
    """Families by name from the strict OpenMetrics parser (raises on any violation)."""
    return {f.name: f for f in text_string_to_metric_families(text)}


def samples(text: str) -> list[Sample]:
    return [s for f in text_string_to_metric_families(text) for s in f.samples]


def find(all_samples: Iterable[Sample], name: str, **labels: str) -> list[Sample]:
    return [
        s
        for s in all_samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    ]


PROMTOOL = shutil.which("promtool")


def promtool_findings(text: str) -> tuple[int, str]:
    """Exit code and output of ``promtool check metrics`` on ``text``."""
    assert PROMTOOL is not None
    proc = subprocess.run(
        [PROMTOOL, "check", "metrics"],
        input=text.encode("utf-8"),
        capture_output=True,
        timeout=30,
    )
    return proc.returncode, (proc.stdout + proc.stderr).decode("utf-8", "replace")


# -- child processes ---------------------------------------------------------------

TESTS_DIR = Path(__file__).resolve().parent


class Child:
    """A child process whose stdout and stderr lines are collected by reader threads."""

    def __init__(self, argv: list[str]) -> None:
        self.argv = argv
        self.proc = subprocess.Popen(
            argv,
            cwd=TESTS_DIR.parent,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self._threads = [
            threading.Thread(target=self._pump, args=(self.proc.stdout, self.out), daemon=True),
            threading.Thread(target=self._pump, args=(self.proc.stderr, self.err), daemon=True),
        ]
        for t in self._threads:
            t.start()

    @staticmethod
    def _pump(stream: IO[str] | None, sink: list[str]) -> None:
        assert stream is not None
        for line in stream:
            sink.append(line.rstrip("\n"))

    def find(self, needle: str, *, stream: str = "err") -> str | None:
        lines = self.err if stream == "err" else self.out
        return next((ln for ln in list(lines) if needle in ln), None)

    def wait_for(self, needle: str, timeout: float = 20.0, *, stream: str = "err") -> str:
        ok = wait_until(
            lambda: self.find(needle, stream=stream) or self.proc.poll() is not None, timeout
        )
        line = self.find(needle, stream=stream)
        if not ok or line is None:
            raise AssertionError(
                f"{needle!r} not seen from {self.argv[:4]} (rc={self.proc.poll()}):\n"
                + "\n".join(self.err[-30:])
            )
        return line

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait(5)
        for t in self._threads:
            t.join(5)
        return rc


def start_publisher(endpoint: str, out_dir: Path, *extra: str) -> Child:
    child = Child(
        [sys.executable, str(TESTS_DIR / "publisher_child.py"), endpoint, str(out_dir), *extra]
    )
    child.wait_for("ready", stream="out")
    return child


def start_export(*args: str) -> tuple[Child, str]:
    """``bench-metrics export ARGS`` as a subprocess; returns it and its base URL."""
    child = Child([*bench_metrics(), "export", *args])
    line = child.wait_for("serving /metrics at ")
    return child, line.rsplit(" ", 1)[1]


def scrape(url: str, *, openmetrics: bool = True, timeout: float = 10.0) -> str:
    headers = {"Accept": "application/openmetrics-text;version=1.0.0"} if openmetrics else {}
    req = urllib.request.Request(url + "/metrics", headers=headers)
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return resp.read().decode("utf-8")


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
