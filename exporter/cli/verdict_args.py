"""``--ruleset``, ``--slo`` and LoadGen's validity options: the same on every command (SPEC §10).

:func:`add_verdict_arguments` adds them to a parser (also ``--scenario``,
``--min-duration``, ``--min-queries``, ``--requirements``);
:func:`constraints_from_args` and :func:`requirements_from_args` check them (a
:class:`~exporter.cli.errors.UsageError` with one line: exit 2 before anything
runs) and return the constraints and the validity requirements. What a constraint means is
:mod:`registry.mlperf.slo`'s business; this module only reads the command line.
"""

from __future__ import annotations

import argparse

from exporter.cli import args as cli_args
from exporter.cli.errors import UsageError
from registry.mlperf.requirements import (
    REQUIREMENT_SOURCES,
    SCENARIOS,
    Requirements,
    requirements_for,
)
from registry.mlperf.rulesets import RULESETS, get_ruleset
from registry.mlperf.slo import Constraint, build_constraints, parse_slo

__all__ = [
    "add_verdict_arguments",
    "constraints_from_args",
    "requirements_from_args",
    "slo_args",
]


def add_verdict_arguments(parser: argparse.ArgumentParser, *, judging: bool = False) -> None:
    """Add ``--ruleset`` and ``--slo`` (a group "MLPerf verdict") to ``parser``.

    ``judging``: the help says the command judges a finished run (``report``).
    """
    what = "judge the run's file against" if judging else "judge the run live against"
    g = parser.add_argument_group(
        "MLPerf verdict",
        f"{what} latency constraints (a ruleset: MLPerf LLM Server limits at p99; and/or "
        "SLOs) and, with a ruleset or --min-duration/--min-queries, LoadGen's validity: "
        "VALID only when performance constraints, min duration, min queries and early "
        "stopping are all satisfied (docs/validity.md)",
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
    g.add_argument(
        "--scenario",
        choices=list(SCENARIOS),
        default=None,
        help="LoadGen scenario the validity is judged in (default: server). Offline: no "
        "latency constraint; throughput, min duration and min queries only",
    )
    g.add_argument(
        "--min-duration",
        type=cli_args.duration_ns,
        default=None,
        metavar="DURATION",
        help="override the ruleset's min duration (e.g. 10s, 600000ms, 10m), as LoadGen's "
        "user.conf allows: a VALID result is then not submittable",
    )
    g.add_argument(
        "--min-queries",
        type=cli_args.integer(0),
        default=None,
        metavar="N",
        help="override the ruleset's min query count (Offline: samples); a VALID result is "
        "then not submittable",
    )
    g.add_argument(
        "--requirements",
        choices=list(REQUIREMENT_SOURCES),
        default="loadgen",
        help="where min duration and min queries come from when they disagree: loadgen "
        "(mlperf.conf and LoadGen's defaults; what mlperf_log_summary.txt judges; the "
        "default) or endpoints (upstream's rules.py: 270,336 samples)",
    )


def constraints_from_args(args: argparse.Namespace) -> tuple[Constraint, ...]:
    """The constraints ``--ruleset`` and ``--slo`` describe (empty when neither is given)."""
    if args.ruleset is not None:
        try:
            get_ruleset(args.ruleset)
        except ValueError as exc:
            raise UsageError(f"--ruleset: {exc}") from None
    # Offline has no latency constraint: the ruleset's TTFT/TPOT limits are not applied
    ruleset = args.ruleset if getattr(args, "scenario", None) != "offline" else None
    try:
        if ruleset is None and args.ruleset is not None:
            for text in args.slo:
                parse_slo(text)
        return build_constraints(ruleset, args.slo)
    except ValueError as exc:
        text = str(exc)
        raise UsageError(text if text.startswith("--") else f"--slo: {text}") from None


def requirements_from_args(args: argparse.Namespace) -> Requirements | None:
    """The validity requirements (``None``: neither a ruleset nor an override was given)."""
    md = getattr(args, "min_duration", None)
    mq = getattr(args, "min_queries", None)
    scenario = getattr(args, "scenario", None)
    if args.ruleset is None and md is None and mq is None:
        if scenario is not None:
            raise UsageError("--scenario needs --ruleset, --min-duration or --min-queries")
        return None
    try:
        return requirements_for(
            args.ruleset,
            scenario,
            getattr(args, "requirements", "loadgen"),
            min_duration_ns=md,
            min_queries=mq,
        )
    except ValueError as exc:
        raise UsageError(f"--scenario: {exc}") from None


def slo_args(args: argparse.Namespace) -> list[str]:
    """The verdict options as command-line arguments again (for a child process)."""
    out: list[str] = []
    if args.ruleset is not None:
        out += ["--ruleset", args.ruleset]
    for text in args.slo:
        out += ["--slo", text]
    if getattr(args, "scenario", None) is not None:
        out += ["--scenario", args.scenario]
    if getattr(args, "min_duration", None) is not None:
        out += ["--min-duration", f"{args.min_duration / 1e9!r}s"]
    if getattr(args, "min_queries", None) is not None:
        out += ["--min-queries", str(args.min_queries)]
    if getattr(args, "requirements", "loadgen") != "loadgen":
        out += ["--requirements", args.requirements]
    return out
