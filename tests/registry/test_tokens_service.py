"""``bench-metrics aggregate --tokenizer`` and ``demo --tokenizer`` as real processes.

Real sockets, a real tokenizer directory built by the test, real signals; the
outcome is read from the final files and from the aggregator's own snapshot
stream (the only synchronisation used: never time).
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import msgspec
import pytest

from exporter.cli.main import main
from registry import MetricsSnapshot, SessionState, SnapshotSubscriber
from registry.events import EventPublisher, EventRecord, EventType
from registry.events.data import PromptData, TextModelOutput
from registry.events.synthetic import SyntheticLoad
from registry.schemas import FINAL_SNAPSHOT_SCHEMA_PATH, load_schema
from tests.support.aggregator_scenario import ev
from tests.support.cli_process import bench_metrics
from tests.support.helpers import async_wait_until
from tests.support.tokenizer_factory import CHAT_TEMPLATE, make_word_tokenizer

pytest.importorskip("transformers", reason="needs the extra bench-metrics[tokenizer]")

T = EventType
REPO = Path(__file__).resolve().parents[2]
WAIT_S = 30.0
FIXTURE_TOKENIZER = REPO / "tests" / "data" / "mlcommons-endpoints" / "tokenizer"
# About a millisecond per chat prompt: a backlog of thousands takes seconds to count.
SLOW_TEMPLATE = "{%- for i in range(20000) %}{%- endfor %}" + CHAT_TEMPLATE


@pytest.fixture(scope="module")
def slow_tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_word_tokenizer(tmp_path_factory.mktemp("slow"), chat_template=SLOW_TEMPLATE)


@pytest.fixture(scope="module")
def word_tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_word_tokenizer(tmp_path_factory.mktemp("word"))


def start(workdir: Path, *extra: str) -> tuple[subprocess.Popen[str], str, str, Path]:
    events, snapshots, out = f"ipc://{workdir}/ev", f"ipc://{workdir}/met", workdir / "out"
    cmd = [sys.executable, "-m", "exporter.cli.main", "aggregate", "--events", events]
    cmd += ["--snapshots", snapshots, "--output-dir", str(out), "--interval", "0.05", *extra]
    return (
        subprocess.Popen(cmd, cwd=REPO, stderr=subprocess.PIPE, text=True),
        events,
        snapshots,
        out,
    )


def finish(proc: subprocess.Popen[str]) -> tuple[int, str]:
    try:
        _, err = proc.communicate(timeout=WAIT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        pytest.fail(f"aggregator did not exit; stderr:\n{err}")
    return proc.returncode, err


def chat_prompts(n: int, *, boom_at: int | None = None) -> list[EventRecord]:
    events = [ev(T.SESSION_STARTED, 0), ev(T.SESSION_START_PERFORMANCE_TRACKING, 1)]
    for i in range(n):
        content = "boom" if i == boom_at else "what is the answer"
        msgs = [{"role": "user", "content": content}]
        events.append(ev(T.SAMPLE_ISSUED, 10 + i, f"p{i}", data=PromptData.build(messages=msgs)))
    return events


def final_files(out: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    snap = json.loads((out / "final_snapshot.json").read_text())
    report = json.loads((out / "result_summary.json").read_text())
    return snap, report


def metric(snap: dict[str, Any], name: str) -> Any:
    return next(m for m in snap["metrics"] if m["name"] == name)


# -- the command line ----------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tokenizer", "/nonexistent/tok"], "--tokenizer: /nonexistent/tok: no such directory"),
        (["--tokenizer", "gpt2"], "--tokenizer: gpt2: no such directory"),
        (["--tokenizer-workers", "-1"], "--tokenizer-workers must be a whole number in 0..64"),
        (["--tokenizer-workers", "65"], "--tokenizer-workers must be a whole number in 0..64"),
        (["--drain-timeout", "-1"], "--drain-timeout must be a finite number of seconds >= 0"),
        (["--drain-timeout", "nan"], "--drain-timeout must be a finite number"),
        (["--drain-timeout", "inf"], "--drain-timeout must be a finite number"),
    ],
)
def test_bad_tokenizer_flags_exit_2_with_one_line(
    workdir: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    base = ["--events", f"ipc://{workdir}/e", "--snapshots", f"ipc://{workdir}/s"]
    for command in (["aggregate", *base, "--output-dir", str(workdir / "o")], ["demo"]):
        assert main([*command, *args]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and "\n" not in err, err


def test_a_directory_that_is_not_a_tokenizer_exits_2(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (workdir / "tok").mkdir()
    (workdir / "tok" / "tokenizer.json").write_text("{}")
    argv = ["aggregate", "--events", f"ipc://{workdir}/e", "--snapshots", f"ipc://{workdir}/s"]
    assert (
        main([*argv, "--output-dir", str(workdir / "o"), "--tokenizer", str(workdir / "tok")]) == 2
    )
    err = capsys.readouterr().err.strip()
    assert "not a usable tokenizer" in err and "\n" not in err, err


# -- the backlog and its drain -------------------------------------------------


def test_live_snapshots_show_the_backlog_and_the_drain_counts_it_all(
    workdir: Path, word_tokenizer: Path
) -> None:
    """``--tokenizer-workers 0``: nothing is counted while the run goes, so the live
    stream shows every tokenization pending; ``session.ended`` drains them (no limit).
    One prompt the template refuses costs that prompt only."""
    n = 40
    proc, events_ep, snapshots_ep, out = start(
        workdir, "--tokenizer", str(word_tokenizer), "--tokenizer-workers", "0"
    )
    events = chat_prompts(n, boom_at=7)
    seen: list[MetricsSnapshot] = []

    async def drive() -> MetricsSnapshot | None:
        async with SnapshotSubscriber(snapshots_ep) as sub:
            sub.add_listener(seen.append)
            with EventPublisher(events_ep) as pub:
                assert await pub.wait_for_subscriber(WAIT_S)
                pub.send_many(events)

                def backlog() -> bool:
                    s = sub.latest
                    return s is not None and s.n_pending_tasks == n

                assert await async_wait_until(backlog, WAIT_S), "no live snapshot with the backlog"
                pub.send(ev(T.SESSION_ENDED, 10**6))
                return await sub.wait_for_terminal(WAIT_S)

    try:
        terminal = asyncio.run(drive())
    finally:
        rc, err = finish(proc)
    assert rc == 0, err
    assert terminal is not None and terminal.n_pending_tasks == 0
    live = [s for s in seen if s.n_pending_tasks == n]
    assert live and all(s.series["isl"].count == 0 for s in live)
    snap, report = final_files(out)
    assert snap["state"] == "complete" and snap["n_pending_tasks"] == 0
    isl = metric(snap, "isl")
    # "<|user|> what is the answer\n<|assistant|>\n": 1 + 4 + 1
    assert (isl["count"], isl["min"], isl["max"]) == (n - 1, 6, 6)
    assert metric(snap, "tokenization_errors")["value"] == 1
    assert report["complete"] is True
    assert err.count("the tokenizer failed on an input") == 1  # logged once


def test_a_drain_timeout_leaves_pending_tasks_and_an_honest_report(
    workdir: Path, slow_tokenizer: Path
) -> None:
    """3,000 chat prompts at about 1 ms each, all left for the drain, with 0.1 s to count
    them: the final snapshot says how many had not finished, and so does the report."""
    n = 3000
    proc, events_ep, snapshots_ep, out = start(
        workdir,
        "--tokenizer",
        str(slow_tokenizer),
        "--tokenizer-workers",
        "0",
        "--drain-timeout",
        "0.1",
    )

    async def drive() -> MetricsSnapshot | None:
        async with SnapshotSubscriber(snapshots_ep) as sub:
            with EventPublisher(events_ep) as pub:
                assert await pub.wait_for_subscriber(WAIT_S)
                pub.send_many([*chat_prompts(n), ev(T.SESSION_ENDED, 10**6)])
                return await sub.wait_for_terminal(WAIT_S)

    try:
        terminal = asyncio.run(drive())
    finally:
        rc, err = finish(proc)
    assert rc == 0, err
    snap, report = final_files(out)
    pending = snap["n_pending_tasks"]
    assert snap["state"] == "complete" and 0 < pending <= n
    assert terminal is not None and terminal.n_pending_tasks == pending
    # nothing lost, nothing invented: every prompt is either counted or pending
    assert metric(snap, "isl")["count"] + pending == n
    assert metric(snap, "tracked_samples_issued")["value"] == n
    assert report["complete"] is False and report["n_pending_tasks"] == pending
    assert f"{pending} tokenizations had not finished" in report["incomplete_reason"]
    assert "tokenizations had not finished" in err  # the drain says so in the log too
    # the run block says which tokenizer counted, how, and with what budget
    jsonschema.validate(snap, load_schema(FINAL_SNAPSHOT_SCHEMA_PATH))
    assert snap["run"]["tokenizer"] == {
        "name": str(slow_tokenizer.resolve()),
        "class": snap["run"]["tokenizer"]["class"],
        "fast_backend": True,
        "chat_template": True,
        "workers": 0,
        "drain_timeout_s": 0.1,
        "job_timeout_s": 10.0,
        "jobs_timed_out": 0,
    }


def test_sigterm_during_the_drain_writes_interrupted_files_at_once(
    workdir: Path, slow_tokenizer: Path
) -> None:
    n = 3000
    proc, events_ep, snapshots_ep, out = start(
        workdir, "--tokenizer", str(slow_tokenizer), "--tokenizer-workers", "0"
    )

    async def drive() -> MetricsSnapshot | None:
        async with SnapshotSubscriber(snapshots_ep) as sub:
            with EventPublisher(events_ep) as pub:
                assert await pub.wait_for_subscriber(WAIT_S)
                pub.send_many([*chat_prompts(n), ev(T.SESSION_ENDED, 10**6)])

                def draining() -> bool:
                    s = sub.latest
                    return s is not None and s.state is SessionState.DRAINING

                assert await async_wait_until(draining, WAIT_S), "never saw the drain"
                proc.send_signal(signal.SIGTERM)
                return await sub.wait_for_terminal(WAIT_S)

    try:
        terminal = asyncio.run(drive())
    finally:
        rc, err = finish(proc)
    assert rc == 143, err
    assert terminal is not None and terminal.state is SessionState.INTERRUPTED
    snap, report = final_files(out)
    assert snap["state"] == "interrupted" and snap["n_pending_tasks"] > 0
    assert metric(snap, "isl")["count"] + snap["n_pending_tasks"] == n
    assert (
        report["complete"] is False
        and "tokenizations had not finished" in (report["incomplete_reason"])
    )


# -- demo --tokenizer ------------------------------------------------------------


def test_demo_with_a_tokenizer_sends_text_and_the_aggregator_counts_it(workdir: Path) -> None:
    """The synthetic source sends prompts as text and streamed chunks without counts; with
    the fixture's word-level tokenizer (every synthetic word is in its vocabulary) the
    aggregator's counts equal the words the source sent."""
    out = workdir / "out"
    load = {"qps": 60, "duration_s": 1.5, "seed": 3}
    cmd = [*bench_metrics(), "--log-level", "WARNING", "demo", "--listen", "127.0.0.1:0"]
    cmd += ["--qps", "60", "--duration", "1.5", "--seed", "3", "--no-tui"]
    cmd += ["--output-dir", str(out), "--tokenizer", str(FIXTURE_TOKENIZER)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    # what the seeded source sent (the same events, generated without a socket)
    words_in, words_out, tpot_samples = [], [], 0
    for rec in SyntheticLoad(**load, text=True).events():  # type: ignore[arg-type]
        data = rec.data
        assert rec.output_tokens is msgspec.UNSET
        if isinstance(data, PromptData):
            assert data.text and data.n_token_ids is None
            words_in.append(len(data.text.split()))
        elif isinstance(data, TextModelOutput):
            chunks = data.output_value()
            words_out.append(len("".join(chunks).split()))
            tpot_samples += len(chunks) > 1
    snap, report = final_files(out)
    assert snap["state"] == "complete" and snap["n_pending_tasks"] == 0
    isl, osl = metric(snap, "isl"), metric(snap, "osl")
    assert (isl["count"], isl["total"]) == (len(words_in), sum(words_in))
    assert (osl["count"], osl["total"]) == (len(words_out), sum(words_out))
    assert metric(snap, "tracked_output_tokens")["value"] == sum(words_out)
    assert metric(snap, "tpot_ns")["count"] == tpot_samples
    assert metric(snap, "tokenization_errors")["value"] == 0
    assert report["output_tokens"] == sum(words_out)
