"""``bench-metrics merge``: several runs' output directories into one exact result (SPEC §11).

One run per load generator, each with its final snapshot, raw store and
``samples.parquet``; out comes one ``final_snapshot.json``,
``result_summary.json`` and ``samples.parquet``, as if one aggregator had
seen every event:

- the runs must belong together: the same counters, the same series with
  the same settings (dtype, HDR range and precision, grid, histogram
  buckets, tail latency), the same percentile method, early-stopping
  test and verdict constraints; otherwise
  :class:`~registry.merge.run_dir.MergeError`;
- counters are summed; the three durations come from the runs' timelines on
  one clock (:mod:`registry.merge.timeline`); runs judged on constraints
  (``--ruleset``, ``--slo``) are judged as one: their counts summed, the
  states, queries needed and goodput decided again on the sums
  (:func:`registry.mlperf.verdict_counters.merged_verdict_counters`);
- each series: rollups added (exact integers from the raw stores'
  manifests), HDR histograms added bucket by bucket, then percentiles,
  early-stopping map and display histogram exactly as one run computes them
  (:func:`registry.core.series.describe_series`), by selection over every run's
  raw store. A series some run has no whole raw store for is located in the
  merged HDR instead: within HDR precision, and the run block says
  ``"exact": false`` and which series;
- ``samples.parquet``: every run's rows, timestamps moved onto the merged
  timeline, in run order.

Writes only into the output directory, atomically; reads the run
directories and never changes them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from registry.core.hdr import HdrFold
from registry.core.percentiles import PercentileMethod
from registry.core.rollups import Rollup
from registry.core.selection import CountMismatch
from registry.core.series import EXACT, HDR_ONLY, SeriesConfig, describe_series
from registry.delivery.atomic_file import fsync_directory, json_bytes, stage_atomic, temporary_path
from registry.delivery.final_source import FINAL_SNAPSHOT_NAME
from registry.delivery.run_lock import DirectoryLocked, RunLock
from registry.delivery.safe_open import open_whole_writes
from registry.delivery.snapshot import CounterStat, MetricsSnapshot, SeriesStat, SessionState
from registry.delivery.snapshot_codec import snapshot_to_dict
from registry.merge.run_dir import MergeError, RunDir, load_run, one_line
from registry.merge.timeline import Alignment, align, merged_durations
from registry.mlperf.early_stopping import EarlyStoppingSpec
from registry.mlperf.verdict_counters import merged_verdict_counters, read_validity, read_verdict
from registry.report.summary import REPORT_NAME, build_report
from registry.store.sample_log import SAMPLES_NAME
from registry.store.samples import SAMPLES_SCHEMA

__all__ = ["MergeResult", "check_compatible", "merge_runs", "merged_snapshot"]

logger = logging.getLogger(__name__)

_DURATIONS = ("tracked_duration_ns", "legacy_loadgen_window_duration_ns", "total_duration_ns")
_TIME_COLUMNS = ("issued_ns", "first_ns", "complete_ns")


@dataclass
class MergeResult:
    snapshot: MetricsSnapshot
    run: dict[str, Any]
    report: dict[str, Any]
    exact: bool
    approximate_series: list[str]
    samples_rows: int | None


def _config(settings: dict[str, Any]) -> SeriesConfig:
    return SeriesConfig(
        hdr_low=settings["hdr_low"],
        hdr_high=settings["hdr_high"],
        sig_figs=settings["sig_figs"],
        n_histogram_buckets=settings["n_histogram_buckets"],
        percentiles=settings["percentiles"],
        dtype=int if settings["dtype"] == "int" else float,
        tail_latency=settings["tail_latency"],
    )


def check_compatible(runs: Sequence[RunDir]) -> None:
    """:class:`MergeError` naming the first difference that keeps the runs apart."""
    ref = runs[0]
    ref_counters = list(ref.snapshot.counters)
    ref_series = ref.run["series"]
    for run in runs[1:]:
        where = f"{run.path} and {ref.path} do not belong together"
        for key in ("percentile_method", "early_stopping", "verdict"):
            if run.run.get(key) != ref.run.get(key):
                raise MergeError(f"{where}: {key} {run.run.get(key)!r} != {ref.run.get(key)!r}")
        if sorted(run.snapshot.counters) != sorted(ref_counters):
            diff = sorted(set(run.snapshot.counters) ^ set(ref_counters))
            raise MergeError(f"{where}: different counters ({', '.join(diff)})")
        series = run.run["series"]
        if sorted(series) != sorted(ref_series):
            diff = sorted(set(series) ^ set(ref_series))
            raise MergeError(f"{where}: different series ({', '.join(diff)})")
        for name, settings in ref_series.items():
            other = series[name]
            for key in sorted(set(settings) | set(other)):
                if settings.get(key) != other.get(key):
                    raise MergeError(
                        f"{where}: series {name!r} {key} {other.get(key)!r} != "
                        f"{settings.get(key)!r} (different series configuration)"
                    )


def _check_distinct(runs: Sequence[RunDir]) -> None:
    """:class:`MergeError` when two directories hold the same run (a copy): the same run
    id and the same clock block (host, boot, start and end anchors). Runs that only share
    a run id given with ``--run-id`` have their own anchors and stay mergeable."""
    seen: dict[str, RunDir] = {}
    for run in runs:
        key = json.dumps([run.run_id, run.run.get("clock")], sort_keys=True)
        first = seen.setdefault(key, run)
        if first is not run:
            raise MergeError(
                f"{first.path} and {run.path} are the same run ({run.run_id}, same clock "
                "anchors): merging it twice would count every sample twice"
            )


def _rollup(runs: Sequence[RunDir], name: str, exact: bool) -> Rollup:
    total = Rollup()
    for run in runs:
        stat = run.snapshot.series[name]
        if stat.count == 0:
            continue
        src: Any = run.raw_rollups[name] if exact else None
        total.merge(
            Rollup(
                count=stat.count,
                total=src["total"] if src else stat.total,
                min=src["min"] if src else stat.min,
                max=src["max"] if src else stat.max,
                # the manifest's is the exact sum; the snapshot's a rounded float
                sum_sq=src["sum_sq"] if src else stat.sum_sq,
            )
        )
    return total


def _series(
    runs: Sequence[RunDir],
    name: str,
    config: SeriesConfig,
    method: PercentileMethod,
    es: EarlyStoppingSpec | None,
) -> tuple[SeriesStat, bool]:
    exact = all(name in run.raw_files for run in runs)
    hdr = HdrFold(config.hdr_low, config.hdr_high, config.sig_figs)
    for run in runs:
        stat = run.snapshot.series[name]
        if stat.hdr is not None:
            try:
                hdr.add_encoded(stat.hdr)
            except ValueError as exc:
                raise MergeError(f"{run.path}: series {name!r}: {exc}") from None

    read: dict[int, int] = {}  # values read per run in the last pass (to blame a short one)

    def chunks() -> Iterator[npt.NDArray[Any]]:
        read.clear()
        for i, run in enumerate(runs):
            read[i] = 0
            for chunk in run.raw_chunks(name):
                read[i] += int(chunk.size)
                yield chunk

    try:
        stat = describe_series(
            name,
            config,
            _rollup(runs, name, exact),
            hdr,
            mode=EXACT if exact else HDR_ONLY,
            chunks=chunks if exact else None,
            method=method,
            early_stopping=es,
        )
    except CountMismatch as exc:
        # name the runs whose files gave another number of values than their snapshot
        # counts (all of them when the pass did not get that far)
        short = [
            i for i, run in enumerate(runs) if read.get(i) != run.snapshot.series[name].count
        ] or list(range(len(runs)))
        for i in short:
            got, want = read.get(i), runs[i].snapshot.series[name].count
            runs[i].raw_missing.setdefault(
                name,
                f"raw store file does not hold every value ({got} of {want} read; {exc})",
            )
        stat = describe_series(
            name,
            config,
            _rollup(runs, name, False),
            hdr,
            mode=HDR_ONLY,
            method=method,
            early_stopping=es,
        )
        exact = False
    return stat, exact


def _merged_run_block(
    runs: Sequence[RunDir],
    alignments: Sequence[Alignment],
    approximate: list[str],
    durations: dict[str, int] | None,
) -> dict[str, Any]:
    ref = runs[0].run
    ids = [r.run_id for r in runs]
    labels: dict[str, str] = dict(ref.get("labels") or {})
    for r in runs[1:]:
        other = r.run.get("labels") or {}
        labels = {k: v for k, v in labels.items() if other.get(k) == v}
    shared_id = ids[0] if len(set(ids)) == 1 else None
    timelines = [r.run.get("timeline") for r in runs]
    return {
        "percentile_method": ref.get("percentile_method"),
        "early_stopping": ref.get("early_stopping"),
        "run_id": shared_id if shared_id is not None else "merge:" + "+".join(str(i) for i in ids),
        "labels": labels,
        "clock": ref.get("clock"),
        "series": ref.get("series"),
        # the constraints every run was judged on (check_compatible): the union is judged on them
        **({"verdict": ref["verdict"]} if ref.get("verdict") is not None else {}),
        "raw_store": None,
        "samples": SAMPLES_NAME,
        "merge": {
            "exact": not approximate,
            "approximate_series": approximate,
            "approximate_reason": (
                {
                    name: "; ".join(
                        f"{r.path}: {r.raw_missing[name]}" for r in runs if name in r.raw_missing
                    )
                    for name in approximate
                }
                if approximate
                else {}
            ),
            "durations": "merged timeline" if durations is not None else "largest run's",
            "runs": [
                {
                    "dir": str(r.path),
                    "run_id": r.run_id,
                    "state": r.snapshot.state.value,
                    "timeline": t,
                    **a.as_dict(),
                }
                for r, a, t in zip(runs, alignments, timelines, strict=True)
            ],
        },
    }


def _stage_samples(
    runs: Sequence[RunDir], alignments: Sequence[Alignment], out: Path
) -> tuple[Path, int]:
    """Every run's ``samples.parquet`` rows in a temporary file beside ``out`` (fsynced,
    not renamed); its name and the row count. A shard that cannot be read to its end is a
    :class:`MergeError` naming it; the temporary file is removed on any failure."""
    tmp = temporary_path(out)
    rows = 0
    try:
        # a new file (O_EXCL, never through a link), every byte written or an error
        with open_whole_writes(tmp, exclusive=True) as sink:
            with pq.ParquetWriter(sink, SAMPLES_SCHEMA, compression="zstd") as writer:
                for run, a in zip(runs, alignments, strict=True):
                    if run.samples is None:
                        continue
                    for table in _shard_tables(run.samples):
                        if a.offset_ns:
                            for col in _TIME_COLUMNS:
                                i = table.schema.get_field_index(col)
                                moved = pc.add(table.column(col), pa.scalar(a.offset_ns))
                                table = table.set_column(i, col, moved)
                        writer.write_table(table.cast(SAMPLES_SCHEMA))
                        rows += table.num_rows
            os.fsync(sink.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp, rows


def _shard_tables(path: Path) -> Iterator[pa.Table]:
    """The row batches of one run's ``samples.parquet``; damage found while reading them
    (a footer that promises pages the file does not hold) is a :class:`MergeError`."""
    try:
        source = pq.ParquetFile(path)
        batches = source.iter_batches(batch_size=65_536)
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                return
            yield pa.Table.from_batches([batch])
    except (pa.ArrowException, OSError) as exc:
        raise MergeError(f"{path}: unreadable ({one_line(exc)})") from None


def _judged_as_one(
    runs: Sequence[RunDir], counters: list[CounterStat], *, complete: bool
) -> list[CounterStat]:
    """``counters`` with the verdict counters of the union (SPEC §10), when the runs were
    judged: counts summed, queries needed, states and goodput decided on the sums."""
    # check_compatible made the counters the same: every run was judged, or none
    readings = [v for r in runs if (v := read_verdict(r.snapshot.counters)) is not None]
    if not readings:
        return counters
    tracked = next((int(c.value) for c in counters if c.name == "tracked_duration_ns"), 0)
    try:
        judged = merged_verdict_counters(
            readings,
            tracked_duration_ns=tracked,
            final=True,  # a merge is of finished runs: pass or fail
            complete=complete,
            validities=[w for r in runs if (w := read_validity(r.snapshot.counters)) is not None],
        )
    except ValueError as exc:
        raise MergeError(f"the runs cannot be judged as one: {exc}") from None
    return [CounterStat(c.name, judged.get(c.name, c.value)) for c in counters]


def merged_snapshot(
    run_dirs: Sequence[str | Path],
) -> tuple[MetricsSnapshot, dict[str, Any], list[RunDir], list[Alignment]]:
    """The merged terminal snapshot and its run block (reads the runs, writes nothing)."""
    if not run_dirs:
        raise MergeError("no run directories given")
    resolved = [Path(d).resolve() for d in run_dirs]
    if len(set(resolved)) != len(resolved):
        raise MergeError("a run directory is given twice")
    runs = [load_run(d) for d in run_dirs]
    _check_distinct(runs)
    check_compatible(runs)
    ref = runs[0]
    method = PercentileMethod.parse(ref.run.get("percentile_method") or "nearest-rank")
    es_block = ref.run.get("early_stopping")
    es = (
        EarlyStoppingSpec(float(es_block["confidence"]), float(es_block["tolerance"]))
        if isinstance(es_block, dict)
        else None
    )
    alignments = align([r.run for r in runs])
    durations = merged_durations([r.run.get("timeline") for r in runs], alignments)

    counters: list[CounterStat] = []
    for name, value in ref.snapshot.counters.items():
        if durations is not None and name in durations:
            merged: int | float = durations[name]
        elif name in _DURATIONS:
            merged = max(r.snapshot.counters[name] for r in runs)
        else:
            merged = sum(r.snapshot.counters[name] for r in runs)
        counters.append(CounterStat(name, merged if not isinstance(value, int) else int(merged)))
    states = {r.snapshot.state for r in runs}
    state = SessionState.COMPLETE if states == {SessionState.COMPLETE} else SessionState.INTERRUPTED
    counters = _judged_as_one(runs, counters, complete=state is SessionState.COMPLETE)
    series: list[SeriesStat] = []
    approximate: list[str] = []
    for name in ref.snapshot.series:
        stat, exact = _series(runs, name, _config(ref.run["series"][name]), method, es)
        series.append(stat)
        if not exact:
            approximate.append(name)
    snap = MetricsSnapshot(
        counter=max(r.snapshot.counter for r in runs),
        timestamp_ns=max(
            r.snapshot.timestamp_ns + a.offset_ns for r, a in zip(runs, alignments, strict=True)
        ),
        state=state,
        n_pending_tasks=sum(r.snapshot.n_pending_tasks for r in runs),
        metrics=[*counters, *series],
    )
    run_block = _merged_run_block(runs, alignments, approximate, durations)
    if approximate:
        logger.warning(
            "merge is approximate for %s (HDR precision): %s",
            ", ".join(approximate),
            "; ".join(run_block["merge"]["approximate_reason"].values()),
        )
    return snap, run_block, runs, alignments


def _check_samples(runs: Sequence[RunDir]) -> bool:
    """Whether the merge writes ``samples.parquet``: when any run has one, every run must
    have a whole one (else :class:`MergeError`: half the rows are not the union)."""
    if not any(r.samples is not None or r.samples_problem is not None for r in runs):
        return False
    for r in runs:
        if r.samples_problem is not None:
            raise MergeError(f"{r.samples_problem}; restore it, or merge with --no-samples")
        if r.samples is None:
            raise MergeError(
                f"{r.path}: no {SAMPLES_NAME} (run with --no-samples) while other runs have "
                "one; merge with --no-samples"
            )
    return True


def _publish(staged: Sequence[tuple[Path, Path]], stale: Sequence[Path], out: Path) -> None:
    """Rename the staged files into place, ``final_snapshot.json`` last, after removing the
    previous result's ``final_snapshot.json`` and ``stale`` files: a directory holding a
    final snapshot holds this merge's files only, even if the renames are cut short."""
    for path in (out / FINAL_SNAPSHOT_NAME, *stale):
        with contextlib.suppress(FileNotFoundError, IsADirectoryError):
            path.unlink()
    for tmp, target in staged:
        os.replace(tmp, target)
    fsync_directory(out)


