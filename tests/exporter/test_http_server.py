"""The HTTP endpoint: negotiation, gzip, health, landing page, TLS, basic auth, bad
requests and concurrent scrapers, all against a real aiohttp server on loopback."""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import shutil
import socket
import ssl
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import bcrypt
import pytest

from exporter.http.listen import parse_listen
from exporter.http.server import MetricsServer, MetricsServerThread
from exporter.http.web_config import WebConfig, WebConfigError, load_web_config
from exporter.prometheus.collector import SnapshotCollector
from registry import SessionState
from tests.support.exporter_support import parse_strict, registry_of, spec_registry, spec_snapshot

OPENSSL = shutil.which("openssl")
CURL = shutil.which("curl")
needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="openssl CLI is not installed")
needs_curl = pytest.mark.skipif(CURL is None, reason="curl is not installed")

USER, PASSWORD = "prom", "s3cret:with colon"


def serve(collector: SnapshotCollector, web_config: WebConfig | None = None) -> MetricsServerThread:
    server = MetricsServer(
        registry_of(collector),
        "127.0.0.1",
        0,
        web_config,
        health=collector.health,
        generation=lambda: collector.generation,
    )
    thread = MetricsServerThread(server)
    thread.start()
    return thread


@pytest.fixture
def collector() -> SnapshotCollector:
    c = SnapshotCollector(labels={"run_id": "http-test"})
    c.update(spec_snapshot(n=500))
    return c


