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
        help="a final_snapshot.json or result_summary.json",
    )
    parser.add_argument(
        "--width",
        type=cli_args.integer(40, 1000),
        default=None,
        help="render at this many columns (default: the terminal's width)",
    )
    add_verdict_arguments(parser, judging=True)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    constraints = constraints_from_args(args)
    try:
        if constraints:
            doc = judge_report_file(args.file, constraints, ruleset=args.ruleset)
        else:
            doc = load_report_file(args.file)
    except ReportFileError as exc:
        raise UsageError(str(exc)) from None
    # markup=False: a "[" in a name from the file is text, never a rich tag
    Console(width=args.width, markup=False).print(render_report(doc))
    if not constraints:
        return 0
    verdict = doc.report.get("verdict") or {}
    return 0 if verdict.get("decision") == "pass" else 1
