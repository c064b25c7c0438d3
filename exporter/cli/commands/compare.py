"""``bench-metrics compare BASE RUN [RUN...]``: is a difference between runs real? (issue 25)

Parses arguments, reads every run directory (:func:`registry.compare.load_run_data`),
compares each RUN with BASE (:func:`registry.compare.compare_runs`) and shows
the result: a terminal table by default (:mod:`exporter.views.compare_view`),
``--json`` for machines, ``--html FILE`` for a page of overlaid distributions
and time series (:mod:`exporter.html`). ``--fail-if`` gates turn it into a CI
check: exit 1 when some gate's whole interval lies beyond its threshold.
A missing directory, runs that cannot be compared or a malformed gate is one
line on stderr and exit 2. Heavy modules (scipy, pyarrow, matplotlib) load
only when the command runs. It writes nothing but the ``--html`` file.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from exporter.cli import args as cli_args
from exporter.cli.errors import UsageError

__all__ = ["add_parser", "run"]

_EPILOG = """\
--fail-if SERIES:STAT>THRESHOLD (or <), repeatable:
  SERIES  ttft, tpot, latency, chunk_gap, isl, osl, or qps / tps (no STAT)
  STAT    mean, p50, p90, p99
  THRESHOLD  a percentage of the base's value (+5%) or an amount (+20ms, -3)
  e.g. --fail-if 'ttft:p99>+5%' --fail-if 'qps<-10%'
  A gate fails only when the whole 95% interval of run - base lies beyond it.

exit status:
  0  compared; no --fail-if gate tripped
  1  a --fail-if gate tripped (its interval lies entirely beyond the threshold)
  2  a run cannot be read or compared, a bad gate, or a bad command line
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="compare runs with 95%% confidence intervals; gate CI with --fail-if",
        description="Compare each RUN with BASE (run output directories, merged ones too): "
        "for every series the mean, p50, p90 and p99, and QPS and tokens/s, with the "
        "difference and its 95%% confidence interval computed from the exact per-sample "
        "values. 'no detectable difference' when the interval spans 0.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("base", metavar="BASE", help="the base run's output directory")
    parser.add_argument("runs", metavar="RUN", nargs="+", help="run output directories")
    out = parser.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print the comparison as JSON")
    parser.add_argument(
        "--html",
        metavar="FILE",
        default=None,
        help="also write one self-contained page: overlaid distributions and time series",
    )
    parser.add_argument(
        "--fail-if",
        metavar="GATE",
        action="append",
        default=[],
        help="exit 1 when the interval lies beyond this threshold (see below); repeatable",
    )
    out.add_argument(
        "--width",
        type=cli_args.integer(40, 1000),
        default=None,
        help="render at this many columns (default: the terminal's width)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from registry.compare import (
        GateError,
        IncomparableRuns,
        RunDataError,
        compare_runs,
        load_run_data,
        parse_gate,
    )

    try:
        gates = [parse_gate(g) for g in args.fail_if]
    except GateError as exc:
        raise UsageError(str(exc)) from None
    try:
        base = load_run_data(args.base)
        runs = [load_run_data(r) for r in args.runs]
        comparisons = [compare_runs(base, r) for r in runs]
    except (RunDataError, IncomparableRuns) as exc:
        raise UsageError(str(exc)) from None
    tripped: list[dict[str, Any]] = []
    for c in comparisons:
        for g in gates:
            hit = g.trips(c)
            if hit is None:
                why = c.skipped.get(g.series, "no such row")
                raise UsageError(f"--fail-if {g.text!r}: {c.run} has no {g.series}: {why}")
            if hit:
                tripped.append({"gate": g.text, "run": c.run})
    if args.html:
        from exporter.html.compare_page import write_compare_page

        try:
            write_compare_page(args.html, base, runs, comparisons)
        except OSError as exc:
            raise UsageError(f"--html {args.html}: {exc.strerror or exc}") from None
    if args.json:
        doc = {
            "base": str(base.path),
            "runs": [str(r.path) for r in runs],
            "comparisons": [c.to_dict() for c in comparisons],
            "gates": [g.text for g in gates],
            "tripped": tripped,
        }
        json.dump(doc, sys.stdout, indent=2, allow_nan=False)
        sys.stdout.write("\n")
    else:
        from rich.console import Console

        from exporter.views.compare_view import render_comparison

        console = Console(width=args.width)
        for c in comparisons:
            console.print(render_comparison(c))
            console.print()
        for t in tripped:
            console.print(f"[bold red]FAIL[/] {t['gate']}: {t['run']}")
    return 1 if tripped else 0
