"""A recorded stand-in for an inference server's /metrics: vLLM's or SGLang's latency histograms.

Not a running server. It serves, over real HTTP, the three latency
histograms the dashboard's Server row reads, with the metric names, label
names and bucket bounds vLLM and SGLang define (vLLM:
``vllm/v1/metrics/loggers.py``; SGLang: ``python/sglang/srt/metrics/collector.py``
``TokenizerMetricsCollector`` defaults), made with ``prometheus_client`` as
both servers make them. The observations are synthetic: requests "arrive" at
a fixed rate of the wall clock, and each scrape first records the ones due
since the previous scrape, so the counters grow like a busy server's. It
always answers in the text format 0.0.4 (the names keep their colons there;
this prometheus_client's OpenMetrics output would rewrite them).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

__all__ = ["FLAVOURS", "ServerStandIn"]

#: flavour → (metric name → bucket bounds), as each server defines them
FLAVOURS: dict[str, dict[str, tuple[float, ...]]] = {
    "vllm": {
        "vllm:time_to_first_token_seconds": (
            0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
            7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
        ),
        "vllm:inter_token_latency_seconds": (
            0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
            10.0, 20.0, 40.0, 80.0,
        ),
        "vllm:e2e_request_latency_seconds": (
            0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0,
            120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0,
        ),
    },
    "sglang": {
        "sglang:time_to_first_token_seconds": (
            0.1, 0.2, 0.4, 0.6, 0.8, 1, 2, 4, 6, 8, 10, 20, 40, 60, 80, 100, 200, 400,
        ),
        "sglang:inter_token_latency_seconds": (
            0.002, 0.004, 0.006, 0.008, 0.010, 0.015, 0.020, 0.025, 0.030, 0.035, 0.040, 0.060,
            0.080, 0.100, 0.200, 0.400, 0.600, 0.800, 1.000, 2.000, 4.000, 6.000, 8.000,
        ),
        "sglang:e2e_request_latency_seconds": (
            0.1, 0.2, 0.4, 0.6, 0.8, 1, 2, 4, 6, 8, 10, 20, 40, 60, 80, 100, 200, 400, 600,
            1200, 1800, 2400,
        ),
    },
}  # fmt: skip
_LABELS = {"vllm": ("model_name", "engine"), "sglang": ("model_name",)}
_MEDIANS = {"time_to_first_token": 0.035, "inter_token_latency": 0.004, "e2e_request": 0.3}


class _Arrivals(Collector):
    """The flavour's histograms; each collect first records the requests due since the last."""

    def __init__(self, flavour: str, rate: float) -> None:
        labels = _LABELS[flavour]
        values = ("stand-in-model", "0")[: len(labels)]
        self._children = []
        self._histograms: list[Histogram] = []
        for name, bounds in FLAVOURS[flavour].items():
            h = Histogram(
                name,
                f"{name} (recorded stand-in, synthetic observations).",
                labelnames=labels,
                buckets=bounds,
                registry=None,
            )
            self._histograms.append(h)
            kind = next(k for k in _MEDIANS if k in name)
            self._children.append((h.labels(*values), _MEDIANS[kind]))
        self._rate = rate
        self._start = time.monotonic()
        self._done = 0
        self._rng = random.Random(flavour)
        self._lock = threading.Lock()

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            due = int((time.monotonic() - self._start) * self._rate)
            for _ in range(due - self._done):
                for child, median in self._children:
                    child.observe(median * self._rng.lognormvariate(0.0, 0.4))
            self._done = due
            families = [m for h in self._histograms for m in h.collect()]
        return iter(families)


class ServerStandIn:
    """Serves one flavour's histograms on 127.0.0.1:``port`` (``/metrics``) until :meth:`stop`."""

    def __init__(self, flavour: str, port: int, *, rate: float = 20.0) -> None:
        self.flavour = flavour
        self.port = port
        self.registry = CollectorRegistry()
        self.registry.register(_Arrivals(flavour, rate))
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> ServerStandIn:
        registry = self.registry

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404)
                    return
                body = generate_latest(registry)
                self.send_response(200)
                self.send_header("Content-Type", CONTENT_TYPE_LATEST)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)
