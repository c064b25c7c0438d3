"""The generic transport: framing, ZmqPublisher and ZmqSubscriber over real sockets."""

from __future__ import annotations

import asyncio
import threading

import msgspec
import pytest
import zmq
import zmq.asyncio

from registry.transport import (
    BATCH_TOPIC,
    TOPIC_LEN,
    FramingError,
    MessageCodec,
    ZmqPublisher,
    ZmqSubscriber,
    build_batch,
    check_endpoint,
    pad_topic,
    split_batch,
    split_message,
    strip_topic,
)
from registry.transport.framing import join_frame
from tests.support.helpers import async_wait_until

TEXT_TOPIC = pad_topic("txt")


class TextCodec:
    """A codec using no serialisation library at all: UTF-8 text, topic ``txt``."""

    def encode(self, item: str) -> tuple[bytes, bytes]:
        return TEXT_TOPIC, item.encode("utf-8")

    def decode(self, payload: bytes) -> str:
        text = payload.decode("utf-8")  # UnicodeDecodeError on garbage
        if text.startswith("!"):
            raise ValueError("text may not start with '!'")
        return text

    def on_decode_error(self, payload: bytes, exc: Exception) -> str | None:
        return None


class RepairingCodec(TextCodec):
    """Replaces undecodable payloads instead of dropping them."""

    def on_decode_error(self, payload: bytes, exc: Exception) -> str | None:
        return f"<bad {len(payload)} bytes>"


def _codec() -> MessageCodec[str]:
    return TextCodec()


# -- framing -------------------------------------------------------------------


def test_topics_pad_to_40_bytes_and_strip_back() -> None:
    assert len(BATCH_TOPIC) == TOPIC_LEN == 40
    assert BATCH_TOPIC == b"batch" + b"\0" * 35
    assert strip_topic(pad_topic("MET")) == b"MET"
    with pytest.raises(ValueError, match="longer than 40"):
        pad_topic("x" * 41)


def test_split_message_takes_one_frame_topic_first() -> None:
    assert split_message([TEXT_TOPIC + b"p"]) == (TEXT_TOPIC, b"p")
    assert split_message([TEXT_TOPIC]) == (TEXT_TOPIC, b"")
    assert join_frame(TEXT_TOPIC, b"p") == TEXT_TOPIC + b"p"
    with pytest.raises(FramingError, match="2-frame message"):
        split_message([TEXT_TOPIC, b"p"])  # the old two-frame layout is not the wire format
    with pytest.raises(FramingError, match="3-frame message"):
        split_message([TEXT_TOPIC, b"a", b"b"])
    with pytest.raises(FramingError, match="3 bytes, shorter"):
        split_message([b"txt"])
    with pytest.raises(ValueError, match="40 bytes"):
        join_frame(b"txt", b"p")


def test_batch_round_trip_and_rejects() -> None:
    topic, payload = build_batch([b"a", b"", b"\x00\xff"])
    assert topic == BATCH_TOPIC
    assert msgspec.msgpack.decode(payload) == [b"a", b"", b"\x00\xff"]
    assert split_batch(payload) == [b"a", b"", b"\x00\xff"]
    for bad in (b"", b"\xc1", msgspec.msgpack.encode(["text, not binary"]), b"\x92\xc4\x05ab"):
        with pytest.raises(FramingError, match="invalid batch payload"):
            split_batch(bad)


def test_check_endpoint_messages() -> None:
    assert check_endpoint("tcp://127.0.0.1:5") == "tcp://127.0.0.1:5"
    assert check_endpoint("ipc:///tmp/x") == "ipc:///tmp/x"
    for bad, why in [
        ("127.0.0.1:5557", "must start with ipc:// or tcp://"),
        ("http://x:1", "must start with"),
        ("tcp://", "no address"),
        ("tcp://127.0.0.1", "needs a port"),
    ]:
        with pytest.raises(ValueError, match=why):
            check_endpoint(bad)


# -- publisher and subscriber ----------------------------------------------------


async def _connected(pub: ZmqPublisher[str], sub: ZmqSubscriber[str]) -> None:
    sub.open()
    assert await pub.wait_for_subscriber(5.0), "subscription never reached the XPUB"


