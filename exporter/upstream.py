"""``python -m exporter.upstream ARGS``: our aggregator under mlcommons/endpoints' command line.

Upstream's benchmark starts its metrics aggregator as ``python -m
inference_endpoint.async_utils.services.metrics_aggregator --socket-dir …``
(the module name is ``_AGGREGATOR_MODULE`` in its
``commands/benchmark/pipeline.py``). Pointing that name at this module runs
``bench-metrics aggregate`` with the same arguments, upstream's defaults and
readiness protocol (see the README's compatibility section).

Upstream's launcher builds the argument list itself, so the options it cannot
pass come from the environment:

- ``BENCH_METRICS_<OPTION>``: one ``aggregate`` option (or ``--log-level``), its
  long name upper-cased with ``-`` as ``_`` (``BENCH_METRICS_LISTEN=127.0.0.1:9464``
  is ``--listen 127.0.0.1:9464``); a switch takes ``1/true/yes/on`` or
  ``0/false/no/off``; a repeatable option takes one value here.
- ``BENCH_METRICS_ARGS``: further arguments, split as a POSIX shell would
  (repeated options, several labels or SLOs).

Each value is checked as the command line checks it; a bad one, or a variable
naming no option, is one line on stderr naming the variable and exit 2. In
this mode ``--linger`` defaults to 0, so serving ``/metrics`` never delays
upstream's shutdown, and our Report is written as
:data:`~registry.report.UPSTREAM_MODE_REPORT_NAME` so it cannot be mistaken for
the ``result_summary.json`` upstream writes under ``performance/`` (that
name follows ``--metrics-output-dir``, upstream's flag, whoever launches).

This module only turns the environment into arguments and forwards; it never
parses more than ``aggregate`` does.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Mapping, Sequence

from exporter.cli.parent_watch import PARENT_PID_ENV
from registry.delivery.run_lock import INHERITED_LOCK_ENV

__all__ = ["ARGS_ENV", "ENV_PREFIX", "EnvOptionError", "arguments_from_environment", "main"]

ENV_PREFIX = "BENCH_METRICS_"
ARGS_ENV = ENV_PREFIX + "ARGS"
#: Variables our own processes set for their children: never options.
_INTERNAL = frozenset({PARENT_PID_ENV, INHERITED_LOCK_ENV})
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


class EnvOptionError(ValueError):
    """A ``BENCH_METRICS_*`` variable that cannot be used (the message names it)."""


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    out: dict[str, argparse.Action] = {}
    for action in parser._actions:
        for flag in action.option_strings:
            if flag.startswith("--") and flag not in ("--help",):
                out[ENV_PREFIX + flag[2:].upper().replace("-", "_")] = action
    return out


def _flag(action: argparse.Action) -> str:
    return next(s for s in action.option_strings if s.startswith("--"))


def _check_value(var: str, action: argparse.Action, value: str) -> None:
    """Check ``value`` as parsing would (the option's type and choices)."""
    convert = action.type
    try:
        converted = convert(value) if callable(convert) else value
    except (ValueError, TypeError, argparse.ArgumentTypeError) as exc:
        raise EnvOptionError(f"{var}={value!r}: {' '.join(str(exc).split())}") from None
    if action.choices is not None and converted not in action.choices:
        choices = ", ".join(map(str, action.choices))
        raise EnvOptionError(f"{var}={value!r}: choose from {choices}")


def arguments_from_environment(
    parser: argparse.ArgumentParser,
    environ: Mapping[str, str],
    top: argparse.ArgumentParser | None = None,
) -> tuple[list[str], list[str]]:
    """The arguments the ``BENCH_METRICS_*`` variables of ``environ`` give: those for
    ``top`` (the program's own options, e.g. ``--log-level``) and those for ``parser``
    (the ``aggregate`` subcommand).

    :class:`EnvOptionError` for a variable that names no option or holds a bad value.
    """
    options = _options(parser)
    top_options = _options(top) if top is not None else {}
    for var in ("BENCH_METRICS_VERSION",):
        top_options.pop(var, None)
    top_argv: list[str] = []
    argv: list[str] = []
    for var in sorted(environ):
        if not var.startswith(ENV_PREFIX) or var == ARGS_ENV or var in _INTERNAL:
            continue
        value = environ[var]
        action = options.get(var)
        out = argv
        if action is None and var in top_options:
            action, out = top_options[var], top_argv
        if action is None:
            raise EnvOptionError(
                f"{var}: no 'aggregate' option --{var[len(ENV_PREFIX) :].lower().replace('_', '-')}"
                " (see 'bench-metrics aggregate --help')"
            )
        flag = _flag(action)
        if action.nargs == 0:  # a switch
            word = value.strip().lower()
            if word in _TRUE:
                out.append(flag)
            elif word not in _FALSE:
                raise EnvOptionError(
                    f"{var}={value!r}: a switch takes 1/true/yes/on or 0/false/no/off"
                )
            continue
        _check_value(var, action, value)
        out += [flag, value]
    extra = environ.get(ARGS_ENV)
    if extra:
        try:
            argv += shlex.split(extra)
        except ValueError as exc:
            raise EnvOptionError(f"{ARGS_ENV}: cannot split {extra!r}: {exc}") from None
    return top_argv, argv


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Run ``aggregate`` with upstream's arguments plus the environment's."""
    from exporter.cli.main import _subparser, build_parser
    from exporter.cli.main import main as cli_main

    args = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    sub = _subparser(parser, "aggregate")
    assert sub is not None
    try:
        top, extra = arguments_from_environment(
            sub, os.environ if environ is None else environ, parser
        )
    except EnvOptionError as exc:
        print(f"bench-metrics aggregate: error: {exc}", file=sys.stderr)
        return 2
    # Serving the final values after the run would hold upstream's benchmark, which
    # waits for this process: no linger unless asked for.
    if "--linger" not in extra:
        extra += ["--linger", "0"]
    return cli_main([*top, "aggregate", *args, *extra])


if __name__ == "__main__":
    sys.exit(main())
