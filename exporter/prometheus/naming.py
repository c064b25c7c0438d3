"""Registry names → Prometheus family names, types, units and labels (SPEC §8).

This is the one table of the metric catalogue: every exported name is decided
here and nowhere else. It only maps names; it never sees a value and never
builds a metric object. Everything it returns is immutable, so a plan can be
cached and shared by concurrent scrapes.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from registry.mlperf.verdict_counters import is_verdict_counter

__all__ = [
    "RESERVED_LABELS",
    "CounterPlan",
    "FamilyPlan",
    "SeriesPlan",
    "VerdictNames",
    "check_labels",
    "check_namespace",
    "plan_families",
    "quantile_label",
    "verdict_names",
]

_NAME_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_LABEL_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_INVALID_CHARS = re.compile(r"[^a-zA-Z0-9_]")

#: Seconds per nanosecond is applied as a division: exact integers below 2**53
#: divided by 1e9 give the correctly rounded decimal (0.0015, not 0.0015000000000000002).
NS_PER_SECOND = 1e9

#: Label names the exporter sets itself; a run label may not reuse them. ``run_id``
#: names the run: it is given as the run id, never as one label among others (a label
#: that could replace it would file one run's numbers under another's name).
RESERVED_LABELS: frozenset[str] = frozenset(
    {
        "run_id",
        "le",
        "quantile",
        "window",
        "reason",
        "version",
        "job",
        "instance",
        "constraint",
        "series",
    }
)

# Suffixes that prometheus_client and the OpenMetrics parser attach per type;
# two families clash when any of their sample names coincide.
_TYPE_SUFFIXES: dict[str, tuple[str, ...]] = {
    "counter": ("_total", "_created"),
    "gauge": (),
    "summary": ("_sum", "_count", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "stateset": (),
    "info": ("_info",),
}


@dataclass(frozen=True)
class CounterPlan:
    """How one registry counter is exported.

    ``family`` is the family name without the ``_total`` suffix (prometheus_client
    adds it for counters). ``labels`` are the extra labels that tell related
    counters of one family apart. ``divisor`` converts to the exported unit.
    """

    registry_name: str
    family: str
    kind: str  # "counter" or "gauge"
    unit: str
    labels: tuple[tuple[str, str], ...]
    divisor: float
    help: str


@dataclass(frozen=True)
class SeriesPlan:
    """How one registry series is exported: a classic histogram and a summary."""

    registry_name: str
    histogram: str
    summary: str
    unit: str
    divisor: float
    help: str


@dataclass(frozen=True)
class FamilyPlan:
    """Every registry metric of one snapshot layout, planned once and cached.

    ``skipped`` names registry metrics left out because their family name would
    clash with one already planned (the message says with what).
    """

    counters: tuple[CounterPlan, ...]
    series: tuple[SeriesPlan, ...]
    skipped: tuple[tuple[str, str], ...]


# -- the catalogue ------------------------------------------------------------

_WINDOWED = {
    "samples_issued": "Samples issued to the endpoint.",
    "samples_completed": "Samples completed successfully.",
    "samples_failed": "Samples that failed (an error event arrived while in flight).",
}

_FINISH_REASONS = ("stop", "length", "tool_calls", "content_filter", "function_call", "other")


def _known_counters() -> dict[str, tuple[str, str, str, tuple[tuple[str, str], ...], float, str]]:
    """registry name → (family, kind, unit, labels, divisor, help)."""
    table: dict[str, tuple[str, str, str, tuple[tuple[str, str], ...], float, str]] = {}
    for base, text in _WINDOWED.items():
        table[f"total_{base}"] = (base, "counter", "", (("window", "all"),), 1.0, text)
        table[f"tracked_{base}"] = (base, "counter", "", (("window", "tracked"),), 1.0, text)
    for reason in _FINISH_REASONS:
        table[f"tracked_finish_reason_{reason}"] = (
            "finish_reason",
            "counter",
            "",
            (("reason", reason),),
            1.0,
            "Successful tracked completions by finish_reason.",
        )
    table["tracked_output_tokens"] = (
        "output_tokens",
        "counter",
        "",
        (("window", "tracked"),),
        1.0,
        "Output tokens of successful tracked samples.",
    )
    table["tracked_duration_ns"] = (
        "tracked_duration_seconds",
        "gauge",
        "seconds",
        (),
        NS_PER_SECOND,
        "Tracked duration: start of tracking to the last tracked completion, summed over "
        "tracking windows.",
    )
    table["total_duration_ns"] = (
        "total_duration_seconds",
        "gauge",
        "seconds",
        (),
        NS_PER_SECOND,
        "Total duration: first event to latest event.",
    )
    return table


_KNOWN_COUNTERS = _known_counters()

#: registry series name → (base, unit, divisor, help)
_KNOWN_SERIES: dict[str, tuple[str, str, float, str]] = {
    "ttft_ns": ("ttft", "seconds", NS_PER_SECOND, "Time to first token."),
    "tpot_ns": ("tpot", "seconds", NS_PER_SECOND, "Time per output token after the first."),
    "sample_latency_ns": (
        "sample_latency",
        "seconds",
        NS_PER_SECOND,
        "Sample latency: issue to completion.",
    ),
    "chunk_delta_ns": (
        "chunk_delta",
        "seconds",
        NS_PER_SECOND,
        "Gap between consecutive received chunks.",
    ),
    "isl": ("isl", "tokens", 1.0, "Input sequence length."),
    "osl": ("osl", "tokens", 1.0, "Output sequence length."),
}

#: The summary of series ``x`` is ``<ns>_x_<SUMMARY_INFIX>_<unit>``. The catalogue's
#: "summary" infix makes promtool report "metric name should not include type
#: 'summary'", so the exported names use "quantiles" instead.
SUMMARY_INFIX = "quantiles"


# -- helpers ------------------------------------------------------------------


def check_namespace(namespace: str) -> str:
    """``namespace`` if usable as a name prefix ("" means none), else ``ValueError``."""
    if namespace and not _NAME_RE.match(namespace):
        raise ValueError(
            f"namespace {namespace!r} is not a valid Prometheus name ([a-zA-Z_][a-zA-Z0-9_]*)"
        )
    return namespace


def check_labels(labels: Mapping[str, str], *, namespace: str) -> dict[str, str]:
    """Validate run labels: names legal and not reserved, values strings (``ValueError``)."""
    out: dict[str, str] = {}
    state_labels = {
        _join(namespace, n)
        for n in ("session_state", "verdict_state", "constraint_state", "validity_state")
    }
    for key, value in labels.items():
        if not isinstance(key, str) or not _LABEL_RE.match(key) or key.startswith("__"):
            raise ValueError(
                f"label name {key!r} is not valid ([a-zA-Z_][a-zA-Z0-9_]*, no leading '__')"
            )
        if key in RESERVED_LABELS or key in state_labels:
            raise ValueError(f"label name {key!r} is reserved by the exporter")
        if not isinstance(value, str):
            raise ValueError(f"label {key!r}: value must be a str, got {type(value).__name__}")
        out[key] = value
    return out


#: Longest quantile label text served (a grid key has a handful of digits).
_MAX_QUANTILE_LABEL = 40


@functools.lru_cache(maxsize=256)  # a few grid keys, looked up on every snapshot and scrape
def quantile_label(percentile_key: str) -> str:
    """Wire key ``"99.9"`` → label value ``"0.999"`` (exact decimal, no float noise).

    ``ValueError`` unless the key is a finite number in [0, 100]: OpenMetrics
    requires a quantile in [0, 1], and one bad label fails the whole scrape.
    """
    try:
        percent = Decimal(percentile_key)
    except (InvalidOperation, TypeError, ValueError) as exc:
        raise ValueError(f"percentile key {percentile_key!r} is not a number") from exc
    if not percent.is_finite() or not 0 <= percent <= 100:
        raise ValueError(f"percentile key {percentile_key!r} is not a number in [0, 100]")
    label = format((abs(percent) / 100).normalize(), "f")  # abs: "-0" is 0
    if len(label) > _MAX_QUANTILE_LABEL:  # "1e-999999" would be a megabyte of zeros
        raise ValueError(f"percentile key {str(percentile_key)[:20]!r}... is too long")
    return label


def _join(namespace: str, name: str) -> str:
    return f"{namespace}_{name}" if namespace else name


def _sanitise(name: str) -> str:
    """A registry name as a snake_case name fragment."""
    cleaned = _INVALID_CHARS.sub("_", name).lower()
    return cleaned or "_"


def _strip_suffix(name: str, suffix: str) -> str:
    return name[: -len(suffix)] if name.endswith(suffix) and name != suffix else name


def _counter_plan(name: str, *, namespace: str, as_gauge: bool) -> CounterPlan:
    known = _KNOWN_COUNTERS.get(name)
    if known is not None:
        family, kind, unit, labels, divisor, text = known
        if as_gauge and kind == "counter":
            kind = "gauge"
        return CounterPlan(name, _join(namespace, family), kind, unit, labels, divisor, text)
    base = _sanitise(name)
    if base.endswith("_ns"):
        base = _strip_suffix(base, "_ns") + "_seconds"
        return CounterPlan(
            name,
            _join(namespace, base),
            "gauge",
            "seconds",
            (),
            NS_PER_SECOND,
            f"Registry counter {name!r} (nanoseconds, exported in seconds).",
        )
    base = _strip_suffix(base, "_total")
    kind = "gauge" if as_gauge else "counter"
    text = f"Registry counter {name!r}."
    return CounterPlan(name, _join(namespace, base), kind, "", (), 1.0, text)


def _series_plan(name: str, *, namespace: str) -> SeriesPlan:
    known = _KNOWN_SERIES.get(name)
    if known is not None:
        base, unit, divisor, text = known
    else:
        base = _sanitise(name)
        if base.endswith("_ns"):
            base, unit, divisor = _strip_suffix(base, "_ns"), "seconds", NS_PER_SECOND
            text = f"Registry series {name!r} (nanoseconds, exported in seconds)."
        else:
            unit, divisor, text = "", 1.0, f"Registry series {name!r}."
    tail = f"_{unit}" if unit else ""
    return SeriesPlan(
        name,
        histogram=_join(namespace, f"{base}{tail}"),
        summary=_join(namespace, f"{base}_{SUMMARY_INFIX}{tail}"),
        unit=unit,
        divisor=divisor,
        help=text,
    )


def _sample_names(family: str, kind: str) -> set[str]:
    return {family, *(family + s for s in _TYPE_SUFFIXES[kind])}


@dataclass(frozen=True)
class VerdictNames:
    """The families of the verdict counters (SPEC §10; registry.mlperf.verdict_counters).

    Per constraint families carry ``constraint`` (its key, ``ttft_p99``) and
    ``series`` (the series' exported stem, ``ttft``) labels.
    """

    good_samples: str  # counter: succeeded within every limit
    good_output_tokens: str  # counter
    goodput: str  # gauge: good samples / tracked duration, per second
    token_goodput: str  # gauge: good output tokens / tracked duration, per second
    verdict_state: str  # stateset of the run
    constraint_samples: str  # counter: samples judged (n)
    constraint_violations: str  # counter: samples over the limit (t)
    constraint_queries_needed: str  # gauge: max(0, h(t) + t - n)
    constraint_limit: str  # gauge, seconds
    constraint_target: str  # gauge: the percentile as a ratio (0.99)
    constraint_state: str  # stateset per constraint
    # LoadGen's validity (SPEC §10), when the run has requirements
    validity_state: str  # stateset: pending, on_track, failing, valid, invalid
    validity_reason: str  # gauge per ``reason``: 1 satisfied, 0 not (absent: n/a)
    validity_submittable: str  # gauge: 1 when a VALID result could be submitted
    validity_duration: str  # gauge, seconds: the scenario's duration figure
    validity_min_duration: str  # gauge, seconds: its requirement
    validity_duration_needed: str  # gauge, seconds
    validity_queries: str  # gauge: queries issued (Offline: samples)
    validity_min_queries: str  # gauge: its requirement
    validity_queries_needed: str  # gauge: the larger of min queries and early stopping
    validity_eta: str  # gauge, seconds: NaN when unknown or nothing is needed

    def families(self) -> dict[str, str]:
        """name → type, as :func:`fixed_families` lists them."""
        return {
            self.good_samples: "counter",
            self.good_output_tokens: "counter",
            self.goodput: "gauge",
            self.token_goodput: "gauge",
            self.verdict_state: "stateset",
            self.constraint_samples: "counter",
            self.constraint_violations: "counter",
            self.constraint_queries_needed: "gauge",
            self.constraint_limit: "gauge",
            self.constraint_target: "gauge",
            self.constraint_state: "stateset",
            self.validity_state: "stateset",
            self.validity_reason: "gauge",
            self.validity_submittable: "gauge",
            self.validity_duration: "gauge",
            self.validity_min_duration: "gauge",
            self.validity_duration_needed: "gauge",
            self.validity_queries: "gauge",
            self.validity_min_queries: "gauge",
            self.validity_queries_needed: "gauge",
            self.validity_eta: "gauge",
        }


def verdict_names(namespace: str) -> VerdictNames:
    """The verdict families' names under ``namespace`` (counters without ``_total``)."""
    return VerdictNames(
        good_samples=_join(namespace, "good_samples"),
        good_output_tokens=_join(namespace, "good_output_tokens"),
        goodput=_join(namespace, "goodput_samples_per_second"),
        token_goodput=_join(namespace, "goodput_tokens_per_second"),
        verdict_state=_join(namespace, "verdict_state"),
        constraint_samples=_join(namespace, "constraint_samples"),
        constraint_violations=_join(namespace, "constraint_violations"),
        constraint_queries_needed=_join(namespace, "constraint_queries_needed"),
        constraint_limit=_join(namespace, "constraint_limit_seconds"),
        constraint_target=_join(namespace, "constraint_target_ratio"),
        constraint_state=_join(namespace, "constraint_state"),
        validity_state=_join(namespace, "validity_state"),
        validity_reason=_join(namespace, "validity_reason"),
        validity_submittable=_join(namespace, "validity_submittable"),
        validity_duration=_join(namespace, "validity_duration_seconds"),
        validity_min_duration=_join(namespace, "validity_min_duration_seconds"),
        validity_duration_needed=_join(namespace, "validity_duration_needed_seconds"),
        validity_queries=_join(namespace, "validity_queries"),
        validity_min_queries=_join(namespace, "validity_min_queries"),
        validity_queries_needed=_join(namespace, "validity_queries_needed"),
        validity_eta=_join(namespace, "validity_eta_seconds"),
    )


def fixed_families(namespace: str) -> dict[str, str]:
    """The exporter's own families (name → type); registry metrics may not clash with them."""
    return {
        **verdict_names(namespace).families(),
        _join(namespace, "session_state"): "stateset",
        _join(namespace, "pending_tasks"): "gauge",
        _join(namespace, "run"): "info",
        _join(namespace, "exporter_last_snapshot_age_seconds"): "gauge",
        _join(namespace, "exporter_snapshot_sequence"): "gauge",
        _join(namespace, "exporter_snapshots_received"): "counter",
        _join(namespace, "exporter_decode_errors"): "counter",
        _join(namespace, "exporter_dropped"): "counter",
        _join(namespace, "exporter_up"): "gauge",
    }


def plan_families(
    counter_names: Iterable[str],
    series_names: Iterable[str],
    *,
    namespace: str,
    gauges: frozenset[str] = frozenset(),
) -> FamilyPlan:
    """Plan every family of a snapshot layout.

    ``gauges`` names registry counters to export as gauges although the table
    would make them counters (settable counters: the wire format does not say
    which counters are settable, so in-process callers pass the registry's).
    A registry metric whose names would clash with an earlier family is left
    out and listed in ``skipped``: catalogue metrics keep their names, then the
    first one in registration order does.
    """
    taken: set[str] = set()
    for fam, kind in fixed_families(namespace).items():
        taken |= _sample_names(fam, kind)
    # family → (kind, unit, help) of counters already planned: related counters
    # (windows, reasons) share one family and must agree on its type.
    shared: dict[str, tuple[str, str]] = {}
    skipped: list[tuple[str, str]] = []
    # Catalogue metrics claim their names before any other registry metric can;
    # the order of the plan itself stays registration order.
    # The verdict counters are exported as the verdict families (collector), not one by one.
    cnames = [n for n in counter_names if not is_verdict_counter(n)]
    snames = list(series_names)
    order = [
        *(("c", n) for n in cnames if n in _KNOWN_COUNTERS),
        *(("s", n) for n in snames if n in _KNOWN_SERIES),
        *(("c", n) for n in cnames if n not in _KNOWN_COUNTERS),
        *(("s", n) for n in snames if n not in _KNOWN_SERIES),
    ]
    planned_c: dict[str, CounterPlan] = {}
    planned_s: dict[str, SeriesPlan] = {}
    for kind, name in order:
        if kind == "s":
            splan = _series_plan(name, namespace=namespace)
            names = _sample_names(splan.histogram, "histogram") | _sample_names(
                splan.summary, "summary"
            )
            if names & taken:
                skipped.append((name, f"its names {sorted(names & taken)} are already exported"))
                continue
            taken |= names
            planned_s[name] = splan
            continue
        plan = _counter_plan(name, namespace=namespace, as_gauge=name in gauges)
        if plan.family in shared:
            if shared[plan.family] != (plan.kind, plan.unit) or not plan.labels:
                skipped.append((name, f"family {plan.family!r} is already exported"))
                continue
            if any(c.family == plan.family and c.labels == plan.labels for c in planned_c.values()):
                skipped.append((name, f"family {plan.family!r} already has {plan.labels!r}"))
                continue
            planned_c[name] = plan
            continue
        names = _sample_names(plan.family, plan.kind)
        if names & taken:
            skipped.append((name, f"its names {sorted(names & taken)} are already exported"))
            continue
        taken |= names
        shared[plan.family] = (plan.kind, plan.unit)
        planned_c[name] = plan
    counters = [planned_c[n] for n in cnames if n in planned_c]
    series = [planned_s[n] for n in snames if n in planned_s]
    return FamilyPlan(tuple(counters), tuple(series), tuple(skipped))