@pytest.mark.parametrize("scheme", ["ipc", "tcp"])
def test_items_and_batches_arrive_in_order(scheme: str, ipc_endpoint: str) -> None:
    endpoint = ipc_endpoint if scheme == "ipc" else "tcp://127.0.0.1:0"

    async def main() -> None:
        with ZmqPublisher(_codec(), endpoint, xpub=True, lossless=True, max_batch=7) as pub:
            async with ZmqSubscriber(_codec(), pub.bound_endpoint) as sub:
                await _connected(pub, sub)
                assert pub.send("one")
                assert pub.send_many(["solo"]) == 1
                items = [f"item-{i}" for i in range(50)]
                assert pub.send_many(items) == 50
                got = [await asyncio.wait_for(sub.recv(), 5) for _ in range(52)]
                assert got == ["one", "solo", *items]
                assert sub.received == 52 and sub.dropped == 0
                # 1 + 1 plain messages and ceil(50 / 7) = 8 batches
                assert sub.messages == 10
                assert pub.sent == 52 and pub.dropped == 0

    asyncio.run(main())


def test_recv_batch_hands_out_each_message_as_one_list(ipc_endpoint: str) -> None:
    async def main() -> None:
        with ZmqPublisher(_codec(), ipc_endpoint, xpub=True, lossless=True, max_batch=4) as pub:
            async with ZmqSubscriber(_codec(), ipc_endpoint, rcvhwm=0) as sub:
                assert await pub.wait_for_subscriber(5.0)
                pub.send("first")
                pub.send_many(["a", "b", "!bad", "c", "d"])  # batches of 4 and 1
                assert await asyncio.wait_for(sub.recv(), 5) == "first"
                assert await asyncio.wait_for(sub.recv_batch(), 5) == ["a", "b", "c"]
                assert await asyncio.wait_for(sub.recv_batch(), 5) == ["d"]
                assert sub.dropped == 1
            conflated = ZmqSubscriber(_codec(), ipc_endpoint, conflate=True)
            with pytest.raises(RuntimeError, match="lossless"):
                await conflated.recv_batch()

    asyncio.run(main())


def test_send_many_puts_a_batch_frame_on_the_wire(ipc_endpoint: str) -> None:
    ctx = zmq.Context.instance()
    with ZmqPublisher(_codec(), ipc_endpoint, xpub=True) as pub:
        raw = ctx.socket(zmq.SUB)
        raw.setsockopt(zmq.SUBSCRIBE, b"")
        raw.setsockopt(zmq.RCVTIMEO, 5000)
        raw.connect(ipc_endpoint)
        try:
            assert asyncio.run(pub.wait_for_subscriber(5.0))
            pub.send_many(["a", "b", "c"])
            frames = raw.recv_multipart()
            assert len(frames) == 1  # one frame: topic immediately followed by the payload
            assert frames[0][:TOPIC_LEN] == BATCH_TOPIC
            assert split_batch(frames[0][TOPIC_LEN:]) == [b"a", b"b", b"c"]
        finally:
            raw.close(linger=0)


def test_malformed_messages_are_counted_and_skipped(ipc_endpoint: str) -> None:
    """Every kind of bad message is dropped with a reason; a good one still gets through."""

    async def main() -> None:
        ctx = zmq.Context.instance()
        raw = ctx.socket(zmq.XPUB)
        raw.bind(ipc_endpoint)
        try:
            sub = ZmqSubscriber(_codec(), ipc_endpoint, expected_topics=["txt"])
            async with sub:
                sub.open()
                # the subscription arrives on the raw XPUB once connected
                loop = asyncio.get_running_loop()
                assert await loop.run_in_executor(None, raw.poll, 5000)
                raw.recv()
                bad: list[list[bytes]] = [
                    [TEXT_TOPIC, b"x"],  # two frames: topic and payload apart
                    [TEXT_TOPIC, b"x", b"y"],  # three frames
                    [b"txt"],  # shorter than a topic
                    [pad_topic("other") + b"x"],  # unexpected topic
                    [BATCH_TOPIC + b"\xc1"],  # batch payload not msgpack
                    [TEXT_TOPIC + b"\xff\xfe"],  # not UTF-8
                    [TEXT_TOPIC + b"!nope"],  # codec refuses
                ]
                for frames in bad:
                    raw.send_multipart(frames)
                raw.send(b"".join(build_batch([b"ok-1", b"\xff", b"ok-2"])))
                raw.send(TEXT_TOPIC + b"fine")
                got = [await asyncio.wait_for(sub.recv(), 5) for _ in range(3)]
                assert got == ["ok-1", "ok-2", "fine"]
                assert sub.dropped == len(bad) + 1
                assert sub.received == 3
                assert sub.messages == len(bad) + 2
                assert sub.last_error is not None and "UnicodeDecodeError" in sub.last_error
        finally:
            raw.close(linger=0)

    asyncio.run(main())


