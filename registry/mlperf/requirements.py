"""What a run must reach to be VALID: min duration and min query count, per ruleset and scenario.

MLPerf LoadGen calls a result VALID only when, beside the latency
constraints, the run lasted at least ``min_duration`` and issued at least
``min_query_count`` queries (SPEC §10). :func:`requirements_for` returns those
two numbers for a ruleset and scenario, each with the source it comes from, and
applies user.conf-style overrides (``--min-duration``, ``--min-queries``),
which make a result "valid but not submittable".

Two sources, chosen by ``--requirements`` where they disagree:

* ``loadgen`` (the default: what LoadGen itself writes in
  ``mlperf_log_summary.txt``): ``mlcommons/inference`` ``loadgen/mlperf.conf``
  at commit ``001712e9daf80386e0dda43f97b8f36981d792c4``:
  ``*.Server.min_duration = 600000`` and ``*.Offline.min_duration = 600000``
  (ms); ``<model>.Offline.min_query_count`` per model (LoadGen maps it to a
  sample count in Offline). mlperf.conf sets no Server ``min_query_count``
  for the LLM models, so LoadGen's built-in default applies: 100
  (``mlperf_loadgen.TestSettings().min_query_count``, checked on PyPI
  ``mlcommons-loadgen`` 6.0.17).
* ``endpoints``: ``mlcommons/endpoints``
  ``src/inference_endpoint/config/rulesets/mlcommons/rules.py`` at commit
  ``ea3327530376fef63d706f4105612e17c2c80a8d`` (upstream's pinned version):
  ``PerModelRuleset.min_duration_ms_valid = 600000`` and
  ``TokenBasedRuleset.min_sample_count_valid = 270336`` (the submission
  checker's "min-queries"), for both scenarios.

They agree on the duration and disagree on the query count (Server: 100 vs
270,336; Offline llama2-70b: 24,576 vs 270,336).

Pure data and arithmetic: no registry, no I/O. Errors are ``ValueError`` with
one line, ready for a command line.
"""

from __future__ import annotations

from dataclasses import dataclass

from registry.mlperf.rulesets import RULESETS

__all__ = [
    "REQUIREMENT_SOURCES",
    "SCENARIOS",
    "Requirements",
    "default_scenario",
    "requirements_entry",
    "requirements_for",
    "requirements_from_entry",
]

SCENARIOS: tuple[str, ...] = ("server", "offline")
REQUIREMENT_SOURCES: tuple[str, ...] = ("loadgen", "endpoints")

_CONF = "loadgen/mlperf.conf @ 001712e9"
_LOADGEN_DEFAULT = "LoadGen default (TestSettings.min_query_count; mlperf.conf sets none)"
_ENDPOINTS = "endpoints rules.py @ ea332753"
_MIN_DURATION_MS = 600_000  # *.Server.min_duration, *.Offline.min_duration; min_duration_ms_valid
_LOADGEN_SERVER_MIN_QUERIES = 100
_ENDPOINTS_MIN_SAMPLES = 270_336  # TokenBasedRuleset.min_sample_count_valid

#: ``<model>.Offline.min_query_count`` in mlperf.conf; the interactive variants have none
#: (they are Server-only benchmarks), except deepseek-r1-interactive.
_OFFLINE_MIN_QUERIES: dict[str, int] = {
    "llama2-70b": 24_576,
    "mixtral-8x7b": 15_000,
    "llama3_1-405b": 8_313,
    "llama3_1-8b": 13_368,
    "deepseek-r1": 4_388,
    "deepseek-r1-interactive": 4_388,
}

#: The models upstream's rules.py covers (throughput and interactive priorities).
_ENDPOINTS_MODELS = frozenset(
    {
        "llama2-70b",
        "llama2-70b-interactive",
        "mixtral-8x7b",
        "llama3_1-405b",
        "llama3_1-405b-interactive",
        "llama3_1-8b",
        "llama3_1-8b-interactive",
        "deepseek-r1",
    }
)


@dataclass(frozen=True, slots=True)
class Requirements:
    """The two validity requirements of a run, each with where it comes from.

    ``overridden``: the names (``min_duration``, ``min_queries``) a user set
    instead of the ruleset's value; any makes the result not submittable.
    Without a ruleset every requirement is an override (or 0, not required).
    """

    scenario: str
    min_duration_ns: int
    min_queries: int
    duration_source: str
    queries_source: str
    ruleset: str | None = None
    source: str = "loadgen"
    overridden: tuple[str, ...] = ()

    @property
    def submittable(self) -> bool:
        """An unmodified ruleset's requirements: a VALID result could be submitted."""
        return self.ruleset is not None and not self.overridden


