"""A real headless Chromium driven over the DevTools protocol, for the HTML page tests.

:func:`load_page` opens a local file in a fresh, offline Chromium
(``--host-resolver-rules`` maps every host to nothing) and returns what a
reviewer would check: every request the page attempted (``Network``
events), console and page errors (``Log``, ``Runtime``), values of a few
JavaScript expressions evaluated in the page, and a PNG screenshot.
:func:`chromium` is the binary, or ``None`` (the tests then skip).
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

WAIT_S = 60.0


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@dataclass
class PageLoad:
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    values: dict[str, Any] = field(default_factory=dict)
    screenshot: bytes = b""


def _port(profile: Path, proc: subprocess.Popen[bytes]) -> int:
    marker = profile / "DevToolsActivePort"
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if marker.exists():
            lines = marker.read_text().splitlines()
            if lines and lines[0].isdigit():
                return int(lines[0])
        assert proc.poll() is None, f"chromium exited with {proc.returncode}"
        time.sleep(0.05)
    raise AssertionError("chromium did not open its DevTools port")


async def _drive(port: int, url: str, expressions: dict[str, str], width: int) -> PageLoad:
    out = PageLoad()
    async with aiohttp.ClientSession() as http:
        async with http.put(f"http://127.0.0.1:{port}/json/new?about:blank") as r:
            target = await r.json(content_type=None)
        async with http.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            next_id = 0
            loaded = asyncio.Event()
            replies: dict[int, asyncio.Future[Any]] = {}

            async def reader() -> None:
                async for msg in ws:
                    data = json.loads(msg.data)
                    if "id" in data and data["id"] in replies:
                        replies.pop(data["id"]).set_result(data)
                        continue
                    method, params = data.get("method"), data.get("params", {})
                    if method == "Network.requestWillBeSent":
                        out.requests.append(params["request"]["url"])
                    elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                        out.errors.append(params["entry"]["text"])
                    elif method == "Runtime.consoleAPICalled" and params["type"] == "error":
                        out.errors.append(str(params.get("args")))
                    elif method == "Runtime.exceptionThrown":
                        out.errors.append(str(params["exceptionDetails"]))
                    elif method == "Page.loadEventFired":
                        loaded.set()

            async def call(method: str, **params: Any) -> Any:
                nonlocal next_id
                next_id += 1
                fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
                replies[next_id] = fut
                await ws.send_str(json.dumps({"id": next_id, "method": method, "params": params}))
                reply = await asyncio.wait_for(fut, WAIT_S)
                assert "error" not in reply, reply
                return reply.get("result", {})

            task = asyncio.create_task(reader())
            try:
                for domain in ("Network", "Log", "Runtime", "Page"):
                    await call(f"{domain}.enable")
                await call(
                    "Emulation.setDeviceMetricsOverride",
                    width=width,
                    height=900,
                    deviceScaleFactor=1,
                    mobile=False,
                )
                await call("Page.navigate", url=url)
                await asyncio.wait_for(loaded.wait(), WAIT_S)
                for name, expr in expressions.items():
                    res = await call("Runtime.evaluate", expression=expr, returnByValue=True)
                    out.values[name] = res["result"].get("value")
                shot = await call(
                    "Page.captureScreenshot", format="png", captureBeyondViewport=True
                )
                out.screenshot = base64.b64decode(shot["data"])
            finally:
                task.cancel()
    return out


def load_page(path: Path, expressions: dict[str, str], *, width: int = 1300) -> PageLoad:
    """Open ``path`` in an offline headless Chromium; see the module docstring."""
    binary = chromium()
    assert binary is not None
    with tempfile.TemporaryDirectory(prefix="bm-chromium-") as profile:
        proc = subprocess.Popen(
            [
                binary,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--host-resolver-rules=MAP * ~NOTFOUND",
                f"--user-data-dir={profile}",
                "--remote-debugging-port=0",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            port = _port(Path(profile), proc)
            return asyncio.run(_drive(port, path.resolve().as_uri(), expressions, width))
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