def test_on_decode_error_may_supply_a_replacement(ipc_endpoint: str) -> None:
    async def main() -> None:
        with ZmqPublisher(RepairingCodec(), ipc_endpoint, xpub=True) as pub:
            async with ZmqSubscriber(RepairingCodec(), ipc_endpoint) as sub:
                await _connected(pub, sub)
                pub.send_frame(TEXT_TOPIC, b"\xff\xff\xff")
                assert await asyncio.wait_for(sub.recv(), 5) == "<bad 3 bytes>"
                assert sub.dropped == 0 and sub.received == 1

    asyncio.run(main())


def test_conflate_returns_only_the_newest_and_counts_the_rest(ipc_endpoint: str) -> None:
    """A reader that falls behind gets the newest item; older ones are counted, not returned."""

    async def main() -> None:
        with ZmqPublisher(_codec(), ipc_endpoint, xpub=True, sndhwm=1000) as pub:
            conflated = ZmqSubscriber(_codec(), ipc_endpoint, conflate=True, rcvhwm=1000)
            probe = ZmqSubscriber(_codec(), ipc_endpoint)  # reads everything, to know when
            async with conflated, probe:
                conflated.open()
                probe.open()
                assert await pub.wait_for_subscriber(5.0, min_subscriptions=2)
                for i in range(200):
                    pub.send(f"v{i:03d}")
                pub.send_frame(TEXT_TOPIC, b"\xff")  # malformed: still decoded and counted
                pub.send("v200")
                probed = [await asyncio.wait_for(probe.recv(), 5) for _ in range(201)]
                assert probed[-1] == "v200"
                returned = []
                while not returned or returned[-1] != "v200":
                    returned.append(await asyncio.wait_for(conflated.recv(), 5))
                assert returned == sorted(returned), "conflation never goes back in time"
                assert conflated.received == 201
                assert conflated.dropped == 1
                assert len(returned) + conflated.superseded == 201
                assert conflated.superseded > 0

    asyncio.run(main())


def test_lossless_xpub_waits_for_a_subscriber_then_loses_nothing(ipc_endpoint: str) -> None:
    async def main() -> None:
        with ZmqPublisher(_codec(), ipc_endpoint, xpub=True, lossless=True) as pub:
            assert pub.sndhwm == 0
            assert await pub.wait_for_subscriber(0.05) is False
            async with ZmqSubscriber(_codec(), ipc_endpoint, rcvhwm=0) as sub:
                await _connected(pub, sub)
                assert await pub.wait_for_subscriber(0) is True  # already seen
                n = 20_000
                for start in range(0, n, 500):
                    pub.send_many([str(i) for i in range(start, start + 500)])
                got = [await asyncio.wait_for(sub.recv(), 5) for _ in range(n)]
                assert got == [str(i) for i in range(n)]
                assert sub.dropped == 0

    asyncio.run(main())


def test_wait_for_subscriber_needs_xpub(ipc_endpoint: str) -> None:
    with ZmqPublisher(_codec(), ipc_endpoint) as pub, pytest.raises(RuntimeError, match="xpub"):
        asyncio.run(pub.wait_for_subscriber(0.01))


def test_lossy_publisher_never_blocks_on_a_subscriber_that_never_reads(
    ipc_endpoint: str,
) -> None:
    """50,000 sends into a stalled subscriber complete; the queue stays at the HWM."""
    ctx = zmq.Context.instance()
    stalled = ctx.socket(zmq.SUB)
    stalled.setsockopt(zmq.RCVHWM, 10)
    stalled.setsockopt(zmq.SUBSCRIBE, b"")
    with ZmqPublisher(_codec(), ipc_endpoint, xpub=True, sndhwm=10) as pub:
        stalled.connect(ipc_endpoint)
        try:
            assert asyncio.run(pub.wait_for_subscriber(5.0))
            done = threading.Event()

            def flood() -> None:
                for i in range(50_000):
                    pub.send(f"{i:0100d}")
                done.set()

            t = threading.Thread(target=flood)
            t.start()
            t.join(30)
            assert done.is_set(), "a lossy send blocked"
            assert pub.sent + pub.dropped == 50_000
            # the stalled subscriber holds at most its HWM plus what was in flight
            queued = 0
            while stalled.poll(0):
                stalled.recv_multipart()
                queued += 1
            assert 0 < queued < 1000
        finally:
            stalled.close(linger=0)


def test_send_on_a_closed_publisher_raises(ipc_endpoint: str) -> None:
    pub = ZmqPublisher(_codec(), ipc_endpoint)
    pub.close()
    pub.close()  # idempotent
    assert pub.closed
    with pytest.raises(zmq.ZMQError):
        pub.send("x")


def test_bind_conflict_names_the_endpoint() -> None:
    with (
        ZmqPublisher(_codec(), "tcp://127.0.0.1:0") as first,
        pytest.raises(OSError, match=r"cannot bind tcp://127\.0\.0\.1:\d+"),
    ):
        ZmqPublisher(_codec(), first.bound_endpoint)


