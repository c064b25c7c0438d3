"""``samples.parquet`` (SPEC §11): one row per tracked sample, read back with pyarrow and with
DuckDB, agrees with the final snapshot; its schema is the one docs/store-and-merge.md
documents; ``--no-samples`` turns it off."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest

from registry.store.samples import SAMPLES_SCHEMA
from tests.support.store_runs import frames_of, records_of_frames, run_aggregate
from tests.support.upstream_fixtures import SESSION_A_FRAMES

SCHEMA_DOC = Path(__file__).resolve().parents[2] / "docs" / "store-and-merge.md"


@pytest.fixture(scope="module")
def session_a(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("samples")
    return run_aggregate(work, "a", frames_of(records_of_frames(SESSION_A_FRAMES)), "--streaming")


def _final(out: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    doc = json.loads((out / "final_snapshot.json").read_text())
    counters = {m["name"]: m["value"] for m in doc["metrics"] if m["type"] == "counter"}
    series = {m["name"]: m for m in doc["metrics"] if m["type"] == "series"}
    return counters, series


def test_one_row_per_tracked_sample_agreeing_with_the_final_snapshot(session_a: Path) -> None:
    counters, series = _final(session_a)
    table = pq.read_table(session_a / "samples.parquet")
    rows = table.to_pylist()
    assert len(rows) == counters["tracked_samples_issued"] == 400  # the fixture README
    assert len({r["sample_uuid"] for r in rows}) == len(rows)
    completed = [r for r in rows if r["complete_ns"] is not None]
    assert len(completed) == counters["tracked_samples_completed"]
    assert sum(r["failed"] for r in rows) == counters["tracked_samples_failed"]
    assert len(rows) - len(completed) == 9  # still in flight at session.ended
    lat = [r["latency_ns"] for r in completed]
    assert len(lat) == series["sample_latency_ns"]["count"]
    assert sum(lat) == series["sample_latency_ns"]["total"]
    assert (min(lat), max(lat)) == (
        series["sample_latency_ns"]["min"],
        series["sample_latency_ns"]["max"],
    )
    ttft = [r["ttft_ns"] for r in rows if r["ttft_ns"] is not None]
    assert (min(ttft), max(ttft)) == (series["ttft_ns"]["min"], series["ttft_ns"]["max"])
    isl = [r["isl"] for r in rows if r["isl"] is not None]
    assert sum(isl) == series["isl"]["total"] and len(isl) == series["isl"]["count"]
    for reason in ("stop", "length", "tool_calls", "content_filter"):
        n = sum(1 for r in completed if r["finish_reason"] == reason)
        assert n == counters[f"tracked_finish_reason_{reason}"], reason
    assert all(r["error_type"] for r in rows if r["failed"])
    assert all(r["error_type"] is None for r in rows if not r["failed"])
    # chunk counts: every receive of a tracked sample (first and later ones)
    assert sum(r["n_chunks"] for r in rows) == series["chunk_delta_ns"]["count"] + len(ttft)
    conv = [r for r in rows if r["conversation_id"]]
    assert conv and all(r["turn"] is not None for r in conv)
    assert {r["window"] for r in rows} == {0, 1}
    assert set(table.column("run_id").to_pylist()) == {
        json.loads((session_a / "final_snapshot.json").read_text())["run"]["run_id"]
    }


def test_duckdb_reads_the_file_as_a_table(session_a: Path) -> None:
    counters, series = _final(session_a)
    path = str(session_a / "samples.parquet")
    [(n, failed, done, p50)] = duckdb.sql(
        "SELECT count(*), count(*) FILTER (WHERE failed), count(complete_ns), "
        f"quantile_disc(latency_ns, 0.5) FROM read_parquet('{path}')"
    ).fetchall()
    assert n == counters["tracked_samples_issued"]
    assert failed == counters["tracked_samples_failed"]
    assert done == counters["tracked_samples_completed"]
    assert p50 == series["sample_latency_ns"]["percentiles"]["50.0"]
    per_reason = dict(
        duckdb.sql(
            f"SELECT finish_reason, count(*) FROM read_parquet('{path}') "
            "WHERE finish_reason IS NOT NULL GROUP BY ALL"
        ).fetchall()
    )
    assert per_reason["stop"] == counters["tracked_finish_reason_stop"]


def test_the_schema_is_the_one_the_docs_document(session_a: Path) -> None:
    text = SCHEMA_DOC.read_text()
    section = text[text.index("### `samples.parquet`") :]
    section = section[: section.index("\n#")]
    documented = re.findall(r"^\| `(\w+)` \| `([^`]+)` \|", section, flags=re.M)
    assert [(n, t) for n, t in documented] == [(f.name, str(f.type)) for f in SAMPLES_SCHEMA]
    assert pq.read_schema(session_a / "samples.parquet").remove_metadata() == (
        SAMPLES_SCHEMA.remove_metadata()
    )


def test_no_samples_turns_the_file_off(tmp_path: Path) -> None:
    frames = frames_of(records_of_frames(SESSION_A_FRAMES))
    out = run_aggregate(
        tmp_path, "nosamples", frames, "--streaming", "--no-samples", "--no-raw-store"
    )
    assert (out / "final_snapshot.json").exists()
    assert not (out / "samples.parquet").exists()
    assert not (out / "raw").exists()
    run = json.loads((out / "final_snapshot.json").read_text())["run"]
    assert run["samples"] is None and run["raw_store"] is None


def test_the_final_files_run_block_follows_the_schema(session_a: Path) -> None:
    import jsonschema

    from registry.schemas import FINAL_SNAPSHOT_SCHEMA_PATH

    schema = json.loads(FINAL_SNAPSHOT_SCHEMA_PATH.read_text())
    doc = json.loads((session_a / "final_snapshot.json").read_text())
    jsonschema.validate(doc, schema)
    run = doc["run"]
    assert run["clock"]["start"]["wall_ns"] > 1.6e18 and run["clock"]["boot_id"]
    assert len(run["timeline"]["windows"]) == 2  # session A has two tracking windows
    assert run["series"]["ttft_ns"]["tail_latency"] is True
    assert run["raw_store"] == {"dir": "raw", "memory_bytes": 256 * 2**20}


def test_the_writer_writes_row_groups_as_rows_come_and_renames_at_close(tmp_path: Path) -> None:
    from registry.store.samples import ROW_GROUP_ROWS, SampleWriter

    path = tmp_path / "samples.parquet"
    writer = SampleWriter(path, run_id=None)  # a run without an id: null run_id
    row = ("u", "", None, 3, 0, 10, 12, 20, None, 2, 5, 7, "stop", None)
    for _ in range(3):
        writer.submit([row] * (ROW_GROUP_ROWS // 2 + 1))
    assert not path.exists()  # nothing half-written under the final name
    assert writer.close_sync(
        [("v", "c1", 2, None, 1, 30, None, None, None, 0, None, None, None, "Timeout")]
    )
    f = pq.ParquetFile(path)
    assert f.metadata.num_rows == 3 * (ROW_GROUP_ROWS // 2 + 1) + 1
    assert f.metadata.num_row_groups >= 2
    last = f.read().to_pylist()[-1]
    assert last["run_id"] is None and last["failed"] is True and last["complete_ns"] is None
    assert last["conversation_id"] == "c1" and last["error_type"] == "Timeout"
    assert [p.name for p in tmp_path.iterdir()] == ["samples.parquet"]
