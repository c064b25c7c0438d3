"""registry.delivery.run_end: the one end-of-run sequence the aggregator service and the
in-process session share (issue 26). A real publisher (bound ZeroMQ socket), real
files; the callers' own behaviour is tested in test_aggregator_service.py,
test_session_api.py, test_mixed_runs.py and test_disk_full_spill.py."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
from pathlib import Path
from typing import Any

import pytest

from registry import MetricsPublisher, MetricsRegistry, MetricsSnapshot, SessionState
from registry.delivery.final_source import read_final_document
from registry.delivery.run_end import end_run
from registry.report.summary import UPSTREAM_MODE_REPORT_NAME


def _publisher(out: Path) -> MetricsPublisher:
    reg = MetricsRegistry()
    reg.register_counter("total_samples_issued")
    reg.increment("total_samples_issued", 7)
    return MetricsPublisher(
        reg,
        endpoint="tcp://127.0.0.1:0",
        final_snapshot_path=out / "final_snapshot.json",
        run_info=lambda: {"run_id": "from-run-info", "labels": {"model": "m"}},
    )


async def _end(
    publisher: MetricsPublisher,
    report_path: Path,
    unwritten: dict[str, str],
    seen: list[Any],
    log: logging.Logger | None = None,
) -> dict[str, Any]:
    def on_final(snap: MetricsSnapshot) -> None:
        # before the Report: a caller's waiters get the terminal snapshot first
        seen.append((snap, report_path.exists()))

    try:
        return await end_run(
            publisher,
            report_path=report_path,
            unwritten_files=unwritten,
            n_pending_tasks=0,
            interrupted=False,
            run_id="r1",
            labels={"model": "m"},
            on_final_snapshot=on_final,
            log=log,
        )
    finally:
        await publisher.aclose()


def test_final_file_then_the_report_built_from_it(tmp_path: Path) -> None:
    publisher = _publisher(tmp_path)
    unwritten: dict[str, str] = {}
    seen: list[Any] = []
    report = asyncio.run(_end(publisher, tmp_path / "result_summary.json", unwritten, seen))
    assert unwritten == {}
    [(snap, report_existed)] = seen
    assert snap.state is SessionState.COMPLETE and snap.is_terminal and not report_existed
    assert report["source"] == "file" and report["run"]["run_id"] == "r1"
    assert json.loads((tmp_path / "result_summary.json").read_text()) == report
    on_disk, run = read_final_document(tmp_path / "final_snapshot.json")
    assert on_disk.counters["total_samples_issued"] == report["counters"]["total_samples_issued"]
    assert report["counters"]["total_samples_issued"] == 7
    assert run is not None and run["run_id"] == "from-run-info"


def test_a_report_kept_from_an_earlier_runs_file_is_named_by_its_own_name(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An earlier run's final snapshot that cannot be replaced or removed: the new
    report is not written beside it, and the account names the report as called."""
    final = tmp_path / "final_snapshot.json"
    final.write_text('{"earlier": "run"}\n')
    proc = subprocess.run(["chattr", "+i", str(final)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot make a file immutable here: {proc.stderr.strip()}")
    try:
        publisher = _publisher(tmp_path)
        unwritten: dict[str, str] = {}
        report_path = tmp_path / UPSTREAM_MODE_REPORT_NAME
        log = logging.getLogger("test-run-end")
        with caplog.at_level("ERROR", logger="test-run-end"):
            report = asyncio.run(_end(publisher, report_path, unwritten, [], log))
    finally:
        subprocess.run(["chattr", "-i", str(final)], capture_output=True, check=False)
    assert set(unwritten) == {"final_snapshot.json", UPSTREAM_MODE_REPORT_NAME}
    assert not report_path.exists()
    assert final.read_text() == '{"earlier": "run"}\n'
    # built from memory all the same, and handed back
    assert report["source"] == "terminal_frame"
    assert report["counters"]["total_samples_issued"] == 7
    assert any(str(report_path) in r.getMessage() for r in caplog.records)
