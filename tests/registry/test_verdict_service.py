"""The verdict end to end: real sockets into the aggregator, its files, and ``report --ruleset``.

A real EventPublisher sends the hand-computed stream of ``test_verdict.py`` to a real
``AggregatorService`` judged on three SLOs; final_snapshot.json and result_summary.json
are read back from disk. Then ``bench-metrics report`` judges files after the fact: a
passing run exits 0, a failing one 1, an incomplete one 1, a file it cannot judge 2.
Command-line mistakes in ``--ruleset`` / ``--slo`` are one line and exit 2 before
anything runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

import jsonschema
import pytest
from test_verdict import HAND_SAMPLES, HAND_SLOS, _aggregate, _stream

from exporter.cli.commands import aggregate
from exporter.cli.main import main
from registry import SessionState, snapshot_from_dict
from registry.aggregator import AggregatorService
from registry.delivery.snapshot_codec import snapshot_to_dict
from registry.events import EventPublisher, EventRecord, EventType
from registry.mlperf import build_constraints
from registry.report.summary import build_report, load_schema
from tests.support.upstream_fixtures import FIXTURES

VALIDATOR = jsonschema.Draft202012Validator(load_schema())
WAIT_S = 20.0


def run_service(workdir: Path, events: list[EventRecord]) -> Path:
    events_ep, snapshots_ep = f"ipc://{workdir}/e.sock", f"ipc://{workdir}/s.sock"
    out = workdir / "out"

    async def go() -> int:
        service = AggregatorService(
            events_endpoint=events_ep,
            snapshots_endpoint=snapshots_ep,
            output_dir=out,
            streaming=True,
            interval_s=0.02,
            run_id="verdict",
            constraints=build_constraints(None, HAND_SLOS),
            handle_signals=False,
        )
        with EventPublisher(events_ep) as pub:
            task = asyncio.create_task(service.run())
            assert await pub.wait_for_subscriber(WAIT_S)
            pub.send_many(events)
            return await asyncio.wait_for(task, WAIT_S)

    assert asyncio.run(go()) == 0
    return out


def test_the_service_writes_the_verdict_into_both_files(workdir: Path) -> None:
    out = run_service(
        workdir, [*_stream(HAND_SAMPLES), EventRecord(EventType.SESSION_ENDED, 10**12)]
    )
    doc = json.loads((out / "final_snapshot.json").read_text())
    snap = snapshot_from_dict(doc)
    c = snap.counters
    assert (c["constraint_ttft_p50_samples"], c["constraint_ttft_p50_over_limit"]) == (13, 1)
    assert (c["constraint_tpot_p50_samples"], c["constraint_tpot_p50_over_limit"]) == (11, 1)
    assert c["constraint_sample_latency_p50_limit_ns"] == 1_000_000_000
    assert c["good_samples"] == 11 and c["verdict_state"] == 3  # pass
    names = [m["name"] for m in doc["metrics"] if m["type"] == "counter"]
    assert names.index("session_errors") < names.index("good_samples")  # after ours
    assert doc["run"]["verdict"] == {
        "ruleset": None,
        "constraints": ["ttft p50 <= 100 ms", "sample_latency p50 <= 1000 ms", "tpot p50 <= 10 ms"],
    }
    report = json.loads((out / "result_summary.json").read_text())
    VALIDATOR.validate(report)
    assert report["verdict"]["decision"] == "pass" and report["verdict"]["exact"] is True
    assert [e["state"] for e in report["verdict"]["constraints"]] == ["pass"] * 3


def report_rc(capsys: pytest.CaptureFixture[str], path: Path, *args: str) -> tuple[int, str, str]:
    rc = main(["report", str(path), "--width", "120", *args])
    out, err = capsys.readouterr()
    return rc, out, err


def write_snapshot(path: Path, *, state: SessionState, samples=HAND_SAMPLES) -> Path:
    reg, metrics = _aggregate(samples)
    metrics.finalize_verdict(complete=state is SessionState.COMPLETE)
    snap = reg.build_snapshot(state=state, n_pending_tasks=0)
    path.write_text(json.dumps(snapshot_to_dict(snap)))
    return path


def test_report_exit_codes_pass_fail_incomplete(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    complete = write_snapshot(tmp_path / "final_snapshot.json", state=SessionState.COMPLETE)
    slos = [a for s in HAND_SLOS for a in ("--slo", s)]
    # judged on the constraints it was aggregated with: exact counts, passes
    rc, out, err = report_rc(capsys, complete, *slos)
    assert (rc, err) == (0, "") and "Verdict  PASS" in out

    # a stricter TTFT limit the run was not aggregated with: counted from the HDR, fails
    rc, out, _ = report_rc(capsys, complete, "--slo", "ttft:p50<=45ms")
    assert rc == 1 and "Verdict  FAIL" in out and "counted from the HDR histogram" in out

    # its result summary, judged on its own constraints: from the counters, passes
    summary = tmp_path / "result_summary.json"
    summary.write_text(json.dumps(build_report(json.loads(complete.read_text()))))
    assert report_rc(capsys, summary, *slos)[0] == 0

    # an interrupted run never passes, even when its counts would
    interrupted = write_snapshot(tmp_path / "interrupted.json", state=SessionState.INTERRUPTED)
    rc, out, _ = report_rc(capsys, interrupted, *slos)
    assert rc == 1 and "INCOMPLETE" in out

    # too few samples for early stopping: fail, and it says how many more
    short = write_snapshot(
        tmp_path / "short.json", state=SessionState.COMPLETE, samples=HAND_SAMPLES[:6]
    )
    rc, out, _ = report_rc(capsys, short, *slos)
    assert rc == 1 and "more" in out

    # without --ruleset/--slo the report only shows the file (and its verdict): exit 0
    rc, out, _ = report_rc(capsys, short)
    assert rc == 0 and "Verdict  FAIL" in out


def test_report_cannot_judge_what_it_cannot_count(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # upstream's final snapshot: neither our counts nor HDR data
    upstream = FIXTURES / "session-a.upstream" / "final_snapshot.json"
    rc, out, err = report_rc(capsys, upstream, "--ruleset", "llama2-70b")
    assert rc == 2 and out == "" and err.count("\n") == 1
    assert "no HDR histogram of ttft_ns" in err
    # a result summary judged on constraints it has no counts for
    complete = write_snapshot(tmp_path / "final_snapshot.json", state=SessionState.COMPLETE)
    summary = tmp_path / "result_summary.json"
    summary.write_text(json.dumps(build_report(json.loads(complete.read_text()))))
    rc, _, err = report_rc(capsys, summary, "--ruleset", "llama2-70b")
    assert rc == 2 and "judge final_snapshot.json instead" in err


@pytest.mark.parametrize(
    ("command", "argv", "message"),
    [
        ("report", ["--ruleset", "gpt-5"], "--ruleset: invalid choice: 'gpt-5' (choose from"),
        ("report", ["--slo", "ttft<=1s"], "--slo 'ttft<=1s': expected SERIES:pP<=VALUE"),
        ("report", ["--ruleset", "llama2-70b", "--slo", "ttft:p99<=1s"], "two constraints on"),
        ("demo", ["--slo", "isl:p99<=1s"], "cannot constrain 'isl'"),
        ("demo", ["--ruleset", "llama2-70b", "--no-streaming"], "need streaming"),
        ("demo", ["--buckets", "ttft=0,1"], "bounds must be finite and > 0"),
        ("demo", ["--buckets", "nope=1"], "unknown series 'nope'"),
        ("demo", ["--buckets", "osl=1ms"], "counts tokens"),
        ("demo", ["--ttft-median", "-5"], "--ttft-median must be a finite number of ms > 0"),
    ],
)
def test_bad_verdict_options_are_one_line_exit_2(
    command: str,
    argv: list[str],
    message: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    target = tmp_path / "f.json"
    target.write_text("{}")
    base = [str(target)] if command == "report" else ["--output-dir", str(tmp_path / "o")]
    assert main([command, *base, *argv]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "o").exists()  # rejected before anything ran


def test_aggregate_takes_the_constraints_and_checks_them_first(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    aggregate.add_parser(sub)
    base = ["aggregate", "--events", "ipc:///tmp/x-e", "--snapshots", "ipc:///tmp/x-s"]
    args = parser.parse_args(
        [*base, "--output-dir", str(tmp_path), "--streaming", "--ruleset", "llama2-70b",
         "--slo", "latency:p99<=20s"]
    )  # fmt: skip
    service = aggregate.build_service(args)
    assert [c.key for c in service.constraints] == ["ttft_p99", "tpot_p99", "sample_latency_p99"]
    assert service.ruleset == "llama2-70b"
    rc = main([*base, "--output-dir", str(tmp_path / "o"), "--ruleset", "llama2-70b"])
    assert rc == 2 and not (tmp_path / "o").exists()  # TTFT/TPOT need --streaming
