"""Message layout shared by every stream (SPEC §4, §5): one frame, topic first, batches.

A message is ONE ZeroMQ frame: a 40-byte NUL-padded topic immediately
followed by the payload, as mlcommons/endpoints sends it. A publisher may pack
several payloads into one message whose topic is ``batch`` (NUL-padded) and
whose payload is a msgpack array of binary payloads. A message of two or more
frames is not this format and is rejected (the subscriber counts it as
malformed).

This module builds and checks that outer layer only; it never decodes an item
payload and never touches a socket.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

__all__ = [
    "BATCH_TOPIC",
    "TOPIC_LEN",
    "FramingError",
    "build_batch",
    "join_frame",
    "pad_topic",
    "split_batch",
    "split_message",
    "strip_topic",
]

#: Every frame's first part has exactly this many bytes (SPEC §4).
TOPIC_LEN = 40


def pad_topic(name: str | bytes) -> bytes:
    """``name`` as a NUL-padded 40-byte topic (``ValueError`` when too long)."""
    raw = name.encode("ascii") if isinstance(name, str) else bytes(name)
    if len(raw) > TOPIC_LEN:
        raise ValueError(f"topic {raw!r} is longer than {TOPIC_LEN} bytes")
    return raw.ljust(TOPIC_LEN, b"\0")


#: Topic of a batch message: ``batch`` NUL-padded to 40 bytes.
BATCH_TOPIC = pad_topic("batch")

_batch_encoder = msgspec.msgpack.Encoder()
_batch_decoder = msgspec.msgpack.Decoder(list[bytes])


class FramingError(ValueError):
    """A message whose outer layer (frame count, topic, batch array) is wrong."""


def strip_topic(topic: bytes) -> bytes:
    """The topic name without its NUL padding (``b"MET\\0…"`` -> ``b"MET"``)."""
    return topic.rstrip(b"\0")


def join_frame(topic: bytes, payload: bytes) -> bytes:
    """The single frame carrying ``payload`` under ``topic`` (exactly 40 bytes)."""
    if len(topic) != TOPIC_LEN:
        raise ValueError(f"topic must be {TOPIC_LEN} bytes, got {len(topic)}")
    return topic + payload


def split_message(frames: Sequence[bytes]) -> tuple[bytes, bytes]:
    """``(topic, payload)`` of a received message, checked.

    Raises :class:`FramingError` unless the message is exactly one frame of
    at least 40 bytes (the topic; the payload may be empty).
    """
    if len(frames) != 1:
        raise FramingError(
            f"expected 1 frame (40-byte topic + payload), got a {len(frames)}-frame message"
        )
    frame = frames[0]
    if len(frame) < TOPIC_LEN:
        raise FramingError(f"frame has {len(frame)} bytes, shorter than the {TOPIC_LEN}-byte topic")
    return bytes(frame[:TOPIC_LEN]), bytes(frame[TOPIC_LEN:])


def build_batch(payloads: Sequence[bytes]) -> tuple[bytes, bytes]:
    """One batch message ``(BATCH_TOPIC, msgpack array of binary payloads)``."""
    return BATCH_TOPIC, _batch_encoder.encode(list(payloads))


def split_batch(payload: bytes | memoryview) -> list[bytes]:
    """The item payloads of a batch message (:class:`FramingError` if it is not one)."""
    try:
        return _batch_decoder.decode(payload)
    except msgspec.DecodeError as exc:
        raise FramingError(f"invalid batch payload: {exc}") from exc
