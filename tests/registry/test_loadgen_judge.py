"""The judge is LoadGen itself: our VALID/INVALID and each reason equal ``mlperf_log_summary.txt``.

For each scenario a Python SUT answers the real MLPerf LoadGen (PyPI
``mlcommons-loadgen``, Server or Offline, token latencies) with first-token
and completion responses after real sleeps of the chosen length
(:mod:`loadgen_sut`); the same queries, as upstream-format events (issued with
``input_tokens``, first receive, completion with ``output_tokens``), go over a
real socket into a real ``bench-metrics aggregate`` with the same limits and
the same overrides (``--min-duration``, ``--min-queries``). Its Report's
result and each of the four reasons must equal LoadGen's.

Margins are chosen so that clock jitter cannot flip a result: latencies are
either far below or far above the limits (TTFT limit 450 ms: 0 or 600 ms; TPOT
limit 40 ms: ~0 or 100 ms per token), durations and query counts at least 30 %
away from their requirement, and our duration figure can only be a little
longer than LoadGen's (our clock starts before LoadGen's test does).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip(
    "mlperf_loadgen",
    reason="the LoadGen judge needs PyPI mlcommons-loadgen (the test extra): not installed",
)

from registry.events import EventPublisher, EventRecord
from tests.support.aggregate_process import WAIT_S, exit_code, start_aggregate
from tests.support.loadgen_sut import LoadgenRun, run_loadgen, session_events

# LoadGen's limits for llama2-70b-interactive (mlperf.conf): the ruleset our side uses
TTFT_LIMIT_MS, TPOT_LIMIT_MS = 450, 40

#: name → (scenario, LoadGen settings and SUT timings, our extra flags)
SCENARIOS: dict[str, tuple[str, dict[str, Any], list[str]]] = {
    "server-valid": (
        "server",
        {"qps": 500, "min_duration_ms": 1000, "min_query_count": 600},
        ["--min-duration", "1s", "--min-queries", "600"],
    ),
    "server-min-duration": (
        "server",
        {"qps": 500, "min_duration_ms": 3000, "min_query_count": 100, "max_query_count": 700},
        ["--min-duration", "3s", "--min-queries", "100"],
    ),
    "server-min-queries": (
        "server",
        {"qps": 500, "min_duration_ms": 500, "min_query_count": 2000, "max_duration_ms": 1200},
        ["--min-duration", "0.5s", "--min-queries", "2000"],
    ),
    "server-ttft-over": (
        "server",
        {"qps": 500, "min_duration_ms": 1000, "min_query_count": 600, "ttft_s": 0.6},
        ["--min-duration", "1s", "--min-queries", "600"],
    ),
    "server-tpot-over": (
        "server",
        {"qps": 500, "min_duration_ms": 1000, "min_query_count": 600, "tpot_s": 0.1},
        ["--min-duration", "1s", "--min-queries", "600"],
    ),
    "server-early-stopping": (
        "server",
        {"qps": 200, "min_duration_ms": 1000, "min_query_count": 100},
        ["--min-duration", "1s", "--min-queries", "100"],
    ),
    "offline-valid": (
        "offline",
        {"qps": 500, "min_duration_ms": 500, "min_query_count": 300, "ttft_s": 0.7},
        ["--scenario", "offline", "--min-duration", "0.5s", "--min-queries", "300"],
    ),
    "offline-min-duration": (
        "offline",
        {"qps": 500, "min_duration_ms": 2000, "min_query_count": 300},
        ["--scenario", "offline", "--min-duration", "2s", "--min-queries", "300"],
    ),
}

#: what LoadGen must say for each (the test checks the design, then our agreement)
EXPECTED: dict[str, tuple[str, tuple[bool | None, bool, bool, bool]]] = {
    "server-valid": ("VALID", (True, True, True, True)),
    "server-min-duration": ("INVALID", (True, False, True, True)),
    "server-min-queries": ("INVALID", (True, True, False, True)),
    "server-ttft-over": ("INVALID", (False, True, True, False)),
    "server-tpot-over": ("INVALID", (False, True, True, False)),
    "server-early-stopping": ("INVALID", (True, True, True, False)),
    "offline-valid": ("VALID", (None, True, True, True)),
    "offline-min-duration": ("INVALID", (None, False, True, True)),
}
REASONS = ("performance_constraints", "min_duration", "min_queries", "early_stopping")


async def _publish(events_ep: str, events: list[EventRecord]) -> None:
    with EventPublisher(events_ep) as pub:
        assert await pub.wait_for_subscriber(WAIT_S), "the aggregator never subscribed"
        pub.send_many(events)
        await asyncio.sleep(0)  # let the socket take the last frames before it closes


def _ours(tmp_path: Path, run: LoadgenRun, ruleset: str, extra: list[str]) -> dict[str, Any]:
    out = tmp_path / "out"
    child, events_ep, _ = start_aggregate(
        tmp_path, out, "--ruleset", ruleset, *extra, "--no-samples", run_id="loadgen"
    )
    try:
        asyncio.run(_publish(events_ep, session_events(run)))
        assert exit_code(child) == 0, "\n".join(child.err[-20:])
    finally:
        if child.proc.poll() is None:
            child.proc.kill()
    report: dict[str, Any] = json.loads((out / "result_summary.json").read_text())
    return report


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_our_verdict_is_loadgens(name: str, tmp_path: Path) -> None:
    scenario, settings, extra = SCENARIOS[name]
    run = run_loadgen(
        tmp_path / "loadgen",
        scenario=scenario,
        ttft_limit_ms=TTFT_LIMIT_MS,
        tpot_limit_ms=TPOT_LIMIT_MS,
        **settings,
    )
    # the scenario does what it was designed for (else the comparison would prove little)
    result, answers = EXPECTED[name]
    assert (run.result, tuple(run.reasons[r] for r in REASONS)) == (result, answers), run.summary
    ruleset = "llama2-70b-interactive" if scenario == "server" else "llama2-70b"
    report = _ours(tmp_path, run, ruleset, extra)
    verdict = report["verdict"]
    ours = {r["name"]: r["satisfied"] for r in verdict["validity"]["reasons"]}
    assert verdict["result"] == run.result, (verdict["reasons"], run.summary)
    assert ours == run.reasons, (verdict["reasons"], run.summary)
    assert report["samples"]["tracked"]["issued"] == len(run.queries)
    assert verdict["validity"]["submittable"] is False  # every run here overrides
