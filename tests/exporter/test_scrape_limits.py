"""Issue 13 item 7: scrapes that cannot stall the run. Real sockets against a real server:
cached renderings equal to what prometheus_client serves, a connection cap, slowloris and
non-reading clients closed, bodies refused, keep-alive limits, quiet logs."""

from __future__ import annotations

import asyncio
import gzip
import http.client
import logging
import shutil
import socket
import subprocess
import time
import zlib
from collections.abc import Iterator

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.aiohttp import make_aiohttp_handler

from exporter.http.server import MetricsServer, MetricsServerThread, ServerLimits
from exporter.prometheus.collector import SnapshotCollector
from exporter.prometheus.exposition_cache import ExpositionCache, negotiate_coding
from registry import SessionState
from tests.support.exporter_support import parse_strict, registry_of, spec_snapshot
from tests.support.helpers import wait_until

PROMTOOL = shutil.which("promtool")
REQUEST = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"


def frozen_collector() -> SnapshotCollector:
    """A collector whose clock stands still: two renderings of it are byte-equal."""
    c = SnapshotCollector(labels={"run_id": "limits"}, clock=lambda: 1000.0)
    c.update(spec_snapshot(n=300))
    return c


def start(collector: SnapshotCollector, **limits: object) -> MetricsServerThread:
    server = MetricsServer(
        registry_of(collector),
        health=collector.health,
        generation=lambda: collector.generation,
        limits=ServerLimits(**limits),  # type: ignore[arg-type]
    )
    thread = MetricsServerThread(server)
    thread.start()
    return thread


@pytest.fixture
def collector() -> SnapshotCollector:
    return frozen_collector()


@pytest.fixture
def server(collector: SnapshotCollector) -> Iterator[MetricsServerThread]:
    t = start(collector)
    yield t
    t.stop()


def read_reply(sock: socket.socket, timeout: float = 10.0) -> bytes:
    """Everything until the server closes (or resets) the connection."""
    sock.settimeout(timeout)
    chunks = []
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def decoded(body: bytes, coding: str | None) -> bytes:
    if coding == "gzip":
        return gzip.decompress(body)
    if coding == "deflate":
        return zlib.decompress(body)
    return body


# -- one rendering per snapshot and variant, equal to prometheus_client's ------------------

ACCEPTS = [
    None,
    "text/plain",
    "text/plain;version=0.0.4",
    "*/*",
    "application/openmetrics-text",
    "application/openmetrics-text;version=1.0.0",
    "application/openmetrics-text; version=1.0.0; charset=utf-8",
    # what Prometheus 3 sends
    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,"
    "application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;"
    "escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1",
    "application/openmetrics-text;version=0.0.1,text/plain;version=0.0.4",
]
ENCODINGS = [None, "gzip", "deflate", "gzip, deflate", "GZIP", "br", "identity"]


def test_every_negotiated_variant_equals_what_prometheus_client_serves(
    collector: SnapshotCollector,
) -> None:
    registry = registry_of(collector)
    ours = MetricsServer(registry, generation=lambda: collector.generation)
    # the clock stands still here too, so the count of renderings is exact
    ours.cache = ExpositionCache(registry, generation=lambda: collector.generation, clock=float)

    async def main() -> list[tuple[str, ...]]:
        app = web.Application()
        app.router.add_get("/metrics", make_aiohttp_handler(registry))
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        ref_url = f"http://127.0.0.1:{runner.addresses[0][1]}/metrics"
        await ours.start()
        seen = []
        try:
            async with aiohttp.ClientSession(auto_decompress=False) as session:
                for accept in ACCEPTS:
                    for encoding in ENCODINGS:
                        for query in ("", "?name[]=bench_ttft_seconds&name[]=bench_run_info"):
                            headers = {}
                            if accept is not None:
                                headers["Accept"] = accept
                            if encoding is not None:
                                headers["Accept-Encoding"] = encoding
                            got = []
                            for url in (ref_url, ours.url + "/metrics"):
                                async with session.get(url + query, headers=headers) as r:
                                    body = await r.read()
                                    coding = r.headers.get("Content-Encoding")
                                    got.append(
                                        (
                                            r.status,
                                            r.headers["Content-Type"],
                                            coding,
                                            decoded(body, coding),
                                        )
                                    )
                            assert got[0] == got[1], (accept, encoding, query)
                            seen.append((got[1][1], str(got[1][2])))
        finally:
            await ours.stop()
            await runner.cleanup()
        return seen

    seen = asyncio.run(main())
    variants = set(seen)
    assert {ct.split(";")[0] for ct, _ in variants} == {
        "text/plain",
        "application/openmetrics-text",
    }
    assert {c for _, c in variants} == {"None", "gzip", "deflate"}
    # each format rendered once per query (with and without name[]), not once per request
    assert ours.cache.renders == 2 * len({ct for ct, _ in variants})
    assert ours.cache.hits > len(seen) // 2


