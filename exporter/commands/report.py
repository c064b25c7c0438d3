"""``bench-metrics report FILE``: show, and optionally judge, a final file (SPEC §9, §10).

Parses arguments and prints :func:`exporter.report_view.render_report` to
stdout. Without ``--ruleset``/``--slo`` it only shows the file (its verdict
too, when the run had constraints) and exits 0. With them it judges the file
against exactly those constraints (:func:`registry.report.build_report`) and
exits 0 when the run passes, 1 when it fails (an incomplete run never
passes). A file that cannot be shown, or judged, is a one-line error with exit
code 2. It never writes anything.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from exporter import cli_args
from exporter.errors import UsageError
from exporter.report_view import ReportFileError, judge_report_file, load_report_file, render_report
from exporter.verdict_args import add_verdict_arguments, constraints_from_args

__all__ = ["add_parser", "run"]

_EPILOG = """\
exit status:
  0  shown; with --ruleset/--slo: the run passes every constraint
  1  with --ruleset/--slo: the run fails a constraint, or is incomplete
  2  the file cannot be read, shown or judged, or a bad command line
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="render a final snapshot or result summary file; judge it with --ruleset/--slo",
        description="Render final_snapshot.json or result_summary.json (SPEC §7) for a person: "
        "state and completeness, sample counts, QPS/TPS, the exact latency quantiles and the "
        "verdict. With --ruleset or --slo the run is judged as MLPerf LoadGen's Server scenario "
        "judges it and the exit status says pass (0) or fail (1).",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # FILE is read (and every problem with it reported in one line) by run()
    parser.add_argument(
        "file",
        metavar="FILE",
        help="a final_snapshot.json or result_summary.json, or the run directory holding it",
    )
    parser.add_argument(
        "--html",
        metavar="OUT",
        default=None,
        help="also write one self-contained HTML page of the run (charts from its exact "
        "per-sample data; opens offline)",
    )
    parser.add_argument(
        "--width",
        type=cli_args.integer(40, 1000),
        default=None,
        help="render at this many columns (default: the terminal's width)",
    )
    add_verdict_arguments(parser, judging=True)
    parser.set_defaults(run=run)


def report_path(text: str) -> Path:
    """FILE, or the final file inside the directory FILE (the snapshot, else the summary)."""
    p = Path(text)
    if p.is_dir():
        from registry.final_source import FINAL_SNAPSHOT_NAME
        from registry.report import REPORT_NAME

        for name in (FINAL_SNAPSHOT_NAME, REPORT_NAME):
            if (p / name).is_file():
                return p / name
        raise UsageError(f"{p}: a directory with no {FINAL_SNAPSHOT_NAME} or {REPORT_NAME}")
    return p


def run(args: argparse.Namespace) -> int:
    constraints = constraints_from_args(args)
    path = report_path(args.file)
    try:
        if constraints:
            doc = judge_report_file(path, constraints, ruleset=args.ruleset)
        else:
            doc = load_report_file(path)
    except ReportFileError as exc:
        raise UsageError(str(exc)) from None
    if args.html:
        from exporter.html.report_page import write_report_html

        try:
            write_report_html(args.html, doc)
        except OSError as exc:
            raise UsageError(f"--html {args.html}: {exc.strerror or exc}") from None
    Console(width=args.width).print(render_report(doc))
    if not constraints:
        return 0
    verdict = doc.report.get("verdict") or {}
    return 0 if verdict.get("decision") == "pass" else 1
