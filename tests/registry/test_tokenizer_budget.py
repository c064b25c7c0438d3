"""Issue 24 item 11: a chat template that loops for a very long time cannot hold back the
final files. Real tokenizers built by the test (tests/support/tokenizer_factory.py) whose template
spins on one message; real worker threads, a real loop, and a real ``aggregate`` process
with the default drain (no limit)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from registry.events import EventPublisher, EventType
from registry.events.data import PromptData
from registry.tokens import PROMPT, TokenCounter, TokenizerPool, TokenJob, load_tokenizer
from registry.tokens.pool import TokenizationTimeout
from tests.support.aggregator_scenario import ev
from tests.support.tokenizer_factory import CHAT_TEMPLATE, make_word_tokenizer

pytest.importorskip("transformers", reason="needs the extra bench-metrics[tokenizer]")

T = EventType
REPO = Path(__file__).resolve().parents[2]
WAIT_S = 60.0
#: 10^10 loop turns (the sandbox allows range(100000)) for a message that says "spin":
#: hours of work, nothing to call in the inner loop.
SPIN_TEMPLATE = (
    "{%- for m in messages %}{%- if 'spin' in (m['content'] or '') %}"
    "{%- for i in range(100000) %}{%- for j in range(100000) %}{%- endfor %}{%- endfor %}"
    "{%- endif %}{%- endfor %}" + CHAT_TEMPLATE
)


@pytest.fixture(scope="module")
def spin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_word_tokenizer(tmp_path_factory.mktemp("spin"), chat_template=SPIN_TEMPLATE)


def chat(content: str) -> PromptData:
    return PromptData.build(messages=[{"role": "user", "content": content}])


def test_the_pool_skips_a_job_past_its_budget_and_counts_the_rest(spin_dir: Path) -> None:
    counter = TokenCounter(load_tokenizer(spin_dir))

    async def main() -> tuple[list[Any], TokenizerPool]:
        got: list[Any] = []
        pool = TokenizerPool(
            counter, on_counts=lambda job, a, b: got.append(a), workers=1, job_timeout_s=0.5
        )
        pool.start()
        for i in range(9):
            pool.submit(TokenJob(PROMPT, chat("spin" if i == 4 else "why"), weight=1))
        assert await asyncio.wait_for(pool.drain(None), WAIT_S) == 0
        pool.close()
        assert await asyncio.to_thread(pool.join, 10), "the worker is still in the template"
        return got, pool

    got, pool = asyncio.run(main())
    assert len(got) == 9
    timed_out = [g for g in got if isinstance(g, TokenizationTimeout)]
    assert len(timed_out) == 1 and "longer than 0.5 s" in str(timed_out[0])
    assert sorted(g for g in got if isinstance(g, int)) == [3] * 8  # <|user|> why \n
    assert pool.jobs_timed_out == 1 and pool.batches_overtime == 1


def test_aggregate_writes_final_files_despite_a_looping_template(
    workdir: Path, spin_dir: Path
) -> None:
    events, snapshots, out = f"ipc://{workdir}/ev", f"ipc://{workdir}/met", workdir / "out"
    cmd = [sys.executable, "-m", "exporter.cli.main", "aggregate", "--events", events]
    cmd += ["--snapshots", snapshots, "--output-dir", str(out), "--interval", "0.05"]
    cmd += ["--tokenizer", str(spin_dir), "--tokenizer-job-timeout", "1"]
    proc = subprocess.Popen(cmd, cwd=REPO, stderr=subprocess.PIPE, text=True)
    n = 20
    records = [ev(T.SESSION_STARTED, 0), ev(T.SESSION_START_PERFORMANCE_TRACKING, 1)]
    for i in range(n):
        content = "spin" if i == 7 else "what is the answer"
        records.append(ev(T.SAMPLE_ISSUED, 10 + i, f"p{i}", data=chat(content)))
    records.append(ev(T.SESSION_ENDED, 10**6))

    async def drive() -> None:
        with EventPublisher(events) as pub:
            assert await pub.wait_for_subscriber(WAIT_S)
            pub.send_many(records)
            await asyncio.to_thread(proc.wait, WAIT_S)

    try:
        asyncio.run(drive())
        _, err = proc.communicate(timeout=WAIT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    snap = json.loads((out / "final_snapshot.json").read_text())
    metrics = {m["name"]: m for m in snap["metrics"]}
    assert snap["state"] == "complete" and snap["n_pending_tasks"] == 0
    assert metrics["tokenization_errors"]["value"] == 1  # the skipped one, counted
    assert metrics["isl"]["count"] == n - 1  # every other prompt counted
    tokenizer = snap["run"]["tokenizer"]
    assert tokenizer["job_timeout_s"] == 1.0 and tokenizer["jobs_timed_out"] == 1
    assert "took longer than 1 s" in err
