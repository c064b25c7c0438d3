"""ZmqPublisher: binds an endpoint and sends items through a codec (SPEC §4, §5).

Two uses, chosen by ``lossless``:

* telemetry (default): a small send high-water mark and non-blocking sends.
  libzmq's PUB socket drops a message *per subscriber* whose queue is full, so
  a slow or dead subscriber loses frames while the others keep getting them,
  and nothing can block or grow the sender. Those per-subscriber drops are not
  reported back by libzmq; ``dropped`` counts what the socket refused outright
  (``EAGAIN`` on a non-blocking send).
* lossless (the event stream): no high-water mark (0 = unlimited), sends may
  block; nothing is dropped once a subscriber is connected. Use ``xpub=True``
  and :meth:`ZmqPublisher.wait_for_subscriber` so the first items are not sent
  before anyone listens (PUB discards what has no subscriber).

Batches follow SPEC §4: :meth:`ZmqPublisher.send_many` packs several payloads
into one ``batch`` message. A batch carries no per-item topic, so a subscriber
that filters by topic prefix must also subscribe to the batch topic (the
:class:`~registry.transport.zmq_subscriber.ZmqSubscriber` does).

The socket is not thread-safe: call every method from one thread (the event
loop's, for asyncio users). This module never decodes, and never waits on a
subscriber except in :meth:`ZmqPublisher.wait_for_subscriber`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import Generic, TypeVar

import zmq

from registry.transport.codec import MessageCodec
from registry.transport.endpoint import check_endpoint
from registry.transport.framing import TOPIC_LEN, build_batch, join_frame

__all__ = ["ZmqPublisher"]

log = logging.getLogger(__name__)

T = TypeVar("T")

# Upper bound of one wait for the socket's FD edge: libzmq's FD is
# edge-triggered and a send on the same socket can consume the edge, so the
# wait re-checks the socket at least this often.
_EDGE_RECHECK_S = 0.05


class ZmqPublisher(Generic[T]):
    """A PUB (or XPUB) socket bound to ``endpoint`` that sends items of type ``T``.

    ``sndhwm`` is the per-subscriber send queue bound in messages (forced to 0
    = unlimited when ``lossless``); ``linger_ms`` how long :meth:`close` may
    wait to flush queued messages (never infinite); ``max_batch`` the most
    items one batch message carries.
    """

    def __init__(
        self,
        codec: MessageCodec[T],
        endpoint: str,
        *,
        sndhwm: int = 16,
        linger_ms: int = 1000,
        lossless: bool = False,
        xpub: bool = False,
        max_batch: int = 1000,
        context: zmq.Context | None = None,
    ) -> None:
        check_endpoint(endpoint, bind=True)
        if sndhwm < 0:
            raise ValueError(f"sndhwm must be >= 0, got {sndhwm}")
        if linger_ms < 0:
            raise ValueError(f"linger_ms must be >= 0 (never infinite), got {linger_ms}")
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self._codec = codec
        self.lossless = lossless
        self.xpub = xpub
        self.max_batch = max_batch
        self.sndhwm = 0 if lossless else sndhwm
        self.linger_ms = linger_ms
        #: items handed to the socket
        self.sent = 0
        #: items the socket refused (EAGAIN on a non-blocking send)
        self.dropped = 0
        #: subscription messages seen on an XPUB socket
        self.subscriptions_seen = 0
        self._send_flags = 0 if lossless else zmq.NOBLOCK
        ctx = context if context is not None else zmq.Context.instance()
        sock = ctx.socket(zmq.XPUB if xpub else zmq.PUB)
        try:
            sock.setsockopt(zmq.SNDHWM, self.sndhwm)
            sock.setsockopt(zmq.LINGER, linger_ms)
            if xpub:
                # Report every subscriber's subscription, not just the first per topic,
                # so a reconnecting consumer is seen by wait_for_subscriber too.
                sock.setsockopt(zmq.XPUB_VERBOSE, 1)
            sock.bind(endpoint)
        except zmq.ZMQError as exc:
            sock.close(linger=0)
            raise OSError(exc.errno, f"cannot bind {endpoint}: {exc.strerror}") from exc
        self._sock: zmq.Socket | None = sock
        self.endpoint = endpoint
        #: the endpoint actually bound (a ``tcp://…:0`` port resolved)
        self.bound_endpoint: str = sock.getsockopt_string(zmq.LAST_ENDPOINT)

    # -- sending -----------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._sock is None

    def _socket(self) -> zmq.Socket:
        if self._sock is None:
            raise zmq.ZMQError(zmq.ENOTSOCK, "publisher is closed")
        return self._sock

    def send_frame(self, topic: bytes, payload: bytes, n_items: int = 1) -> bool:
        """Send one already-encoded message as one frame; ``False`` when it was dropped.

        Raises :class:`zmq.ZMQError` when the socket is closed or broken.
        """
        if len(topic) != TOPIC_LEN:
            raise ValueError(f"topic must be {TOPIC_LEN} bytes, got {len(topic)}")
        sock = self._socket()
        try:
            sock.send(join_frame(topic, payload), flags=self._send_flags, copy=False)
        except zmq.Again:
            self.dropped += n_items
            return False
        self.sent += n_items
        return True

    def send(self, item: T) -> bool:
        """Encode and send one item; ``False`` when the socket dropped it."""
        topic, payload = self._codec.encode(item)
        return self.send_frame(topic, payload)

    def send_many(self, items: Iterable[T]) -> int:
        """Send items batched (SPEC §4); returns how many were handed to the socket.

        One item goes as a plain message; more go as ``batch`` messages of at
        most ``max_batch`` payloads each.
        """
        encoded = [self._codec.encode(item) for item in items]
        if len(encoded) == 1:
            return int(self.send_frame(*encoded[0]))
        handed = 0
        for start in range(0, len(encoded), self.max_batch):
            chunk = [payload for _, payload in encoded[start : start + self.max_batch]]
            topic, payload = build_batch(chunk)
            if self.send_frame(topic, payload, n_items=len(chunk)):
                handed += len(chunk)
        return handed

    # -- subscriptions (XPUB) ----------------------------------------------------

    def _drain_subscriptions(self) -> None:
        sock = self._socket()
        while True:
            try:
                msg = sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            if msg[:1] == b"\x01":
                self.subscriptions_seen += 1

    async def wait_for_subscriber(self, timeout: float, *, min_subscriptions: int = 1) -> bool:
        """Wait until ``min_subscriptions`` subscriptions have been seen (XPUB only).

        Counts every subscription message since the socket was bound (one per
        topic prefix a subscriber asks for). Returns ``True`` at once when
        enough were already seen, ``True`` when they arrive within ``timeout``
        seconds and ``False`` otherwise.
        """
        if not self.xpub:
            raise RuntimeError("wait_for_subscriber needs ZmqPublisher(..., xpub=True)")
        self._drain_subscriptions()
        if self.subscriptions_seen >= min_subscriptions:
            return True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        readable = asyncio.Event()
        fd = int(self._socket().getsockopt(zmq.FD))
        loop.add_reader(fd, readable.set)
        try:
            while True:
                readable.clear()
                self._drain_subscriptions()
                if self.subscriptions_seen >= min_subscriptions:
                    return True
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return False
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(readable.wait(), min(remaining, _EDGE_RECHECK_S))
        finally:
            loop.remove_reader(fd)

    # -- lifetime ----------------------------------------------------------------

    def close(self, linger_ms: int | None = None) -> None:
        """Close the socket, flushing queued messages for up to ``linger_ms``. Idempotent."""
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close(linger=self.linger_ms if linger_ms is None else linger_ms)

    def __enter__(self) -> ZmqPublisher[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
