"""load_final_snapshot: file, then terminal frame, then latest live (SPEC §7)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from registry import (
    FinalFileError,
    FinalSnapshotUnavailable,
    MetricsPublisher,
    MetricsRegistry,
    SessionState,
    SnapshotSubscriber,
    load_final_snapshot,
    read_final_file,
    snapshot_to_dict,
    write_json_atomic,
)
from tests.support.helpers import async_wait_until


def registry_with_data() -> MetricsRegistry:
    reg = MetricsRegistry()
    reg.register_counter("total_samples_completed")
    reg.register_series("sample_latency_ns", hdr_low=1, hdr_high=10**9)
    reg.increment("total_samples_completed", 3)
    reg.record_many("sample_latency_ns", [5, 7, 9])
    return reg


def terminal_dict(state: SessionState = SessionState.COMPLETE) -> dict:
    snap = registry_with_data().build_snapshot(state=state, n_pending_tasks=0)
    return snapshot_to_dict(snap)


def test_a_valid_file_wins(tmp_path: Path) -> None:
    path = tmp_path / "final_snapshot.json"
    write_json_atomic(path, terminal_dict())
    result = asyncio.run(load_final_snapshot(path))
    assert result.source == "file" and result.reason is None and result.exact
    assert result.snapshot.counters == {"total_samples_completed": 3}


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (None, "no such file"),
        (b"", "not valid JSON"),
        (b'{"counter": 1, "timestamp_ns": 2, "sta', "not valid JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (b'{"counter": 1}', "invalid snapshot dict"),
        ("live", "not terminal"),
    ],
)
def test_read_final_file_says_what_is_wrong(
    tmp_path: Path, content: bytes | str | None, why: str
) -> None:
    path = tmp_path / "final_snapshot.json"
    if content == "live":
        write_json_atomic(path, terminal_dict(SessionState.LIVE))
    elif isinstance(content, bytes):
        path.write_bytes(content)
    with pytest.raises(FinalFileError, match=why) as info:
        read_final_file(path)
    assert str(path) in str(info.value)


def test_no_file_and_no_stream_raises_with_the_reason(tmp_path: Path) -> None:
    with pytest.raises(FinalSnapshotUnavailable, match=r"no such file.*no snapshot stream"):
        asyncio.run(load_final_snapshot(tmp_path / "missing.json"))


def _publisher(reg: MetricsRegistry, endpoint: str, path: Path) -> MetricsPublisher:
    return MetricsPublisher(reg, endpoint=endpoint, final_snapshot_path=path, interval_s=0.02)


def test_partial_file_falls_back_to_the_terminal_frame(
    tmp_path: Path, read_only_dir: Path, ipc_endpoint: str
) -> None:
    """The publisher cannot write its file; the loader takes the terminal frame."""
    unwritable = read_only_dir / "final_snapshot.json"

    async def main() -> None:
        pub = _publisher(registry_with_data(), ipc_endpoint, unwritable)
        async with SnapshotSubscriber(ipc_endpoint) as sub:
            pub.start(lambda: (SessionState.LIVE, 0))
            assert await async_wait_until(lambda: sub.latest is not None)
            final = await pub.publish_final(n_pending_tasks=1, interrupted=True)
            result = await load_final_snapshot(unwritable, subscriber=sub, timeout=5)
        await pub.aclose()
        assert result.source == "terminal_frame" and result.exact
        assert result.snapshot == final
        assert result.reason is not None and "no such file" in result.reason

    asyncio.run(main())


def test_no_terminal_falls_back_to_latest_live_and_says_why(
    tmp_path: Path, ipc_endpoint: str
) -> None:
    path = tmp_path / "final_snapshot.json"
    path.write_bytes(b'{"counter": 9, "timesta')  # torn by a non-atomic writer

    async def main() -> None:
        pub = _publisher(registry_with_data(), ipc_endpoint, tmp_path / "elsewhere.json")
        async with SnapshotSubscriber(ipc_endpoint) as sub:
            pub.start(lambda: (SessionState.DRAINING, 2))
            assert await async_wait_until(lambda: sub.latest is not None)
            result = await load_final_snapshot(path, subscriber=sub, timeout=0.1)
        await pub.aclose()
        assert result.source == "latest_live" and not result.exact
        assert result.snapshot.state is SessionState.DRAINING
        assert result.snapshot.n_pending_tasks == 2
        assert result.reason is not None
        assert "not valid JSON" in result.reason and "no terminal frame" in result.reason

    asyncio.run(main())


def test_endpoint_only_waits_for_the_end_then_prefers_the_file(
    tmp_path: Path, ipc_endpoint: str
) -> None:
    """The loader subscribes itself and waits; at the end the file is there and wins."""
    path = tmp_path / "final_snapshot.json"

    async def main() -> None:
        pub = _publisher(registry_with_data(), ipc_endpoint, path)
        pub.start(lambda: (SessionState.LIVE, 0))
        loader = asyncio.create_task(load_final_snapshot(path, endpoint=ipc_endpoint, timeout=10))
        assert await async_wait_until(lambda: pub.ticks >= 5)
        final = await pub.publish_final(n_pending_tasks=0)
        result = await asyncio.wait_for(loader, 10)
        await pub.aclose()
        assert result.source == "file" and result.reason is None
        assert result.snapshot == final

    asyncio.run(main())


def test_endpoint_with_nothing_on_it_raises(tmp_path: Path, ipc_endpoint: str) -> None:
    with pytest.raises(FinalSnapshotUnavailable, match=r"no terminal frame.*no live snapshot"):
        asyncio.run(load_final_snapshot(tmp_path / "f.json", endpoint=ipc_endpoint, timeout=0.05))


def test_written_file_is_strict_json(tmp_path: Path) -> None:
    """NaN-free: the dict form turns non-finite values into null."""
    path = tmp_path / "final_snapshot.json"
    reg = MetricsRegistry()
    reg.register_series("empty", hdr_low=1, hdr_high=100)

    async def main() -> None:
        pub = MetricsPublisher(reg, endpoint="tcp://127.0.0.1:0", final_snapshot_path=path)
        await pub.publish_final(n_pending_tasks=0)
        await pub.aclose()

    asyncio.run(main())

    def no_constants(name: str) -> None:
        raise AssertionError(f"non-strict JSON constant {name}")

    json.loads(path.read_text(), parse_constant=no_constants)
    assert read_final_file(path).series["empty"].count == 0
