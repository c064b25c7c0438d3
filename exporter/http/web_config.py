"""The ``--web-config`` file: TLS and basic auth in the style of Prometheus exporters.

The YAML layout is the exporter-toolkit's, so one file can serve both::

    tls_server_config:
      cert_file: server.crt        # relative paths are relative to this file
      key_file: server.key
      min_version: TLS12           # optional: TLS12 (default) or TLS13
      client_auth_type: NoClientCert   # or RequireAndVerifyClientCert, VerifyClientCertIfGiven
      client_ca_file: ca.crt       # required by the two client-cert types
    basic_auth_users:
      prometheus: $2y$10$...       # bcrypt hashes only

This module only parses and checks: it turns the file into an
``ssl.SSLContext`` and a :class:`BasicAuth` checker, and says exactly what is
wrong with a bad file. It never serves anything, never logs a password, user
name or hash, and never runs bcrypt at load time (a hash of cost 31 would take
days: costs above :data:`MAX_BCRYPT_COST` are refused instead).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import hashlib
import hmac
import re
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bcrypt
import yaml

__all__ = [
    "BCRYPT_MAX_PASSWORD_BYTES",
    "MAX_BCRYPT_COST",
    "BasicAuth",
    "WebConfig",
    "WebConfigError",
    "load_web_config",
]

#: Highest bcrypt cost accepted (each check costs 2**cost rounds: 14 is ~1 s here, 31 is days).
MAX_BCRYPT_COST = 14
#: Lowest cost bcrypt itself accepts.
MIN_BCRYPT_COST = 4
#: bcrypt reads at most this many bytes of a password; longer ones are refused (401).
BCRYPT_MAX_PASSWORD_BYTES = 72

# $2a$ / $2b$ / $2y$, a two-digit cost, then 22 characters of salt and 31 of hash.
_BCRYPT_HASH = re.compile(r"\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}")


class WebConfigError(ValueError):
    """A web-config file that cannot be used; the message names the file and the field."""


_TLS_KEYS = {"cert_file", "key_file", "min_version", "client_auth_type", "client_ca_file"}
_TOP_KEYS = {"tls_server_config", "basic_auth_users"}
_VERSIONS = {"TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
_CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}


@functools.cache
def _dummy_hash() -> bytes:
    """Checked against when the user is unknown, so a wrong user name costs as much
    time as a wrong password and does not reveal which users exist. Made the first
    time basic auth is configured, not at import: hashing takes ~75 ms, which every
    command would otherwise pay at start-up."""
    return bcrypt.hashpw(b"bench-metrics-dummy", bcrypt.gensalt(rounds=10))


class BasicAuth:
    """Checks ``Authorization: Basic …`` headers against bcrypt hashes.

    bcrypt is slow on purpose (tens of milliseconds), so :meth:`check` runs it in a
    worker thread and remembers credentials that passed (as a salted digest,
    never the password) so that a scraper pays the cost once, not every scrape.
    """

    def __init__(self, users: dict[str, bytes]) -> None:
        self._users = dict(users)
        self._dummy = _dummy_hash()
        self._salt = hashlib.sha256(repr(sorted(users.items())).encode()).digest()
        self._good: set[bytes] = set()
        self._lock = threading.Lock()

    @property
    def users(self) -> tuple[str, ...]:
        return tuple(self._users)

    def _digest(self, user: str, password: bytes) -> bytes:
        return hmac.digest(self._salt, user.encode() + b"\0" + password, "sha256")

    def _verify(self, user: str, password: bytes) -> bool:
        hashed = self._users.get(user)
        try:
            ok = bcrypt.checkpw(password, hashed if hashed is not None else self._dummy)
        except ValueError:  # anything bcrypt refuses to check is simply not the password
            return False
        return ok and hashed is not None

    async def check(self, header: str | None) -> bool:
        """Whether ``header`` (the raw Authorization value) names a user and its password."""
        parsed = _parse_basic(header)
        if parsed is None:
            return False
        user, password = parsed
        if len(password) > BCRYPT_MAX_PASSWORD_BYTES:
            # bcrypt would ignore the rest (older versions) or raise (bcrypt >= 5): a
            # hash can never vouch for such a password, so it is wrong, like any other.
            return False
        digest = self._digest(user, password)
        with self._lock:
            if digest in self._good:
                return True
        ok = await asyncio.to_thread(self._verify, user, password)
        if ok:
            with self._lock:
                if len(self._good) > 1024:  # bounded: a few scrapers, a few users
                    self._good.clear()
                self._good.add(digest)
        return ok


def _parse_basic(header: str | None) -> tuple[str, bytes] | None:
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic" or not token:
        return None
    try:
        raw = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, sep, password = raw.partition(b":")
    if not sep:
        return None
    try:
        return user.decode("utf-8"), password
    except UnicodeDecodeError:
        return None


@dataclass(frozen=True)
class WebConfig:
    """What a web-config file asks for: TLS (``ssl_context``) and/or basic auth (``auth``)."""

    ssl_context: ssl.SSLContext | None = None
    auth: BasicAuth | None = None

    @property
    def scheme(self) -> str:
        return "https" if self.ssl_context is not None else "http"


def _fail(path: Path, message: str) -> WebConfigError:
    return WebConfigError(f"web config {path}: {message}")


def _file(path: Path, section: dict[str, Any], key: str) -> Path:
    value = section.get(key)
    if not isinstance(value, str) or not value:
        raise _fail(path, f"tls_server_config.{key} must be a file name")
    p = Path(value)
    p = p if p.is_absolute() else path.parent / p
    if not p.is_file():
        raise _fail(path, f"tls_server_config.{key}: no such file {str(p)!r}")
    return p


def _tls_context(path: Path, section: Any) -> ssl.SSLContext:
    if section is None or section == {}:
        # Present but empty must not quietly mean plain HTTP (with basic auth in clear).
        raise _fail(
            path, "tls_server_config needs cert_file and key_file (remove it to serve plain HTTP)"
        )
    if not isinstance(section, dict):
        raise _fail(path, "tls_server_config must be a mapping")
    unknown = set(section) - _TLS_KEYS
    if unknown:
        raise _fail(path, f"tls_server_config: unsupported keys {sorted(unknown)}")
    cert, key = _file(path, section, "cert_file"), _file(path, section, "key_file")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    version = section.get("min_version", "TLS12")
    if version not in _VERSIONS:
        raise _fail(path, f"tls_server_config.min_version {version!r}: use {sorted(_VERSIONS)}")
    ctx.minimum_version = _VERSIONS[version]
    try:
        ctx.load_cert_chain(str(cert), str(key))
    except (ssl.SSLError, OSError) as exc:
        raise _fail(path, f"cannot load cert_file/key_file: {exc}") from exc
    auth_type = section.get("client_auth_type", "NoClientCert")
    if auth_type not in _CLIENT_AUTH:
        raise _fail(
            path, f"tls_server_config.client_auth_type {auth_type!r}: use {sorted(_CLIENT_AUTH)}"
        )
    ctx.verify_mode = _CLIENT_AUTH[auth_type]
    if auth_type != "NoClientCert":
        ca = _file(path, section, "client_ca_file")
        try:
            ctx.load_verify_locations(cafile=str(ca))
        except (ssl.SSLError, OSError) as exc:
            raise _fail(path, f"cannot load client_ca_file: {exc}") from exc
    return ctx


def _users(path: Path, section: Any, max_cost: int) -> dict[str, bytes]:
    if not isinstance(section, dict) or not section:
        raise _fail(path, "basic_auth_users must be a non-empty mapping of user: bcrypt hash")
    users: dict[str, bytes] = {}
    for user, hashed in section.items():
        if not isinstance(user, str) or not user or ":" in user:
            raise _fail(path, f"basic_auth_users: invalid user name {user!r}")
        if not isinstance(hashed, str) or not hashed.startswith(("$2a$", "$2b$", "$2y$")):
            raise _fail(path, f"basic_auth_users.{user}: not a bcrypt hash")
        match = _BCRYPT_HASH.fullmatch(hashed)
        if match is None:
            raise _fail(
                path,
                f"basic_auth_users.{user}: invalid bcrypt hash "
                "(expected $2y$NN$ followed by 53 characters of [./A-Za-z0-9])",
            )
        cost = int(match.group(1))
        if not MIN_BCRYPT_COST <= cost <= max_cost:
            raise _fail(
                path,
                f"basic_auth_users.{user}: bcrypt cost {cost} is outside {MIN_BCRYPT_COST}.."
                f"{max_cost} (each check costs 2^cost rounds); rehash it, e.g. htpasswd -nBC 10",
            )
        users[user] = hashed.encode()
    return users


def load_web_config(path: str | Path, *, max_bcrypt_cost: int = MAX_BCRYPT_COST) -> WebConfig:
    """Parse and check ``path`` (``WebConfigError`` saying what is wrong).

    bcrypt hashes of a cost above ``max_bcrypt_cost`` are refused.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise WebConfigError(f"web config {p}: cannot read: {exc.strerror or exc}") from exc
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise _fail(p, f"not valid YAML: {exc}") from exc
    if doc is None:
        return WebConfig()
    if not isinstance(doc, dict):
        raise _fail(p, "the top level must be a mapping")
    unknown = set(doc) - _TOP_KEYS
    if unknown:
        raise _fail(p, f"unsupported keys {sorted(unknown)} (supported: {sorted(_TOP_KEYS)})")
    ctx = _tls_context(p, doc["tls_server_config"]) if "tls_server_config" in doc else None
    auth = None
    if "basic_auth_users" in doc:
        auth = BasicAuth(_users(p, doc["basic_auth_users"], max_bcrypt_cost))
    return WebConfig(ssl_context=ctx, auth=auth)
