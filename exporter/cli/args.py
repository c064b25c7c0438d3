"""Every value the ``bench-metrics`` command line takes, checked while it is parsed (SPEC §9).

The ``type=`` functions here turn one option's text into its value or raise
:class:`argparse.ArgumentTypeError` with what is wrong; :class:`CliParser`
prints that as one line naming the flag and exits 2, before any command
runs. Every command takes its numbers, endpoints, addresses and paths from
here, so the same input gets the same answer on every command.
:class:`CliParser` also gives an unknown or missing flag the subcommand's own
usage, with the nearest known flag when there is one.

This module only reads the command line: it never opens a socket and never
creates or changes a file (a directory that does not exist yet is only
checked for whether it could be created).
"""

from __future__ import annotations

import argparse
import difflib
import math
import os
import re
import sys
import urllib.parse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from exporter.http.listen import parse_listen
from exporter.http.web_config import WebConfigError, load_web_config
from exporter.prometheus.buckets import parse_bucket_spec
from exporter.prometheus.naming import check_labels, check_namespace
from registry.mlperf.slo import parse_slo
from registry.transport.endpoint import check_endpoint

__all__ = [
    "MAX_RUN_ID_CHARS",
    "MAX_SECONDS",
    "CliParser",
    "LabelAction",
    "bind_endpoint",
    "buckets_spec",
    "connect_endpoint",
    "existing_dir",
    "fraction",
    "integer",
    "label",
    "listen_address",
    "namespace",
    "non_empty",
    "number",
    "output_dir",
    "pushgateway_url",
    "readable_file",
    "run_id",
    "seconds",
    "slo_spec",
    "web_config_file",
]

#: The longest time any option takes (~116 days): longer ones overflow asyncio's timers.
MAX_SECONDS = 10_000_000.0
#: A run id is a label value, a Pushgateway path element and a lock-file entry: keep it short.
MAX_RUN_ID_CHARS = 200

_Type = Callable[[str], Any]


def _bad(text: str) -> NoReturn:
    raise argparse.ArgumentTypeError(text)


def _named(fn: _Type, name: str) -> _Type:
    # argparse names a type in some of its own messages ("invalid <name> value")
    fn.__name__ = name
    return fn


def _show(v: float) -> str:
    return f"{int(v):,}" if v == int(v) else f"{v:g}"


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        _bad(f"expected a number, got {text!r}")


def number(
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    unit: str = "",
) -> _Type:
    """A finite float in ``[low, high]`` (``low_open``/``high_open``: that end excluded)."""
    what = "a finite number" + (f" of {unit}" if unit else "")
    bounds = []
    if low is not None:
        bounds.append(f"{'>' if low_open else '>='} {_show(low)}")
    if high is not None:
        bounds.append(f"{'<' if high_open else '<='} {_show(high)}")
    wanted = what + (" " + " and ".join(bounds) if bounds else "")

    def convert(text: str) -> float:
        v = _float(text)
        ok = math.isfinite(v)
        if ok and low is not None:
            ok = v > low if low_open else v >= low
        if ok and high is not None:
            ok = v < high if high_open else v <= high
        if not ok:
            _bad(f"must be {wanted}, got {text!r}")
        return v

    return _named(convert, "number")


def seconds(*, zero: bool = False, high: float = MAX_SECONDS) -> _Type:
    """Seconds: finite, > 0 (``zero``: >= 0), at most ``high``."""
    return number(low=0.0, low_open=not zero, high=high, unit="seconds")


