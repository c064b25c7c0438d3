"""write_atomic / write_json_atomic: never partial, even under kill -9."""

from __future__ import annotations

import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from registry.delivery.atomic_file import temp_files_for, write_atomic, write_json_atomic
from registry.delivery.snapshot import SessionState
from registry.delivery.snapshot_codec import snapshot_from_dict
from tests.support.helpers import wait_until

CHILD = Path(__file__).parents[1] / "support" / "atomic_writer_child.py"
REPO = Path(__file__).resolve().parents[2]


def test_write_atomic_replaces_content_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    write_atomic(target, b"first")
    write_atomic(target, b"second, longer")
    assert target.read_bytes() == b"second, longer"
    assert temp_files_for(target) == []
    write_atomic(str(target), b"")
    assert target.read_bytes() == b""


def test_write_json_atomic_is_strict_json(tmp_path: Path) -> None:
    target = tmp_path / "x.json"
    write_json_atomic(target, {"a": [1, 2.5, None], "é": "ü"})
    assert json.loads(target.read_text("utf-8")) == {"a": [1, 2.5, None], "é": "ü"}
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(ValueError, match="not JSON compliant"):
            write_json_atomic(target, {"a": bad})
    assert json.loads(target.read_text("utf-8"))["a"] == [1, 2.5, None]  # untouched
    assert temp_files_for(target) == []


def test_unwritable_directory_raises_and_leaves_target_alone(read_only_dir: Path) -> None:
    target = read_only_dir / "final.json"
    with pytest.raises(OSError):
        write_atomic(target, b"x")
    assert not target.exists()
    assert temp_files_for(target) == []


def test_missing_directory_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_atomic(tmp_path / "nope" / "final.json", b"x")


def test_stale_temp_of_a_dead_process_is_removed_live_ones_kept(tmp_path: Path) -> None:
    target = tmp_path / "final.json"
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    )
    dead_pid = int(dead.stdout)
    stale = tmp_path / f".final.json.{dead_pid}.deadbeef.tmp"
    stale.write_bytes(b"half a fi")
    live = tmp_path / f".final.json.{os.getppid()}.cafecafe.tmp"  # our parent is alive
    live.write_bytes(b"in progress")
    unrelated = tmp_path / ".other.json.1.aaaa.tmp"
    unrelated.write_bytes(b"")
    write_atomic(target, b"{}")
    assert not stale.exists()
    assert live.exists() and unrelated.exists()
    assert target.read_bytes() == b"{}"


def _check_file(target: Path, previous: int | None) -> int | None:
    """The generation in ``target`` after a kill; fails on anything but a complete file."""
    if not target.exists():
        assert previous is None, "a complete file disappeared"
        return None
    raw = target.read_bytes()
    doc = json.loads(raw)  # a torn file fails here
    snap = snapshot_from_dict(doc)
    assert snap.state is SessionState.COMPLETE
    values = set(snap.counters.values())
    assert values == {snap.counter}, f"mixed generations {sorted(values)[:5]}"
    assert previous is None or snap.counter >= previous
    return snap.counter


def test_kill_9_at_30_random_moments_never_leaves_a_partial_file(tmp_path: Path) -> None:
    """A writer rewrites a ~2 MB snapshot in a loop; SIGKILL it at 30 random moments.

    Writers are forked by a helper process (tests/support/atomic_writer_child.py) so each
    one starts at once instead of paying interpreter start-up 30 times.
    """
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    target = tmp_path / "final_snapshot.json"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    helper = subprocess.Popen(
        [sys.executable, str(CHILD), str(target), "25000"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    assert helper.stdin is not None and helper.stdout is not None

    def ask(line: str) -> str:
        assert helper.stdin is not None and helper.stdout is not None
        helper.stdin.write(line + "\n")
        helper.stdin.flush()
        return helper.stdout.readline().strip()

    generation: int | None = None
    try:
        assert helper.stdout.readline().strip() == "ready"
        for attempt in range(30):
            writer = int(ask(f"go {generation or 0}"))
            if attempt == 0:
                # One complete write first, however slow fsync is on a busy disk
                # (it can take longer than the random window below).
                assert wait_until(target.exists, 60), f"the first write never landed (seed {seed})"
            # The random moment of death: anywhere in the first few writes.
            time.sleep(rng.uniform(0.0, 0.25))
            os.kill(writer, signal.SIGKILL)
            assert ask("reap") == f"signal {int(signal.SIGKILL)}", f"seed {seed}"
            generation = _check_file(target, generation)
            leftovers = temp_files_for(target)
            assert len(leftovers) <= 1, f"temp files pile up after kill {attempt}: {leftovers}"
    finally:
        helper.kill()
        helper.communicate()
    assert generation is not None, f"no write ever completed (seed {seed})"
    # The next writer removes what the last killed one left.
    write_json_atomic(target, {"done": True})
    assert temp_files_for(target) == []
    assert json.loads(target.read_text()) == {"done": True}
