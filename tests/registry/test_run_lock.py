"""Issue 13 item 5: one run per output directory. Two real ``aggregate`` processes on one
directory: the second is refused (exit 2, one line naming the holder) before it writes
anything; a killed holder's stale lock is taken over with a log line; ``demo`` too."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from registry.delivery.run_lock import INHERITED_LOCK_ENV, LOCK_NAME, DirectoryLocked, RunLock
from tests.support.aggregate_process import exit_code, run_session, start_aggregate
from tests.support.cli_process import bench_metrics
from tests.support.helpers import wait_until

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def workdir() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="bm-lock-"))  # short: ipc:// paths
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def run_id_of(out: Path) -> str:
    """The report's run id, after checking the report counts what the snapshot file holds."""
    snap = json.loads((out / "final_snapshot.json").read_text())
    report = json.loads((out / "result_summary.json").read_text())
    counters = {m["name"]: m["value"] for m in snap["metrics"] if m["type"] == "counter"}
    assert report["samples"]["all"]["issued"] == counters["total_samples_issued"]
    assert report["snapshot"]["counter"] == snap["counter"]  # this very snapshot
    return str(report["run"]["run_id"])


def refusal(err: list[str]) -> str:
    lines = [ln for ln in err if ln.strip()]
    assert len(lines) == 1, "\n".join(err)  # one line, no traceback, no log noise
    return lines[0]


# -- in process -----------------------------------------------------------------------


def test_lock_file_names_the_holder_and_goes_away_on_release(tmp_path: Path) -> None:
    with RunLock(tmp_path, "r-1") as lock:
        doc = json.loads((tmp_path / LOCK_NAME).read_text())
        assert doc["pid"] == os.getpid() and doc["run_id"] == "r-1"
        with pytest.raises(DirectoryLocked) as err:
            RunLock(tmp_path, "r-2").acquire()  # another open file description: refused
        assert f"pid {os.getpid()} (run r-1)" in str(err.value)
        assert err.value.holder is not None and err.value.holder.run_id == "r-1"
        assert lock.held
    assert not (tmp_path / LOCK_NAME).exists()
    with RunLock(tmp_path, "r-3") as again:  # free again, and no stale-lock takeover
        assert again.took_over is None


_CHILD = """
import sys
from registry.delivery.run_lock import DirectoryLocked, RunLock
try:
    lock = RunLock(sys.argv[1], "child").acquire()
except DirectoryLocked as exc:
    print("refused", exc)
else:
    print("adopted" if lock.took_over is None else "took over")
    lock.release()
"""


def test_a_child_adopts_only_the_lock_it_was_handed(tmp_path: Path) -> None:
    with RunLock(tmp_path, "parent") as lock:
        fd = lock.fileno()
        handed = subprocess.run(
            [sys.executable, "-c", _CHILD, str(tmp_path)],
            env={**os.environ, **lock.child_env()},
            pass_fds=(fd,),
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=30,
        )
        assert handed.stdout.strip() == "adopted", handed.stderr
        assert (tmp_path / LOCK_NAME).exists()  # the child left the parent's file alone
        with (tmp_path / "other").open("w") as other:  # an fd that is not the lock
            forged = subprocess.run(
                [sys.executable, "-c", _CHILD, str(tmp_path)],
                env={**os.environ, INHERITED_LOCK_ENV: str(other.fileno())},
                pass_fds=(other.fileno(),),
                capture_output=True,
                text=True,
                cwd=REPO,
                timeout=30,
            )
        assert forged.stdout.startswith("refused"), forged.stderr
        assert f"pid {os.getpid()} (run parent)" in forged.stdout


# -- two real aggregate processes -------------------------------------------------------


