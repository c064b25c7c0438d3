"""The session state machine of the aggregator (SPEC §6).

INITIALIZE → LIVE on ``session.started`` → DRAINING on ``session.ended`` →
COMPLETE after the final publish; INTERRUPTED from any non-terminal state on
SIGTERM/SIGINT. Transitions only ever move forward: a repeated or late
request is logged and ignored, never an error, because it comes from the
event stream and bad input must not crash the service.

Pure state: no I/O, no asyncio. Whoever needs to react to a change (the
service waiting for DRAINING) registers a listener.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from registry.delivery.snapshot import SessionState

__all__ = ["SessionMachine"]

logger = logging.getLogger(__name__)

StateListener = Callable[[SessionState, SessionState], None]


class SessionMachine:
    """Forward-only session state with change listeners ``fn(old, new)``."""

    def __init__(self) -> None:
        self._state = SessionState.INITIALIZE
        self._listeners: list[StateListener] = []

    @property
    def state(self) -> SessionState:
        return self._state

    def add_listener(self, fn: StateListener) -> None:
        """Call ``fn(old, new)`` after every transition (in the caller's thread)."""
        self._listeners.append(fn)

    def _move(self, new: SessionState) -> None:
        old, self._state = self._state, new
        logger.info("session state %s -> %s", old.value, new.value)
        for fn in self._listeners:
            fn(old, new)

    def start(self) -> bool:
        """``session.started``: INITIALIZE → LIVE. A duplicate is logged and ignored."""
        if self._state is SessionState.INITIALIZE:
            self._move(SessionState.LIVE)
            return True
        logger.warning("ignoring session.started in state %s (duplicate)", self._state.value)
        return False

    def end(self) -> bool:
        """``session.ended``: INITIALIZE/LIVE → DRAINING (a session that never
        announced its start may still end). Later requests are ignored."""
        if self._state.rank < SessionState.DRAINING.rank:
            self._move(SessionState.DRAINING)
            return True
        logger.warning("ignoring session.ended in state %s", self._state.value)
        return False

    def complete(self) -> bool:
        """After the final publish of a drained session: DRAINING → COMPLETE."""
        if self._state is SessionState.DRAINING:
            self._move(SessionState.COMPLETE)
            return True
        logger.warning("cannot complete a session in state %s", self._state.value)
        return False

    def interrupt(self) -> bool:
        """SIGTERM/SIGINT: any non-terminal state → INTERRUPTED."""
        if not self._state.is_terminal:
            self._move(SessionState.INTERRUPTED)
            return True
        return False
