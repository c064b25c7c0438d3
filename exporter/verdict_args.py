"""``--ruleset NAME`` and ``--slo SERIES:pP<=VALUE``: the same options on every command (SPEC §10).

:func:`add_verdict_arguments` adds them to a parser; :func:`constraints_from_args`
checks them (a :class:`~exporter.errors.UsageError` with one line: exit 2
before anything runs) and returns the constraints. What a constraint means is
:mod:`registry.mlperf.slo`'s business; this module only reads the command line.
"""

from __future__ import annotations

import argparse

from exporter import cli_args
from exporter.errors import UsageError
from registry.mlperf.rulesets import RULESETS, get_ruleset
from registry.mlperf.slo import Constraint, build_constraints

__all__ = ["add_verdict_arguments", "constraints_from_args", "slo_args"]


def add_verdict_arguments(parser: argparse.ArgumentParser, *, judging: bool = False) -> None:
    """Add ``--ruleset`` and ``--slo`` (a group "MLPerf verdict") to ``parser``.

    ``judging``: the help says the command judges a finished run (``report``).
    """
    what = "judge the run's file against" if judging else "judge the run live against"
    g = parser.add_argument_group(
        "MLPerf verdict",
        f"{what} latency constraints: a ruleset (MLPerf LLM Server limits at p99) and/or SLOs",
    )
    g.add_argument(
        "--ruleset",
        default=None,
        choices=list(RULESETS),
        metavar="NAME",
        help="the MLPerf inference LLM Server constraints of NAME (TTFT and TPOT at p99): "
        + ", ".join(RULESETS),
    )
    g.add_argument(
        "--slo",
        type=cli_args.slo_spec,
        action="append",
        default=[],
        metavar="SERIES:pP<=VALUE",
        help="a latency constraint, e.g. ttft:p99<=500ms or latency:p90<=2.5s (series ttft, "
        "tpot, latency; units s, ms, us; repeatable)",
    )


def constraints_from_args(args: argparse.Namespace) -> tuple[Constraint, ...]:
    """The constraints ``--ruleset`` and ``--slo`` describe (empty when neither is given)."""
    if args.ruleset is not None:
        try:
            get_ruleset(args.ruleset)
        except ValueError as exc:
            raise UsageError(f"--ruleset: {exc}") from None
    try:
        return build_constraints(args.ruleset, args.slo)
    except ValueError as exc:
        text = str(exc)
        raise UsageError(text if text.startswith("--") else f"--slo: {text}") from None


def slo_args(args: argparse.Namespace) -> list[str]:
    """The verdict options as command-line arguments again (for a child process)."""
    out: list[str] = []
    if args.ruleset is not None:
        out += ["--ruleset", args.ruleset]
    for text in args.slo:
        out += ["--slo", text]
    return out
