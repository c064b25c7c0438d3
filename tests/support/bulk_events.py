"""Millions of minimal tracked samples as ready-made SPEC §4 batch frames, built with numpy.

Each sample is a ``sample.issued`` map (``event_type``, ``timestamp_ns``, ``sample_uuid``,
``input_tokens``) and a ``sample.complete`` map (the same with ``output_tokens``): fixed-size
msgpack records, so a batch of 1,000 is one numpy structured array turned into bytes; the
producer costs next to nothing beside the aggregator it feeds.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from registry.transport import BATCH_TOPIC

BATCH = 1000
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def _fixstr(s: bytes) -> bytes:
    assert len(s) < 32
    return bytes([0xA0 | len(s)]) + s


def _layout(kind: bytes, count_key: bytes) -> tuple[np.dtype, bytes, bytes, bytes, bytes]:
    head = b"\x84" + _fixstr(b"event_type") + _fixstr(kind) + _fixstr(b"timestamp_ns") + b"\xcf"
    mid = _fixstr(b"sample_uuid") + b"\xb0"
    tail = _fixstr(count_key) + b"\xce"
    size = len(head) + 8 + len(mid) + 16 + len(tail) + 4
    dtype = np.dtype(
        [
            ("bin", "u1", 2),
            ("head", "u1", len(head)),
            ("ts", ">u8"),
            ("mid", "u1", len(mid)),
            ("uuid", "u1", 16),
            ("tail", "u1", len(tail)),
            ("count", ">u4"),
        ]
    )
    assert dtype.itemsize == size + 2 and size < 256
    return dtype, bytes([0xC4, size]), head, mid, tail


_ISSUED = _layout(b"sample.issued", b"input_tokens")
_COMPLETE = _layout(b"sample.complete", b"output_tokens")


def _records(
    layout: tuple[np.dtype, bytes, bytes, bytes, bytes],
    ids: npt.NDArray[np.int64],
    ts: npt.NDArray[np.int64],
    counts: npt.NDArray[np.int64],
) -> npt.NDArray[np.void]:
    dtype, binh, head, mid, tail = layout
    rec = np.empty(ids.size, dtype=dtype)
    rec["bin"] = np.frombuffer(binh, np.uint8)
    rec["head"] = np.frombuffer(head, np.uint8)
    rec["ts"] = ts
    rec["mid"] = np.frombuffer(mid, np.uint8)
    shifts = np.arange(60, -4, -4, dtype=np.int64)
    rec["uuid"] = _HEX[(ids[:, None] >> shifts) & 15]
    rec["tail"] = np.frombuffer(tail, np.uint8)
    rec["count"] = counts
    return rec


def _frame(records: npt.NDArray[np.void]) -> bytes:
    n = records.size
    return BATCH_TOPIC + b"\xdc" + n.to_bytes(2, "big") + records.tobytes()


def sample_frames(
    first: int, latencies: npt.NDArray[np.int64], isl: npt.NDArray[np.int64], t0: int
) -> list[bytes]:
    """Frames for samples ``first ..`` (one per value of ``latencies``): per 1,000 samples a
    frame of their issues, then one of their completions (so at most 1,000 are in flight)."""
    out: list[bytes] = []
    for lo in range(0, latencies.size, BATCH):
        ids = np.arange(first + lo, first + min(lo + BATCH, latencies.size), dtype=np.int64)
        lat = latencies[lo : lo + BATCH]
        issued = t0 + ids * 1000
        out.append(_frame(_records(_ISSUED, ids, issued, isl[lo : lo + BATCH])))
        out.append(_frame(_records(_COMPLETE, ids, issued + lat, isl[lo : lo + BATCH] // 4 + 1)))
    return out
