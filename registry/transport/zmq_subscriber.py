"""ZmqSubscriber: receives items through a codec on the running asyncio loop.

Design: a *pull* API. ``await sub.recv()`` returns the next item and
``async for item in sub`` iterates until the subscriber is closed. Batches
(SPEC §4) are split transparently. Pulling keeps back-pressure where it
belongs: for a lossless stream (``rcvhwm=0``) unread items wait in libzmq's
queue, for a telemetry stream the high-water mark bounds that queue.

Nothing received can stop the loop: a message of more than one frame, one
shorter than its 40-byte topic, a topic that is not expected, a broken batch, or a payload the
codec cannot decode (and whose ``on_decode_error`` returns ``None``) is
counted in ``dropped`` and skipped; ``last_error`` says why.

Conflation (latest wins). ``ZMQ_CONFLATE`` keeps one *frame* and would
silently keep the last frame of a foreign multi-frame message, hiding that it
was malformed, so it is not used. Instead ``conflate=True``
bounds the receive queue (``rcvhwm``, default 64 messages) and makes
:meth:`ZmqSubscriber.recv` drain every message already queued, decode each
(so malformed ones are still counted), and return only the newest item; the
older valid ones are counted in ``superseded``. When a consumer stalls for
longer than the queue holds, libzmq drops the *newest* messages until it
reads again; streams that must not lose their last message need another
path too (snapshots have the final file, SPEC §7).

Fairness: a receive that finds a message already queued does not suspend, so
the subscriber yields to the loop every 64 messages; a flood of events cannot
starve the publisher's ticks on the same loop.

This module never encodes, never sends, and never blocks the loop.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

import zmq
import zmq.asyncio

from registry.transport.codec import MessageCodec
from registry.transport.endpoint import check_endpoint
from registry.transport.framing import (
    BATCH_TOPIC,
    TOPIC_LEN,
    FramingError,
    pad_topic,
    split_batch,
    split_message,
    strip_topic,
)

__all__ = ["ZmqSubscriber"]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Receive queue bound of a conflated (latest-wins) subscriber, in messages.
CONFLATE_RCVHWM = 64
# Messages taken off the socket between two yields to the event loop.
_YIELD_EVERY = 64
# Most messages one conflated recv drains, so a producer that keeps the queue
# full cannot keep one call going forever.
_MAX_DRAIN = 1024


def _as_bytes(topic: bytes | str) -> bytes:
    return topic.encode("ascii") if isinstance(topic, str) else bytes(topic)


class ZmqSubscriber(Generic[T]):
    """A SUB socket that connects (or binds) ``endpoint`` and yields decoded items.

    ``topics``: topic *prefixes* to subscribe to (``None`` = everything); the
    batch topic is added so batched items still arrive. ``expected_topics``:
    full topic names accepted (``None`` = any 40-byte topic); a message with
    another topic is counted as dropped, so a foreign producer on the socket
    is noticed instead of decoded. ``rcvhwm``: receive queue bound in messages,
    0 = unlimited (lossless streams); default 1000, or 64 when ``conflate``.
    ``max_message_bytes``: a larger message is counted as dropped without
    being decoded (``None``: no limit).

    Create it (or enter ``async with``) on the loop that will read it; the
    socket is opened by :meth:`open` / ``__aenter__``.
    """

    def __init__(
        self,
        codec: MessageCodec[T],
        endpoint: str,
        *,
        bind: bool = False,
        topics: Iterable[bytes | str] | None = None,
        expected_topics: Iterable[bytes | str] | None = None,
        rcvhwm: int | None = None,
        conflate: bool = False,
        linger_ms: int = 0,
        max_message_bytes: int | None = None,
        context: zmq.asyncio.Context | None = None,
    ) -> None:
        check_endpoint(endpoint, bind=bind)
        if max_message_bytes is not None and max_message_bytes < TOPIC_LEN:
            raise ValueError(f"max_message_bytes must be >= {TOPIC_LEN}, got {max_message_bytes}")
        self.max_message_bytes = max_message_bytes
        if rcvhwm is None:
            rcvhwm = CONFLATE_RCVHWM if conflate else 1000
        if rcvhwm < 0:
            raise ValueError(f"rcvhwm must be >= 0, got {rcvhwm}")
        self._codec = codec
        # the batch fast path, when the codec has one (see MessageCodec)
        self._decode_many: Callable[[list[bytes]], list[T]] | None = getattr(
            codec, "decode_many", None
        )
        self.endpoint = endpoint
        self.bind = bind
        self.conflate = conflate
        self.rcvhwm = rcvhwm
        self.linger_ms = linger_ms
        prefixes = [b""] if topics is None else [_as_bytes(t) for t in topics]
        if b"" not in prefixes and BATCH_TOPIC not in prefixes:
            prefixes.append(BATCH_TOPIC)
        self._prefixes = prefixes
        self._expected: frozenset[bytes] | None = (
            None
            if expected_topics is None
            else frozenset(pad_topic(_as_bytes(t)) for t in expected_topics)
        )
        self._context = context
        self._sock: zmq.asyncio.Socket | None = None
        self._closed = False
        self._pending: collections.deque[T] = collections.deque()
        self._unyielded = 0
        #: messages taken off the socket
        self.messages = 0
        #: items decoded and handed out (or queued to be)
        self.received = 0
        #: malformed messages or batch items skipped
        self.dropped = 0
        #: valid items skipped by conflation because a newer one was queued
        self.superseded = 0
        #: why the most recent drop happened
        self.last_error: str | None = None
        #: the endpoint actually bound when ``bind=True`` (``tcp://…:0`` resolved)
        self.bound_endpoint: str | None = None

    # -- lifetime ----------------------------------------------------------------

    def open(self) -> None:
        """Create, configure and connect (or bind) the socket. Idempotent."""
        if self._sock is not None:
            return
        if self._closed:
            raise RuntimeError("subscriber is closed")
        ctx = self._context if self._context is not None else zmq.asyncio.Context.instance()
        sock = ctx.socket(zmq.SUB)
        try:
            sock.setsockopt(zmq.RCVHWM, self.rcvhwm)
            sock.setsockopt(zmq.LINGER, self.linger_ms)
            for prefix in self._prefixes:
                sock.setsockopt(zmq.SUBSCRIBE, prefix)
            if self.bind:
                sock.bind(self.endpoint)
                self.bound_endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
            else:
                sock.connect(self.endpoint)
        except zmq.ZMQError as exc:
            sock.close(linger=0)
            verb = "bind" if self.bind else "connect to"
            raise OSError(exc.errno, f"cannot {verb} {self.endpoint}: {exc.strerror}") from exc
        self._sock = sock

    def close(self) -> None:
        """Close the socket; a pending :meth:`recv` ends. Idempotent."""
        self._closed = True
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close(linger=self.linger_ms)

    @property
    def closed(self) -> bool:
        return self._closed

    def monitor_socket(self, events: int) -> zmq.asyncio.Socket:
        """A PAIR socket that receives the ZeroMQ ``events`` of this socket's connections
        (``zmq.EVENT_*`` flags); call :meth:`stop_monitor` before :meth:`close`."""
        monitor: zmq.asyncio.Socket = self._socket().get_monitor_socket(events)
        return monitor

    def stop_monitor(self) -> None:
        """Stop the monitor :meth:`monitor_socket` started (no-op when closed or none)."""
        if self._sock is not None:
            self._sock.disable_monitor()

    def has_queued(self) -> bool:
        """Whether a message or a decoded item is waiting to be read (never blocks)."""
        if self._pending:
            return True
        sock = self._sock
        return sock is not None and bool(int(sock.getsockopt(zmq.EVENTS)) & zmq.POLLIN)

    async def __aenter__(self) -> ZmqSubscriber[T]:
        self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    # -- receiving ---------------------------------------------------------------

    def _drop(self, reason: str) -> None:
        self.dropped += 1
        self.last_error = reason
        # Logged at 1, 10, 100, ... so a flood of garbage cannot flood the log.
        n = self.dropped
        if n == 1 or (n % 10 == 0 and str(n).rstrip("0") == "1"):
            log.warning("%s: dropped %d malformed message(s); latest: %s", self.endpoint, n, reason)

    def _decode_message(self, frames: list[bytes]) -> list[T]:
        self.messages += 1
        try:
            limit = self.max_message_bytes
            if limit is not None and sum(len(f) for f in frames) > limit:
                size = sum(len(f) for f in frames)
                raise FramingError(f"message of {size:,} bytes exceeds the {limit:,}-byte limit")
            topic, payload = split_message(frames)
            if topic == BATCH_TOPIC:
                payloads = split_batch(payload)
            elif self._expected is not None and topic not in self._expected:
                raise FramingError(f"unexpected topic {strip_topic(topic)!r}")
            else:
                payloads = [payload]
        except FramingError as exc:
            self._drop(str(exc))
            return []
        if self._decode_many is not None and len(payloads) > 1:
            try:
                items = self._decode_many(payloads)
            except Exception:  # a bad payload in the batch: find it item by item below
                pass
            else:
                self.received += len(items)
                return items
        items = []
        for p in payloads:
            try:
                items.append(self._codec.decode(p))
                continue
            except Exception as exc:  # the codec may use any library; any failure is a bad payload
                error: Exception = exc
            try:
                replacement = self._codec.on_decode_error(p, error)
            except Exception as exc:
                log.exception("%s: codec.on_decode_error raised", self.endpoint)
                error, replacement = exc, None
            if replacement is None:
                self._drop(f"{type(error).__name__}: {error}")
            else:
                items.append(replacement)
        self.received += len(items)
        return items

    def _socket(self) -> zmq.asyncio.Socket:
        if self._sock is None:
            if self._closed:
                raise EOFError("subscriber is closed")
            self.open()
        assert self._sock is not None
        return self._sock

    async def _recv_frames(self, sock: zmq.asyncio.Socket) -> list[bytes]:
        # A receive that finds a message queued completes without suspending, so a
        # busy stream would starve every other task on the loop (the publisher's
        # ticks among them). Yield now and then, *before* receiving, so that a
        # cancellation at this point loses no message.
        self._unyielded += 1
        if self._unyielded >= _YIELD_EVERY:
            self._unyielded = 0
            await asyncio.sleep(0)
        try:
            return await sock.recv_multipart()
        except asyncio.CancelledError:
            # Closing the socket cancels its pending receive; only a cancellation of
            # the *task* must propagate.
            task = asyncio.current_task()
            if self._closed and (task is None or not task.cancelling()):
                raise EOFError("subscriber is closed") from None
            raise
        except zmq.ZMQError as exc:
            if self._closed or exc.errno in (zmq.ENOTSOCK, zmq.ETERM):
                raise EOFError("subscriber is closed") from exc
            raise

    async def recv(self) -> T:
        """The next item (with ``conflate``, the newest one available).

        Raises :class:`EOFError` once the subscriber is closed.
        """
        if self._pending and not self.conflate:
            return self._pending.popleft()
        sock = self._socket()
        while True:
            self._pending.extend(self._decode_message(await self._recv_frames(sock)))
            if self.conflate:
                drained = 1
                while drained < _MAX_DRAIN and int(sock.getsockopt(zmq.EVENTS)) & zmq.POLLIN:
                    self._pending.extend(self._decode_message(await self._recv_frames(sock)))
                    drained += 1
                if self._pending:
                    newest = self._pending.pop()
                    self.superseded += len(self._pending)
                    self._pending.clear()
                    return newest
            elif self._pending:
                return self._pending.popleft()

    async def recv_batch(self) -> list[T]:
        """Every item of the next message (a batch message carries many), in order.

        For lossless consumers that apply items a list at a time, so the
        per-item cost is one dispatch rather than one ``await``. Items left
        over by :meth:`recv` come first. May return ``[]`` when every payload
        of the message was malformed (they are counted). Not for ``conflate``
        subscribers, where only the newest item matters: use :meth:`recv`.
        Raises :class:`EOFError` once the subscriber is closed.
        """
        if self.conflate:
            raise RuntimeError("recv_batch is for lossless subscribers; use recv with conflate")
        if self._pending:
            items = list(self._pending)
            self._pending.clear()
            return items
        return self._decode_message(await self._recv_frames(self._socket()))

    def __aiter__(self) -> ZmqSubscriber[T]:
        return self

    async def __anext__(self) -> T:
        try:
            return await self.recv()
        except EOFError:
            raise StopAsyncIteration from None
