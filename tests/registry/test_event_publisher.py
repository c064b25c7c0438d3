"""EventPublisher over real ZeroMQ sockets: subscription wait, lossless, wire format."""

from __future__ import annotations

import asyncio

import msgspec
import pytest
import zmq

from registry.aggregator.event_subscriber import EventSubscriber
from registry.delivery.snapshot_codec import pad_topic
from registry.events import EventCodec, EventPublisher, EventRecord, EventType

T = EventType


def sample_events(n: int) -> list[EventRecord]:
    return [
        EventRecord(T.SAMPLE_ISSUED, i, f"s{i}", worker_id=i % 4, input_tokens=i) for i in range(n)
    ]


async def drain(sub: EventSubscriber, n: int, timeout: float = 10.0) -> list[EventRecord]:
    got: list[EventRecord] = []
    async with asyncio.timeout(timeout):
        while len(got) < n:
            got.extend(await sub.recv_batch())
    return got


def test_wait_for_subscriber_times_out_without_one(ipc_endpoint: str) -> None:
    async def main() -> bool:
        with EventPublisher(ipc_endpoint, linger_ms=0) as pub:
            return await pub.wait_for_subscriber(0.2)

    assert asyncio.run(main()) is False


def test_first_events_arrive_after_waiting_and_order_is_kept(ipc_endpoint: str) -> None:
    events = sample_events(5000)

    async def main() -> list[EventRecord]:
        with EventPublisher(ipc_endpoint) as pub:
            async with EventSubscriber(EventCodec(), ipc_endpoint) as sub:
                assert await pub.wait_for_subscriber(5.0)
                pub.send(events[0])  # the very first event is not lost
                pub.send_many(events[1:4000])
                for e in events[4000:]:
                    pub.send(e)
                assert pub.sent == len(events)
                got = await drain(sub, len(events))
                assert sub.dropped == 0
                return got

    assert asyncio.run(main()) == events


def test_lossless_while_the_subscriber_does_not_read(ipc_endpoint: str) -> None:
    # 30,000 single-event messages: far past any default high-water mark (1000).
    events = sample_events(30_000)

    async def main() -> int:
        with EventPublisher(ipc_endpoint) as pub:
            async with EventSubscriber(EventCodec(), ipc_endpoint) as sub:
                assert await pub.wait_for_subscriber(5.0)
                for e in events:
                    pub.send(e)
                got = await drain(sub, len(events), timeout=30)
                assert got[-1] == events[-1]
                return len(got)

    assert asyncio.run(main()) == len(events)


def test_any_producer_speaking_the_wire_format_works(ipc_endpoint: str) -> None:
    """A producer that is not ours: plain PUB socket, hand-written msgpack maps."""
    raw_maps = [
        {"event_type": "session.started", "timestamp_ns": 1, "sample_uuid": ""},
        {
            "event_type": "sample.complete",
            "timestamp_ns": 7,
            "sample_uuid": "abc",
            "output_tokens": 12,
            "finish_reason": "stop",
            "worker_id": 2,
        },
    ]

    async def main() -> list[EventRecord]:
        ctx = zmq.Context.instance()
        pub = ctx.socket(zmq.XPUB)
        pub.bind(ipc_endpoint)
        try:
            async with EventSubscriber(EventCodec(), ipc_endpoint) as sub:
                poller = zmq.Poller()
                poller.register(pub, zmq.POLLIN)
                assert await asyncio.to_thread(poller.poll, 5000), "no subscription seen"
                assert pub.recv()[:1] == b"\x01"
                for m in raw_maps:
                    pub.send(
                        pad_topic(m["event_type"]) + msgspec.msgpack.encode(m)  # type: ignore[arg-type]
                    )
                return await drain(sub, 2)
        finally:
            pub.close(linger=0)

    got = asyncio.run(main())
    assert got[0].event_type is T.SESSION_STARTED
    assert got[1] == EventRecord(
        T.SAMPLE_COMPLETE, 7, "abc", worker_id=2, finish_reason="stop", output_tokens=12
    )


def test_tcp_port_zero_resolves_and_bad_endpoints_are_refused() -> None:
    with EventPublisher("tcp://127.0.0.1:0", linger_ms=0) as pub:
        assert pub.bound_endpoint.startswith("tcp://127.0.0.1:")
        assert not pub.bound_endpoint.endswith(":0")
    with pytest.raises(ValueError, match="must start with ipc:// or tcp://"):
        EventPublisher("localhost:5555")
