"""``bench-metrics merge`` (SPEC §11): four runs over disjoint shares of one event stream,
merged, equal one run over the whole stream; without a raw store the merge says it is
approximate and stays within HDR precision; runs that do not belong together are refused."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from registry.core.hdr import relative_precision
from registry.events.synthetic import SyntheticLoad
from tests.support.store_runs import (
    frames_of,
    records_of_frames,
    run_aggregate,
    run_aggregates,
    run_cli,
    shares,
)
from tests.support.upstream_fixtures import SESSION_A_FRAMES

K = 4
# Float totals are sums in a different order when the values come in four parts.
_FLOAT_FIELDS = {"total", "sum_sq"}


def _load(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


def differing_fields(merged: dict[str, Any], whole: dict[str, Any]) -> list[str]:
    """Every metric field (and the snapshot's state / pending count) that differs."""
    out = [k for k in ("state", "n_pending_tasks") if merged[k] != whole[k]]
    a = {m["name"]: m for m in merged["metrics"]}
    b = {m["name"]: m for m in whole["metrics"]}
    if list(a) != list(b):
        out.append(f"metric names/order: {list(a)} != {list(b)}")
    for name in b:
        for key in sorted(set(a.get(name, {})) | set(b[name])):
            x, y = a.get(name, {}).get(key), b[name].get(key)
            same = x == y
            if not same and key in _FLOAT_FIELDS and isinstance(x, float):
                same = math.isclose(x, y, rel_tol=1e-12)
            if not same:
                out.append(f"{name}.{key}: {x!r} != {y!r}")
    return out


def _streams() -> dict[str, list[Any]]:
    load = SyntheticLoad(qps=2500, duration_s=1.2, seed=11, warmup_s=0.1, error_rate=0.03)
    return {
        "synthetic": list(load.events(t0_ns=10**12)),
        "upstream-session-a": records_of_frames(SESSION_A_FRAMES),
    }


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, list[Path]]]:
    """Per stream: the whole-stream run and the four share runs (tiny memory bound, so
    most of their raw values go through the store's files)."""
    root = tmp_path_factory.mktemp("merge")
    out: dict[str, tuple[Path, list[Path]]] = {}
    for label, records in _streams().items():
        work = root / label
        work.mkdir()
        jobs = [("whole", frames_of(records), ["--streaming"])] + [
            (f"lg{i}", frames_of(share), ["--streaming", "--raw-memory-mb", "0.005"])
            for i, share in enumerate(shares(records, K))
        ]
        whole, *parts = run_aggregates(work, jobs)
        out[label] = (whole, parts)
    return out


@pytest.mark.parametrize("label", ["synthetic", "upstream-session-a"])
def test_merge_of_four_shares_equals_one_run_over_the_whole_stream(
    runs: dict[str, tuple[Path, list[Path]]], tmp_path: Path, label: str
) -> None:
    whole, parts = runs[label]
    # the shares really spilled into their raw stores' files while they ran
    spilled = [
        sum(
            e["spilled_while_running"]
            for e in _load(p / "raw" / "manifest.json")["series"].values()
        )
        for p in parts
    ]
    assert all(n > 0 for n in spilled), spilled
    res = run_cli("merge", str(tmp_path / "merged"), *map(str, parts))
    assert res.returncode == 0, res.stderr
    assert "exact" in res.stdout
    merged = _load(tmp_path / "merged" / "final_snapshot.json")
    single = _load(whole / "final_snapshot.json")
    diffs = differing_fields(merged, single)
    n_fields = sum(len(m) for m in single["metrics"])
    print(f"{label}: {len(diffs)} differing fields of {n_fields}")
    assert diffs == []
    assert merged["run"]["merge"]["exact"] is True
    assert [r["alignment"] for r in merged["run"]["merge"]["runs"]] == [
        "reference",
        "same-boot",
        "same-boot",
        "same-boot",
    ]
    # the Report of the merge says what the Report of the whole run says
    rm = _load(tmp_path / "merged" / "result_summary.json")
    rw = _load(whole / "result_summary.json")
    for key in ("state", "complete", "samples", "duration_s", "total_duration_s", "qps", "tps"):
        assert rm[key] == rw[key], key
    for key in ("qps_legacy", "legacy_window_s", "finish_reasons", "percentile_method"):
        assert rm[key] == rw[key], key
    for name, entry in rw["series"].items():
        for key in ("count", "min", "max", "median", "percentiles", "histogram"):
            assert rm["series"][name][key] == entry[key], (name, key)
        assert (
            rm["series"][name]["early_stopping_percentiles"]
            == (entry["early_stopping_percentiles"])
        )
    # one samples.parquet row per tracked sample, the same samples
    ts = pq.read_table(whole / "samples.parquet")
    tm = pq.read_table(tmp_path / "merged" / "samples.parquet")
    assert tm.num_rows == ts.num_rows
    assert sorted(tm.column("sample_uuid").to_pylist()) == sorted(
        ts.column("sample_uuid").to_pylist()
    )
    assert sorted(tm.column("latency_ns").drop_null().to_pylist()) == sorted(
        ts.column("latency_ns").drop_null().to_pylist()
    )


