"""MLPerf LoadGen's rules, reproduced for judging a benchmark run (SPEC §10).

Each module holds one rule with its source named; they are pure functions over
counts and fractions and never read a registry, a socket or a file.
"""

from registry.mlperf.early_stopping import (
    EarlyStoppingSpec,
    discard_count,
    early_stopping_indices,
    find_min_passing,
    min_queries,
    queries_needed,
)

__all__ = [
    "EarlyStoppingSpec",
    "discard_count",
    "early_stopping_indices",
    "find_min_passing",
    "min_queries",
    "queries_needed",
]
