"""Generic ZeroMQ transport: codec protocol, framing, publisher and subscriber.

Items of any type travel as one frame (a 40-byte topic, then the payload),
with the batch rule of SPEC §4. The transport knows nothing about snapshots or
events; a :class:`MessageCodec` supplies that.
"""

from registry.transport.codec import MessageCodec
from registry.transport.endpoint import check_endpoint
from registry.transport.framing import (
    BATCH_TOPIC,
    TOPIC_LEN,
    FramingError,
    build_batch,
    join_frame,
    pad_topic,
    split_batch,
    split_message,
    strip_topic,
)
from registry.transport.zmq_publisher import ZmqPublisher
from registry.transport.zmq_subscriber import ZmqSubscriber

__all__ = [
    "BATCH_TOPIC",
    "TOPIC_LEN",
    "FramingError",
    "MessageCodec",
    "ZmqPublisher",
    "ZmqSubscriber",
    "build_batch",
    "check_endpoint",
    "join_frame",
    "pad_topic",
    "split_batch",
    "split_message",
    "strip_topic",
]
