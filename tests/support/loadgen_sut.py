"""MLPerf LoadGen (PyPI ``mlcommons-loadgen``) driving a Python SUT whose timings a test chooses.

:func:`run_loadgen` runs one LoadGen test (Server or Offline, performance
mode, ``use_token_latencies``) in this process. The SUT answers every query
from one responder thread: the first token after ``ttft_s`` of real time and
the completion ``tpot_s`` per further token later (``FirstTokenComplete`` /
``QuerySamplesComplete`` with the token count), so LoadGen measures, on its
own clock, the latencies the test chose. It records, on this process's
monotonic clock, when each query was issued, got its first token and
completed, and returns them with LoadGen's verdict parsed from
``mlperf_log_summary.txt``. :func:`session_events` turns the records into the
upstream-format events a benchmark would have sent for the same queries.
"""

from __future__ import annotations

import array
import heapq
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from registry.events import EventRecord, EventType

T = EventType

#: ``mlperf_log_summary.txt`` line → our reason name
_SUMMARY_LINES = {
    "Performance constraints satisfied": "performance_constraints",
    "Min duration satisfied": "min_duration",
    "Min queries satisfied": "min_queries",
    "Early stopping satisfied": "early_stopping",
}
_LINE_RE = re.compile(r"^\s*(?P<key>[A-Za-z ]+?)\s*:\s*(?P<value>\S+)\s*$")


@dataclass
class LoadgenRun:
    """LoadGen's verdict and the queries it issued (``[issued, first, complete]`` ns)."""

    result: str
    #: reason → True / False, ``None`` when LoadGen prints no line for it (Offline)
    reasons: dict[str, bool | None]
    summary: str
    start_ns: int
    queries: list[list[int]] = field(default_factory=list)


def parse_summary(text: str) -> tuple[str, dict[str, bool | None]]:
    """``Result is`` and the four reasons of ``mlperf_log_summary.txt``."""
    result = ""
    reasons: dict[str, bool | None] = dict.fromkeys(_SUMMARY_LINES.values())
    for line in text.splitlines():
        m = _LINE_RE.match(line)
        if m is None:
            continue
        key, value = m["key"].strip(), m["value"]
        if key == "Result is":
            result = value
        elif key in _SUMMARY_LINES:
            reasons[_SUMMARY_LINES[key]] = value == "Yes"
    if result not in ("VALID", "INVALID"):
        raise AssertionError(f"no 'Result is' line in the summary:\n{text}")
    return result, reasons


def run_loadgen(
    outdir: Path,
    *,
    scenario: str,
    qps: float,
    min_duration_ms: int,
    min_query_count: int,
    max_query_count: int = 0,
    max_duration_ms: int = 0,
    ttft_s: float = 0.0,
    tpot_s: float = 0.0,
    output_tokens: int = 3,
    ttft_limit_ms: int,
    tpot_limit_ms: int,
) -> LoadgenRun:
    import mlperf_loadgen as lg

    outdir.mkdir(parents=True, exist_ok=True)
    queries: dict[int, list[int]] = {}
    heap: list[tuple[int, int, int, int]] = []
    cv = threading.Condition()
    stop = False
    seq = 0
    payload = array.array("B", bytes(16))
    addr, _ = payload.buffer_info()
    first_after = int(ttft_s * 1e9)
    complete_after = first_after + int(tpot_s * 1e9) * (output_tokens - 1)

    def respond() -> None:
        while True:
            with cv:
                while not heap and not stop:
                    cv.wait()
                if not heap:
                    return
                due, _, kind, qid = heap[0]
                now = time.monotonic_ns()
                if due > now:
                    cv.wait((due - now) / 1e9)
                    continue
                heapq.heappop(heap)
            response = lg.QuerySampleResponse(qid, addr, len(payload), output_tokens)
            if kind == 0:
                lg.FirstTokenComplete([response])
            else:
                lg.QuerySamplesComplete([response])
            queries[qid][1 + kind] = time.monotonic_ns()

    def issue(samples: Any) -> None:
        nonlocal seq
        now = time.monotonic_ns()
        with cv:
            for s in samples:
                queries[s.id] = [now, 0, 0]
                seq += 1
                heapq.heappush(heap, (now + first_after, seq, 0, s.id))
                seq += 1
                heapq.heappush(heap, (now + complete_after, seq, 1, s.id))
            cv.notify()

    responder = threading.Thread(target=respond, name="sut-responder", daemon=True)
    responder.start()
    sut = lg.ConstructSUT(issue, lambda: None)
    qsl = lg.ConstructQSL(1024, 1024, lambda _s: None, lambda _s: None)
    settings = lg.TestSettings()
    settings.scenario = lg.TestScenario.Server if scenario == "server" else lg.TestScenario.Offline
    settings.mode = lg.TestMode.PerformanceOnly
    settings.use_token_latencies = True
    settings.ttft_latency = ttft_limit_ms * 1_000_000
    settings.tpot_latency = tpot_limit_ms * 1_000_000
    settings.server_target_qps = qps
    settings.offline_expected_qps = qps
    settings.min_duration_ms = min_duration_ms
    settings.min_query_count = min_query_count
    if max_query_count:
        settings.max_query_count = max_query_count
    if max_duration_ms:
        settings.max_duration_ms = max_duration_ms
    log = lg.LogSettings()
    log.log_output.outdir = str(outdir)
    log.log_output.copy_summary_to_stdout = False
    start = time.monotonic_ns()
    try:
        lg.StartTestWithLogSettings(sut, qsl, settings, log)
    finally:
        with cv:
            stop = True
            cv.notify()
        responder.join(30)
        lg.DestroyQSL(qsl)
        lg.DestroySUT(sut)
    text = (outdir / "mlperf_log_summary.txt").read_text()
    result, reasons = parse_summary(text)
    return LoadgenRun(result, reasons, text, start, sorted(queries.values()))


def session_events(run: LoadgenRun, *, output_tokens: int = 3) -> list[EventRecord]:
    """The same queries as a benchmark reports them (upstream's event records, time order)."""
    start = run.start_ns
    events = [
        EventRecord(event_type=T.SESSION_STARTED, timestamp_ns=start - 1000),
        EventRecord(event_type=T.SESSION_START_PERFORMANCE_TRACKING, timestamp_ns=start),
    ]
    end = start
    for i, (issued, first, complete) in enumerate(run.queries):
        uuid = f"q{i:06d}"
        events.append(
            EventRecord(
                event_type=T.SAMPLE_ISSUED, timestamp_ns=issued, sample_uuid=uuid, input_tokens=8
            )
        )
        events.append(
            EventRecord(event_type=T.SAMPLE_RECV_FIRST, timestamp_ns=first, sample_uuid=uuid)
        )
        events.append(
            EventRecord(
                event_type=T.SAMPLE_COMPLETE,
                timestamp_ns=complete,
                sample_uuid=uuid,
                output_tokens=output_tokens,
            )
        )
        end = max(end, complete)
    events.sort(key=lambda e: e.timestamp_ns)
    events.append(EventRecord(event_type=T.SESSION_STOP_PERFORMANCE_TRACKING, timestamp_ns=end + 1))
    events.append(EventRecord(event_type=T.SESSION_ENDED, timestamp_ns=end + 2))
    return events
