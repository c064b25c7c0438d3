"""Issue 24 item 2: ``bench-metrics merge`` never reports a wrong number as exact (SPEC §11).

Two real runs over disjoint shares of one stream, then careless copies of them: the same
run twice, a raw-store file replaced by another series' file, a ``samples.parquet``
missing, cut short or damaged past its footer. Each is refused in one line with exit 2
and nothing written to OUT, or merged marked inexact with the reason in the file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from registry.events.synthetic import SyntheticLoad
from tests.support.small_disk import mounted_tmpfs
from tests.support.store_runs import frames_of, run_aggregates, run_cli, shares


def _load(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two shares of one stream, both given the same ``--run-id`` (as a launcher may do)."""
    work = tmp_path_factory.mktemp("hostile-merge")
    records = list(SyntheticLoad(qps=1500, duration_s=0.8, seed=24).events(t0_ns=10**12))
    extra = ["--streaming", "--raw-memory-mb", "0.005", "--run-id", "shared-id"]
    return run_aggregates(
        work, [(f"lg{i}", frames_of(s), extra) for i, s in enumerate(shares(records, 2))]
    )


def _copies(pair: list[Path], where: Path) -> list[Path]:
    out = []
    for p in pair:
        shutil.copytree(p, where / p.name)
        out.append(where / p.name)
    return out


def _refused(res: Any, out: Path, *needles: str) -> None:
    assert res.returncode == 2, (res.returncode, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert all(n in lines[0] for n in needles), lines[0]
    assert not out.exists(), sorted(p.name for p in out.iterdir())


def test_runs_sharing_a_run_id_merge_but_a_copied_run_is_refused(
    pair: list[Path], tmp_path: Path
) -> None:
    res = run_cli("merge", str(tmp_path / "ok"), *map(str, pair))
    assert res.returncode == 0, res.stderr
    assert _load(tmp_path / "ok" / "final_snapshot.json")["run"]["merge"]["exact"] is True
    copy = tmp_path / "copy-of-lg0"
    shutil.copytree(pair[0], copy)
    out = tmp_path / "out"
    res = run_cli("merge", str(out), str(pair[0]), str(pair[1]), str(copy))
    _refused(res, out, "same run", str(copy))


def test_a_raw_file_naming_another_series_makes_its_series_inexact(
    pair: list[Path], tmp_path: Path
) -> None:
    runs = _copies(pair, tmp_path)
    doc = _load(runs[1] / "final_snapshot.json")
    series = {m["name"]: m for m in doc["metrics"] if m["type"] == "series"}
    kinds = doc["run"]["series"]
    # two series of one type and one count: only the file's own metadata tells them apart
    victim, other = next(
        (a, b)
        for a in series
        for b in series
        if a != b
        and series[a]["count"] == series[b]["count"] > 0
        and kinds[a]["dtype"] == kinds[b]["dtype"]
        and series[a]["percentiles"] != series[b]["percentiles"]
    )
    raw = runs[1] / "raw"
    manifest = _load(raw / "manifest.json")["series"]
    shutil.copyfile(raw / manifest[other]["file"], raw / manifest[victim]["file"])
    res = run_cli("merge", str(tmp_path / "merged"), *map(str, runs))
    assert res.returncode == 0, res.stderr
    assert "APPROXIMATE" in res.stdout
    info = _load(tmp_path / "merged" / "final_snapshot.json")["run"]["merge"]
    assert info["exact"] is False and info["approximate_series"] == [victim]
    reason = info["approximate_reason"][victim]
    assert f"holds series {other!r}" in reason and str(runs[1]) in reason
    assert str(runs[0]) not in reason


@pytest.mark.parametrize("damage", ["missing", "cut short", "pages damaged"])
def test_a_damaged_samples_file_is_refused_and_nothing_is_written(
    pair: list[Path], tmp_path: Path, damage: str
) -> None:
    runs = _copies(pair, tmp_path)
    samples = runs[1] / "samples.parquet"
    data = samples.read_bytes()
    if damage == "missing":
        samples.unlink()
    elif damage == "cut short":
        samples.write_bytes(data[: len(data) // 2])
    else:
        # the footer still promises every row; the pages it points at are noise
        meta = pq.ParquetFile(samples).metadata
        start = meta.row_group(0).column(1).data_page_offset
        tail = int.from_bytes(data[-8:-4], "little") + 8  # footer, its length, "PAR1"
        samples.write_bytes(data[:start] + b"\xa5" * (len(data) - start - tail) + data[-tail:])
    out = tmp_path / "out"
    res = run_cli("merge", str(out), *map(str, runs))
    _refused(res, out, str(samples))
    assert "--no-samples" in res.stderr or damage == "pages damaged"
    # an OUT holding an earlier merge keeps it, whole
    earlier = run_cli("merge", str(out), *map(str, pair))
    assert earlier.returncode == 0, earlier.stderr
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    res = run_cli("merge", str(out), *map(str, runs))
    assert res.returncode == 2, res.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_no_samples_merges_without_the_file(pair: list[Path], tmp_path: Path) -> None:
    runs = _copies(pair, tmp_path)
    (runs[0] / "samples.parquet").unlink()
    out = tmp_path / "out"
    res = run_cli("merge", "--no-samples", str(out), *map(str, runs))
    assert res.returncode == 0, res.stderr
    assert not (out / "samples.parquet").exists()
    doc = _load(out / "final_snapshot.json")
    assert doc["run"]["samples"] is None and doc["run"]["merge"]["exact"] is True


def test_a_merge_onto_a_full_disk_leaves_nothing_behind(pair: list[Path], tmp_path: Path) -> None:
    """OUT on a tmpfs too small for the merged samples.parquet: one line, exit 2, no
    temporary file and no partial final file left (the mount point itself stays)."""
    with mounted_tmpfs(tmp_path / "small", "64k") as mnt:
        res = run_cli("merge", str(mnt / "out"), *map(str, pair))
        assert res.returncode == 2, res.stderr
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and "No space left on device" in lines[0], res.stderr
        assert list(mnt.iterdir()) == []
