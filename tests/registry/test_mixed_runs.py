"""Issue 24 item 12: an output directory never holds two runs' final files (SPEC §7).

An earlier run's ``final_snapshot.json`` that cannot be replaced (immutable: ``chattr
+i``, which stops root too) used to stay beside the new run's ``result_summary.json``.
Now the earlier run's files are removed before a run writes anything (one that cannot
be: one line, exit 2, the directory as it was), and a final snapshot that appears and
cannot be replaced during the run keeps the new report from being written beside it
(exit 3, both files named). Real ``aggregate`` processes."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.aggregate_process import exit_code, run_session, start_aggregate

OLD = {"final_snapshot.json": '{"earlier": "run"}\n', "result_summary.json": '{"earlier": 1}\n'}


@pytest.fixture
def workdir() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="bm-mix-"))  # short: ipc:// paths
    try:
        yield d
    finally:
        subprocess.run(["chattr", "-R", "-i", str(d)], capture_output=True, check=False)
        shutil.rmtree(d, ignore_errors=True)


def _immutable(path: Path) -> None:
    proc = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot make a file immutable here: {proc.stderr.strip()}")


def _earlier_run(out: Path) -> None:
    out.mkdir()
    for name, text in OLD.items():
        (out / name).write_text(text)
    (out / "raw").mkdir()
    (out / "raw" / "manifest.json").write_text('{"complete": true, "series": {}}\n')


def test_earlier_files_are_removed_before_the_run_writes(workdir: Path) -> None:
    out = workdir / "out"
    _earlier_run(out)
    (out / "samples.parquet").write_bytes(b"not this run's")
    child, events_ep, snapshots_ep = start_aggregate(workdir, out)
    # the earlier run's files are gone once the run is up, before it ends
    child.wait_for("aggregating events from")
    assert not any((out / name).exists() for name in (*OLD, "samples.parquet"))
    assert not (out / "raw" / "manifest.json").exists()
    run_session(events_ep, snapshots_ep)
    assert exit_code(child) == 0, "\n".join(child.err)
    for name in OLD:
        assert json.loads((out / name).read_text())["run"]["run_id"] == "exit-test"


def test_an_earlier_final_file_that_cannot_be_removed_stops_the_run_at_once(
    workdir: Path,
) -> None:
    out = workdir / "out"
    _earlier_run(out)
    _immutable(out / "final_snapshot.json")
    child, _, _ = start_aggregate(workdir, out)
    assert exit_code(child) == 2, "\n".join(child.err)
    assert len(child.err) == 1, child.err
    assert "final_snapshot.json cannot be removed" in child.err[0]
    # untouched: still the earlier run, whole
    assert {n: (out / n).read_text() for n in OLD} == OLD
    assert (out / "raw" / "manifest.json").exists()


def test_a_final_file_made_unreplaceable_mid_run_keeps_the_report_from_mixing_in(
    workdir: Path,
) -> None:
    probe = workdir / "probe"
    probe.write_text("x")
    _immutable(probe)  # skips here, before a process is started, where chattr cannot
    out = workdir / "out"
    child, events_ep, snapshots_ep = start_aggregate(workdir, out)

    def plant() -> None:
        (out / "final_snapshot.json").write_text(OLD["final_snapshot.json"])
        _immutable(out / "final_snapshot.json")

    run_session(events_ep, snapshots_ep, before_end=plant)
    assert exit_code(child) == 3, "\n".join(child.err)
    line = next(ln for ln in child.err if "final files NOT written" in ln)
    assert "final_snapshot.json (" in line and "result_summary.json (not written beside" in line
    assert not (out / "result_summary.json").exists()
    assert (out / "final_snapshot.json").read_text() == OLD["final_snapshot.json"]
