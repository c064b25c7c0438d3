"""Frame layout shared by every stream (SPEC §4, §5): topic frames and batches.

A message is two ZeroMQ frames: a 40-byte NUL-padded topic and a payload. A
publisher may batch several payloads into one message whose topic is
``batch`` (NUL-padded) and whose payload is a msgpack array of binary
payloads. This module builds and checks that outer layer only; it never
decodes an item payload and never touches a socket.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from registry.snapshot_codec import TOPIC_LEN, pad_topic

__all__ = [
    "BATCH_TOPIC",
    "TOPIC_LEN",
    "FramingError",
    "build_batch",
    "pad_topic",
    "split_batch",
    "split_message",
    "strip_topic",
]

#: Topic of a batch message: ``batch`` NUL-padded to 40 bytes.
BATCH_TOPIC = pad_topic("batch")

_batch_encoder = msgspec.msgpack.Encoder()
_batch_decoder = msgspec.msgpack.Decoder(list[bytes])


class FramingError(ValueError):
    """A message whose outer layer (frame count, topic, batch array) is wrong."""


def strip_topic(topic: bytes) -> bytes:
    """The topic name without its NUL padding (``b"MET\\0…"`` -> ``b"MET"``)."""
    return topic.rstrip(b"\0")


def split_message(frames: Sequence[bytes]) -> tuple[bytes, bytes]:
    """``(topic, payload)`` of a received multipart message, checked.

    Raises :class:`FramingError` unless there are exactly two frames and the
    first is exactly 40 bytes.
    """
    if len(frames) != 2:
        raise FramingError(f"expected 2 frames (topic, payload), got {len(frames)}")
    topic, payload = frames
    if len(topic) != TOPIC_LEN:
        raise FramingError(f"topic frame has {len(topic)} bytes, expected {TOPIC_LEN}")
    return bytes(topic), payload


def build_batch(payloads: Sequence[bytes]) -> tuple[bytes, bytes]:
    """One batch message ``(BATCH_TOPIC, msgpack array of binary payloads)``."""
    return BATCH_TOPIC, _batch_encoder.encode(list(payloads))


def split_batch(payload: bytes) -> list[bytes]:
    """The item payloads of a batch message (:class:`FramingError` if it is not one)."""
    try:
        return _batch_decoder.decode(payload)
    except msgspec.DecodeError as exc:
        raise FramingError(f"invalid batch payload: {exc}") from exc
