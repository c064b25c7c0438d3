"""Issue 24 item 6: payloads nested 10,000 deep are counted in ``events_malformed``, logged
once per kind, never as a traceback. A raw XPUB socket feeds hand-built msgpack into a real
aggregator (tests/registry/test_hostile_events.py's harness); snapshots get the same bound."""

from __future__ import annotations

import logging
from pathlib import Path

import msgspec
import pytest

from registry.aggregator.metrics import classify_bad_payload
from registry.delivery.snapshot_codec import SnapshotCodec, SnapshotDecodeError, pad_topic
from tests.registry.test_hostile_events import START, frames_of, rec, run_with, sample
from tests.support.exporter_support import spec_snapshot

DEPTH = 10_000


def deep_array() -> bytes:
    return b"\x91" * DEPTH + b"\xc0"  # [[[[...nil...]]]]


def deep_map() -> bytes:
    return b"\x81\xa1k" * DEPTH + b"\xc0"  # {"k": {"k": ...}}


def known_type_with_deep_field() -> bytes:
    """A ``sample.issued`` map whose unknown field holds the deep value."""
    head = msgspec.msgpack.encode(rec("sample.issued", 300, "deep"))
    return bytes([head[0] + 1]) + head[1:] + msgspec.msgpack.encode("extra") + deep_array()


def test_the_classifier_bounds_its_recursion() -> None:
    for payload in (deep_array(), deep_map(), known_type_with_deep_field()):
        assert classify_bad_payload(payload) == "payload nested too deep"


def test_deep_payloads_are_counted_once_logged_no_traceback(
    workdir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    topic = pad_topic("sample.issued")
    deep = [topic + p for p in (deep_array(), deep_map(), known_type_with_deep_field())] * 5
    frames = frames_of([*START, *sample("a", 100)]) + deep + frames_of(sample("b", 900))
    with caplog.at_level(logging.WARNING):
        snap = run_with(workdir, frames)
    c = snap.counters
    assert c["events_malformed"] == len(deep)
    assert c["tracked_samples_completed"] == 2  # the good samples around them are kept
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    told = [r for r in caplog.records if "nested too deep" in r.getMessage()]
    assert told and len([r for r in told if r.name.startswith("registry.aggregator")]) == 1


def test_a_deep_snapshot_is_one_decode_error() -> None:
    raw = msgspec.msgpack.decode(SnapshotCodec().encode(spec_snapshot(n=3))[1])
    head = msgspec.msgpack.encode(raw[:5])
    payload = b"\x96" + head[1:] + deep_array()  # slot 5 (the run block) nested deep
    with pytest.raises(SnapshotDecodeError, match="nested too deep"):
        SnapshotCodec().decode(payload)