@pytest.fixture
def server(collector: SnapshotCollector) -> Iterator[MetricsServerThread]:
    t = serve(collector)
    yield t
    t.stop()


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def raw_request(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        chunks = []
        while True:
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


# -- negotiation, gzip, health, landing ------------------------------------------


def test_default_is_text_0_0_4(server: MetricsServerThread) -> None:
    status, headers, body = get(server.url + "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert b"# TYPE bench_ttft_seconds histogram" in body
    assert b'run_id="http-test"' in body


def test_openmetrics_by_content_negotiation(server: MetricsServerThread) -> None:
    accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
    status, headers, body = get(server.url + "/metrics", {"Accept": accept})
    assert status == 200
    assert headers["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
    fams = parse_strict(body.decode())
    assert fams["bench_ttft_seconds"].unit == "seconds"


def test_gzip_when_asked(server: MetricsServerThread) -> None:
    _, _, plain = get(server.url + "/metrics")
    status, headers, body = get(server.url + "/metrics", {"Accept-Encoding": "gzip"})
    assert status == 200 and headers.get("Content-Encoding") == "gzip"
    unzipped = gzip.decompress(body)
    assert len(body) < len(unzipped)
    # same families; only the age gauge may differ between the two scrapes
    strip = [ln for ln in unzipped.splitlines() if b"age_seconds{" not in ln]
    assert strip == [ln for ln in plain.splitlines() if b"age_seconds{" not in ln]


def test_healthz_and_landing_page(server: MetricsServerThread) -> None:
    status, headers, body = get(server.url + "/healthz")
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    health = json.loads(body)
    assert health["status"] == "ok" and health["up"] is True and health["state"] == "live"
    assert health["run_id"] == "http-test" and health["age_seconds"] >= 0
    status, headers, body = get(server.url + "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert b'href="metrics"' in body and b'href="healthz"' in body


def test_port_zero_reports_the_bound_port_on_loopback(server: MetricsServerThread) -> None:
    assert server.port > 0
    assert server.url == f"http://127.0.0.1:{server.port}"
    assert MetricsServer(registry_of()).host == "127.0.0.1"


def test_bind_failure_is_reported_by_start(server: MetricsServerThread) -> None:
    other = MetricsServerThread(MetricsServer(registry_of(), "127.0.0.1", server.port))
    with pytest.raises(OSError):
        other.start()
    assert get(server.url + "/healthz")[0] == 200


def test_async_start_stop() -> None:
    async def main() -> int:
        s = MetricsServer(registry_of(SnapshotCollector(labels={"run_id": "a"})))
        await s.start()
        async with aiohttp.ClientSession() as session, session.get(s.url + "/metrics") as r:
            status = r.status
        await s.stop()
        return status

    assert asyncio.run(main()) == 200


def test_parse_listen() -> None:
    assert parse_listen("127.0.0.1:9464") == ("127.0.0.1", 9464)
    assert parse_listen(":9100") == ("127.0.0.1", 9100)
    assert parse_listen("0.0.0.0:0") == ("0.0.0.0", 0)
    assert parse_listen("[::1]:9464") == ("::1", 9464)
    assert parse_listen("localhost", default_port=9464) == ("localhost", 9464)
    for bad in ("host:port", "1.2.3.4:70000", "::1:80", "[::1", "x:-1", "h"):
        with pytest.raises(ValueError, match="listen address"):
            parse_listen(bad)


# -- bad requests -----------------------------------------------------------------


def test_malformed_requests_get_4xx_and_the_server_keeps_serving(
    server: MetricsServerThread,
) -> None:
    port = server.port
    cases = [
        b"GARBAGE\r\n\r\n",
        b"GET /metrics HTTP/9.9\r\nHost: x\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n",
        b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64,  # TLS hello to plain HTTP
    ]
    for data in cases:
        reply = raw_request(port, data)
        assert reply.startswith(b"HTTP/1."), data[:40]
        code = int(reply.split(b" ", 2)[1])
        assert 400 <= code < 500, (data[:40], reply[:80])
    for method, path, code in (("POST", "/metrics", 405), ("GET", "/nope", 404)):
        req = urllib.request.Request(
            server.url + path, method=method, data=b"" if method == "POST" else None
        )
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req, timeout=10)
        assert err.value.code == code
    status, _, body = get(server.url + "/metrics")
    assert status == 200 and b"bench_ttft_seconds_bucket" in body


# -- concurrency ------------------------------------------------------------------


def test_twenty_concurrent_scrapers_during_a_run(collector: SnapshotCollector) -> None:
    """A publisher-like thread swaps snapshots every few ms while 20 clients scrape."""
    reg = spec_registry()
    stop = threading.Event()
    first = threading.Event()
    ticks = 0

    def publisher() -> None:
        nonlocal ticks
        i = 0
        while not stop.is_set():
            i += 1
            reg.increment("total_samples_issued")
            reg.record("ttft_ns", 1_000_000 + i)
            collector.update(reg.build_snapshot(state=SessionState.LIVE, n_pending_tasks=0))
            ticks += 1
            first.set()
            stop.wait(0.002)

    thread = serve(collector)
    pub = threading.Thread(target=publisher)
    pub.start()
    # The fixture's collector starts on another run's snapshot (505 issued); the run
    # scraped here is the publisher's, counted from 0: scrape once it is served.
    assert first.wait(10), "the publisher never updated the collector"
    accept = {"Accept": "application/openmetrics-text;version=1.0.0", "Accept-Encoding": "gzip"}

    async def scraper(session: aiohttp.ClientSession, n: int) -> list[float]:
        seen = []
        for _ in range(n):
            async with session.get(thread.url + "/metrics", headers=accept) as resp:
                assert resp.status == 200
                body = await resp.text()
            fams = parse_strict(body)
            issued = fams["bench_samples_issued"].samples
            seen.append(next(s.value for s in issued if s.labels["window"] == "all"))
        return seen

    async def main() -> list[list[float]]:
        async with aiohttp.ClientSession() as session:
            return await asyncio.gather(*(scraper(session, 10) for _ in range(20)))

    try:
        results = asyncio.run(main())
    finally:
        stop.set()
        pub.join()
        thread.stop()
    assert len(results) == 20 and all(len(r) == 10 for r in results)
    for seen in results:  # each scraper sees the run move forward, never backward
        assert seen == sorted(seen)
    assert ticks > 1


# -- web config: TLS and basic auth -------------------------------------------------


def make_cert(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "server.crt", directory / "server.key"
    subprocess.run(
        [
            str(OPENSSL), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    return cert, key


def write_web_config(directory: Path, *, tls: bool, auth: bool) -> Path:
    lines = []
    if tls:
        make_cert(directory)
        lines += ["tls_server_config:", "  cert_file: server.crt", "  key_file: server.key"]
    if auth:
        hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
        hashed = "$2y$" + hashed[4:]  # the prefix htpasswd and Go tools write
        lines += ["basic_auth_users:", f"  {USER}: '{hashed}'"]
    path = directory / "web.yml"
    path.write_text("\n".join(lines) + "\n")
    return path


def curl(*args: str) -> tuple[int, str]:
    proc = subprocess.run(
        [str(CURL), "-s", "-o", "-", "-w", "\n%{http_code}", "--max-time", "10", *args],
        capture_output=True,
        timeout=30,
    )
    out = proc.stdout.decode("utf-8", "replace")
    body, _, code = out.rpartition("\n")
    return (int(code) if code.isdigit() else 0), body


@needs_openssl
@needs_curl
def test_tls_and_basic_auth_with_curl(tmp_path: Path, collector: SnapshotCollector) -> None:
    config = load_web_config(write_web_config(tmp_path, tls=True, auth=True))
    thread = serve(collector, config)
    try:
        url = thread.url + "/metrics"
        assert url.startswith("https://127.0.0.1:")
        cacert = str(tmp_path / "server.crt")
        code, body = curl("--cacert", cacert, "-u", f"{USER}:{PASSWORD}", url)
        assert code == 200 and "bench_ttft_seconds_bucket" in body
        assert curl("--cacert", cacert, url)[0] == 401
        assert curl("--cacert", cacert, "-u", f"{USER}:wrong", url)[0] == 401
        assert curl("--cacert", cacert, "-u", f"nobody:{PASSWORD}", url)[0] == 401
        assert curl("--cacert", cacert, thread.url + "/healthz")[0] == 401
        assert curl(url)[0] == 0  # untrusted certificate: curl refuses
        assert curl("-u", f"{USER}:{PASSWORD}", url.replace("https", "http"))[0] != 200
        # many authenticated scrapes stay fast: bcrypt runs once per credential
        for _ in range(5):
            assert curl("--cacert", cacert, "-u", f"{USER}:{PASSWORD}", url)[0] == 200
    finally:
        thread.stop()


@needs_openssl
def test_tls_only(tmp_path: Path, collector: SnapshotCollector) -> None:
    config = load_web_config(write_web_config(tmp_path, tls=True, auth=False))
    assert config.auth is None and config.scheme == "https"
    thread = serve(collector, config)
    try:
        ctx = ssl.create_default_context(cafile=str(tmp_path / "server.crt"))
        with urllib.request.urlopen(thread.url + "/metrics", context=ctx, timeout=10) as r:
            assert r.status == 200
    finally:
        thread.stop()


def test_basic_auth_without_tls(tmp_path: Path, collector: SnapshotCollector) -> None:
    config = load_web_config(write_web_config(tmp_path, tls=False, auth=True))
    thread = serve(collector, config)
    try:
        url = thread.url + "/metrics"
        assert get(url)[0] == 401
        assert get(url)[1]["WWW-Authenticate"].startswith("Basic")
        token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        assert get(url, {"Authorization": f"Basic {token}"})[0] == 200
        assert get(url, {"Authorization": "Basic !!notbase64"})[0] == 401
        assert get(url, {"Authorization": f"Bearer {token}"})[0] == 401
    finally:
        thread.stop()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("tls_server_config: [1, 2]\n", "must be a mapping"),
        ("tls_server_config:\n  cert_file: missing.crt\n  key_file: k\n", "no such file"),
        ("basic_auth_users:\n  u: plaintext\n", "not a bcrypt hash"),
        ("basic_auth_users:\n  u: '$2y$10$short'\n", "invalid bcrypt hash"),
        ("basic_auth_users: {}\n", "non-empty"),
        ("http_server_config:\n  http2: true\n", "unsupported keys"),
        ("tls_server_config:\n  cert_file: a\n  ciphers: x\n", "unsupported keys"),
        ("- a list\n", "top level"),
        ("key: [unclosed\n", "not valid YAML"),
    ],
)
def test_bad_web_configs_are_explained(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "web.yml"
    path.write_text(content)
    with pytest.raises(WebConfigError, match=message) as err:
        load_web_config(path)
    assert str(path) in str(err.value)


def test_missing_web_config_file(tmp_path: Path) -> None:
    with pytest.raises(WebConfigError, match="cannot read"):
        load_web_config(tmp_path / "absent.yml")


def test_empty_web_config_means_plain_http(tmp_path: Path) -> None:
    path = tmp_path / "web.yml"
    path.write_text("")
    config = load_web_config(path)
    assert config.ssl_context is None and config.auth is None
