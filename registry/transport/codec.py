"""The contract between a transport and the items it carries.

A :class:`MessageCodec` turns one item into a ``(topic, payload)`` pair and a
payload back into an item. The ZeroMQ publisher and subscriber only ever talk
to this protocol, so they never import or assume a serialisation library; this
module must never grow one either.
"""

from __future__ import annotations

from typing import Protocol, TypeVar

__all__ = ["MessageCodec"]

T = TypeVar("T")


class MessageCodec(Protocol[T]):
    """Encodes items of type ``T`` to frames and decodes payloads back.

    ``encode`` returns the topic (exactly 40 bytes, see
    :func:`registry.transport.framing.pad_topic`) and the payload bytes.
    ``decode`` raises any exception on a malformed payload; the subscriber then
    calls ``on_decode_error(payload, exc)``, which may return a replacement item
    or ``None`` to drop the payload (the subscriber counts it as dropped).

    A codec may also offer ``decode_many(payloads) -> list[T]``: every payload of
    a batch message in one call, raising if any one is malformed. The subscriber
    uses it when present and, when it raises, decodes that batch item by item so
    that only the bad payloads are dropped.
    """

    def encode(self, item: T) -> tuple[bytes, bytes]: ...

    def decode(self, payload: bytes) -> T: ...

    def on_decode_error(self, payload: bytes, exc: Exception) -> T | None: ...
