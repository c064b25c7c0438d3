"""Shared test helpers: polling with a deadline instead of sleeping."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


def wait_until(pred: Callable[[], object], timeout: float = 5.0, interval: float = 0.005) -> bool:
    """Poll ``pred`` until it is truthy or ``timeout`` seconds pass; its last truthiness."""
    deadline = time.monotonic() + timeout
    while True:
        if pred():
            return True
        if time.monotonic() >= deadline:
            return bool(pred())
        time.sleep(interval)


async def async_wait_until(
    pred: Callable[[], object], timeout: float = 5.0, interval: float = 0.005
) -> bool:
    """:func:`wait_until` for coroutines: yields to the loop between polls."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        if pred():
            return True
        if loop.time() >= deadline:
            return bool(pred())
        await asyncio.sleep(interval)