def test_without_one_raw_store_the_merge_is_approximate_within_hdr_precision(
    runs: dict[str, tuple[Path, list[Path]]], tmp_path: Path
) -> None:
    whole, parts = runs["synthetic"]
    copies = []
    for p in parts:
        shutil.copytree(p, tmp_path / p.name)
        copies.append(tmp_path / p.name)
    shutil.rmtree(copies[2] / "raw")
    res = run_cli("merge", str(tmp_path / "merged"), *map(str, copies))
    assert res.returncode == 0, res.stderr
    assert "APPROXIMATE" in res.stdout
    assert "approximate" in res.stderr and "no raw store" in res.stderr
    merged = _load(tmp_path / "merged" / "final_snapshot.json")
    single = _load(whole / "final_snapshot.json")
    info = merged["run"]["merge"]
    assert info["exact"] is False
    assert sorted(info["approximate_series"]) == sorted(
        m["name"] for m in single["metrics"] if m["type"] == "series"
    )
    assert "no raw store" in info["approximate_reason"]["ttft_ns"]
    a = {m["name"]: m for m in merged["metrics"]}
    tolerance = 2 * relative_precision(3)  # bucket width at 3 significant figures
    for m in single["metrics"]:
        if m["type"] == "counter":
            assert a[m["name"]]["value"] == m["value"], m["name"]
            continue
        assert a[m["name"]]["count"] == m["count"]
        assert (a[m["name"]]["min"], a[m["name"]]["max"]) == (m["min"], m["max"])
        for key, exact in m["percentiles"].items():
            approx = a[m["name"]]["percentiles"][key]
            assert abs(approx - exact) <= tolerance * abs(exact) + 1, (m["name"], key)
        for key, exact in (m.get("early_stopping_percentiles") or {}).items():
            approx = a[m["name"]]["early_stopping_percentiles"][key]
            assert (approx is None) == (exact is None)
            if exact is not None:
                assert abs(approx - exact) <= tolerance * abs(exact) + 1, (m["name"], key)


def test_runs_that_do_not_belong_together_are_refused_in_one_line(
    runs: dict[str, tuple[Path, list[Path]]], tmp_path: Path
) -> None:
    _, parts = runs["synthetic"]
    other = run_aggregate(
        tmp_path,
        "other",
        frames_of(list(SyntheticLoad(qps=200, duration_s=0.3, seed=2).events())),
        "--streaming",
        "--n-histogram-buckets",
        "20",
    )
    res = run_cli("merge", str(tmp_path / "merged"), str(parts[0]), str(other))
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert "do not belong together" in lines[0] and "n_histogram_buckets" in lines[0]
    assert not (tmp_path / "merged").exists()
    # a run still holding its directory (SPEC §7's lock) is not merged
    from registry.delivery.run_lock import RunLock

    with RunLock(parts[3], "still-running").acquire():
        res = run_cli("merge", str(tmp_path / "m1"), str(parts[0]), str(parts[3]))
    assert res.returncode == 2 and "still in use" in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    # not finished runs, the same run twice, an output that is a run: one line each
    for argv in (
        ["merge", str(tmp_path / "m2"), str(tmp_path / "nowhere")],
        ["merge", str(tmp_path / "m3"), str(parts[0]), str(parts[0])],
        ["merge", str(parts[1]), str(parts[0]), str(parts[1])],
    ):
        res = run_cli(*argv)
        assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr


