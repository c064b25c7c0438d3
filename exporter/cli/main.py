"""The ``bench-metrics`` command line (SPEC §9).

One subcommand per module in :mod:`exporter.cli.commands`; each module offers
``add_parser(subparsers)`` and ``run(args) -> int``. This module only parses
and dispatches: every option's value is checked while parsing
(:mod:`exporter.cli.args`), bad input ends with a one-line message and exit
code 2, an unknown flag with the subcommand's own usage, and every log line
goes to stderr. A signal that stops a command before its work is done makes
exit code 128 + its number (130 for SIGINT, 143 for SIGTERM) on every command.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from exporter.cli.args import CliParser
from exporter.cli.errors import UsageError
from exporter.cli.parent_watch import arm_from_environment
from exporter.prometheus.collector import exporter_version
from exporter.views.safe_text import terminal_safe

__all__ = ["COMMANDS", "UsageError", "build_parser", "main"]

COMMANDS: tuple[str, ...] = (
    "demo",
    "aggregate",
    "export",
    "watch",
    "report",
    "merge",
    "compare",
)


def build_parser() -> CliParser:
    parser = CliParser(
        prog="bench-metrics",
        description="Metrics for LLM-inference benchmarks: live snapshots, exact final "
        "report, Prometheus/OpenMetrics exporter.",
        epilog="'bench-metrics COMMAND --help' lists a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {exporter_version()}")
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="stderr log level (default: %(default)s)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"exporter.cli.commands.{name}").add_parser(sub)
    return parser


def parse_args(parser: CliParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse ``argv``; an unknown flag is the chosen subcommand's error, with its usage."""
    args, extras = parser.parse_known_args(argv)
    if extras:
        sub = _subparser(parser, getattr(args, "command", None))
        (sub or parser).unknown_arguments(extras)
    return args


def _subparser(parser: CliParser, command: str | None) -> CliParser | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and command in action.choices:
            found = action.choices[command]
            return found if isinstance(found, CliParser) else None
    return None


def _terminated(signum: int, frame: FrameType | None) -> None:
    # Outside a command's own handlers (start-up, a synchronous command) SIGTERM ends
    # the process as Ctrl-C does, through the finally blocks, with the shell's code.
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parse_args(parser, argv)
    except SystemExit as exc:  # --help, --version, or bad input (its message is printed)
        return exc.code if isinstance(exc.code, int) else 2
    logging.basicConfig(
        level=getattr(logging, args.log_level),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminated) if main_thread else None
    try:
        # Started by one of our processes (demo, a bench script): end when it dies (issue 15).
        arm_from_environment()
        return int(args.run(args) or 0)
    except UsageError as exc:
        # one line whatever the message quotes (a path, a run id): controls are escaped
        print(f"bench-metrics {args.command}: error: {terminal_safe(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 128 + signal.SIGINT
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
