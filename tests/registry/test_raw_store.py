"""The raw store (SPEC §11): values beyond the memory bound go to Arrow IPC files as they
are folded, the terminal statistics from memory + files equal those from memory alone, and
a file cut short by a crash reads back up to its last complete batch."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import duckdb
import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.ipc
import pytest

from registry import MetricsRegistry, SessionState
from registry.store import RawStore, read_values
from registry.store.segments import SegmentWriter
from tests.support.helpers import wait_until

NS = {"hdr_low": 1, "hdr_high": 3_600_000_000_000, "sig_figs": 3}


def _registry(store: RawStore | None) -> MetricsRegistry:
    reg = MetricsRegistry(raw_store=store)
    reg.register_series("latency_ns", tail_latency=True, **NS)
    reg.register_series("tpot_ns", dtype=float, tail_latency=True, **NS)
    reg.register_series("isl", hdr_low=1, hdr_high=10_000_000)
    return reg


def _feed(reg: MetricsRegistry, seed: int, ticks: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(ticks):
        reg.record_many("latency_ns", rng.lognormal(19, 1, 5000).astype(np.int64))
        reg.record_many("tpot_ns", rng.lognormal(15, 0.4, 5000))
        reg.record_many("isl", rng.integers(1, 5000, 3000))
        reg.build_snapshot(state=SessionState.LIVE, n_pending_tasks=0)


def test_values_beyond_the_bound_go_to_disk_and_the_finals_are_unchanged(tmp_path: Path) -> None:
    bound = 256 * 1024
    store = RawStore(tmp_path / "raw", memory_bytes=bound)
    on_disk, in_memory = _registry(store), _registry(None)
    _feed(on_disk, 1, 40)
    _feed(in_memory, 1, 40)
    assert store.budget.used <= bound
    spilled = {n: on_disk.series_sampler(n).values.spilled for n in on_disk.series_names}
    assert all(v > 0 for v in spilled.values()), spilled
    assert sum(os.path.getsize(p) for p in (tmp_path / "raw").glob("*.arrows")) > 4 * bound
    a = on_disk.build_snapshot(state=SessionState.COMPLETE, n_pending_tasks=0)
    b = in_memory.build_snapshot(state=SessionState.COMPLETE, n_pending_tasks=0)
    assert a.metrics == b.metrics
    # completing the store puts every value in the files, with an exact manifest
    on_disk.finalize_raw_store()
    for name in on_disk.series_names:
        stored = np.concatenate(list(read_values(tmp_path / "raw" / f"{name}.arrows")))
        assert np.array_equal(np.sort(stored), np.sort(in_memory.series_sampler(name).raw_values()))
    c = on_disk.build_snapshot(state=SessionState.COMPLETE, n_pending_tasks=0)
    assert c.metrics == b.metrics  # read back from the files alone


def test_store_files_open_in_pyarrow_and_duckdb(tmp_path: Path) -> None:
    store = RawStore(tmp_path / "raw", memory_bytes=0)
    reg = _registry(store)
    _feed(reg, 2, 3)
    reg.finalize_raw_store()
    latency = pyarrow.ipc.open_stream(tmp_path / "raw" / "latency_ns.arrows").read_all()
    assert latency.schema.field("value").type == pa.int64()
    assert latency.schema.metadata[b"series"] == b"latency_ns"
    snap = reg.build_snapshot(state=SessionState.COMPLETE, n_pending_tasks=0)
    lat = snap.series["latency_ns"]
    [(n, total, p50)] = duckdb.sql(
        "SELECT count(*), sum(value), quantile_disc(value, 0.5) FROM latency"
    ).fetchall()
    assert (n, total) == (lat.count, lat.total)
    assert p50 == lat.percentiles["50.0"]  # DuckDB's discrete median is the nearest rank
    manifest = msgspec.json.decode((tmp_path / "raw" / "manifest.json").read_bytes())
    assert manifest["complete"] is True
    assert (
        manifest["series"]["latency_ns"]["sum_sq"] == reg.series_sampler("latency_ns").rollup.sum_sq
    )


def test_a_file_cut_anywhere_reads_back_up_to_its_last_complete_batch(tmp_path: Path) -> None:
    path = tmp_path / "x.arrows"
    writer = SegmentWriter(path, np.int64)
    ends = []
    for i in range(6):
        writer.write(np.arange(i * 1000, (i + 1) * 1000, dtype=np.int64))
        ends.append(path.stat().st_size)
    writer.close()
    data = path.read_bytes()
    for cut in sorted({*range(0, len(data), 997), *ends, len(data)}):
        part = tmp_path / "cut.arrows"
        part.write_bytes(data[:cut])
        got = list(read_values(part))
        complete = sum(1 for e in ends if e <= cut)
        assert len(got) == complete, cut
        for i, batch in enumerate(got):
            assert np.array_equal(batch, np.arange(i * 1000, (i + 1) * 1000))


_WRITER_CHILD = """
import sys, numpy as np
from registry.store.segments import SegmentWriter
w = SegmentWriter(sys.argv[1], np.int64)
i = 0
while True:
    w.write(np.arange(i * 4096, (i + 1) * 4096, dtype=np.int64))
    i += 1
    print(i, flush=True)
