"""Snapshot wire codec and dict form (SPEC §4).

Wire: a 40-byte topic (``MET`` NUL-padded) and a msgpack payload whose layout
is given by the structs in :mod:`registry.snapshot`. Dict form: the JSON
shape of ``final_snapshot.json``: strict JSON, non-finite floats as ``null``,
``hdr`` as base64 text.

This module only converts; it never touches sockets or files, and decoding
never trusts its input: anything malformed raises :class:`SnapshotDecodeError`.
"""

from __future__ import annotations

import base64
import binascii
import math
from typing import Any

import msgspec

from registry.snapshot import CounterStat, MetricsSnapshot, SeriesStat, SessionState

__all__ = [
    "SNAPSHOT_TOPIC",
    "TOPIC_LEN",
    "SnapshotCodec",
    "SnapshotDecodeError",
    "pad_topic",
    "snapshot_from_dict",
    "snapshot_to_dict",
]

#: Every frame's first part has exactly this many bytes (SPEC §4).
TOPIC_LEN = 40


def pad_topic(name: str | bytes) -> bytes:
    """``name`` as a NUL-padded 40-byte topic (``ValueError`` when too long)."""
    raw = name.encode("ascii") if isinstance(name, str) else bytes(name)
    if len(raw) > TOPIC_LEN:
        raise ValueError(f"topic {raw!r} is longer than {TOPIC_LEN} bytes")
    return raw.ljust(TOPIC_LEN, b"\0")


SNAPSHOT_TOPIC = pad_topic("MET")

# msgpack integers stop at uint64 / int64; larger exact ints go out as the
# correctly rounded float (Python's int -> float conversion rounds correctly).
_MSGPACK_INT_MIN = -(2**63)
_MSGPACK_INT_MAX = 2**64 - 1


class SnapshotDecodeError(ValueError):
    """A payload or dict that is not a valid snapshot; the message says why."""


def _wire_number(v: int | float) -> int | float:
    if isinstance(v, int) and not _MSGPACK_INT_MIN <= v <= _MSGPACK_INT_MAX:
        return float(v)
    return v


def _wire_safe(snap: MetricsSnapshot) -> MetricsSnapshot:
    """``snap`` with every out-of-range exact integer replaced by its float."""
    metrics: list[CounterStat | SeriesStat] = []
    changed = False
    for m in snap.metrics:
        if isinstance(m, SeriesStat):
            total, sum_sq = _wire_number(m.total), _wire_number(m.sum_sq)
            if total is not m.total or sum_sq is not m.sum_sq:
                m = msgspec.structs.replace(m, total=total, sum_sq=sum_sq)
                changed = True
        else:
            value = _wire_number(m.value)
            if value is not m.value:
                m = CounterStat(m.name, value)
                changed = True
        metrics.append(m)
    return msgspec.structs.replace(snap, metrics=metrics) if changed else snap


class SnapshotCodec:
    """Encodes snapshots to ``(topic, payload)`` and decodes payloads back.

    One instance reuses its msgpack encoder/decoder; it holds no other state.
    """

    topic: bytes = SNAPSHOT_TOPIC

    def __init__(self) -> None:
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder = msgspec.msgpack.Decoder(MetricsSnapshot)

    def encode(self, snap: MetricsSnapshot) -> tuple[bytes, bytes]:
        try:
            payload = self._encoder.encode(snap)
        except OverflowError:
            payload = self._encoder.encode(_wire_safe(snap))
        return self.topic, payload

    def decode(self, payload: bytes | memoryview) -> MetricsSnapshot:
        try:
            return self._decoder.decode(payload)
        except msgspec.DecodeError as exc:
            raise SnapshotDecodeError(f"invalid snapshot payload: {exc}") from exc

    def on_decode_error(self, payload: bytes, exc: Exception) -> MetricsSnapshot | None:
        """Malformed snapshot frames are dropped (the subscriber counts them)."""
        return None


def _json_float(v: float | int) -> float | int | None:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def snapshot_to_dict(snap: MetricsSnapshot) -> dict[str, Any]:
    """The dict form of SPEC §4: JSON-ready, strict (no NaN/Infinity)."""
    metrics: list[dict[str, Any]] = []
    for m in snap.metrics:
        if isinstance(m, CounterStat):
            metrics.append({"type": "counter", "name": m.name, "value": _json_float(m.value)})
            continue
        metrics.append(
            {
                "type": "series",
                "name": m.name,
                "count": m.count,
                "total": _json_float(m.total),
                "min": _json_float(m.min),
                "max": _json_float(m.max),
                "sum_sq": _json_float(m.sum_sq),
                "percentiles": {k: _json_float(v) for k, v in m.percentiles.items()},
                "histogram": [
                    [[_json_float(lo), _json_float(hi)], n] for (lo, hi), n in m.histogram
                ],
                "early_stopping": m.early_stopping,
                "hdr": base64.b64encode(m.hdr).decode("ascii") if m.hdr is not None else None,
            }
        )
    return {
        "counter": snap.counter,
        "timestamp_ns": snap.timestamp_ns,
        "state": snap.state.value,
        "n_pending_tasks": snap.n_pending_tasks,
        "metrics": metrics,
    }


def _nan_if_none(v: Any) -> Any:
    return math.nan if v is None else v


def snapshot_from_dict(d: dict[str, Any]) -> MetricsSnapshot:
    """Inverse of :func:`snapshot_to_dict` (``null`` floats come back as NaN)."""
    try:
        metrics: list[CounterStat | SeriesStat] = []
        for m in d["metrics"]:
            kind = m.get("type")
            if kind == "counter":
                metrics.append(CounterStat(m["name"], _nan_if_none(m["value"])))
            elif kind == "series":
                hdr = m.get("hdr")
                metrics.append(
                    SeriesStat(
                        name=m["name"],
                        count=m["count"],
                        total=_nan_if_none(m["total"]),
                        min=_nan_if_none(m["min"]),
                        max=_nan_if_none(m["max"]),
                        sum_sq=_nan_if_none(m["sum_sq"]),
                        percentiles={
                            str(k): float(_nan_if_none(v)) for k, v in m["percentiles"].items()
                        },
                        histogram=[
                            ((float(_nan_if_none(lo)), float(_nan_if_none(hi))), int(n))
                            for (lo, hi), n in m["histogram"]
                        ],
                        early_stopping=m.get("early_stopping"),
                        hdr=base64.b64decode(hdr, validate=True) if hdr is not None else None,
                    )
                )
            else:
                raise SnapshotDecodeError(f"metric {m.get('name')!r} has unknown type {kind!r}")
        return MetricsSnapshot(
            counter=int(d["counter"]),
            timestamp_ns=int(d["timestamp_ns"]),
            state=SessionState(d["state"]),
            n_pending_tasks=int(d["n_pending_tasks"]),
            metrics=metrics,
        )
    except SnapshotDecodeError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, binascii.Error) as exc:
        raise SnapshotDecodeError(f"invalid snapshot dict: {type(exc).__name__}: {exc}") from exc
