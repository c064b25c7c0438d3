"""Issue 13 item 6: web-config files that used to hang, 500 or serve plain HTTP, and
credentials that used to reach the log. Real files, a real server, a real CLI process."""

from __future__ import annotations

import base64
import logging
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest

from exporter.http.server import MetricsServer, MetricsServerThread
from exporter.http.web_config import (
    BCRYPT_MAX_PASSWORD_BYTES,
    MAX_BCRYPT_COST,
    WebConfig,
    WebConfigError,
    load_web_config,
)
from exporter.prometheus.collector import SnapshotCollector
from tests.support.cli_process import bench_metrics
from tests.support.exporter_support import registry_of, spec_snapshot

REPO = Path(__file__).resolve().parents[2]
USER = "scraper-alice"
PASSWORD = "Pw-7f3c9a-correct-horse"
LONG_PASSWORD = "L" * BCRYPT_MAX_PASSWORD_BYTES  # exactly at bcrypt's limit


def hash_of(password: str, cost: int = 4) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=cost)).decode()


def with_cost(hashed: str, cost: int) -> str:
    """The same hash text claiming another cost (no need to compute a cost-31 hash)."""
    return f"{hashed[:4]}{cost:02d}{hashed[6:]}"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "web.yml"
    path.write_text(text)
    return path


def users_config(tmp_path: Path, users: dict[str, str]) -> Path:
    lines = ["basic_auth_users:"] + [f"  {u}: '{h}'" for u, h in users.items()]
    return write(tmp_path, "\n".join(lines) + "\n")


# -- bcrypt cost ---------------------------------------------------------------------


