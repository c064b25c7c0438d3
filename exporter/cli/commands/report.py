"""``bench-metrics report FILE``: show, and optionally judge, a final file (SPEC §9, §10).

Parses arguments and prints :func:`exporter.views.report_view.render_report` to
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

from exporter.cli import args as cli_args
from exporter.cli.errors import UsageError
from exporter.cli.verdict_args import (
    add_verdict_arguments,
    constraints_from_args,
    requirements_from_args,
)
from exporter.views.report_view import (
    ReportFileError,
    judge_report_file,
    load_report_file,
    render_report,
)

__all__ = ["add_parser", "run"]

_EPILOG = """\
exit status:
  0  shown; with --ruleset/--slo/--min-*: the run passes every constraint and, with
     validity requirements, is VALID (an overridden requirement: valid, not submittable)
  1  with --ruleset/--slo: a latency constraint fails (performance constraints or
     early stopping), or the run is incomplete
  2  the file cannot be read, shown or judged, or a bad command line
  3  with --ruleset/--min-*: INVALID only for min duration or min queries (every
     latency constraint passes)
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="render a final snapshot or result summary file; judge it with --ruleset/--slo",
        description="Render final_snapshot.json or result_summary.json (SPEC §7) for a person: "
        "state and completeness, sample counts, QPS/TPS, the exact latency quantiles and the "
        "verdict. With --ruleset the run is judged as MLPerf LoadGen judges it (VALID only when "
        "performance constraints, min duration, min queries and early stopping are all "
        "satisfied; Server or Offline); with --slo on those latency constraints. The exit "
        "status says which (below).",
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


#: ``report --ruleset``'s exit status for a judged run (the epilog documents them)
EXIT_PASS, EXIT_FAIL, EXIT_INVALID = 0, 1, 3


def report_path(text: str) -> Path:
    """FILE, or the final file inside the directory FILE (the snapshot, else the summary)."""
    p = Path(text)
    if p.is_dir():
        from registry.delivery.final_source import FINAL_SNAPSHOT_NAME
        from registry.report.summary import REPORT_NAME

        for name in (FINAL_SNAPSHOT_NAME, REPORT_NAME):
            if (p / name).is_file():
                return p / name
        raise UsageError(f"{p}: a directory with no {FINAL_SNAPSHOT_NAME} or {REPORT_NAME}")
    return p


def run(args: argparse.Namespace) -> int:
    constraints = constraints_from_args(args)
    requirements = requirements_from_args(args)
    judging = bool(constraints) or requirements is not None
    path = report_path(args.file)
    try:
        if judging:
            doc = judge_report_file(
                path, constraints, ruleset=args.ruleset, requirements=requirements
            )
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
    # markup=False: a "[" in a name from the file is text, never a rich tag
    Console(width=args.width, markup=False).print(render_report(doc))
    if not judging:
        return EXIT_PASS
    return exit_status(doc.report.get("verdict") or {})


def exit_status(verdict: dict[str, object]) -> int:
    """0 pass (VALID), 3 INVALID only for min duration/min queries, 1 any other failure."""
    if verdict.get("decision") == "pass":
        return EXIT_PASS
    if verdict.get("state") == "invalid" and verdict.get("complete") is True:
        return EXIT_INVALID
    return EXIT_FAIL
