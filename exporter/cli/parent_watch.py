"""End a child process when the process that started it dies (issue 15).

A parent that starts one of our processes (``demo`` starting ``aggregate``, a
bench script starting its producer or scraper) builds the child's environment
with :func:`child_env`, which names the parent's pid in
``BENCH_METRICS_PARENT_PID``. The child calls :func:`arm_from_environment`
first thing; from then on the parent's death delivers SIGTERM to the child,
so it ends exactly as on an ordinary SIGTERM (the aggregator writes its
INTERRUPTED final files and exits 143) instead of running forever as an
orphan after its parent was SIGKILLed.

Mechanisms:

- Linux: ``prctl(PR_SET_PDEATHSIG, SIGTERM)`` through ctypes: the kernel
  sends the signal the moment the parent goes, with no thread and no polling.
  The race where the parent died before the call is closed by comparing
  ``os.getppid()`` with the pid the parent wrote, *after* the call: a
  reparented child signals itself.
- Elsewhere, or where the prctl call fails, or when the parent asked for it: a
  daemon watchdog thread polls ``os.getppid()`` and sends SIGTERM to its own
  process once the parent pid changes.

PDEATHSIG fires when the parent *thread* that forked the child exits, not
the parent process. That is safe when the fork happened on the parent's main
thread, which lives until the process ends (CPython never ends its main
thread early; ``asyncio.run`` and its subprocess transport fork on it). A
parent forking from another thread cannot promise that, so :func:`child_env`
then marks the value ``PID:watchdog`` and the child polls instead.

This lives in ``exporter`` beside the command line because it concerns the
processes the commands start, not any number. It must never do anything but
arm this one signal: no handler is installed here (SIGTERM keeps whatever the
process installs, or its default), the variable is removed from the
environment when read so it never reaches a grandchild with the wrong pid,
and a bad value is a warning, never a failure of the command.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import sys
import threading
from collections.abc import Mapping

__all__ = [
    "PARENT_PID_ENV",
    "WATCHDOG_INTERVAL_S",
    "arm_from_environment",
    "child_env",
]

log = logging.getLogger(__name__)

PARENT_PID_ENV = "BENCH_METRICS_PARENT_PID"
#: How often the watchdog looks at its parent pid: the longest an orphan outlives its parent.
WATCHDOG_INTERVAL_S = 0.25

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_WATCHDOG_SUFFIX = ":watchdog"
_armed: str | None = None


def child_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a child that must end when this process dies.

    Call it on the thread that starts the child (it decides whether the child
    may trust PDEATHSIG), and pass the result as ``env=`` to the spawn call.
    """
    env = dict(os.environ if base is None else base)
    on_main = threading.current_thread() is threading.main_thread()
    env[PARENT_PID_ENV] = f"{os.getpid()}{'' if on_main else _WATCHDOG_SUFFIX}"
    return env


def arm_from_environment() -> str | None:
    """Arm the parent-death SIGTERM that :func:`child_env` asked for.

    Returns the mechanism armed (``"pdeathsig"`` or ``"watchdog"``), or None
    when the process was not started that way (or the value is unusable).
    If the parent is already gone, SIGTERM is sent at once.
    """
    global _armed
    value = os.environ.pop(PARENT_PID_ENV, None)
    if _armed is not None or value is None:
        return _armed
    text = value.removesuffix(_WATCHDOG_SUFFIX)
    try:
        parent = int(text)
    except ValueError:
        parent = 0
    if parent <= 0:
        log.warning("ignoring %s=%r: not a process id", PARENT_PID_ENV, value)
        return None
    mechanism = "watchdog"
    if not value.endswith(_WATCHDOG_SUFFIX) and _set_pdeathsig(signal.SIGTERM):
        mechanism = "pdeathsig"
    _armed = mechanism
    # After the prctl call: a parent that died before it has already reparented us.
    if os.getppid() != parent:
        log.warning("the parent process %d is gone: ending with SIGTERM", parent)
        os.kill(os.getpid(), signal.SIGTERM)
        return mechanism
    if mechanism == "watchdog":
        threading.Thread(target=_watch, args=(parent,), name="parent-watchdog", daemon=True).start()
    log.debug("armed SIGTERM on the death of parent %d (%s)", parent, mechanism)
    return mechanism


def _set_pdeathsig(signum: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, int(signum), 0, 0, 0) == 0:
            return True
        err = ctypes.get_errno()
        log.debug("prctl(PR_SET_PDEATHSIG) failed: %s; using the watchdog", os.strerror(err))
    except (OSError, AttributeError) as exc:
        log.debug("prctl unavailable (%s); using the watchdog", exc)
    return False


def _watch(parent: int) -> None:
    stop = threading.Event()  # never set: waits are the polling interval
    while os.getppid() == parent:
        stop.wait(WATCHDOG_INTERVAL_S)
    log.warning("the parent process %d is gone: ending with SIGTERM", parent)
    with contextlib.suppress(ProcessLookupError):
        os.kill(os.getpid(), signal.SIGTERM)
