"""``bench-metrics report FILE``: both file kinds rendered, bad files rejected in one line."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from exporter.cli.main import main
from registry.delivery.snapshot import SessionState
from registry.delivery.snapshot_codec import snapshot_to_dict
from registry.report.summary import build_report
from tests.support.cli_process import bench_metrics
from tests.support.snapshots_factory import snapshot


def report_text(capsys: pytest.CaptureFixture[str], path: Path) -> str:
    assert main(["report", str(path), "--width", "130"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    return out


def cells(text: str, label: str) -> list[str]:
    for line in text.splitlines():
        body = line.strip("│ ")
        if body.startswith(label + " "):
            return re.split(r"\s{2,}", body[len(label) :].strip())
    raise AssertionError(f"no row {label!r} in:\n{text}")


def test_final_snapshot_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "final_snapshot.json"
    path.write_text(json.dumps(snapshot_to_dict(snapshot(SessionState.COMPLETE))))
    text = report_text(capsys, path)
    assert "final_snapshot.json — final snapshot" in text
    assert "COMPLETE" in text and "every event counted, nothing pending: exact" in text
    assert not re.search(r"COMPLETE\s+complete", text)  # the state is not said twice
    assert "Series (exact)" in text
    # count, min, mean, p50, p90, p95, p99, p99.9, max, std dev of TTFT = 1..1000 ms.
    ttft = "1,000 | 1.00 ms | 500 ms | 500 ms | 900 ms | 950 ms | 990 ms | 999 ms | 1.00 s | 289 ms"
    assert cells(text, "TTFT") == ttft.split(" | ")
    assert cells(text, "all") == ["1,015", "1,010", "10", "5"]
    assert cells(text, "QPS")[:2] == ["101.0", "= 1,010 completions ÷ 10.00 s"]
    assert cells(text, "Tokens/s")[0] == "6,400"
    assert "stop 750 · length 250" in text
    assert "tool_calls" not in text  # zero counts are left out


def test_interrupted_summary_says_why(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    snap = snapshot(SessionState.INTERRUPTED, pending=5)
    path = tmp_path / "result_summary.json"
    path.write_text(json.dumps(build_report(snap, run_id="run-42", labels={"model": "m1"})))
    text = report_text(capsys, path)
    assert "result_summary.json — result summary" in text
    assert "INTERRUPTED" in text and "INCOMPLETE" in text
    assert "Why: the run was interrupted" in text
    assert cells(text, "Pending")[:2] == ["5", "tokenizations not counted (n_pending_tasks)"]
    assert re.search(r"Run run-42\s+model=m1", text)  # the header names the run
    assert cells(text, "Request latency")[6] == "9.90 s"  # exact p99


def test_summary_from_a_live_snapshot_is_marked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = build_report(snapshot(SessionState.LIVE), source="latest_live", reason="no file")
    path = tmp_path / "r.json"
    path.write_text(json.dumps(report))
    text = report_text(capsys, path)
    assert "Source: latest_live" in text
    assert "Series (live, HDR)" in text
    assert "INCOMPLETE" in text


def snapshot_with_bad_metric() -> str:
    d = snapshot_to_dict(snapshot(SessionState.COMPLETE, completed=3))
    d["metrics"][0]["type"] = "gauge"
    return json.dumps(d)


def summary_with_bad_series() -> str:
    r = build_report(snapshot(SessionState.COMPLETE, completed=3))
    r["series"]["ttft_ns"]["count"] = "many"
    return json.dumps(r)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read"),
        (b"\x80\x81garbage", "is not JSON text"),
        (b'{"state": "complete", ', "is not valid JSON"),
        (b"[1, 2, 3]", "neither a final snapshot"),
        (b'{"hello": "world"}', "neither a final snapshot"),
        (snapshot_with_bad_metric().encode(), "unknown type 'gauge'"),
        (summary_with_bad_series().encode(), "series 'ttft_ns' has no integer 'count'"),
    ],
)
def test_bad_file_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes | None, message: str
) -> None:
    path = tmp_path / "input.json"
    if content is not None:
        path.write_bytes(content)
    assert main(["report", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("bench-metrics report: error: ")
    assert message in lines[0]
    assert str(path) in lines[0]


def test_real_command_line_process(tmp_path: Path) -> None:
    path = tmp_path / "final_snapshot.json"
    path.write_text(json.dumps(snapshot_to_dict(snapshot(SessionState.COMPLETE))))
    done = subprocess.run(
        [*bench_metrics(), "report", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"COLUMNS": "120", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    assert "TTFT" in done.stdout and "COMPLETE" in done.stdout
    bad = subprocess.run(
        [*bench_metrics(), "report", str(tmp_path / "missing.json")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1 and "cannot read" in bad.stderr


def test_narrow_terminal_drops_columns_instead_of_cutting_numbers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "final_snapshot.json"
    path.write_text(json.dumps(snapshot_to_dict(snapshot(SessionState.COMPLETE))))
    assert main(["report", str(path), "--width", "80"]) == 0
    text = capsys.readouterr().out
    header = next(line for line in text.splitlines() if "count" in line and "p50" in line)
    assert "p99 " in header and "std dev" not in header and "min" not in header
    assert "…" not in text
    assert all(len(line) <= 80 for line in text.splitlines())
    assert "990 ms" in cells(text, "TTFT")


def test_upstreams_own_files_render(capsys: pytest.CaptureFixture[str]) -> None:
    """mlcommons/endpoints' final_snapshot.json and its own result_summary.json."""
    from tests.support.upstream_fixtures import SESSION_A_UPSTREAM

    snap_text = report_text(capsys, SESSION_A_UPSTREAM / "final_snapshot.json")
    assert cells(snap_text, "tracked") == ["400", "391", "9", "9"]
    assert cells(snap_text, "LoadGen QPS")[0] == "58.0"  # (391 - 1) / 6.72 s, upstream's qps
    summary_text = report_text(capsys, SESSION_A_UPSTREAM / "result_summary.json")
    assert cells(summary_text, "tracked") == ["400", "391", "9", "9"]
    assert cells(summary_text, "LoadGen QPS")[0] == "58.0"
    assert cells(summary_text, "LoadGen tokens/s")[0] == "6,826"
    # same series rows from either file (counts come from upstream's histogram counts)
    for row in ("TTFT", "TPOT", "Request latency", "Input tokens", "Output tokens"):
        assert cells(summary_text, row) == cells(snap_text, row), row