def test_cost_31_is_refused_at_once_by_the_command_line(tmp_path: Path) -> None:
    """The probe: start-up used to hash for days at 100 % CPU and ignore Ctrl-C."""
    path = users_config(tmp_path, {USER: with_cost(hash_of(PASSWORD), 31)})
    proc = subprocess.run(
        [*bench_metrics(), "export", "--connect", "tcp://127.0.0.1:1", "--web-config", str(path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,  # a hang fails here
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert f"bcrypt cost 31 is outside 4..{MAX_BCRYPT_COST}" in lines[0]
    assert str(path) in lines[0] and PASSWORD not in lines[0]


@pytest.mark.parametrize("cost", [3, 15, 31, 99])
def test_costs_outside_the_range_are_refused(tmp_path: Path, cost: int) -> None:
    path = users_config(tmp_path, {USER: with_cost(hash_of(PASSWORD), cost)})
    with pytest.raises(WebConfigError, match=f"bcrypt cost {cost} is outside"):
        load_web_config(path)


def test_the_maximum_cost_is_configurable(tmp_path: Path) -> None:
    assert MAX_BCRYPT_COST == 14
    path = users_config(tmp_path, {USER: hash_of(PASSWORD, cost=5)})
    with pytest.raises(WebConfigError, match=r"cost 5 is outside 4\.\.4"):
        load_web_config(path, max_bcrypt_cost=4)
    assert load_web_config(path, max_bcrypt_cost=5).auth is not None
    assert load_web_config(path).auth is not None


@pytest.mark.parametrize(
    "bad", ["$2y$10$" + "a" * 52, "$2y$10$" + "a" * 54, "$2y$1x$" + "a" * 53, "$2y$10$" + "!" * 53]
)
def test_malformed_hashes_are_refused_without_running_bcrypt(tmp_path: Path, bad: str) -> None:
    with pytest.raises(WebConfigError, match="invalid bcrypt hash"):
        load_web_config(users_config(tmp_path, {USER: bad}))


# -- TLS section -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tls_server_config:\n", "needs cert_file and key_file"),
        ("tls_server_config: {}\n", "needs cert_file and key_file"),
        ("tls_server_config:\n  min_version: TLS13\n", "cert_file must be a file name"),
    ],
)
def test_tls_section_without_cert_and_key_is_an_error_not_plain_http(
    tmp_path: Path, text: str, message: str
) -> None:
    auth = f"basic_auth_users:\n  {USER}: '{hash_of(PASSWORD)}'\n"
    with pytest.raises(WebConfigError, match=message):
        load_web_config(write(tmp_path, text + auth))


# -- a real server with basic auth ---------------------------------------------------------


@pytest.fixture
def auth_server(tmp_path: Path) -> Iterator[MetricsServerThread]:
    config = load_web_config(
        users_config(tmp_path, {USER: hash_of(PASSWORD), "long": hash_of(LONG_PASSWORD)})
    )
    collector = SnapshotCollector(labels={"run_id": "auth"})
    collector.update(spec_snapshot(n=50))
    server = MetricsServer(
        registry_of(collector), web_config=config, generation=lambda: collector.generation
    )
    thread = MetricsServerThread(server)
    thread.start()
    yield thread
    thread.stop()


def status_with(url: str, user: str, password: str) -> int:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    req = urllib.request.Request(url, headers={"Authorization": f"Basic {token}"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


def test_passwords_longer_than_72_bytes_get_401_never_500(
    auth_server: MetricsServerThread, caplog: pytest.LogCaptureFixture
) -> None:
    url = auth_server.url + "/metrics"
    caplog.set_level(logging.DEBUG)
    assert status_with(url, "long", LONG_PASSWORD) == 200  # 72 bytes: fine
    # 73 bytes that start with the right 72: bcrypt must not be fooled by truncation
    assert status_with(url, "long", LONG_PASSWORD + "x") == 401
    assert status_with(url, USER, "p" * 73) == 401
    assert status_with(url, USER, "p" * 4000) == 401
    assert status_with(url, USER, PASSWORD) == 200
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not any(r.exc_info for r in caplog.records)


def test_no_credential_material_in_any_log_line(
    auth_server: MetricsServerThread, caplog: pytest.LogCaptureFixture
) -> None:
    """The probe: an oversized Authorization header was logged with the user and password."""
    caplog.set_level(logging.DEBUG)
    port = auth_server.port
    secret = PASSWORD * 400  # ~9 KB: past aiohttp's 8190-byte field limit
    token = base64.b64encode(f"{USER}:{secret}".encode()).decode()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(
            f"GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {token}\r\n\r\n".encode()
        )
        reply = s.recv(65536)
    assert reply.startswith(b"HTTP/1.") and reply.split(b" ", 2)[1] == b"400"
    assert status_with(auth_server.url + "/metrics", USER, "wrong-" + PASSWORD) == 401
    assert status_with(auth_server.url + "/metrics", "nobody-" + USER, PASSWORD) == 401
    assert status_with(auth_server.url + "/metrics", USER, PASSWORD) == 200

    formatter = logging.Formatter("%(name)s %(message)s")
    text = "\n".join(formatter.format(r) for r in caplog.records)
    assert "malformed HTTP request" in text and "LineTooLong" in text  # it was reported
    for needle in (USER, PASSWORD[:8], token[:16], base64.b64encode(USER.encode()).decode()[:8]):
        assert needle not in text, needle
    assert "Traceback" not in text


def test_empty_config_still_serves_plain_http(tmp_path: Path) -> None:
    config = load_web_config(write(tmp_path, ""))
    assert config == WebConfig() and config.scheme == "http"


def test_the_dummy_hash_is_made_when_basic_auth_is_configured_not_at_import() -> None:
    """Every command imports this module; a bcrypt hash (~75 ms) is paid only by a
    server with basic auth, and an unknown user is still checked against it."""
    code = (
        "import sys, bcrypt\n"
        "from exporter.http import web_config as w\n"
        "assert w._dummy_hash.cache_info().currsize == 0, 'hashed at import'\n"
        "auth = w.BasicAuth({'alice': bcrypt.hashpw(b'pw', bcrypt.gensalt(rounds=4))})\n"
        "assert w._dummy_hash.cache_info().currsize == 1\n"
        "assert not auth._verify('mallory', b'pw') and auth._verify('alice', b'pw')\n"
        "print('ok')\n"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
