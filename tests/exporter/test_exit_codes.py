"""Issue 13 item 4: ``aggregate`` exits 3 when a final file could not be written, names
which in one log line, and still sends the terminal frame (real processes, real disks)."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from registry import SessionState
from registry.delivery.atomic_file import temp_files_for
from tests.support.aggregate_process import exit_code, run_session, start_aggregate
from tests.support.read_only import made_read_only
from tests.support.small_disk import mounted_tmpfs

FILES = ("final_snapshot.json", "result_summary.json")


@pytest.fixture
def workdir() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="bm-exit-"))  # short: ipc:// paths
    try:
        yield d
    finally:
        subprocess.run(["chattr", "-R", "-i", str(d)], capture_output=True, check=False)
        shutil.rmtree(d, ignore_errors=True)


def the_line(err: list[str]) -> str:
    lines = [ln for ln in err if "final files NOT written" in ln]
    assert len(lines) == 1, "\n".join(err)
    return lines[0]


def test_complete_run_still_exits_0(workdir: Path) -> None:
    out = workdir / "out"
    child, events_ep, snapshots_ep = start_aggregate(workdir, out)
    terminal = run_session(events_ep, snapshots_ep)
    assert exit_code(child) == 0, "\n".join(child.err)
    assert terminal is not None and terminal.state is SessionState.COMPLETE
    assert all((out / name).is_file() for name in FILES)
    assert not any("NOT written" in ln for ln in child.err)


def test_read_only_directory_exits_3_naming_both_files(workdir: Path) -> None:
    """The directory turns read-only mid-run (the lock file is already in it)."""
    out = workdir / "out"
    child, events_ep, snapshots_ep = start_aggregate(workdir, out)
    with contextlib.ExitStack() as stack:
        terminal = run_session(
            events_ep, snapshots_ep, before_end=lambda: stack.enter_context(made_read_only(out))
        )
        rc = exit_code(child)
        assert not any((out / name).exists() for name in FILES)
        assert not any(temp_files_for(out / name) for name in FILES)
    assert rc == 3, "\n".join(child.err)
    assert terminal is not None and terminal.state is SessionState.COMPLETE
    line = the_line(child.err)
    assert "final_snapshot.json (" in line and "result_summary.json (" in line
    assert "terminal frame was sent" in line
    assert not any("Traceback" in ln for ln in child.err)


@pytest.mark.parametrize("blocked", FILES)
def test_one_unwritable_file_is_named_alone(workdir: Path, blocked: str) -> None:
    """A directory in the way of one file: the rename onto it fails, the other file lands."""
    out = workdir / "out"
    (out / blocked).mkdir(parents=True)
    child, events_ep, snapshots_ep = start_aggregate(workdir, out)
    terminal = run_session(events_ep, snapshots_ep)
    assert exit_code(child) == 3, "\n".join(child.err)
    assert terminal is not None and terminal.state is SessionState.COMPLETE
    line = the_line(child.err)
    other = next(name for name in FILES if name != blocked)
    assert f"{blocked} (" in line and other not in line
    assert (out / other).is_file()
    if other == "result_summary.json":  # built from the terminal snapshot in memory
        report = json.loads((out / other).read_text())
        assert report["source"] == "terminal_frame" and report["complete"] is True


@pytest.fixture
def small_tmpfs(workdir: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs (needs mount rights: root with CAP_SYS_ADMIN)."""
    with mounted_tmpfs(workdir / "small", "1m") as mnt:
        yield mnt


def fill(directory: Path) -> None:
    """Write a filler file until the filesystem is full."""
    block = b"\0" * 65536
    with (directory / "filler").open("wb", buffering=0) as f:
        try:
            while True:
                f.write(block)
        except OSError:
            pass
        try:
            while True:
                f.write(b"\0")
        except OSError:
            pass


def test_full_disk_exits_3_and_says_so(workdir: Path, small_tmpfs: Path) -> None:
    out = small_tmpfs / "out"
    child, events_ep, snapshots_ep = start_aggregate(workdir, out)
    terminal = run_session(events_ep, snapshots_ep, before_end=lambda: fill(small_tmpfs))
    assert exit_code(child) == 3, "\n".join(child.err)
    assert terminal is not None and terminal.state is SessionState.COMPLETE
    line = the_line(child.err)
    assert "final_snapshot.json (No space left on device)" in line
    assert "result_summary.json (No space left on device)" in line
    # never half-written: neither file nor temporary leftovers
    assert not any((out / name).exists() for name in FILES)
    assert not any(temp_files_for(out / name) for name in FILES)