def default_scenario(ruleset: str | None) -> str:
    """The scenario a ruleset is judged in when ``--scenario`` is not given: Server for all."""
    return "server"


def requirements_for(
    ruleset: str | None,
    scenario: str | None = None,
    source: str = "loadgen",
    *,
    min_duration_ns: int | None = None,
    min_queries: int | None = None,
) -> Requirements:
    """The requirements of ``ruleset`` in ``scenario`` from ``source``, overrides applied.

    ``ValueError`` for an unknown ruleset, scenario or source, or a scenario
    the source defines no requirement for (an interactive ruleset in Offline).
    """
    if scenario is None:
        scenario = default_scenario(ruleset)
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; choose one of {', '.join(SCENARIOS)}")
    if source not in REQUIREMENT_SOURCES:
        known = ", ".join(REQUIREMENT_SOURCES)
        raise ValueError(f"unknown requirements source {source!r}; choose one of {known}")
    if min_duration_ns is not None and min_duration_ns < 0:
        raise ValueError(f"min duration must be >= 0, got {min_duration_ns}")
    if min_queries is not None and min_queries < 0:
        raise ValueError(f"min queries must be >= 0, got {min_queries}")
    duration_ns, queries = 0, 0
    duration_src = queries_src = "not required"
    if ruleset is not None:
        if ruleset not in RULESETS:
            raise ValueError(f"unknown ruleset {ruleset!r}; choose one of {', '.join(RULESETS)}")
        duration_ns, duration_src, queries, queries_src = _table(ruleset, scenario, source)
    overridden = []
    if min_duration_ns is not None:
        duration_ns, duration_src = int(min_duration_ns), "override (--min-duration)"
        overridden.append("min_duration")
    if min_queries is not None:
        queries, queries_src = int(min_queries), "override (--min-queries)"
        overridden.append("min_queries")
    return Requirements(
        scenario=scenario,
        min_duration_ns=duration_ns,
        min_queries=queries,
        duration_source=duration_src,
        queries_source=queries_src,
        ruleset=ruleset,
        source=source,
        overridden=tuple(overridden),
    )


def _table(ruleset: str, scenario: str, source: str) -> tuple[int, str, int, str]:
    duration_ns = _MIN_DURATION_MS * 1_000_000
    if source == "endpoints":
        if ruleset not in _ENDPOINTS_MODELS:
            raise ValueError(f"upstream's rules.py has no ruleset for {ruleset!r}")
        return (
            duration_ns,
            f"{_ENDPOINTS} (min_duration_ms_valid)",
            _ENDPOINTS_MIN_SAMPLES,
            f"{_ENDPOINTS} (min_sample_count_valid)",
        )
    if scenario == "server":
        return (
            duration_ns,
            f"{_CONF} (*.Server.min_duration)",
            _LOADGEN_SERVER_MIN_QUERIES,
            _LOADGEN_DEFAULT,
        )
    offline = _OFFLINE_MIN_QUERIES.get(ruleset)
    if offline is None:
        raise ValueError(f"mlperf.conf has no Offline scenario for {ruleset!r} (Server only)")
    return (
        duration_ns,
        f"{_CONF} (*.Offline.min_duration)",
        offline,
        f"{_CONF} ({ruleset}.Offline.min_query_count)",
    )


def requirements_entry(req: Requirements) -> dict[str, object]:
    """The JSON form of ``req`` (the Report's ``verdict.validity.requirements``)."""
    return {
        "scenario": req.scenario,
        "ruleset": req.ruleset,
        "source": req.source,
        "min_duration_ns": req.min_duration_ns,
        "min_duration_source": req.duration_source,
        "min_queries": req.min_queries,
        "min_queries_source": req.queries_source,
        "overridden": list(req.overridden),
        "submittable": req.submittable,
    }


def requirements_from_entry(entry: object) -> Requirements | None:
    """:func:`requirements_entry` read back (``None`` when it is not one)."""
    if not isinstance(entry, dict):
        return None
    try:
        scenario = entry["scenario"]
        if scenario not in SCENARIOS:
            return None
        overridden = tuple(str(o) for o in entry.get("overridden") or ())
        return Requirements(
            scenario=scenario,
            min_duration_ns=int(entry["min_duration_ns"]),
            min_queries=int(entry["min_queries"]),
            duration_source=str(entry.get("min_duration_source", "")),
            queries_source=str(entry.get("min_queries_source", "")),
            ruleset=entry.get("ruleset") if isinstance(entry.get("ruleset"), str) else None,
            source=str(entry.get("source", "loadgen")),
            overridden=overridden,
        )
    except (KeyError, TypeError, ValueError):
        return None
