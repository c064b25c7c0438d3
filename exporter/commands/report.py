"""``bench-metrics report FILE``: show a final snapshot or result summary file (SPEC §9).

Parses arguments and prints :func:`exporter.report_view.render_report` to
stdout; a file that cannot be shown is a one-line error with exit code 2. It
never writes anything.
"""

from __future__ import annotations

import argparse

from rich.console import Console

from exporter.errors import UsageError
from exporter.report_view import ReportFileError, load_report_file, render_report

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="render a final snapshot or result summary file as tables",
        description="Render final_snapshot.json or result_summary.json (SPEC §7) for a person: "
        "state and completeness, sample counts, QPS/TPS, and the exact latency quantiles.",
    )
    parser.add_argument("file", metavar="FILE", help="a final_snapshot.json or result_summary.json")
    parser.add_argument(
        "--width",
        type=int,
        default=None,
        help="render at this many columns (default: the terminal's width)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.width is not None and args.width < 40:
        raise UsageError(f"--width must be at least 40, got {args.width}")
    try:
        doc = load_report_file(args.file)
    except ReportFileError as exc:
        raise UsageError(str(exc)) from None
    Console(width=args.width).print(render_report(doc))
    return 0