def test_second_aggregate_on_a_held_directory_exits_2_naming_the_holder(workdir: Path) -> None:
    out = workdir / "out"
    first, events_ep, snapshots_ep = start_aggregate(workdir, out, run_id="first")
    try:
        first.wait_for("aggregating events")
        second, _, _ = start_aggregate(workdir, out, run_id="second", tag="2")
        assert exit_code(second) == 2
        line = refusal(second.err)
        assert line.startswith("bench-metrics aggregate: error: --output-dir ")
        assert f"in use by pid {first.proc.pid} (run first)" in line
        assert run_session(events_ep, snapshots_ep) is not None
        assert exit_code(first) == 0, "\n".join(first.err)
    finally:
        first.stop()
    assert run_id_of(out) == "first"
    assert not (out / LOCK_NAME).exists()  # released on exit
    third, events_ep, snapshots_ep = start_aggregate(workdir, out, run_id="third", tag="3")
    assert run_session(events_ep, snapshots_ep) is not None
    assert exit_code(third) == 0, "\n".join(third.err)
    assert run_id_of(out) == "third"
    assert not any("stale lock" in ln for ln in third.err)


@pytest.mark.parametrize("trial", range(3))
def test_two_aggregates_started_together_never_mix_runs(workdir: Path, trial: int) -> None:
    """The issue's probe: both at once used to write one's run_id over the other's numbers."""
    out = workdir / "out"
    a = start_aggregate(workdir, out, run_id="run-a", tag="a")
    b = start_aggregate(workdir, out, run_id="run-b", tag="b")
    children = {"run-a": a, "run-b": b}
    try:
        assert wait_until(lambda: any(c.proc.poll() is not None for c, _, _ in (a, b)), 20)
        losers = [rid for rid, (c, _, _) in children.items() if c.proc.poll() is not None]
        assert len(losers) == 1, {rid: c.err for rid, (c, _, _) in children.items()}
        loser = losers[0]
        winner = "run-b" if loser == "run-a" else "run-a"
        loser_child = children[loser][0]
        win_child, events_ep, snapshots_ep = children[winner]
        assert exit_code(loser_child) == 2
        assert f"in use by pid {win_child.proc.pid} (run {winner})" in refusal(loser_child.err)
        assert run_session(events_ep, snapshots_ep) is not None
        assert exit_code(win_child) == 0, "\n".join(win_child.err)
    finally:
        for c, _, _ in (a, b):
            c.stop()
    assert run_id_of(out) == winner


def test_stale_lock_of_a_killed_aggregate_is_taken_over_with_a_log_line(workdir: Path) -> None:
    out = workdir / "out"
    dead, _, _ = start_aggregate(workdir, out, run_id="killed")
    dead.wait_for("aggregating events")
    dead_pid = dead.proc.pid
    assert dead.stop(signal.SIGKILL) == -signal.SIGKILL
    holder = json.loads((out / LOCK_NAME).read_text())
    assert holder["pid"] == dead_pid  # the file outlived its process

    nxt, events_ep, snapshots_ep = start_aggregate(workdir, out, run_id="next", tag="n")
    assert run_session(events_ep, snapshots_ep) is not None
    assert exit_code(nxt) == 0, "\n".join(nxt.err)
    line = next((ln for ln in nxt.err if "took over the stale lock" in ln), None)
    assert line is not None and f"pid {dead_pid} (run killed)" in line
    assert run_id_of(out) == "next"
    assert not (out / LOCK_NAME).exists()


def test_demo_refuses_a_held_directory_and_touches_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    earlier = out / "final_snapshot.json"
    earlier.write_text("{}\n")  # demo removes an earlier run's files: not while held
    with RunLock(out, "holder-run"):
        proc = subprocess.run(
            [*bench_metrics(), "demo", "--output-dir", str(out), "--no-tui", "--listen", ""],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=60,
        )
    assert proc.returncode == 2, proc.stderr
    line = refusal(proc.stderr.splitlines())
    assert line.startswith("bench-metrics demo: error: --output-dir ")
    assert f"in use by pid {os.getpid()} (run holder-run)" in line
    assert earlier.read_text() == "{}\n"
    assert not (out / "aggregator.log").exists()
