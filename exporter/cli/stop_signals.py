"""Ctrl-C and SIGTERM for the commands that run an event loop (``demo``, ``watch``, ``export``).

:class:`StopSignals` turns either signal into an :class:`asyncio.Event` (so a
redraw or a linger is never cut in the middle) and remembers the first one,
so every command exits with the same code for the same signal: 128 + its
number (130 for SIGINT, 143 for SIGTERM) when it stopped the work, 0 when the
work was already done (a linger after the final snapshot cut short). It only
installs and removes loop signal handlers; it never exits the process itself.
"""

from __future__ import annotations

import asyncio
import signal

__all__ = ["STOP_SIGNALS", "StopSignals"]

STOP_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    """The stop event of one command, and which signal set it first."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        #: the first stop signal received, if any
        self.first: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def install(self) -> StopSignals:
        """Handle SIGINT and SIGTERM on the running loop from now on."""
        self._loop = asyncio.get_running_loop()
        for sig in STOP_SIGNALS:
            self._loop.add_signal_handler(sig, self._on_signal, sig)
        return self

    def remove(self) -> None:
        loop, self._loop = self._loop, None
        if loop is not None and not loop.is_closed():
            for sig in STOP_SIGNALS:
                loop.remove_signal_handler(sig)

    def _on_signal(self, sig: int) -> None:
        if self.first is None:
            self.first = sig
        self.event.set()

    def is_set(self) -> bool:
        return self.event.is_set()

    async def wait(self) -> None:
        await self.event.wait()

    @property
    def exit_code(self) -> int:
        """128 + the first signal's number (``1`` if none came: a caller's mistake)."""
        return 128 + self.first if self.first is not None else 1
