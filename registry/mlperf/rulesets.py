"""The MLPerf inference LLM Server-scenario latency constraints, by benchmark name (SPEC §10).

One table, :data:`RULESETS`: for each LLM benchmark of MLPerf inference, the
time-to-first-token and time-per-output-token limits LoadGen enforces in the
Server scenario, both at the 99th percentile. Names are LoadGen's model
names; the ``-interactive`` entries are the low-latency variants.

Source (every number checked against it):

* ``mlcommons/inference`` ``loadgen/mlperf.conf`` at commit
  ``001712e9daf80386e0dda43f97b8f36981d792c4``: ``<model>.Server.ttft_latency``
  and ``<model>.Server.tpot_latency`` in milliseconds, and
  ``*.Server.target_latency_percentile = 99``. (The older commit
  ``982b2063398dc2d4fb606eacbfa73e54404ecc1e`` has the same values for the
  models it lists.)
* ``mlcommons/inference`` ``loadgen/results.cc`` at commit
  ``05a9cec3596d4018ed22b934d9b8c04b7369086c``: with token latencies, the
  Server scenario applies both limits to the per-sample first-token latencies
  and time-per-output-token values (``PerfConstraintsMet``, ``EarlyStopping``);
  :mod:`registry.mlperf.constraints` reproduces that decision.

Pure data: this module never reads a registry, a socket or a file.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RULESETS", "SOURCE", "Ruleset", "get_ruleset", "ruleset_names"]

#: Where the numbers come from (shown in reports and ``--help``).
SOURCE = (
    "mlcommons/inference loadgen/mlperf.conf @ 001712e9daf80386e0dda43f97b8f36981d792c4 "
    "(Server ttft_latency / tpot_latency, target_latency_percentile 99)"
)

_MS = 1_000_000


@dataclass(frozen=True, slots=True)
class Ruleset:
    """One benchmark's Server-scenario constraints: both limits at ``percentile``."""

    name: str
    ttft_limit_ms: int
    tpot_limit_ms: int
    percentile: float = 99.0

    @property
    def ttft_limit_ns(self) -> int:
        return self.ttft_limit_ms * _MS

    @property
    def tpot_limit_ns(self) -> int:
        return self.tpot_limit_ms * _MS


#: LoadGen's model name → its Server constraints (mlperf.conf, see the module docstring).
RULESETS: dict[str, Ruleset] = {
    r.name: r
    for r in (
        Ruleset("llama2-70b", ttft_limit_ms=2000, tpot_limit_ms=200),
        Ruleset("llama2-70b-interactive", ttft_limit_ms=450, tpot_limit_ms=40),
        Ruleset("mixtral-8x7b", ttft_limit_ms=2000, tpot_limit_ms=200),
        Ruleset("llama3_1-405b", ttft_limit_ms=6000, tpot_limit_ms=175),
        Ruleset("llama3_1-405b-interactive", ttft_limit_ms=4500, tpot_limit_ms=80),
        Ruleset("llama3_1-8b", ttft_limit_ms=2000, tpot_limit_ms=100),
        Ruleset("llama3_1-8b-interactive", ttft_limit_ms=500, tpot_limit_ms=30),
        Ruleset("deepseek-r1", ttft_limit_ms=2000, tpot_limit_ms=80),
        Ruleset("deepseek-r1-interactive", ttft_limit_ms=1500, tpot_limit_ms=15),
    )
}


def ruleset_names() -> tuple[str, ...]:
    return tuple(RULESETS)


def get_ruleset(name: str) -> Ruleset:
    """The ruleset called ``name``; ``ValueError`` listing the known ones otherwise."""
    try:
        return RULESETS[name]
    except KeyError:
        raise ValueError(f"unknown ruleset {name!r}; choose one of {', '.join(RULESETS)}") from None
