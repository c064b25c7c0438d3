"""MLPerf LoadGen's rules, reproduced for judging a benchmark run (SPEC §10).

Each module holds one rule or table with its source named: the early-stopping
test (``early_stopping``), the LLM Server-scenario limits (``rulesets``), what
a constraint is (``slo``) and the exact per-sample accounting with LoadGen's
Server decision (``constraints``). They are pure functions and plain counting
objects: none reads a registry, a socket or a file.
"""

from registry.mlperf.constraints import STATES, ConstraintTracker, Judgement, judge
from registry.mlperf.early_stopping import (
    EarlyStoppingSpec,
    discard_count,
    early_stopping_indices,
    find_min_passing,
    min_queries,
    queries_needed,
)
from registry.mlperf.rulesets import RULESETS, Ruleset, get_ruleset
from registry.mlperf.slo import Constraint, build_constraints, parse_slo

__all__ = [
    "RULESETS",
    "STATES",
    "Constraint",
    "ConstraintTracker",
    "EarlyStoppingSpec",
    "Judgement",
    "Ruleset",
    "build_constraints",
    "discard_count",
    "early_stopping_indices",
    "find_min_passing",
    "get_ruleset",
    "judge",
    "min_queries",
    "parse_slo",
    "queries_needed",
]