_DURATION_UNITS_NS = {"ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}


def duration_ns(text: str) -> int:
    """A duration with a unit (``10s``, ``600000ms``, ``10m``, ``1h``; bare: seconds) in ns."""
    t = text.strip().lower()
    unit = next((u for u in ("ms", "s", "m", "h") if t.endswith(u)), "")
    number_text = t[: len(t) - len(unit)] if unit else t
    try:
        v = float(number_text)
    except ValueError:
        _bad(f"must be a duration such as 10s, 600000ms or 10m, got {text!r}")
    ns = v * _DURATION_UNITS_NS[unit or "s"]
    if not math.isfinite(ns) or ns < 0 or ns > MAX_SECONDS * 1e9:
        _bad(f"must be a duration from 0 to {MAX_SECONDS:g} s, got {text!r}")
    return round(ns)


def fraction(*, high_open: bool = False, low_open: bool = False) -> _Type:
    """A fraction in [0, 1] (ends excluded as asked)."""
    return number(low=0.0, high=1.0, low_open=low_open, high_open=high_open)


def integer(low: int | None = None, high: int | None = None) -> _Type:
    """A whole number in ``low..high``."""
    if low is not None and high is not None:
        wanted = f"a whole number in {low}..{high}"
    elif low is not None:
        wanted = f"a whole number >= {low}"
    elif high is not None:
        wanted = f"a whole number <= {high}"
    else:
        wanted = "a whole number"

    def convert(text: str) -> int:
        try:
            v = int(text.strip().replace("_", ""))
        except ValueError:
            _bad(f"must be {wanted}, got {text!r}")
        if (low is not None and v < low) or (high is not None and v > high):
            _bad(f"must be {wanted}, got {text!r}")
        return v

    return _named(convert, "integer")


def non_empty(text: str) -> str:
    """A string with something in it."""
    if not text.strip():
        _bad("must not be empty")
    return text


def run_id(text: str) -> str:
    """A run id: 1..200 printable characters, no whitespace at either end."""
    if not text or text != text.strip():
        _bad(f"must be non-empty with no leading or trailing space, got {text!r}")
    if len(text) > MAX_RUN_ID_CHARS:
        _bad(f"must be at most {MAX_RUN_ID_CHARS} characters, got {len(text)}")
    if not text.isprintable():
        _bad(f"must be printable characters only, got {text!r}")
    return text


def _endpoint(text: str, bind: bool) -> str:
    try:
        return check_endpoint(text, bind=bind)
    except ValueError as exc:
        _bad(str(exc))


def connect_endpoint(text: str) -> str:
    """A ZeroMQ endpoint to connect to: ``ipc://PATH`` or ``tcp://HOST:PORT`` (port 1-65535)."""
    return _endpoint(text, bind=False)


def bind_endpoint(text: str) -> str:
    """A ZeroMQ endpoint to bind: as :func:`connect_endpoint`, and port 0 or ``*`` for any."""
    return _endpoint(text, bind=True)


def listen_address(text: str) -> str:
    """``HOST:PORT`` for the HTTP server (``''`` = off; the commands parse it again)."""
    if not text:
        return text
    try:
        parse_listen(text, default_port=9464)
    except ValueError as exc:
        _bad(str(exc))
    return text


def pushgateway_url(text: str) -> str:
    """A Pushgateway address: ``http(s)://HOST[:PORT][/path]`` or ``HOST[:PORT]``."""
    if not text.strip():
        _bad("empty URL")
    full = text if "://" in text else "http://" + text
    parts = urllib.parse.urlsplit(full)
    if parts.scheme not in ("http", "https"):
        _bad(f"{text!r}: only http:// and https:// are supported")
    try:
        port = parts.port
    except ValueError:
        _bad(f"{text!r}: the port must be a number in 1-65535")
    if not parts.hostname:
        _bad(f"{text!r} has no host")
    if port is not None and not 1 <= port <= 65535:
        _bad(f"{text!r}: the port must be a number in 1-65535")
    return text


def namespace(text: str) -> str:
    """A Prometheus metric-name prefix (``''`` for none)."""
    try:
        return check_namespace(text)
    except ValueError as exc:
        _bad(str(exc).removeprefix("namespace "))


def label(text: str) -> str:
    """``KEY=VALUE`` with a Prometheus label name that the exporter does not reserve."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        _bad(f"{text!r}: expected KEY=VALUE")
    if key == "run_id":
        _bad(f"{text!r}: give the run id with --run-id")
    try:
        check_labels({key: value}, namespace="")
    except ValueError as exc:
        _bad(f"{text!r}: {exc}")
    return f"{key}={value}"


class LabelAction(argparse._AppendAction):
    """``--label K=V``, repeatable; a key given twice is an error at parse time."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        key = str(values).partition("=")[0]
        seen = getattr(namespace, self.dest, None) or []
        if any(item.partition("=")[0] == key for item in seen):
            raise argparse.ArgumentError(self, f"{values!r}: key {key!r} given twice")
        super().__call__(parser, namespace, values, option_string)


def _checked_by(parse: Callable[[str], object], flag: str, name: str) -> _Type:
    """The text unchanged once ``parse`` accepts it (the command builds the value)."""

    def check(text: str) -> str:
        try:
            parse(text)
        except ValueError as exc:
            _bad(str(exc).removeprefix(f"{flag} "))
        return text

    return _named(check, name)


#: One ``--slo SERIES:pP<=VALUE``.
slo_spec = _checked_by(parse_slo, "--slo", "slo_spec")
#: One ``--buckets SERIES=B1,B2,...``.
buckets_spec = _checked_by(parse_bucket_spec, "--buckets", "buckets_spec")


def readable_file(text: str) -> Path:
    """A file that exists and can be read."""
    p = Path(text)
    if not p.exists():
        _bad(f"{text}: no such file")
    if p.is_dir():
        _bad(f"{text}: is a directory, not a file")
    if not os.access(p, os.R_OK):
        _bad(f"{text}: not readable")
    return p


def web_config_file(text: str) -> str:
    """An exporter-toolkit web-config file that loads (checked now, loaded again at start)."""
    readable_file(text)
    try:
        load_web_config(text)
    except WebConfigError as exc:
        _bad(str(exc))
    return text


def existing_dir(text: str) -> Path:
    """A directory that exists."""
    p = Path(text)
    if not p.exists():
        _bad(f"{text}: no such directory")
    if not p.is_dir():
        _bad(f"{text}: exists and is not a directory")
    return p


def output_dir(text: str) -> Path:
    """A directory to write into: an existing writable one, or one that can be created."""
    if not text.strip():
        _bad("must not be empty")
    p = Path(text)
    if p.exists():
        if not p.is_dir():
            _bad(f"{text}: exists and is not a directory")
        if not os.access(p, os.W_OK | os.X_OK):
            _bad(f"{text}: not writable")
        return p
    parent = p.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        _bad(f"{text}: cannot be created: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        _bad(f"{text}: cannot be created: {parent} is not writable")
    return p


# -- the parser ------------------------------------------------------------------------

#: A longer usage is replaced by a short one pointing at --help (the error line must stay visible).
_MAX_USAGE_LINES = 4
_CHOICE = re.compile(r"invalid choice: '(?P<got>[^']*)' \(choose from (?P<choices>.*)\)", re.S)


def _suggestion(message: str) -> str:
    """`` (did you mean 'demo'?)`` for an invalid choice close to a valid one, else ``''``."""
    m = _CHOICE.search(message)
    if m is None:
        return ""
    choices = re.findall(r"'([^']*)'", m["choices"])
    close = difflib.get_close_matches(m["got"], choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


_ARGUMENT = re.compile(r"argument (?P<flag>[^:]+): (?P<rest>.*)", re.S)


def _one_line(message: str) -> str:
    """argparse's ``argument --x: why`` as a sentence naming the flag.

    ``--x must be …`` and ``--x 'v': why`` read on; anything else is ``--x: why``.
    """
    m = _ARGUMENT.fullmatch(message)
    if m is None:
        return message
    flag = m["flag"].split("/")[-1]
    rest = m["rest"]
    if rest.startswith(flag + " "):
        return rest
    if rest.startswith(("must ", "'")):
        return f"{flag} {rest}"
    return f"{flag}: {rest}"


class CliParser(argparse.ArgumentParser):
    """How the command line reports bad input: exit 2, and on stderr

    - a bad value: one line naming the flag (``prog: error: --interval: must be …``);
    - an unknown or missing flag, or a missing command: this (sub)command's usage,
      then the line, with the nearest known flag when one is close.
    """

    def error(self, message: str) -> NoReturn:
        if message.startswith("argument "):
            self.exit(2, f"{self.prog}: error: {_one_line(message)}{_suggestion(message)}\n")
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")

    def format_usage(self) -> str:
        """The usage line; a command with many options gets a short one and where to look."""
        usage = super().format_usage()
        if usage.count("\n") <= _MAX_USAGE_LINES:
            return usage
        positionals = [a.metavar or a.dest for a in self._actions if not a.option_strings]
        tail = "".join(f" {p}" for p in positionals if isinstance(p, str))
        return (
            f"usage: {self.prog} [-h] [OPTIONS]{tail}\n"
            f"       ('{self.prog} --help' lists every option)\n"
        )

    def unknown_arguments(self, extras: Sequence[str]) -> NoReturn:
        """Refuse ``extras`` (what no option of this parser took), suggesting a near flag."""
        message = f"unrecognized arguments: {' '.join(extras)}"
        known = [s for a in self._actions for s in a.option_strings if s.startswith("--")]
        for extra in extras:
            if extra.startswith("--"):
                close = difflib.get_close_matches(extra.partition("=")[0], known, n=1, cutoff=0.75)
                if close:
                    message += f" (did you mean {close[0]}?)"
                    break
        self.error(message)
