"""Runs a :class:`~exporter.views.live_view.LiveView` on a terminal until told to stop.

Either a rich ``Live`` display redrawn a few times a second (``tui=True``), or
plain progress lines, one when something new arrived and at most one per
``line_every_s`` (for ``--no-tui``, pipes and logs). It reads whatever the
snapshot source holds at each redraw and never waits on it, so a silent
stream cannot freeze the screen, and it must never alter the snapshots it shows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import termios
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol, TextIO

from rich.console import Console
from rich.live import Live

from exporter.views.live_view import LiveView, intro_lines
from registry.delivery.snapshot import MetricsSnapshot

__all__ = ["SnapshotSource", "show_live"]


class SnapshotSource(Protocol):
    """What the display reads: the newest snapshot and how many frames were lost."""

    @property
    def latest(self) -> MetricsSnapshot | None: ...

    @property
    def dropped(self) -> int: ...


@contextlib.contextmanager
def _logging_to(stream: TextIO, instead_of: TextIO) -> Iterator[None]:
    """Point the root logger's handlers that write to ``instead_of`` at ``stream`` for a while.

    ``logging.basicConfig`` keeps the stderr it saw, so Live's stderr redirection
    alone would let log lines tear through the view."""
    moved = []
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream is instead_of:
            moved.append((handler, handler.setStream(stream)))
    try:
        yield
    finally:
        for handler, old in moved:
            handler.setStream(old)


@contextlib.contextmanager
def _quiet_ctrl_c() -> Iterator[None]:
    """Stop the terminal echoing ``^C``: the echo moves the cursor under the live
    view, which then redraws one line too low and leaves a torn line behind."""
    try:
        fd = sys.stdin.fileno()
        saved = termios.tcgetattr(fd) if os.isatty(fd) else None
    except (OSError, ValueError, termios.error):
        saved = None
    if saved is None:
        yield
        return
    quiet = list(saved)
    quiet[3] = saved[3] & ~termios.ECHOCTL  # lflag
    try:
        termios.tcsetattr(fd, termios.TCSANOW, quiet)
    except termios.error:
        yield
        return
    try:
        yield
    finally:
        with contextlib.suppress(termios.error):
            termios.tcsetattr(fd, termios.TCSANOW, saved)


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
        real_stderr = sys.stderr
        with (
            Live(view.render(), console=console, auto_refresh=False, redirect_stderr=True) as live,
            _logging_to(sys.stderr, real_stderr),  # now Live's proxy: logs print above the view
            _quiet_ctrl_c(),
        ):
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
            if last_shown is None:  # said once: the run, where /metrics is, what the columns mean
                for line in intro_lines(snap):  # markup=False: "[" in a run id is text
                    console.print(line, highlight=False, soft_wrap=True, markup=False)
            console.print(view.line(), highlight=False, soft_wrap=True, markup=False)
            last_shown = snap
            last_line = now
        if done:
            return
        await _tick(finished, refresh_s)