def test_cached_variants_pass_the_strict_parser_and_promtool(server: MetricsServerThread) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request(
        "GET",
        "/metrics",
        headers={"Accept": "application/openmetrics-text;version=1.0.0", "Accept-Encoding": "gzip"},
    )
    om = gzip.decompress(conn.getresponse().read()).decode()
    assert parse_strict(om)["bench_ttft_seconds"].unit == "seconds"
    conn.request("GET", "/metrics")
    text = conn.getresponse().read()
    conn.close()
    if PROMTOOL is None:
        pytest.skip("promtool is not installed")
    proc = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_new_snapshot_or_a_second_gives_a_fresh_rendering() -> None:
    collector = SnapshotCollector(labels={"run_id": "c"})
    collector.update(spec_snapshot(n=10))
    now = [0.0]
    cache = ExpositionCache(
        registry_of(collector), generation=lambda: collector.generation, clock=lambda: now[0]
    )
    first = cache.get("", "")
    for encoding in ("", "gzip", "deflate") * 50:
        cache.get("", encoding)
    assert cache.renders == 1  # 151 requests, one rendering, two compressions
    assert cache.get("", "gzip").body is cache.get("", "gzip").body
    collector.update(spec_snapshot(SessionState.DRAINING, n=20))
    assert b"draining" in cache.get("", "").body and cache.renders == 2
    now[0] = 0.99
    cache.get("", "")
    assert cache.renders == 2
    now[0] = 1.0  # no new snapshot for a second: the health gauges are rendered again
    cache.get("", "")
    assert cache.renders == 3
    assert first.body != cache.get("", "").body


def test_coding_is_negotiated_as_aiohttp_does() -> None:
    assert negotiate_coding("") is None and negotiate_coding("br, identity") is None
    assert negotiate_coding("gzip") == "gzip" and negotiate_coding("x-GZIP") == "gzip"
    assert negotiate_coding("gzip, deflate") == "deflate"  # aiohttp's order, not the client's


# -- connections that hold a slot -------------------------------------------------------------


def test_connection_cap_answers_503_and_frees_slots_on_close(
    collector: SnapshotCollector, caplog: pytest.LogCaptureFixture
) -> None:
    thread = start(collector, max_connections=5)
    guard = thread.server.guard
    assert guard is not None
    holders = [socket.create_connection(("127.0.0.1", thread.port)) for _ in range(5)]
    try:
        assert wait_until(lambda: guard.open_connections == 5)
        with caplog.at_level(logging.WARNING, logger="exporter.http.server.requests"):
            for _ in range(3):
                with socket.create_connection(("127.0.0.1", thread.port)) as extra:
                    extra.sendall(REQUEST)
                    reply = read_reply(extra)
                assert reply.startswith(b"HTTP/1.1 503 Service Unavailable"), reply[:60]
        assert guard.refused == 3
        refusals = [r for r in caplog.records if "refused a connection" in r.getMessage()]
        assert len(refusals) == 1  # rate-limited: one line for the kind
        for s in holders:
            s.close()
        assert wait_until(lambda: guard.open_connections == 0)
        with socket.create_connection(("127.0.0.1", thread.port)) as again:
            again.sendall(REQUEST)
            assert again.recv(64).startswith(b"HTTP/1.1 200")
    finally:
        for s in holders:
            s.close()
        thread.stop()


def test_slowloris_and_silent_connections_are_closed_but_idle_keepalive_is_not(
    collector: SnapshotCollector,
) -> None:
    thread = start(collector, head_timeout_s=0.5, keepalive_timeout_s=30.0)
    guard = thread.server.guard
    assert guard is not None
    try:
        # silent: connects and sends nothing
        with socket.create_connection(("127.0.0.1", thread.port)) as silent:
            t0 = time.monotonic()
            assert read_reply(silent) == b""
            assert time.monotonic() - t0 < 5  # closed at the head deadline, not at keep-alive
        # slowloris: one header byte every 50 ms (its head would take ~10 s)
        with socket.create_connection(("127.0.0.1", thread.port)) as slow:
            slow.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
            closed = False
            for ch in b"X-Slow: " + b"a" * 200:
                try:
                    slow.sendall(bytes([ch]))
                except OSError:
                    closed = True
                    break
                time.sleep(0.05)  # the client's behaviour, not synchronisation
            assert closed or read_reply(slow, timeout=2) == b""
        assert guard.timed_out == 2
        # a well-behaved keep-alive client may idle longer than the head deadline
        conn = http.client.HTTPConnection("127.0.0.1", thread.port, timeout=10)
        conn.request("GET", "/healthz")
        assert conn.getresponse().read()
        first_sock = conn.sock
        time.sleep(1.0)  # idle, longer than head_timeout_s: the client's behaviour again
        conn.request("GET", "/healthz")
        assert conn.getresponse().status == 200
        assert conn.sock is first_sock and guard.timed_out == 2
        conn.close()
    finally:
        thread.stop()


