"""Issue 24 item 3: a ``worker_id`` or ``turn`` no int64 holds is malformed at decode
(SPEC §5, counted in ``events_malformed``), so it can no longer fail the Parquet write of
the whole run; the int64 extremes themselves are stored as they came."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pyarrow.parquet as pq
import pytest

from registry.delivery.atomic_file import temp_files_for
from registry.events import EventCodec, EventDecodeError, EventRecord, EventType
from registry.store.samples import ROW_GROUP_ROWS, SampleWriter
from tests.registry.test_hostile_events import START, frames_of, rec, run_with

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


@pytest.mark.parametrize("field", ["worker_id", "turn"])
# (msgpack has no integer below -2**63: [2**63, 2**64) is the only range beyond int64)
@pytest.mark.parametrize("value", [2**63, 2**64 - 1])
def test_an_id_beyond_int64_does_not_decode(field: str, value: int) -> None:
    payload = msgspec.msgpack.encode(rec("sample.complete", 5, "s", **{field: value}))
    with pytest.raises(EventDecodeError):
        EventCodec().decode(payload)


def test_ids_beyond_int64_are_counted_and_the_samples_file_is_written(workdir: Path) -> None:
    records = [*START]
    good = {"lo": INT64_MIN, "hi": INT64_MAX, "mid": 7}
    for i, (uuid, worker) in enumerate(good.items()):
        t = 100 * (i + 1)
        records += [
            rec("sample.issued", t, uuid, conversation_id="c", turn=worker, input_tokens=3),
            rec("sample.complete", t + 50, uuid, worker_id=worker, finish_reason="stop"),
        ]
    records += [
        rec("sample.issued", 1_000, "bad", input_tokens=3),
        # each of these is rejected whole: the sample stays in flight
        rec("sample.complete", 1_050, "bad", worker_id=2**63, finish_reason="stop"),
        rec("sample.complete", 1_060, "bad", worker_id=2**64 - 1),
        rec("sample.issued", 1_100, "bad-turn", conversation_id="c", turn=2**63),
    ]
    snap = run_with(workdir, frames_of(records))
    c = snap.counters
    assert c["events_malformed"] == 3
    assert c["tracked_samples_completed"] == 3
    table = pq.read_table(workdir / "out" / "samples.parquet")
    rows = {r["sample_uuid"]: r for r in table.to_pylist()}
    assert set(rows) == {"lo", "hi", "mid", "bad"}
    for uuid, worker in good.items():
        assert rows[uuid]["worker_id"] == worker and rows[uuid]["turn"] == worker
    assert rows["bad"]["complete_ns"] is None and rows["bad"]["worker_id"] is None


def test_our_encoder_round_trips_the_int64_extremes() -> None:
    codec = EventCodec()
    for v in (INT64_MIN, INT64_MAX):
        r = EventRecord(EventType.SAMPLE_COMPLETE, 1, "s", turn=v, worker_id=v)
        assert codec.decode(codec.encode(r)[1]) == r


def test_a_row_group_that_cannot_be_written_leaves_no_temporary_file(tmp_path: Path) -> None:
    """Were a value beyond int64 to reach the writer anyway, the file is reported as not
    written (exit 3 in a run) and its temporary file is removed, not left behind."""
    writer = SampleWriter(tmp_path / "samples.parquet", run_id="r")
    row = ("u", "", None, 2**64 - 1, 0, 1, None, 2, None, 1, None, None, "stop", None)
    writer.submit([row] * ROW_GROUP_ROWS)
    assert writer.close_sync() is False
    assert writer.error is not None and "OverflowError" in writer.error
    assert temp_files_for(tmp_path / "samples.parquet") == []
    assert not (tmp_path / "samples.parquet").exists()
