"""Issue 24 items 5 and 9: the exporter never publishes invalid OpenMetrics, never lets a
label replace ``run_id``, and serves ``/metrics?name[]=...``. Real ZeroMQ sockets, a real
HTTP server, judged by prometheus_client's strict OpenMetrics parser."""

from __future__ import annotations

import asyncio
import urllib.request
from pathlib import Path

import msgspec
import pytest
import zmq

from exporter.cli.mirror_args import ExporterOptions
from exporter.http.web_config import WebConfig
from exporter.prometheus.bridge import Bridge
from exporter.prometheus.collector import SnapshotCollector
from exporter.prometheus.mirror import PrometheusMirror
from exporter.prometheus.naming import quantile_label
from registry import MetricsSession, SnapshotCodec
from registry.delivery.snapshot_codec import SNAPSHOT_TOPIC
from tests.support.exporter_support import (
    find,
    free_tcp_port,
    openmetrics_exposition,
    parse_strict,
    samples,
    spec_snapshot,
)
from tests.support.helpers import async_wait_until

BAD_KEYS = ("-5", "150", "NaN", "Infinity", "1e-999999")


def hostile_payload(run: object) -> bytes:
    """A real snapshot frame whose ttft percentiles carry out-of-range keys and whose
    run block (slot 5) is ``run``."""
    raw = msgspec.msgpack.decode(SnapshotCodec().encode(spec_snapshot(n=40))[1])
    for m in raw[4]:
        if m[0] == "series" and m[1] == "ttft_ns":
            for key in BAD_KEYS:
                m[7][key] = 1_000_000.0
    while len(raw) < 6:
        raw.append(None)
    raw[5] = run
    return msgspec.msgpack.encode(raw)


def dropped(text: str, reason: str) -> float:
    (s,) = find(samples(text), "bench_exporter_dropped_total", reason=reason)
    return float(s.value)


@pytest.mark.parametrize("key", BAD_KEYS)
def test_quantile_label_refuses_keys_outside_0_100(key: str) -> None:
    with pytest.raises(ValueError, match="percentile key"):
        quantile_label(key)


def test_quantile_label_keeps_the_grid() -> None:
    assert [quantile_label(k) for k in ("0", "-0", "50", "99.9", "100", "1E+2")] == [
        "0",
        "0",
        "0.5",
        "0.999",
        "1",
        "1",
    ]


def test_bridge_drops_and_counts_bad_quantiles_and_a_run_id_label() -> None:
    """A hostile stream through a real SUB socket: the scrape stays valid OpenMetrics,
    the bad keys and labels are left out and counted, ``run_id`` stays the run's."""
    endpoint = f"tcp://127.0.0.1:{free_tcp_port()}"
    payload = hostile_payload(
        {"run_id": "real-run", "labels": {"run_id": "forged", "le": "1", "site": "lab"}}
    )

    async def main() -> str:
        collector = SnapshotCollector(run_id_from_stream=True)
        pub = zmq.Context.instance().socket(zmq.PUB)
        pub.setsockopt(zmq.LINGER, 0)
        pub.bind(endpoint)
        try:
            async with Bridge(endpoint, collector):

                def delivered() -> bool:
                    pub.send(SNAPSHOT_TOPIC + payload)  # resent until the SUB is joined
                    return collector.snapshot is not None

                assert await async_wait_until(delivered, 10, interval=0.02)
        finally:
            pub.close()
        return openmetrics_exposition(collector)

    text = asyncio.run(main())
    parse_strict(text)  # raises on any quantile outside [0, 1]
    all_samples = samples(text)
    assert {s.labels["run_id"] for s in all_samples} == {"real-run"}
    (info,) = find(all_samples, "bench_run_info")
    assert "le" not in info.labels and info.labels["site"] == "lab"
    quantiles = {s.labels["quantile"] for s in find(all_samples, "bench_ttft_quantiles_seconds")}
    assert quantiles and all(0 <= float(q) <= 1 for q in quantiles)
    (received,) = (s.value for s in find(all_samples, "bench_exporter_snapshots_received_total"))
    assert received >= 1
    assert dropped(text, "bad_quantile_key") == len(BAD_KEYS) * received
    assert dropped(text, "bad_run_label") == 2 * received


def test_in_process_labels_cannot_replace_run_id(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="run_id"):
        MetricsSession(tmp_path, run_id="mine", labels={"run_id": "forged"})
    # the collector's own labels: run_id is the run id; no other label may be reserved
    c = SnapshotCollector(labels={"run_id": "mine", "site": "lab"})
    c.update(spec_snapshot(n=3))
    assert {s.labels["run_id"] for s in samples(openmetrics_exposition(c))} == {"mine"}


def test_name_filter_serves_the_named_families_over_http() -> None:
    options = ExporterOptions(
        listen=("127.0.0.1", 0),
        web_config=WebConfig(),
        linger=0.0,
        pushgateway=None,
        push_job="bench",
        namespace="bench",
        stale_after=10.0,
    )
    mirror = PrometheusMirror(options, labels={"run_id": "named"})
    mirror.collector.update(spec_snapshot(n=30))
    mirror.start_in_thread()
    try:
        assert mirror.url is not None
        req = urllib.request.Request(
            mirror.url
            + "/metrics?name[]=bench_run_info"
            + "".join(f"&name[]=bench_ttft_seconds_{s}" for s in ("bucket", "count", "sum")),
            headers={"Accept": "application/openmetrics-text;version=1.0.0"},
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 200
            text = resp.read().decode()
    finally:
        mirror.close()
    fams = parse_strict(text)
    assert set(fams) == {"bench_ttft_seconds", "bench_run"}
    names = {s.name for s in samples(text)}
    assert names == {"bench_run_info"} | {
        f"bench_ttft_seconds_{s}" for s in ("bucket", "count", "sum")
    }
    (count,) = find(samples(text), "bench_ttft_seconds_count")
    assert count.value == 30 and count.labels["run_id"] == "named"
