"""A real terminal for the view tests: a command run in a detached tmux pane of a given size.

``run_in_terminal`` starts the command in a fresh tmux server (its own socket,
so nothing is shared with a user's tmux), waits for it to exit (the pane
stays, ``remain-on-exit``), and returns what the screen shows then plus the
scrollback, as text, with the exit status. Tests that need it skip when tmux
is not installed (``.ci/run`` installs it).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

__all__ = ["Screen", "need_tmux", "run_in_terminal"]


def need_tmux() -> str:
    """The tmux binary, or skip the test saying why."""
    found = shutil.which("tmux")
    if found is None:
        pytest.skip("tmux is not installed (the Debian package tmux; .ci/run installs it)")
    return found


@dataclass(frozen=True)
class Screen:
    """What a terminal of ``width`` columns showed: every line (scrollback too), and the code."""

    lines: list[str]
    returncode: int | None
    width: int

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


class _Tmux:
    def __init__(self, tmux: str, socket: Path) -> None:
        self.tmux = tmux
        self.socket = socket

    def __call__(self, *args: str, check: bool = True) -> str:
        done = subprocess.run(
            [self.tmux, "-S", str(self.socket), *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"tmux {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout


def run_in_terminal(
    argv: Sequence[str],
    *,
    width: int,
    height: int = 60,
    timeout: float = 60.0,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    until: Callable[[Screen], bool] | None = None,
    then_send: str | None = None,
) -> Screen:
    """Run ``argv`` in a ``width`` x ``height`` terminal until it exits (or ``timeout``).

    ``until`` + ``then_send``: once the screen satisfies ``until``, type
    ``then_send`` (tmux key names, e.g. ``C-c``) into the terminal.
    """
    tmux = _Tmux(need_tmux(), Path("/tmp") / f"bm-tmux-{uuid.uuid4().hex[:12]}")
    environment = {"TERM": "xterm-256color", "LANG": "C.UTF-8", **(env or {})}
    exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in environment.items())
    # The shell writes the exit status to a file: tmux's own #{pane_dead_status} is
    # not always filled in (a pane whose process it has not reaped yet reads empty).
    status_file = tmux.socket.with_suffix(".status")
    command = (
        f"cd {shlex.quote(str(cwd or os.getcwd()))}; env {exports} {shlex.join(argv)}; "
        f"echo $? > {shlex.quote(str(status_file))}"
    )
    # Options in the server's config, so they hold before the command can exit (a pane
    # that ends before remain-on-exit is set takes the whole server with it).
    config = tmux.socket.with_suffix(".conf")
    config.write_text("set -g remain-on-exit on\nset -g history-limit 5000\n")
    try:
        tmux("-f", str(config), "new-session", "-d", "-x", str(width), "-y", str(height),
             "-s", "t", command)  # fmt: skip
        sent = then_send is None
        deadline = time.monotonic() + timeout
        while True:
            done = status_file.read_text().strip() if status_file.exists() else ""
            screen = _capture(tmux, width)
            if done:
                # 128 + N for a command a signal ended, as the shell reports it
                return Screen(screen.lines, int(done), width)
            if not sent and until is not None and until(screen):
                assert then_send is not None
                tmux("send-keys", "-t", "t", then_send)
                sent = True
            if time.monotonic() > deadline:
                return Screen(screen.lines, None, width)
            time.sleep(0.1)
    finally:
        tmux("kill-server", check=False)
        tmux.socket.unlink(missing_ok=True)
        config.unlink(missing_ok=True)
        status_file.unlink(missing_ok=True)


def _capture(tmux: _Tmux, width: int) -> Screen:
    # -J would join wrapped lines: leave them as the screen shows them.
    out = tmux("capture-pane", "-p", "-t", "t", "-S", "-5000")
    lines = [ln for ln in out.rstrip("\n").split("\n") if not ln.startswith("Pane is dead (")]
    return Screen(lines, None, width)
