"""The Prometheus mirror's command-line options: added to a parser, checked, bound.

Every command that can serve ``/metrics`` (``export``, and ``aggregate`` /
``demo`` through ``--listen``) adds the same options with
:func:`add_exporter_arguments` and checks them with :func:`exporter_options`
(``UsageError`` with one line). This module is apart from
:mod:`exporter.prometheus.mirror`, which runs the mirror, so that building the command
line never imports the HTTP server (aiohttp); it never serves anything.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from exporter.cli import args as cli_args
from exporter.cli.errors import UsageError
from exporter.http.listen import bind_socket, parse_listen
from exporter.http.web_config import WebConfig, WebConfigError, load_web_config
from exporter.prometheus.buckets import parse_bucket_spec
from exporter.prometheus.collector import DEFAULT_STALE_AFTER
from exporter.prometheus.pushgateway import DEFAULT_PUSH_JOB

__all__ = [
    "DEFAULT_LISTEN",
    "DEFAULT_PORT",
    "ExporterOptions",
    "add_exporter_arguments",
    "check_listen_free",
    "exporter_options",
    "parse_label_args",
]

DEFAULT_LISTEN = "127.0.0.1:9464"
DEFAULT_PORT = 9464


@dataclass(frozen=True)
class ExporterOptions:
    """Checked exporter options. ``listen`` is ``None`` when no server is wanted."""

    listen: tuple[str, int] | None
    web_config: WebConfig
    linger: float
    pushgateway: str | None
    push_job: str
    namespace: str
    stale_after: float
    #: fixed bucket bounds replacing a series' table (registry series → native units)
    buckets: Mapping[str, tuple[int, ...]] = field(default_factory=dict)


def add_exporter_arguments(
    parser: argparse.ArgumentParser,
    *,
    listen_default: str | None,
    linger_default: float,
    with_labels: bool = True,
) -> None:
    """Add the exporter options (a group ``Prometheus exporter``) to ``parser``.

    ``listen_default`` ``None`` means the server is off unless ``--listen`` is given.
    ``with_labels`` adds ``--label K=V``. Every value is checked while parsing
    (:mod:`exporter.cli.args`).
    """
    g = parser.add_argument_group("Prometheus exporter")
    shown = listen_default or "off"
    g.add_argument(
        "--listen",
        type=cli_args.listen_address,
        default=listen_default,
        metavar="HOST:PORT",
        help=f"serve /metrics, /healthz and / on this address (default: {shown}; "
        "HOST defaults to 127.0.0.1, [::1]:PORT for IPv6, port 0 picks a free one)",
    )
    g.add_argument(
        "--web-config",
        type=cli_args.web_config_file,
        default=None,
        metavar="FILE",
        help="YAML in the Prometheus exporter-toolkit format: tls_server_config "
        "(cert_file, key_file) and basic_auth_users (bcrypt hashes)",
    )
    g.add_argument(
        "--linger",
        type=cli_args.seconds(zero=True),
        default=linger_default,
        metavar="S",
        help="after the final snapshot, keep serving its exact values this many seconds "
        "(default: %(default)g)",
    )
    g.add_argument(
        "--pushgateway",
        type=cli_args.pushgateway_url,
        default=None,
        metavar="URL",
        help="push the final values once to this Pushgateway (grouping key job + run_id)",
    )
    g.add_argument(
        "--push-job",
        type=cli_args.non_empty,
        default=DEFAULT_PUSH_JOB,
        metavar="JOB",
        help="the job of the Pushgateway grouping key (default: %(default)s)",
    )
    g.add_argument(
        "--namespace",
        type=cli_args.namespace,
        default="bench",
        metavar="NS",
        help="metric name prefix (default: %(default)s)",
    )
    g.add_argument(
        "--stale-after",
        type=cli_args.seconds(),
        default=DEFAULT_STALE_AFTER,
        metavar="S",
        help="a live view older than this counts as stale: <ns>_exporter_up 0 "
        "(default: %(default)g)",
    )
    g.add_argument(
        "--buckets",
        type=cli_args.buckets_spec,
        action="append",
        default=[],
        metavar="SERIES=B1,B2,...",
        help="replace the fixed histogram bounds of a series (ttft, tpot, latency, chunk_delta "
        "in seconds, or with a unit per bound: 1ms,5ms,0.1s; isl, osl in tokens); constraint "
        "limits are always bounds too (repeatable)",
    )
    if with_labels:
        g.add_argument(
            "--label",
            type=cli_args.label,
            action=cli_args.LabelAction,
            default=[],
            metavar="K=V",
            help="a run label put on every exported sample, e.g. model=llama-3-8b "
            "(repeatable; the run id has its own --run-id)",
        )


def parse_label_args(items: Iterable[str]) -> dict[str, str]:
    """``["k=v", …]`` → ``{k: v}``; ``UsageError`` naming the first malformed or repeated one.

    Keys must be Prometheus label names (letters, digits, ``_``; no leading digit),
    since every label ends up on the exported samples.
    """
    labels: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"--label {item!r}: expected KEY=VALUE")
        if not (key[0].isalpha() or key[0] == "_") or not key.replace("_", "a").isalnum():
            raise UsageError(f"--label {item!r}: key must be letters, digits and _")
        if key in labels:
            raise UsageError(f"--label {item!r}: key {key!r} given twice")
        labels[key] = value
    return labels


def exporter_options(args: argparse.Namespace) -> ExporterOptions:
    """Check the options :func:`add_exporter_arguments` added (``UsageError`` if bad)."""
    listen = None
    if args.listen:
        try:
            listen = parse_listen(args.listen, default_port=DEFAULT_PORT)
        except ValueError as exc:
            raise UsageError(f"--listen: {exc}") from None
    web_config = WebConfig()
    if args.web_config:
        try:
            web_config = load_web_config(args.web_config)
        except WebConfigError as exc:
            raise UsageError(str(exc)) from None
    if not args.linger >= 0:
        raise UsageError(f"--linger must be >= 0 seconds, got {args.linger:g}")
    if not args.stale_after > 0:
        raise UsageError(f"--stale-after must be > 0 seconds, got {args.stale_after:g}")
    if args.pushgateway is not None and not args.pushgateway.strip():
        raise UsageError("--pushgateway: empty URL")
    if not args.push_job:
        raise UsageError("--push-job: empty job name")
    buckets: dict[str, tuple[int, ...]] = {}
    for spec in getattr(args, "buckets", None) or []:
        try:
            series, bounds = parse_bucket_spec(spec)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        if series in buckets:
            raise UsageError(f"--buckets {spec!r}: {series} given twice")
        buckets[series] = bounds
    return ExporterOptions(
        listen=listen,
        web_config=web_config,
        linger=float(args.linger),
        pushgateway=args.pushgateway,
        push_job=args.push_job,
        namespace=args.namespace,
        stale_after=float(args.stale_after),
        buckets=buckets,
    )


def check_listen_free(listen: tuple[str, int] | None) -> None:
    """``UsageError`` when ``listen`` cannot be bound now (for commands that hand it to a child)."""
    if listen is None:
        return
    host, port = listen
    try:
        bind_socket(host, port).close()
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