def test_a_raw_store_file_cut_short_makes_its_series_approximate_not_wrong(
    runs: dict[str, tuple[Path, list[Path]]], tmp_path: Path
) -> None:
    whole, parts = runs["synthetic"]
    copies = []
    for p in parts:
        shutil.copytree(p, tmp_path / p.name)
        copies.append(tmp_path / p.name)
    cut = copies[1] / "raw" / "chunk_delta_ns.arrows"
    data = cut.read_bytes()
    cut.write_bytes(data[: len(data) // 2])  # as a crash or a full disk would leave it
    res = run_cli("merge", str(tmp_path / "merged"), *map(str, copies))
    assert res.returncode == 0, res.stderr
    merged = _load(tmp_path / "merged" / "final_snapshot.json")
    info = merged["run"]["merge"]
    assert info["approximate_series"] == ["chunk_delta_ns"]
    reason = info["approximate_reason"]["chunk_delta_ns"]
    assert "not hold every value" in reason
    # the warning names the damaged run's directory, and only it (issue 24 item 12)
    assert str(copies[1]) in reason
    assert not any(str(c) in reason for c in (copies[0], *copies[2:]))
    assert str(copies[1]) in res.stderr and str(copies[0]) not in res.stderr
    single = {m["name"]: m for m in _load(whole / "final_snapshot.json")["metrics"]}
    for m in merged["metrics"]:
        if m["type"] == "series" and m["name"] != "chunk_delta_ns":
            assert m["percentiles"] == single[m["name"]]["percentiles"], m["name"]


def test_runs_judged_on_a_ruleset_are_judged_as_one(workdir: Path) -> None:
    """Each share judged on its own; the merge judges the union: its verdict (counts,
    queries needed, states, good samples, goodput, the decision) is the whole run's."""
    records = _streams()["synthetic"]
    # a TTFT p90 limit some requests miss, so over-limit counts and states are not trivial
    judged = ["--streaming", "--ruleset", "llama2-70b", "--slo", "ttft:p90<=60ms"]
    jobs = [("whole", frames_of(records), judged)] + [
        (f"lg{i}", frames_of(share), judged) for i, share in enumerate(shares(records, 2))
    ]
    whole, *parts = run_aggregates(workdir, jobs)
    res = run_cli("merge", str(workdir / "merged"), *map(str, parts))
    assert res.returncode == 0, res.stderr
    merged = _load(workdir / "merged" / "final_snapshot.json")
    single = _load(whole / "final_snapshot.json")
    diffs = differing_fields(merged, single)
    assert diffs == [], diffs
    share_over = [
        next(m["value"] for m in _load(p / "final_snapshot.json")["metrics"]
             if m["name"] == "constraint_ttft_p90_over_limit")
        for p in parts
    ]  # fmt: skip
    assert all(n > 0 for n in share_over), share_over  # the limit bites in every share
    rm = _load(workdir / "merged" / "result_summary.json")["verdict"]
    rw = _load(whole / "result_summary.json")["verdict"]
    assert rm == rw
    assert rm["ruleset"] == "llama2-70b" and len(rm["constraints"]) == 3
    # LoadGen validity judged on the union: a short run is INVALID for min duration
    assert rm["result"] == "INVALID" and rm["validity"]["queries"] == rw["validity"]["queries"]


def test_runs_judged_on_different_constraints_are_refused(workdir: Path) -> None:
    records = _streams()["synthetic"]
    a, b = shares(records, 2)
    runs = run_aggregates(
        workdir,
        [
            ("lg0", frames_of(a), ["--streaming", "--ruleset", "llama2-70b"]),
            ("lg1", frames_of(b), ["--streaming", "--ruleset", "llama2-70b-interactive"]),
        ],
    )
    res = run_cli("merge", str(workdir / "merged"), *map(str, runs))
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and "do not belong together: verdict" in res.stderr
    assert not (workdir / "merged").exists()
