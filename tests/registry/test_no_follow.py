"""Issue 24 item 4: no file is written through a link the project did not create (SPEC §7).

Every file the project opens for writing goes through :mod:`registry.delivery.safe_open`: a
symbolic link (to a file or to nowhere), a hard-linked file, a FIFO or a directory at
the path is refused and whatever it points at is left exactly as it was. Each case
below plants the link where a real run writes, then checks the victim file."""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest

from registry import MetricsRegistry, SessionState
from registry.delivery.run_lock import LOCK_NAME, RunLock
from registry.delivery.safe_open import LinkRefused, make_directory, open_for_writing
from registry.store import RawStore
from registry.store.raw_store import series_file_name
from registry.store.samples import SampleWriter
from tests.registry.test_hostile_events import START, frames_of, run_with, sample
from tests.support.cli_process import bench_metrics

SECRET = b"somebody else's file\n"


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A file outside the output directory that a planted link points at."""
    p = tmp_path / "elsewhere" / "victim"
    p.parent.mkdir()
    p.write_bytes(SECRET)
    return p


def _untouched(victim: Path) -> bool:
    return victim.read_bytes() == SECRET


# -- the helper itself --------------------------------------------------------------------


@pytest.mark.parametrize("exclusive", [False, True])
def test_a_symbolic_link_is_refused_and_its_target_untouched(
    tmp_path: Path, victim: Path, exclusive: bool
) -> None:
    link = tmp_path / "out"
    link.symlink_to(victim)
    with pytest.raises(LinkRefused, match="symbolic link"):
        open_for_writing(link, exclusive=exclusive)
    assert _untouched(victim) and link.is_symlink()


def test_a_dangling_link_does_not_create_its_target(tmp_path: Path) -> None:
    target = tmp_path / "would-be-created"
    (tmp_path / "out").symlink_to(target)
    with pytest.raises(LinkRefused):
        open_for_writing(tmp_path / "out")
    assert not target.exists()


def test_a_hard_link_is_refused_before_anything_is_truncated(tmp_path: Path, victim: Path) -> None:
    os.link(victim, tmp_path / "out")
    with pytest.raises(LinkRefused, match="2 names"):
        open_for_writing(tmp_path / "out")
    assert _untouched(victim)


def test_a_fifo_or_a_directory_is_refused_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "dir").mkdir()
    result: list[BaseException] = []

    def try_open() -> None:
        for name in ("fifo", "dir"):
            try:
                open_for_writing(tmp_path / name)
            except OSError as exc:
                result.append(exc)

    t = threading.Thread(target=try_open, daemon=True)
    t.start()
    t.join(10)
    assert not t.is_alive(), "opening a FIFO blocked"
    assert [type(e) for e in result] == [LinkRefused, LinkRefused]


def test_a_regular_file_is_reused_and_emptied(tmp_path: Path) -> None:
    p = tmp_path / "f"
    p.write_bytes(b"old contents")
    os.close(open_for_writing(p))
    assert p.read_bytes() == b""
    assert make_directory(tmp_path / "a" / "b").is_dir()
    (tmp_path / "link").symlink_to(tmp_path / "a")
    with pytest.raises(LinkRefused):
        make_directory(tmp_path / "link")


# -- where the project writes -------------------------------------------------------------


def test_a_lock_file_that_is_a_link_is_refused(tmp_path: Path, victim: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / LOCK_NAME).symlink_to(victim)
    with pytest.raises(OSError, match="symbolic link"):
        RunLock(out, "r").acquire()
    assert _untouched(victim)


def test_aggregate_refuses_a_linked_lock_file_in_one_line(tmp_path: Path, victim: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / LOCK_NAME).symlink_to(victim)
    proc = subprocess.run(
        [
            *bench_metrics(),
            "aggregate",
            "--events",
            f"ipc://{tmp_path}/e",
            "--snapshots",
            f"ipc://{tmp_path}/s",
            "--output-dir",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "symbolic link" in lines[0], proc.stderr
    assert _untouched(victim)


def _registry(store: RawStore | None) -> MetricsRegistry:
    reg = MetricsRegistry(raw_store=store)
    reg.register_series("latency_ns", hdr_low=1, hdr_high=3_600_000_000_000, sig_figs=3)
    return reg


def _feed(reg: MetricsRegistry) -> None:
    rng = np.random.default_rng(4)
    for _ in range(8):
        reg.record_many("latency_ns", rng.lognormal(19, 1, 5000).astype(np.int64))
        reg.build_snapshot(state=SessionState.LIVE, n_pending_tasks=0)


@pytest.mark.parametrize("planted", ["file", "directory"])
def test_a_raw_store_file_or_directory_that_is_a_link_is_not_written(
    tmp_path: Path, victim: Path, planted: str
) -> None:
    raw = tmp_path / "out" / "raw"
    if planted == "file":
        raw.mkdir(parents=True)
        (raw / series_file_name("latency_ns")).symlink_to(victim)
    else:
        raw.parent.mkdir()
        raw.symlink_to(victim.parent)
    store = RawStore(raw, memory_bytes=64 * 1024)
    linked, in_memory = _registry(store), _registry(None)
    _feed(linked)
    _feed(in_memory)
    # refused, so the values stayed in memory: the numbers are the exact ones
    assert linked.series_sampler("latency_ns").values.spill_failed
    a = linked.build_snapshot(state=SessionState.COMPLETE, n_pending_tasks=0)
    b = in_memory.build_snapshot(state=SessionState.COMPLETE, n_pending_tasks=0)
    assert a.metrics == b.metrics
    if planted == "directory":
        with pytest.raises(OSError, match="symbolic link"):
            linked.finalize_raw_store()
    else:
        # at the end the file is rewritten whole under a new name and renamed over the
        # link: the link is replaced, never written through
        linked.finalize_raw_store()
        assert not (raw / series_file_name("latency_ns")).is_symlink()
    assert _untouched(victim)
    assert sorted(p.name for p in victim.parent.iterdir()) == ["victim"]


def test_the_samples_files_temporary_name_is_never_followed(tmp_path: Path, victim: Path) -> None:
    writer = SampleWriter(tmp_path / "samples.parquet", run_id="r")
    writer._tmp.symlink_to(victim)  # planted at the very name it will write
    row = ("u", "", None, None, 0, 1, None, 2, None, 1, None, None, "stop", None)
    assert writer.close_sync([row]) is False
    assert "symbolic link" in (writer.error or "")
    assert _untouched(victim)
    assert not (tmp_path / "samples.parquet").exists()
    assert writer._tmp.is_symlink()  # not the writer's file: not its to remove either


def test_the_ready_marker_does_not_create_a_dangling_links_target(
    workdir: Path, tmp_path: Path
) -> None:
    target = tmp_path / "created-through-the-link"
    (workdir / "out").mkdir()
    (workdir / "out" / ".ready").symlink_to(target)
    snap = run_with(workdir, frames_of([*START, *sample("a", 100)]), ready_marker=True)
    assert snap.counters["tracked_samples_completed"] == 1
    assert not target.exists()