def merge_runs(
    run_dirs: Sequence[str | Path], out_dir: str | Path, *, samples: bool = True
) -> MergeResult:
    """Merge ``run_dirs`` into ``out_dir`` (created); :class:`MergeError` for unusable input.

    Every check that can refuse the runs comes before anything is written; then every
    file is staged under a temporary name and renamed into place only when all are
    written, so a failure (a shard's ``samples.parquet`` damaged past its footer, a full
    disk) leaves nothing of this merge in ``out_dir``. ``samples=False``: no
    ``samples.parquet`` (runs without one, or with a damaged one, can then be merged).
    """
    out = Path(out_dir)
    if out.resolve() in {Path(d).resolve() for d in run_dirs}:
        raise MergeError(f"{out}: the output directory cannot be one of the runs")
    snap, run_block, runs, alignments = merged_snapshot(run_dirs)
    with_samples = samples and _check_samples(runs)
    if not with_samples:
        run_block["samples"] = None
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    staged: list[tuple[Path, Path]] = []
    done = False
    try:
        try:
            lock = RunLock(out, run_block["run_id"]).acquire()  # one writer per directory
        except DirectoryLocked as exc:
            raise MergeError(str(exc)) from None
        try:
            samples_rows: int | None = None
            if with_samples:
                tmp, samples_rows = _stage_samples(runs, alignments, out / SAMPLES_NAME)
                staged.append((tmp, out / SAMPLES_NAME))
            report = build_report(snap, source="file", run=run_block)
            staged.append((stage_atomic(out / REPORT_NAME, json_bytes(report)), out / REPORT_NAME))
            final = json_bytes(snapshot_to_dict(snap, run=run_block))
            staged.append(
                (stage_atomic(out / FINAL_SNAPSHOT_NAME, final), out / FINAL_SNAPSHOT_NAME)
            )
            _publish(staged, [] if with_samples else [out / SAMPLES_NAME], out)
            done = True
        finally:
            lock.release()
    finally:
        if not done:
            for tmp, _ in staged:
                tmp.unlink(missing_ok=True)
            if created:
                with contextlib.suppress(OSError):  # only when nothing else is in it
                    out.rmdir()
    approximate = run_block["merge"]["approximate_series"]
    return MergeResult(
        snapshot=snap,
        run=run_block,
        report=report,
        exact=not approximate,
        approximate_series=approximate,
        samples_rows=samples_rows,
    )
