"""The ``bench-metrics`` command line (SPEC §9).

One subcommand per module in :mod:`exporter.commands`; each module offers
``add_parser(subparsers)`` and ``run(args) -> int``. This module only parses
and dispatches: bad input ends with a one-line message and exit code 2, and
every log line goes to stderr.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from exporter.errors import UsageError
from exporter.parent_watch import arm_from_environment

__all__ = ["COMMANDS", "UsageError", "build_parser", "main"]

COMMANDS: tuple[str, ...] = ("demo", "aggregate", "export", "watch", "report", "merge")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench-metrics",
        description="Metrics for LLM-inference benchmarks: live snapshots, exact final "
        "report, Prometheus/OpenMetrics exporter.",
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="stderr log level (default: %(default)s)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"exporter.commands.{name}").add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Started by one of our processes (demo, a bench script): end when it dies (issue 15).
    arm_from_environment()
    try:
        return int(args.run(args) or 0)
    except UsageError as exc:
        print(f"bench-metrics {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
