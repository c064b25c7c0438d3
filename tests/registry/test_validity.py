"""VALID/INVALID with LoadGen's four reasons: requirement tables, judgement, counters (SPEC §10)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import jsonschema
import pytest
from test_verdict_service import HAND_SLOS, write_snapshot

from exporter.cli.main import main
from exporter.views.report_view import judge_report_file
from registry import SessionState
from registry.core.metrics_registry import MetricsRegistry
from registry.mlperf.constraints import ConstraintTracker, judge
from registry.mlperf.requirements import requirements_entry, requirements_for
from registry.mlperf.slo import build_constraints
from registry.mlperf.validity import format_duration, judge_validity
from registry.mlperf.verdict_counters import VerdictCounters, read_validity, read_verdict
from registry.report.summary import load_schema
from tests.support.cli_process import bench_metrics

VALIDATOR = jsonschema.Draft202012Validator(load_schema())
MS = 1_000_000
S = 1_000_000_000


def test_loadgen_requirements_per_scenario_with_their_sources() -> None:
    server = requirements_for("llama2-70b")
    assert server.scenario == "server"
    assert (server.min_duration_ns, server.min_queries) == (600 * S, 100)
    assert "*.Server.min_duration" in server.duration_source
    assert "LoadGen default" in server.queries_source
    assert server.submittable and not server.overridden
    offline = requirements_for("llama2-70b", "offline")
    assert (offline.min_duration_ns, offline.min_queries) == (600 * S, 24_576)
    assert "llama2-70b.Offline.min_query_count" in offline.queries_source
    assert requirements_for("deepseek-r1", "offline").min_queries == 4_388


def test_endpoints_requirements_where_the_sources_disagree() -> None:
    for scenario in ("server", "offline"):
        r = requirements_for("llama2-70b", scenario, "endpoints")
        assert (r.min_duration_ns, r.min_queries) == (600 * S, 270_336)
        assert "min_sample_count_valid" in r.queries_source
    with pytest.raises(ValueError, match="no ruleset for 'deepseek-r1-interactive'"):
        requirements_for("deepseek-r1-interactive", source="endpoints")
    with pytest.raises(ValueError, match="no Offline scenario"):
        requirements_for("llama2-70b-interactive", "offline")
    with pytest.raises(ValueError, match="unknown scenario"):
        requirements_for("llama2-70b", "singlestream")


def test_overrides_make_a_result_not_submittable() -> None:
    r = requirements_for("llama2-70b", min_duration_ns=10 * S, min_queries=1000)
    assert (r.min_duration_ns, r.min_queries) == (10 * S, 1000)
    assert r.overridden == ("min_duration", "min_queries") and not r.submittable
    assert "override" in r.duration_source
    entry = requirements_entry(r)
    assert entry["submittable"] is False and entry["min_queries"] == 1000
    # without a ruleset nothing is submittable, and what is not given is not required
    bare = requirements_for(None, min_queries=5)
    assert bare.min_duration_ns == 0 and not bare.submittable


def _judge(req, *, duration_ns, queries, over=(0, 0), final=True, rate=None):  # type: ignore[no-untyped-def]
    js = [judge(queries, t, 99.0, final=final) for t in over]
    return judge_validity(
        req, duration_ns=duration_ns, queries=queries, judgements=js, final=final, rate_qps=rate
    )


def test_a_short_run_is_invalid_for_min_duration_only() -> None:
    v = _judge(requirements_for("llama2-70b"), duration_ns=20 * S, queries=4_042)
    assert v.result == "INVALID" and v.state == "invalid"
    answers = {r.name: r.satisfied for r in v.reasons}
    assert answers == {
        "performance_constraints": True,
        "min_duration": False,
        "min_queries": True,
        "early_stopping": True,
    }
    assert v.constraints_ok
    assert v.headline() == "INVALID (min duration)"


def test_valid_and_valid_but_not_submittable() -> None:
    req = requirements_for("llama2-70b")
    assert _judge(req, duration_ns=601 * S, queries=5000).headline() == "VALID"
    over = requirements_for("llama2-70b", min_duration_ns=10 * S, min_queries=1000)
    v = _judge(over, duration_ns=20 * S, queries=4_042)
    assert v.result == "VALID"
    assert v.headline() == "VALID (not submittable: min_duration, min_queries)"


def test_each_reason_fails_on_its_own() -> None:
    req = requirements_for(None, min_duration_ns=1 * S, min_queries=100)
    # too few queries for early stopping (t = 0 needs 459), everything else met
    v = _judge(req, duration_ns=2 * S, queries=300)
    assert [r.name for r in v.reasons if r.satisfied is False] == ["early_stopping"]
    # the p99 over its limit: performance constraints and early stopping both fail, as in LoadGen
    v = _judge(req, duration_ns=2 * S, queries=500, over=(100, 0))
    assert [r.name for r in v.reasons if r.satisfied is False] == [
        "performance_constraints",
        "early_stopping",
    ]
    assert not v.constraints_ok
    v = _judge(requirements_for(None, min_queries=2000), duration_ns=S, queries=500)
    assert [r.name for r in v.reasons if r.satisfied is False] == ["min_queries"]


def test_offline_has_no_latency_constraint() -> None:
    req = requirements_for("llama2-70b", "offline", min_duration_ns=S, min_queries=10)
    v = judge_validity(req, duration_ns=2 * S, queries=10, judgements=[], final=True)
    assert v.result == "VALID"
    perf = v.reasons[0]
    assert perf.name == "performance_constraints" and perf.satisfied is None
    assert perf.answer == "n/a"
    v = judge_validity(req, duration_ns=S // 2, queries=10, judgements=[], final=True)
    assert v.headline() == "INVALID (min duration)"


def test_an_incomplete_run_is_never_valid() -> None:
    req = requirements_for(None, min_queries=1)
    js = [judge(500, 0, 99.0, final=True)]
    v = judge_validity(req, duration_ns=S, queries=500, judgements=js, final=True, complete=False)
    assert v.result == "INVALID"


def test_live_countdown_with_an_eta() -> None:
    req = requirements_for("llama2-70b", "offline")
    # 20 s in, 4,042 samples at ~202/s: 9m40s and 20,534 samples still needed
    v = judge_validity(
        req, duration_ns=20 * S, queries=4_042, judgements=[], final=False, rate_qps=202.1
    )
    assert v.result is None and v.state == "on_track"
    assert v.duration_needed_ns == 580 * S and v.queries_needed == 20_534
    # the duration is the slower of the two here: the ETA is the time still needed
    assert v.eta_s == pytest.approx(580.0)
    assert v.headline() == "ON TRACK, 9m40s and 20,534 queries still needed (ETA 9m40s)"
    fast = judge_validity(
        req, duration_ns=20 * S, queries=4_042, judgements=[], final=False, rate_qps=20.0
    )
    assert fast.eta_s == pytest.approx(20_534 / 20.0)
    # early stopping's need counts as queries still needed
    live = _judge(requirements_for(None, min_queries=1), duration_ns=S, queries=100, final=False)
    assert live.queries_needed == 359 and live.state == "on_track"
    failing = _judge(
        requirements_for(None, min_queries=1), duration_ns=S, queries=100, over=(50, 0), final=False
    )
    assert failing.state == "failing"


def test_format_duration() -> None:
    assert format_duration(580 * S) == "9m40s"
    assert format_duration(3725 * S) == "1h02m"
    assert format_duration(12.5 * S) == "12.5s"
    assert format_duration(350 * MS) == "350ms"


def test_counters_carry_validity_and_the_run_state_follows_it() -> None:
    reg = MetricsRegistry()
    tracker = ConstraintTracker(build_constraints("llama2-70b"))
    req = requirements_for("llama2-70b", min_queries=10)
    counters = VerdictCounters(reg, tracker, req)
    for _ in range(500):
        tracker.add(False, 5 * MS, 1.0 * MS, 20 * MS, 10)
    counters.write(tracked_duration_ns=30 * S, validity_duration_ns=20 * S, queries=500)
    snap = {n: reg.counter_value(n) for n in reg.counter_names}
    live = read_validity(snap)
    assert live is not None and live.state == "on_track"
    assert live.duration_needed_ns == 580 * S and live.queries_needed == 0
    assert live.eta_s == pytest.approx(580.0)
    assert live.requirements.overridden == ("min_queries",) and not live.submittable
    counters.write(tracked_duration_ns=30 * S, validity_duration_ns=20 * S, queries=500, final=True)
    snap = {n: reg.counter_value(n) for n in reg.counter_names}
    final = read_validity(snap)
    assert final is not None and final.state == "invalid"
    assert final.reasons["min_duration"] is False and final.reasons["early_stopping"] is True
    verdict = read_verdict(snap)
    assert verdict is not None and verdict.state == "invalid"
    # constraints all pass per constraint: only validity makes the run invalid
    assert {c.state for c in verdict.constraints} == {"pass"}


def test_an_offline_tracker_needs_no_constraint() -> None:
    reg = MetricsRegistry()
    tracker = ConstraintTracker(())
    counters = VerdictCounters(reg, tracker, requirements_for(None, "offline", min_queries=5))
    counters.write(tracked_duration_ns=S, queries=5, final=True)
    snap = {n: reg.counter_value(n) for n in reg.counter_names}
    v = read_validity(snap)
    assert v is not None and v.state == "valid"
    assert v.reasons["performance_constraints"] is None
    assert read_verdict(snap).state == "pass"  # type: ignore[union-attr]


# -- report --ruleset: the Report's validity block and the exit status -------------


def _report(capsys: pytest.CaptureFixture[str], path: Path, *args: str) -> tuple[int, str, str]:
    rc = main(["report", str(path), "--width", "140", *args])
    out, err = capsys.readouterr()
    return rc, out, err


def test_report_exit_status_follows_validity(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    snap = write_snapshot(tmp_path / "final_snapshot.json", state=SessionState.COMPLETE)
    slos = [a for s in HAND_SLOS for a in ("--slo", s)]
    # 13 samples within every limit; min queries overridden to 5: VALID, not submittable
    rc, out, err = _report(capsys, snap, *slos, "--min-queries", "5")
    assert (rc, err) == (0, "") and "VALID (not submittable: min_queries)" in out
    # 500 queries required: INVALID for min queries only, exit 3
    rc, out, _ = _report(capsys, snap, *slos, "--min-queries", "500")
    assert rc == 3 and re.search(r"Verdict\s+INVALID\s+\(min queries\)", out)
    # a passing latency check on an INVALID run is never shown as PASS
    assert "PASS" not in out and re.search(r"ttft p50 <= 100 ms\s+13\s+1\s+\S+\s+0\s+met", out)
    assert re.search(r"Min queries\s+NO\s+14 queries\s+at least 500", out)
    # the ruleset's own limits need 459 queries for early stopping: a latency failure, exit 1
    rc, out, _ = _report(capsys, snap, "--ruleset", "llama2-70b")
    assert rc == 1 and re.search(r"Early stopping\s+NO\s+14 queries, 445 more needed", out)
    assert re.search(r"Min duration\s+NO\s+\S+\s+at least 10m00s", out)
    # Offline: no latency constraint; mlperf.conf's min duration and 24,576 samples
    rc, out, _ = _report(capsys, snap, "--ruleset", "llama2-70b", "--scenario", "offline")
    assert rc == 3 and re.search(r"INVALID\s+\(min duration, min queries\)", out)
    assert re.search(r"Min queries\s+NO\s+14 queries\s+at least 24,576", out)
    assert re.search(r"Performance constraints\s+n/a", out)
    rc, out, _ = _report(
        capsys,
        snap,
        *("--ruleset", "llama2-70b", "--scenario", "offline"),
        *("--min-duration", "0s", "--min-queries", "14"),
    )
    assert rc == 0 and "VALID (not submittable: min_duration, min_queries)" in out


def test_the_report_validity_block_matches_its_schema(tmp_path: Path) -> None:
    snap = write_snapshot(tmp_path / "final_snapshot.json", state=SessionState.COMPLETE)
    doc = judge_report_file(
        snap,
        build_constraints(None, HAND_SLOS),
        requirements=requirements_for("llama2-70b", "offline", min_queries=10),
    )
    VALIDATOR.validate(doc.report)
    v = doc.report["verdict"]
    assert v["result"] == "INVALID" and v["state"] == "invalid"
    block = v["validity"]
    assert [r["name"] for r in block["reasons"]] == [
        "performance_constraints",
        "min_duration",
        "min_queries",
        "early_stopping",
    ]
    assert [r["answer"] for r in block["reasons"]] == ["Yes", "NO", "Yes", "Yes"]
    assert block["requirements"]["min_duration_ns"] == 600 * S
    assert block["requirements"]["overridden"] == ["min_queries"]
    assert block["submittable"] is False
    assert "llama2-70b.Offline.min_query_count" not in str(block)  # overridden
    assert "*.Offline.min_duration" in block["requirements"]["min_duration_source"]


def test_bad_validity_flags_are_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    snap = write_snapshot(tmp_path / "final_snapshot.json", state=SessionState.COMPLETE)
    for args, says in (
        (["--min-duration", "ten"], "--min-duration must be a duration"),
        (["--min-queries", "-1"], "--min-queries must be a whole number >= 0"),
        (["--scenario", "offline"], "--scenario needs --ruleset"),
        (["--ruleset", "llama2-70b-interactive", "--scenario", "offline"], "no Offline scenario"),
    ):
        try:
            rc = main(["report", str(snap), *args])
        except SystemExit as exc:  # argparse's own errors
            rc = exc.code  # type: ignore[assignment]
        out, err = capsys.readouterr()
        assert rc == 2 and says in err and err.count("\n") <= 2, err
        assert "Verdict" not in out


# -- the demo, as a new user runs it --------------------------------------------


def _demo(tmp_path: Path, name: str, *extra: str) -> tuple[str, dict[str, object]]:
    out_dir = tmp_path / name
    proc = subprocess.run(
        [
            *bench_metrics(),
            *("demo", "--no-tui", "--duration", "2", "--qps", "300", "--seed", "3"),
            *("--ruleset", "llama2-70b", "--output-dir", str(out_dir), *extra),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout, json.loads((out_dir / "result_summary.json").read_text())


def test_a_short_demo_is_invalid_live_and_in_the_report(tmp_path: Path) -> None:
    out, report = _demo(tmp_path, "short")
    # live: on track, with the time still needed; at the end: INVALID for min duration
    assert re.search(r"verdict ON TRACK, 9m5\ds", out), out
    assert "verdict INVALID (min duration)" in out
    verdict = report["verdict"]
    assert isinstance(verdict, dict)
    VALIDATOR.validate(report)
    assert (verdict["result"], verdict["state"], verdict["decision"]) == (
        "INVALID",
        "invalid",
        "fail",
    )
    answers = {r["name"]: r["answer"] for r in verdict["validity"]["reasons"]}
    assert answers == {
        "performance_constraints": "Yes",
        "min_duration": "NO",
        "min_queries": "Yes",
        "early_stopping": "Yes",
    }
    assert verdict["validity"]["submittable"] is True
    summary = tmp_path / "short" / "final_snapshot.json"
    rc = subprocess.run(
        [*bench_metrics(), "report", str(summary), "--ruleset", "llama2-70b"],
        capture_output=True,
        timeout=60,
    ).returncode
    assert rc == 3


def test_a_demo_with_overrides_is_valid_but_not_submittable(tmp_path: Path) -> None:
    out, report = _demo(tmp_path, "overridden", "--min-duration", "1s", "--min-queries", "300")
    assert "verdict VALID (not submittable: min_d" in out
    verdict = report["verdict"]
    assert isinstance(verdict, dict)
    assert (verdict["result"], verdict["decision"]) == ("VALID", "pass")
    assert verdict["validity"]["submittable"] is False
    assert verdict["validity"]["requirements"]["overridden"] == ["min_duration", "min_queries"]


def test_requirements_endpoints_selects_upstreams_sample_count(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    snap = write_snapshot(tmp_path / "final_snapshot.json", state=SessionState.COMPLETE)
    rc, out, _ = _report(capsys, snap, "--ruleset", "llama2-70b", "--requirements", "endpoints")
    assert rc == 1 and re.search(r"Min queries\s+NO\s+14 queries\s+at least 270,336", out)
    doc = judge_report_file(
        snap,
        build_constraints("llama2-70b"),
        ruleset="llama2-70b",
        requirements=requirements_for("llama2-70b", source="endpoints"),
    )
    req = doc.report["verdict"]["validity"]["requirements"]
    assert req["source"] == "endpoints" and "min_sample_count_valid" in req["min_queries_source"]
    assert req["submittable"] is True
