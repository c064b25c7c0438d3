"""Snapshot wire codec and dict form (SPEC §4).

Wire: a 40-byte topic (``MET`` NUL-padded) and a msgpack payload whose layout
is given by the structs in :mod:`registry.delivery.snapshot`. Dict form: the JSON
shape of ``final_snapshot.json``, key for key upstream's (``early_stopping_percentiles``
right after ``percentiles`` when set), plus our ``hdr`` (base64 text, when set)
and top-level ``run`` block: strict JSON, non-finite floats as ``null``.

This module only converts; it never touches sockets or files, and decoding
never trusts its input: anything malformed raises :class:`SnapshotDecodeError`.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Mapping
from typing import Any

import msgspec

from registry.delivery.snapshot import CounterStat, MetricsSnapshot, SeriesStat, SessionState
from registry.transport.framing import TOPIC_LEN, pad_topic

# TOPIC_LEN and pad_topic live with the transport; named here too for older imports.
__all__ = [
    "SNAPSHOT_TOPIC",
    "TOPIC_LEN",
    "SnapshotCodec",
    "SnapshotDecodeError",
    "pad_topic",
    "run_block",
    "snapshot_from_dict",
    "snapshot_to_dict",
]

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


class _FiveSlots(msgspec.Struct, frozen=True, array_like=True):
    """A snapshot without slot 5: upstream's five elements, byte for byte.

    msgspec writes every field of an ``array_like`` struct, defaults included
    (``omit_defaults`` applies to maps only), so a snapshot whose producer says
    nothing about its run is sent through this shape instead.
    """

    counter: int
    timestamp_ns: int
    state: SessionState
    n_pending_tasks: int
    metrics: list[CounterStat | SeriesStat]


def _wire_shape(snap: MetricsSnapshot) -> MetricsSnapshot | _FiveSlots:
    if snap.run is not None:
        return snap
    return _FiveSlots(
        snap.counter, snap.timestamp_ns, snap.state, snap.n_pending_tasks, snap.metrics
    )


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
            payload = self._encoder.encode(_wire_shape(snap))
        except OverflowError:
            payload = self._encoder.encode(_wire_shape(_wire_safe(snap)))
        return self.topic, payload

    def decode(self, payload: bytes | memoryview) -> MetricsSnapshot:
        try:
            return self._decoder.decode(payload)
        except msgspec.DecodeError as exc:
            raise SnapshotDecodeError(f"invalid snapshot payload: {exc}") from exc
        except RecursionError:  # msgspec bounds the depth; the payload is hostile
            raise SnapshotDecodeError("invalid snapshot payload: nested too deep") from None

    def on_decode_error(self, payload: bytes, exc: Exception) -> MetricsSnapshot | None:
        """Malformed snapshot frames are dropped (the subscriber counts them)."""
        return None


def _json_float(v: float | int | None) -> float | int | None:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _series_to_dict(m: SeriesStat) -> dict[str, Any]:
    # key order is upstream's; the optional keys appear only when set
    d: dict[str, Any] = {
        "type": "series",
        "name": m.name,
        "count": m.count,
        "total": _json_float(m.total),
        "min": _json_float(m.min),
        "max": _json_float(m.max),
        "sum_sq": _json_float(m.sum_sq),
        "percentiles": {k: _json_float(v) for k, v in m.percentiles.items()},
    }
    if m.early_stopping_percentiles is not None:
        d["early_stopping_percentiles"] = {
            k: _json_float(v) for k, v in m.early_stopping_percentiles.items()
        }
    d["histogram"] = [[[_json_float(lo), _json_float(hi)], n] for (lo, hi), n in m.histogram]
    if m.hdr is not None:
        d["hdr"] = base64.b64encode(m.hdr).decode("ascii")
    return d


def snapshot_to_dict(
    snap: MetricsSnapshot, *, run: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The dict form of SPEC §4: JSON-ready, strict (no NaN/Infinity).

    ``run`` (our extension: run id, labels, versions, percentile method, ...)
    becomes the top-level ``"run"`` key, written last; upstream ignores it.
    """
    metrics: list[dict[str, Any]] = []
    for m in snap.metrics:
        if isinstance(m, CounterStat):
            metrics.append({"type": "counter", "name": m.name, "value": _json_float(m.value)})
        else:
            metrics.append(_series_to_dict(m))
    d: dict[str, Any] = {
        "counter": snap.counter,
        "timestamp_ns": snap.timestamp_ns,
        "state": snap.state.value,
        "n_pending_tasks": snap.n_pending_tasks,
        "metrics": metrics,
    }
    if run is not None:
        d["run"] = dict(run)
    return d


def _nan_if_none(v: Any) -> Any:
    return math.nan if v is None else v


def _number_or_none(v: Any) -> float | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise TypeError(f"expected a number or null, got {v!r}")
    return float(v)


def _early_stopping_from_dict(m: Mapping[str, Any]) -> dict[str, float | None] | None:
    if "early_stopping_percentiles" in m:
        esp = m["early_stopping_percentiles"]
        if esp is None:
            return None
        if not isinstance(esp, dict):
            raise TypeError(f"early_stopping_percentiles must be an object, got {esp!r}")
        return {str(k): _number_or_none(v) for k, v in esp.items()}
    # A newer upstream names it "early_stopping"; its pre-release shapes differ,
    # so only a flat {grid key: number|null} map is taken, anything else ignored.
    legacy = m.get("early_stopping")
    if isinstance(legacy, dict):
        try:
            return {str(float(k)): _number_or_none(v) for k, v in legacy.items()}
        except (TypeError, ValueError):
            return None
    return None


def _series_from_dict(m: Mapping[str, Any]) -> SeriesStat:
    hdr = m.get("hdr")
    return SeriesStat(
        name=m["name"],
        count=m["count"],
        total=_nan_if_none(m["total"]),
        min=_nan_if_none(m["min"]),
        max=_nan_if_none(m["max"]),
        sum_sq=_nan_if_none(m["sum_sq"]),
        percentiles={str(k): float(_nan_if_none(v)) for k, v in m["percentiles"].items()},
        histogram=[
            ((float(_nan_if_none(lo)), float(_nan_if_none(hi))), int(n))
            for (lo, hi), n in m["histogram"]
        ],
        early_stopping_percentiles=_early_stopping_from_dict(m),
        hdr=base64.b64decode(hdr, validate=True) if hdr is not None else None,
    )


def snapshot_from_dict(d: Mapping[str, Any]) -> MetricsSnapshot:
    """Inverse of :func:`snapshot_to_dict` (``null`` floats come back as NaN).

    Reads our files and upstream's (no ``hdr``, no ``run``; the early-stopping
    map under ``early_stopping_percentiles`` or a newer upstream's
    ``early_stopping``). The ``run`` block is read by :func:`run_block`.
    """
    try:
        metrics: list[CounterStat | SeriesStat] = []
        for m in d["metrics"]:
            kind = m.get("type")
            if kind == "counter":
                metrics.append(CounterStat(m["name"], _nan_if_none(m["value"])))
            elif kind == "series":
                metrics.append(_series_from_dict(m))
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


def run_block(d: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ``run`` block of a snapshot dict, or ``None`` when it has none (upstream's files).

    ``SnapshotDecodeError`` when ``run`` is present but not an object.
    """
    run = d.get("run")
    if run is None:
        return None
    if not isinstance(run, dict):
        raise SnapshotDecodeError(f"invalid snapshot dict: 'run' must be an object, got {run!r}")
    return dict(run)