"""


def test_a_writer_killed_with_sigkill_leaves_every_batch_it_reported(tmp_path: Path) -> None:
    path = tmp_path / "killed.arrows"
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER_CHILD, str(path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    reported = 0
    try:
        assert wait_until(lambda: path.exists(), timeout=30)
        while reported < 50:
            reported = int(proc.stdout.readline())
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    got = list(read_values(path))
    assert len(got) >= reported
    for i, batch in enumerate(got):
        assert np.array_equal(batch, np.arange(i * 4096, (i + 1) * 4096))


def test_bad_bounds_are_refused() -> None:
    with pytest.raises(ValueError, match="memory bound"):
        RawStore("/tmp/never", memory_bytes=-1)


def test_a_store_that_cannot_be_written_loses_no_value(tmp_path: Path) -> None:
    """No directory can be made (its parent is a file): every value stays in memory."""
    (tmp_path / "a-file").write_text("x")
    store = RawStore(tmp_path / "a-file" / "raw", memory_bytes=64 * 1024)
    on_disk, in_memory = _registry(store), _registry(None)
    _feed(on_disk, 3, 10)
    _feed(in_memory, 3, 10)
    assert all(on_disk.series_sampler(n).values.spill_failed for n in on_disk.series_names)
    a = on_disk.build_snapshot(state=SessionState.COMPLETE, n_pending_tasks=0)
    b = in_memory.build_snapshot(state=SessionState.COMPLETE, n_pending_tasks=0)
    assert a.metrics == b.metrics
    with pytest.raises(OSError):
        on_disk.finalize_raw_store()


def test_a_disk_that_fails_mid_run_loses_no_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The 6th batch write fails (say, the disk is full) after the file got five: those
    stay in the file, the rest in memory, none twice."""
    real_write = SegmentWriter.write
    calls = {"n": 0}

    def flaky(self: SegmentWriter, values: np.ndarray) -> None:
        calls["n"] += 1
        if calls["n"] == 6:
            raise OSError(28, "No space left on device")
        real_write(self, values)

    monkeypatch.setattr(SegmentWriter, "write", flaky)
    store = RawStore(tmp_path / "raw", memory_bytes=64 * 1024)
    on_disk, in_memory = _registry(store), _registry(None)
    _feed(on_disk, 4, 10)
    _feed(in_memory, 4, 10)
    failed = [n for n in on_disk.series_names if on_disk.series_sampler(n).values.spill_failed]
    assert len(failed) == 1
    values = on_disk.series_sampler(failed[0]).values
    assert 0 < values.spilled < values.count
    a = on_disk.build_snapshot(state=SessionState.COMPLETE, n_pending_tasks=0)
    b = in_memory.build_snapshot(state=SessionState.COMPLETE, n_pending_tasks=0)
    assert a.metrics == b.metrics
    for name in on_disk.series_names:
        assert np.array_equal(
            np.sort(on_disk.series_sampler(name).raw_values()),
            np.sort(in_memory.series_sampler(name).raw_values()),
        )
