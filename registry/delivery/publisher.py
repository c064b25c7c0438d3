"""MetricsPublisher: turns a registry into the snapshot stream and the final file (SPEC §2, §7).

Every ``interval_s`` a tick builds a LIVE/DRAINING snapshot, sends it on the
snapshot stream and hands it to in-process listeners (the exporter). At the
end :meth:`MetricsPublisher.publish_final` stops the ticks, builds the exact
terminal snapshot, writes ``final_snapshot.json`` atomically and sends the
terminal frame.

Choices:

* Each snapshot is *captured* on the loop (``MetricsRegistry.capture``: the
  counters and the detached pending values, cheap), between two updates of
  whoever records on that loop, so its counters and series agree. Building
  and encoding then run in one dedicated worker thread, not on the event
  loop: a snapshot over large series costs tens of milliseconds (sorting raw
  values for a terminal one costs more), and the benchmark's loop must keep
  issuing requests meanwhile. One worker means builds never overlap and run
  in capture order. Sending and listener calls stay on the loop thread
  (sockets are not thread-safe; listeners expect the loop).
* The stream is telemetry: a small send high-water mark and non-blocking
  sends, so no subscriber (absent, slow or dead) can block or grow the
  publisher; it loses frames instead. The final file is what must not be lost.
* The file is written before the terminal frame is sent, so a subscriber that
  sees the terminal frame can rely on the file when the disk allowed it. The
  two are independent: a failure of one is logged and never stops the other.

This module must never let an exception out of a tick, never send a live
frame after the terminal one, and never write the final file in place.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from registry.core.metrics_registry import MetricsRegistry, SnapshotCapture
from registry.delivery.atomic_file import write_json_atomic
from registry.delivery.snapshot import MetricsSnapshot, SessionState
from registry.delivery.snapshot_codec import SnapshotCodec, snapshot_to_dict
from registry.transport import ZmqPublisher

__all__ = ["MetricsPublisher", "RuntimeStateFn", "SnapshotListener"]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: ``fn(snapshot)``, called on the event loop with every snapshot built.
SnapshotListener = Callable[[MetricsSnapshot], Any]
#: ``() -> (state, n_pending_tasks)``, asked at every tick.
RuntimeStateFn = Callable[[], tuple[SessionState, int]]
#: ``() -> run block``, asked once when the final file is written.
RunInfoFn = Callable[[], Mapping[str, Any]]

#: Send queue bound per subscriber, in snapshot frames (2 s at the default 0.25 s).
DEFAULT_SNDHWM = 8


class MetricsPublisher:
    """Publishes ``registry`` snapshots on ``endpoint`` and the final one to a file."""

    def __init__(
        self,
        registry: MetricsRegistry,
        *,
        endpoint: str,
        final_snapshot_path: str | os.PathLike[str],
        interval_s: float = 0.25,
        sndhwm: int = DEFAULT_SNDHWM,
        linger_ms: int = 1000,
        run_info: RunInfoFn | None = None,
        stream_run: Mapping[str, Any] | None = None,
    ) -> None:
        if not interval_s > 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s!r}")
        self._registry = registry
        self.interval_s = float(interval_s)
        self.final_snapshot_path = Path(final_snapshot_path)
        self._codec = SnapshotCodec()
        self._transport: ZmqPublisher[MetricsSnapshot] = ZmqPublisher(
            self._codec, endpoint, sndhwm=sndhwm, linger_ms=linger_ms
        )
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="metrics-publisher"
        )
        self._listeners: list[SnapshotListener] = []
        self._run_info = run_info
        # slot 5 of every snapshot handed out (SPEC §4 extension): who the run is
        self._stream_run = dict(stream_run) if stream_run else None
        self._task: asyncio.Task[None] | None = None
        self._inflight: asyncio.Future[Any] | None = None
        self._final_task: asyncio.Task[MetricsSnapshot] | None = None
        self._terminal_state_logged = False
        self._closed = False
        #: ticks that built and handed out a snapshot
        self.ticks = 0
        #: ticks that failed (logged; the next tick still runs)
        self.tick_errors = 0
        #: frames the socket failed to send (a broken or closed socket)
        self.send_errors = 0
        #: the most recent snapshot built, live or terminal
        self.last_snapshot: MetricsSnapshot | None = None
        #: the terminal snapshot, once :meth:`publish_final` built it
        self.final_snapshot: MetricsSnapshot | None = None
        #: whether the final file / the terminal frame made it
        self.final_file_written = False
        self.final_frame_sent = False
        #: why the final file could not be written (``None`` when it was, or not yet tried)
        self.final_file_error: str | None = None

    # -- configuration -----------------------------------------------------------

    @property
    def endpoint(self) -> str:
        """The bound endpoint (a ``tcp://…:0`` port resolved)."""
        return self._transport.bound_endpoint

    @property
    def transport(self) -> ZmqPublisher[MetricsSnapshot]:
        return self._transport

    def add_listener(self, fn: SnapshotListener) -> None:
        """Call ``fn(snapshot)`` on the loop with every snapshot built, live and terminal.

        A listener that raises is logged; the others and the stream are unaffected.
        """
        self._listeners.append(fn)

    def remove_listener(self, fn: SnapshotListener) -> None:
        self._listeners.remove(fn)

    # -- live ticks --------------------------------------------------------------

    def start(self, get_runtime_state: RuntimeStateFn) -> None:
        """Start ticking on the running loop. A second start is a logged no-op."""
        if self._task is not None or self._final_task is not None or self._closed:
            log.warning("MetricsPublisher.start ignored: already started, finished or closed")
            return
        self._task = asyncio.get_running_loop().create_task(
            self._run(get_runtime_state), name="metrics-publisher-tick"
        )

    async def _run(self, get_runtime_state: RuntimeStateFn) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            await self._tick(get_runtime_state)
            # Fixed rate; a tick that overran skips the slots it missed instead of bursting.
            now = loop.time()
            next_at += self.interval_s
            if next_at <= now:
                next_at += ((now - next_at) // self.interval_s + 1) * self.interval_s
            await asyncio.sleep(next_at - now)

    def _build(self, capture: SnapshotCapture) -> MetricsSnapshot:
        snap = capture.build()
        if self._stream_run is not None:
            snap = msgspec.structs.replace(snap, run=self._stream_run)
        return snap

    def _build_and_encode(self, capture: SnapshotCapture) -> tuple[MetricsSnapshot, bytes]:
        snap = self._build(capture)
        _, payload = self._codec.encode(snap)
        return snap, payload

    async def _tick(self, get_runtime_state: RuntimeStateFn) -> None:
        try:
            state, n_pending = get_runtime_state()
            state = SessionState(state)
            if state.is_terminal:
                if not self._terminal_state_logged:
                    self._terminal_state_logged = True
                    log.warning(
                        "runtime state is %s; live ticks skip it, publish_final sends the "
                        "terminal snapshot",
                        state.value,
                    )
                return
            capture = self._registry.capture(state=state, n_pending_tasks=int(n_pending))
            loop = asyncio.get_running_loop()
            self._inflight = loop.run_in_executor(self._executor, self._build_and_encode, capture)
            # Shielded: cancelling the tick must not orphan a build that
            # publish_final then races; it waits for the build instead.
            snap, payload = await asyncio.shield(self._inflight)
        except asyncio.CancelledError:
            raise
        except Exception:
            self.tick_errors += 1
            log.exception("metrics tick failed; the next tick still runs")
            return
        self.last_snapshot = snap
        self.ticks += 1
        # Upstream's aggregator publishes nothing before session.started (SPEC §4): an
        # INITIALIZE snapshot reaches in-process listeners (/metrics shows the state)
        # but never the wire.
        if state is not SessionState.INITIALIZE:
            self._send(payload, "live")
        self._notify(snap)

    def _send(self, payload: bytes, what: str) -> bool:
        try:
            return self._transport.send_frame(self._codec.topic, payload)
        except Exception:
            self.send_errors += 1
            # A broken socket fails every tick: log the 1st, 10th, 100th, ... failure.
            n = self.send_errors
            if what != "live" or n == 1 or str(n).rstrip("0") == "1":
                log.exception("could not send the %s snapshot frame (failure %d)", what, n)
            return False

    def _notify(self, snap: MetricsSnapshot) -> None:
        for fn in list(self._listeners):
            try:
                fn(snap)
            except Exception:
                log.exception("snapshot listener %r failed", fn)

    async def _stop_ticking(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        inflight, self._inflight = self._inflight, None
        if inflight is not None:
            await asyncio.gather(inflight, return_exceptions=True)

    # -- the end -----------------------------------------------------------------

    async def publish_final(
        self, *, n_pending_tasks: int, interrupted: bool = False
    ) -> MetricsSnapshot:
        """Stop ticking, build the terminal snapshot, write the file, send the frame.

        COMPLETE, or INTERRUPTED when ``interrupted``. The file (atomic, off the
        loop) and the frame are independent; their failures are logged and
        recorded in ``final_file_written`` / ``final_frame_sent``, never raised.
        Idempotent: later calls return the first terminal snapshot. The work
        runs in its own task, so cancelling the caller (a second Ctrl-C) does
        not cut it short.
        """
        if self._final_task is None:
            state = SessionState.INTERRUPTED if interrupted else SessionState.COMPLETE
            self._final_task = asyncio.get_running_loop().create_task(
                self._publish_final(state, int(n_pending_tasks)), name="metrics-publisher-final"
            )
        return await asyncio.shield(self._final_task)

    async def _run_blocking(self, fn: Callable[..., T], *args: Any) -> T:
        if self._closed:  # the worker is gone; a late final still gets written
            return await asyncio.to_thread(fn, *args)
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def _publish_final(self, state: SessionState, n_pending: int) -> MetricsSnapshot:
        try:
            await self._stop_ticking()
            capture = self._registry.capture(state=state, n_pending_tasks=n_pending)
            snap = await self._run_blocking(self._build, capture)
        except BaseException:
            self._final_task = None  # nothing was published: a later call may retry
            raise
        self.final_snapshot = self.last_snapshot = snap
        path = self.final_snapshot_path
        try:
            await self._run_blocking(self._write_final_file, snap)
            self.final_file_written = True
        except OSError as exc:
            # A full or read-only disk is the machine's state, not a bug: one line, no traceback.
            self.final_file_error = exc.strerror or str(exc)
            log.error("could not write the final snapshot file %s: %s", path, self.final_file_error)
        except Exception as exc:
            self.final_file_error = f"{type(exc).__name__}: {exc}"
            log.exception("could not write the final snapshot file %s", path)
        try:
            _, payload = await self._run_blocking(self._codec.encode, snap)
            self.final_frame_sent = self._send(payload, "terminal")
        except Exception:
            log.exception("could not encode the terminal snapshot frame")
        self._notify(snap)
        log.info(
            "final snapshot #%d (%s, %d pending): file %s %s, terminal frame %s",
            snap.counter,
            snap.state.value,
            snap.n_pending_tasks,
            path,
            "written" if self.final_file_written else "NOT written",
            "sent" if self.final_frame_sent else "NOT sent",
        )
        return snap

    def run_block(self) -> dict[str, Any]:
        """The file's ``run`` block: the registry's settings, then ``run_info()`` over them."""
        es = self._registry.early_stopping
        run: dict[str, Any] = {
            "percentile_method": self._registry.percentile_method.value,
            "early_stopping": (
                None if es is None else {"confidence": es.confidence, "tolerance": es.tolerance}
            ),
        }
        if self._run_info is not None:
            try:
                run.update(self._run_info())
            except Exception:
                log.exception("run_info() failed; the final file gets the registry's settings only")
        inexact = self._registry.inexact_series()
        if inexact:
            # series located in the HDR because raw values could not be read back
            run["inexact_series"] = inexact
        return run

    def _write_final_file(self, snap: MetricsSnapshot) -> None:
        self.final_snapshot_path.parent.mkdir(parents=True, exist_ok=True)
        doc = snapshot_to_dict(snap, run=self.run_block())
        try:
            write_json_atomic(self.final_snapshot_path, doc)
        except (TypeError, ValueError):
            # a run block that is not strict JSON must not cost the snapshot itself
            log.exception("the run block is not JSON-serialisable; writing the file without it")
            write_json_atomic(self.final_snapshot_path, snapshot_to_dict(snap))

    async def aclose(self) -> None:
        """Stop ticking and close the socket (queued frames get ``linger_ms`` to flush)."""
        if self._closed:
            return
        await self._stop_ticking()
        self._close_resources()

    def close(self) -> None:
        """Synchronous close: cancels the tick task without waiting for it."""
        if self._closed:
            return
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
        self._close_resources()

    def _close_resources(self) -> None:
        self._closed = True
        if self.final_snapshot is None:
            log.warning("MetricsPublisher closed without a final snapshot")
        self._transport.close()
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def __aenter__(self) -> MetricsPublisher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
