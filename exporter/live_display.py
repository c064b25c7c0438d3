"""Runs a :class:`~exporter.live_view.LiveView` on a terminal until told to stop.

Either a rich ``Live`` display redrawn a few times a second (``tui=True``), or
plain progress lines, one when something new arrived and at most one per
``line_every_s`` (for ``--no-tui``, pipes and logs). It reads whatever the
snapshot source holds at each redraw and never waits on it, so a silent
stream cannot freeze the screen, and it must never alter the snapshots it shows.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from rich.console import Console
from rich.live import Live

from exporter.live_view import LiveView
from registry.snapshot import MetricsSnapshot

__all__ = ["SnapshotSource", "show_live"]


class SnapshotSource(Protocol):
    """What the display reads: the newest snapshot and how many frames were lost."""

    @property
    def latest(self) -> MetricsSnapshot | None: ...

    @property
    def dropped(self) -> int: ...


def _no_notes() -> Sequence[str]:
    return ()


async def _tick(finished: asyncio.Event, seconds: float) -> None:
    """Wait ``seconds`` between redraws, or less when the run finishes."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(finished.wait(), seconds)


async def show_live(
    source: SnapshotSource,
    view: LiveView,
    *,
    finished: asyncio.Event,
    tui: bool,
    console: Console,
    refresh_s: float = 0.25,
    line_every_s: float = 1.0,
    notes: Callable[[], Sequence[str]] = _no_notes,
) -> None:
    """Show ``source`` through ``view`` until ``finished`` is set, then draw once more."""
    if tui:
        with Live(
            view.render(), console=console, auto_refresh=False, redirect_stderr=False
        ) as live:
            while True:
                done = finished.is_set()
                view.update(source.latest)
                live.update(view.render(dropped=source.dropped, notes=notes()), refresh=True)
                if done:
                    return
                await _tick(finished, refresh_s)
    last_shown: MetricsSnapshot | None = None
    last_line = -line_every_s
    while True:
        done = finished.is_set()
        view.update(source.latest)
        snap = view.snapshot
        now = time.monotonic()
        fresh = snap is not None and snap is not last_shown  # a new frame is a new object
        if (fresh and now - last_line >= line_every_s) or (done and fresh):
            console.print(view.line(), highlight=False, soft_wrap=True)
            last_shown = snap
            last_line = now
        if done:
            return
        await _tick(finished, refresh_s)
