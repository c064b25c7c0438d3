"""The end of a run, written once: terminal snapshot → final file → Report → stores (SPEC §7, §11).

Both ways of running bench-metrics end here: the aggregator service
(:mod:`registry.aggregator.service`) and the in-process session
(:mod:`registry.session_api`). :func:`end_run` has the publisher build and
write the terminal snapshot (``final_snapshot.json``, then the terminal
frame), builds the Report from that file as written (from the terminal
snapshot in memory when the file is unusable), writes it beside the file
unless an earlier run's final snapshot still stands there
(:func:`~registry.delivery.previous_run.report_blocked_by`), then completes the
aggregator's stores (``samples.parquet``, the raw store's manifest).

What each caller does around it stays with the caller: the service freezes its
tokenizer and verdict before, and moves its session machine; the session
refuses late records. Every file that could not be written is recorded in the
caller's ``unwritten_files`` (name → reason), never raised.

This module decides no number (the registry and :mod:`registry.report.summary` do)
and never writes a file in place (the publisher and
:func:`~registry.report.write_report` write atomically).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry.core.metrics_registry import MetricsRegistry
from registry.delivery.final_source import FINAL_SNAPSHOT_NAME, read_final_document
from registry.delivery.previous_run import RAW_STORE_DIR, report_blocked_by
from registry.delivery.publisher import MetricsPublisher
from registry.delivery.snapshot import MetricsSnapshot
from registry.report.summary import build_report, write_report
from registry.store.sample_log import SAMPLES_NAME

if TYPE_CHECKING:  # pyarrow: never imported by ``import registry``
    from registry.store.samples import SampleWriter

__all__ = ["RunStores", "end_run"]


@dataclass(frozen=True)
class RunStores:
    """What the aggregator keeps beside the final files (SPEC §11), completed after them."""

    registry: MetricsRegistry
    #: the raw store's directory, None without a raw store
    raw_store_dir: Path | None = None
    sample_writer: SampleWriter | None = None
    #: the rows not yet handed to the writer (samples in flight included), taken on the loop
    take_rows: Callable[[], list[tuple[Any, ...]]] | None = None


async def end_run(
    publisher: MetricsPublisher,
    *,
    report_path: Path,
    unwritten_files: dict[str, str],
    n_pending_tasks: int,
    interrupted: bool,
    run_id: str | None,
    labels: Mapping[str, str],
    on_final_snapshot: Callable[[MetricsSnapshot], None],
    stores: RunStores | None = None,
    log: logging.Logger | None = None,
) -> dict[str, Any]:
    """Write the final files of the run ``publisher`` published; return the Report.

    ``on_final_snapshot(snap)`` runs on the loop as soon as the terminal
    snapshot exists, before the Report is built: a caller's waiters must see it
    then. ``log``: where the Report's own lines go (the service's logger; the
    in-process session passes none and says only what was NOT written, at the
    end). The Report is built and written off the loop.
    """
    snap = await publisher.publish_final(n_pending_tasks=n_pending_tasks, interrupted=interrupted)
    on_final_snapshot(snap)
    file_written = publisher.final_file_written
    if not file_written:
        unwritten_files[FINAL_SNAPSHOT_NAME] = publisher.final_file_error or "unknown"
    report = await asyncio.to_thread(
        _write_report,
        snap,
        publisher,
        report_path,
        file_written,
        unwritten_files,
        run_id,
        labels,
        log,
    )
    if stores is not None:
        await _complete_stores(stores, unwritten_files, log)
    return report


def _write_report(
    snap: MetricsSnapshot,
    publisher: MetricsPublisher,
    report_path: Path,
    file_written: bool,
    unwritten_files: dict[str, str],
    run_id: str | None,
    labels: Mapping[str, str],
    log: logging.Logger | None,
) -> dict[str, Any]:
    """The Report from the final file as written (SPEC §7 order), else from memory."""
    final_path = publisher.final_snapshot_path
    source = "file"
    try:
        if not file_written:
            raise OSError("the publisher could not write it")
        from_file, run = read_final_document(final_path)
        report = build_report(from_file, source=source, run=run, run_id=run_id, labels=labels)
    except (OSError, ValueError) as exc:
        source, reason = "terminal_frame", f"{FINAL_SNAPSHOT_NAME} unusable: {exc}"
        report = build_report(
            snap,
            source=source,
            reason=reason,
            run=publisher.run_block(),
            run_id=run_id,
            labels=labels,
        )
    name = report_path.name  # result_summary.json, or upstream mode's name
    blocked = None if file_written else report_blocked_by(final_path)
    if blocked is not None:
        # an earlier run's final snapshot stays: the new report beside it would be a mix
        unwritten_files[name] = blocked
        if log is not None:
            log.error("the report %s is %s", report_path, blocked)
        return report
    try:
        write_report(report_path, report)
    except OSError as exc:
        unwritten_files[name] = exc.strerror or str(exc)
        if log is not None:
            log.error("could not write the report %s: %s", report_path, exc.strerror or exc)
    else:
        if log is not None:
            log.info("report written to %s (source: %s)", report_path, source)
    return report


async def _complete_stores(
    stores: RunStores, unwritten_files: dict[str, str], log: logging.Logger | None
) -> None:
    """``samples.parquet`` (with the samples still in flight) and the raw store's last
    values and manifest, off the loop; failures are recorded, the final files stand."""
    writer = stores.sample_writer
    if writer is not None and stores.take_rows is not None:
        rows = stores.take_rows()
        if not await asyncio.to_thread(writer.close_sync, rows):
            unwritten_files[SAMPLES_NAME] = writer.error or "unknown"
    if stores.raw_store_dir is not None:
        try:
            await asyncio.to_thread(stores.registry.finalize_raw_store)
        except OSError as exc:
            why = exc.strerror or str(exc)
            unwritten_files[f"{RAW_STORE_DIR}/ (the raw store)"] = why
            if log is not None:
                log.error("could not complete the raw store in %s: %s", stores.raw_store_dir, why)