def test_bad_settings_are_rejected(ipc_endpoint: str) -> None:
    with pytest.raises(ValueError, match="must start with"):
        ZmqPublisher(_codec(), "localhost:1")
    with pytest.raises(ValueError, match="linger_ms"):
        ZmqPublisher(_codec(), ipc_endpoint, linger_ms=-1)
    with pytest.raises(ValueError, match="rcvhwm"):
        ZmqSubscriber(_codec(), ipc_endpoint, rcvhwm=-1)


def test_subscriber_can_bind_and_iteration_ends_on_close(ipc_endpoint: str) -> None:
    async def main() -> None:
        ctx = zmq.Context.instance()
        sub = ZmqSubscriber(_codec(), ipc_endpoint, bind=True, topics=["txt"])
        sub.open()
        assert sub.bound_endpoint == ipc_endpoint
        raw = ctx.socket(zmq.PUB)
        raw.connect(ipc_endpoint)
        got: list[str] = []

        async def reader() -> None:
            async for item in sub:
                got.append(item)

        task = asyncio.create_task(reader())
        try:
            # PUB drops until the subscription arrives: resend until the first one lands
            async def first_seen() -> None:
                while not got:
                    raw.send(TEXT_TOPIC + b"hello")
                    await asyncio.sleep(0.01)

            await asyncio.wait_for(first_seen(), 5)
            raw.send(pad_topic("zzz") + b"filtered by prefix")
            raw.send(b"".join(build_batch([b"in-batch"])))  # batch topic auto-subscribed
            assert await async_wait_until(lambda: "in-batch" in got)
            assert all(g in ("hello", "in-batch") for g in got)
        finally:
            sub.close()
            await asyncio.wait_for(task, 5)  # iteration stops instead of hanging
            raw.close(linger=0)
        with pytest.raises(EOFError):
            await sub.recv()

    asyncio.run(main())


def test_a_busy_stream_does_not_starve_other_tasks(ipc_endpoint: str) -> None:
    """Reading 5,000 queued items still lets the rest of the loop run."""

    async def main() -> None:
        with ZmqPublisher(_codec(), ipc_endpoint, xpub=True, lossless=True) as pub:
            async with ZmqSubscriber(_codec(), ipc_endpoint, rcvhwm=0) as sub:
                await _connected(pub, sub)
                for i in range(5000):
                    pub.send(str(i))
                assert await asyncio.wait_for(sub.recv(), 5) == "0"  # the flood is arriving
                turns = 0
                stop = asyncio.Event()

                async def other_task() -> None:
                    nonlocal turns
                    while not stop.is_set():
                        turns += 1
                        await asyncio.sleep(0)

                other = asyncio.create_task(other_task())
                await asyncio.sleep(0)
                turns = 0
                got = [await sub.recv() for _ in range(4999)]
                stop.set()
                await other
                assert got[-1] == "4999"
                assert turns >= 4999 // 64 // 2, turns

    asyncio.run(main())


def test_a_bad_record_in_a_batch_costs_that_record_only(ipc_endpoint: str) -> None:
    """EventCodec decodes a batch in one call; one bad payload sends that batch down
    the item-by-item path, which drops just it (and counts it)."""
    from registry.events import EventCodec, EventRecord, EventType

    codec = EventCodec()
    good = [
        codec.encode(EventRecord(EventType.SAMPLE_ISSUED, 1_000 + i, f"s{i}"))[1] for i in range(5)
    ]
    bad = msgspec.msgpack.encode({"event_type": "sample.issued", "timestamp_ns": -1})

    async def main() -> None:
        ctx = zmq.asyncio.Context()
        pub = ctx.socket(zmq.XPUB)
        pub.bind(ipc_endpoint)
        try:
            async with ZmqSubscriber(codec, ipc_endpoint, rcvhwm=0) as sub:
                await asyncio.wait_for(pub.recv(), 5)  # the subscription
                for items in (good, [*good[:2], bad, *good[2:]]):
                    topic, payload = build_batch(items)
                    await pub.send(join_frame(topic, payload))
                first = await asyncio.wait_for(sub.recv_batch(), 5)
                second = await asyncio.wait_for(sub.recv_batch(), 5)
                assert [r.sample_uuid for r in first] == [f"s{i}" for i in range(5)]
                assert second == first  # the bad one left out, the order kept
                assert sub.dropped == 1 and "timestamp_ns" in (sub.last_error or "")
        finally:
            pub.close(linger=0)
            ctx.term()

    asyncio.run(main())
