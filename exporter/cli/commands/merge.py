"""``bench-metrics merge OUT RUN_DIR...``: several runs into one final snapshot (SPEC §11).

Parses the command line and calls :func:`registry.merge.merge_runs`, which
decides every number; this module only reports. Runs that cannot be merged
(missing or unfinished, different series configuration, ...) are one line
on stderr and exit code 2; nothing is written then.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from exporter.cli.args import existing_dir, output_dir
from exporter.cli.errors import UsageError

__all__ = ["add_parser", "run"]

log = logging.getLogger(__name__)

_EPILOG = """\
Each RUN_DIR is an aggregate --output-dir: final_snapshot.json, raw/ (the raw
store) and samples.parquet. Counters are summed, durations taken over the
runs' tracking windows on one clock (same boot: as recorded; other hosts:
aligned by their wall-clock anchors), percentiles, early-stopping estimates
and histograms computed exactly from every raw value. A run without its raw
store makes the affected series approximate (HDR precision), said in the
run block ("merge": {"exact": false, ...}) and on stderr; so does a raw-store
file whose own metadata names another series or that holds fewer values.

Refused (one line, exit 2, nothing written to OUT): runs that do not belong
together, the same run twice (same run id and clock anchors: a copy), a
samples.parquet that is missing (the run block names one), unreadable or short of
rows while other runs have theirs (--no-samples merges without the file).

exit status: 0 merged (exact or approximate), 2 bad input
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "merge",
        help="merge several runs' output directories into one exact result",
        description=(
            "Merge the output directories of several aggregate runs (one per load "
            "generator) into OUT: final_snapshot.json, result_summary.json, samples.parquet."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("out", type=output_dir, metavar="OUT", help="output directory (created)")
    p.add_argument(
        "--no-samples",
        action="store_true",
        help="write no samples.parquet (merges runs whose samples.parquet is missing or damaged)",
    )
    p.add_argument(
        "runs", type=existing_dir, nargs="+", metavar="RUN_DIR", help="a run's output directory"
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    # Here, not at the top: merging reads Arrow and Parquet files, and pyarrow's
    # import is not a cost the other commands' parsers should pay.
    from registry.merge import MergeError, merge_runs

    out: Path = args.out
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out}: exists and is not a directory")
    try:
        result = merge_runs(args.runs, out, samples=not args.no_samples)
    except MergeError as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise UsageError(f"{out}: cannot write: {exc.strerror or exc}") from None
    counters = result.snapshot.counters
    kind = "exact" if result.exact else "APPROXIMATE for " + ", ".join(result.approximate_series)
    print(
        f"merged {len(args.runs)} runs into {out} ({kind}): "
        f"{counters.get('tracked_samples_completed', 0)} tracked samples completed, "
        f"{result.samples_rows if result.samples_rows is not None else 0} sample rows"
    )
    return 0