def test_a_client_that_never_reads_is_closed_and_others_are_served(
    collector: SnapshotCollector,
) -> None:
    """The probe: pipelining clients that never read pinned responses (RSS +180 MB)."""
    thread = start(collector, send_timeout_s=0.5)
    guard = thread.server.guard
    assert guard is not None
    hog = socket.socket()
    hog.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a tiny window
    hog.connect(("127.0.0.1", thread.port))
    hog.setblocking(False)
    try:
        sent = 0
        deadline = time.monotonic() + 20
        while guard.send_timed_out == 0 and time.monotonic() < deadline:
            try:
                sent += hog.send(REQUEST * 50)
            except BlockingIOError:
                pass
            except OSError:
                break
            conn = http.client.HTTPConnection("127.0.0.1", thread.port, timeout=10)
            conn.request("GET", "/healthz")  # others are served meanwhile
            assert conn.getresponse().status == 200
            conn.close()
        assert guard.send_timed_out == 1, sent
        assert wait_until(lambda: guard.open_connections == 0)
    finally:
        hog.close()
        thread.stop()


def test_a_request_with_a_body_gets_413_without_the_body_being_read(
    server: MetricsServerThread,
) -> None:
    with socket.create_connection(("127.0.0.1", server.port)) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n")
        reply = read_reply(s)  # closes without waiting for 100 MB
    assert reply.startswith(b"HTTP/1.1 413"), reply[:60]


def test_keepalive_limit_closes_after_n_requests(collector: SnapshotCollector) -> None:
    thread = start(collector, max_requests_per_connection=3)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", thread.port, timeout=10)
        answers = []
        for _ in range(3):
            conn.request("GET", "/healthz")
            resp = conn.getresponse()
            resp.read()
            answers.append(resp.getheader("Connection"))
        assert answers[-1] == "close" and "close" not in answers[:-1]
        conn.close()
    finally:
        thread.stop()


def test_one_warning_per_malformed_kind_no_traceback(
    server: MetricsServerThread, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    garbage = [b"GARBAGE /\r\n\r\n"] * 4 + [
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"q" * 20_000 + b"\r\n\r\n"
    ] * 3
    for data in garbage:
        with socket.create_connection(("127.0.0.1", server.port)) as s:
            s.sendall(data)
            assert read_reply(s).startswith(b"HTTP/1.")
    lines = [r for r in caplog.records if r.name.startswith(("exporter", "aiohttp"))]
    assert len(lines) == 2, [r.getMessage() for r in lines]  # one per kind
    assert all(r.levelno == logging.WARNING and not r.exc_info for r in lines)
    assert not any(b"qqqq" in r.getMessage().encode() for r in caplog.records)


def test_a_crowd_of_scrapers_all_get_an_answer_and_a_normal_scrape_works(
    collector: SnapshotCollector,
) -> None:
    """300 concurrent clients against a cap of 100: each gets 200 or 503, none hangs."""
    thread = start(collector, max_connections=100)
    port = thread.port

    async def one() -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            await writer.drain()
            data = await asyncio.wait_for(reader.read(), 30)
        except ConnectionResetError:
            return 0
        finally:
            writer.close()
        return int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.") else 0

    async def main() -> list[int]:
        return await asyncio.gather(*(one() for _ in range(300)))

    try:
        codes = asyncio.run(main())
        assert set(codes) <= {200, 503} and codes.count(200) >= 100, sorted(set(codes))
        assert thread.server.cache.renders <= 2  # one rendering served them all
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/metrics")
        assert conn.getresponse().status == 200
        conn.close()
    finally:
        thread.stop()


class _Broken:
    """A collector with a bug: every scrape fails."""

    def collect(self) -> Iterator[object]:
        raise RuntimeError("collector bug with a secret-looking detail")


def test_a_failing_handler_is_one_error_line_without_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    thread = MetricsServerThread(MetricsServer(registry_of(_Broken())))  # type: ignore[arg-type]
    thread.start()
    caplog.set_level(logging.DEBUG)
    try:
        for _ in range(3):
            conn = http.client.HTTPConnection("127.0.0.1", thread.port, timeout=10)
            conn.request("GET", "/metrics")
            resp = conn.getresponse()
            assert resp.status == 500 and b"Traceback" not in resp.read()
            conn.close()
        conn = http.client.HTTPConnection("127.0.0.1", thread.port, timeout=10)
        conn.request("GET", "/healthz")  # the server itself is fine
        assert conn.getresponse().status == 200
        conn.close()
    finally:
        thread.stop()
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert errors[0].levelno == logging.ERROR and not errors[0].exc_info
    assert "RuntimeError" in errors[0].getMessage()
    assert "secret-looking" not in errors[0].getMessage()
