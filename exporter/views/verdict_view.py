"""The verdict as a terminal table: shared by the live view and the report view (SPEC §10).

:func:`verdict_panel` renders one :class:`VerdictView` (the run's state, one
row per constraint, goodput, the reasons). The live view builds it from a
snapshot's verdict counters (:func:`from_snapshot_counters`), the report view
from the Report's ``verdict`` block (:func:`from_report`). It only formats:
the numbers and states come from :mod:`registry.mlperf` and the Report.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from exporter.views.format import format_count, format_rate
from registry.mlperf.constraints import judge
from registry.mlperf.slo import Constraint, format_limit
from registry.mlperf.validity import REASON_LABELS, judge_validity
from registry.mlperf.verdict_counters import (
    ConstraintReading,
    ValidityReading,
    read_validity,
    read_verdict,
)

__all__ = [
    "STATE_STYLES",
    "ConstraintRow",
    "VerdictView",
    "from_report",
    "from_snapshot_counters",
    "verdict_panel",
    "verdict_state_text",
]

STATE_STYLES: dict[str, str] = {
    "pending": "bold yellow",
    "on_track": "bold green",
    "failing": "bold red",
    "pass": "bold white on green",
    "fail": "bold white on red",
    "invalid": "bold white on red",
}
_ANSWER_STYLES = {"Yes": "green", "NO": "bold red", "n/a": "dim", "not yet": "yellow"}


def verdict_state_text(state: str) -> Text:
    return Text(f" {state.upper().replace('_', ' ')} ", style=STATE_STYLES.get(state, "bold"))


@dataclass(frozen=True)
class ConstraintRow:
    name: str
    limit: str
    samples: int
    over_limit: int
    attainment: float | None
    queries_needed: int
    state: str
    #: upper end of ``over_limit`` when it was counted from an HDR histogram
    over_limit_max: int | None = None


@dataclass(frozen=True)
class VerdictView:
    state: str
    rows: Sequence[ConstraintRow]
    good_samples: int | None = None
    goodput: float | None = None
    token_goodput: float | None = None
    ruleset: str | None = None
    reasons: Sequence[str] = field(default_factory=tuple)
    #: LoadGen's validity: the headline (``INVALID (min duration)``, ``ON TRACK, 9m40s ...``)
    validity_headline: str | None = None
    #: LoadGen's four reasons: (label, Yes/NO/n/a, figure, requirement)
    validity_rows: Sequence[tuple[str, str, str, str]] = field(default_factory=tuple)


def from_snapshot_counters(
    counters: Mapping[str, int | float], *, terminal: bool
) -> VerdictView | None:
    """The verdict a snapshot carries (``None`` when it carries none)."""
    reading = read_verdict(counters)
    if reading is None:
        return None
    rows = []
    for c in reading.constraints:
        j = judge(c.samples, c.over_limit, c.percentile, final=terminal)
        rows.append(
            ConstraintRow(
                name=c.constraint.describe(),
                limit=format_limit(c.limit_ns),
                samples=c.samples,
                over_limit=c.over_limit,
                attainment=j.attainment,
                queries_needed=c.queries_needed,
                state=c.state,
            )
        )
    headline: str | None = None
    vrows: list[tuple[str, str, str, str]] = []
    validity = read_validity(counters)
    if validity is not None:
        headline, vrows = _validity_of_reading(validity, reading.constraints, terminal)
    return VerdictView(
        state=reading.state,
        rows=rows,
        good_samples=reading.good_samples,
        goodput=reading.goodput_samples_per_second,
        token_goodput=reading.goodput_tokens_per_second,
        validity_headline=headline,
        validity_rows=vrows,
    )


def _validity_of_reading(
    v: ValidityReading, constraints: Sequence[ConstraintReading], terminal: bool
) -> tuple[str, list[tuple[str, str, str, str]]]:
    """The headline and reason rows of a snapshot's validity counters (no reasons text kept
    on the stream: the figures are rebuilt from the counters)."""
    req = v.requirements
    judgements = [judge(c.samples, c.over_limit, c.percentile, final=terminal) for c in constraints]
    again = judge_validity(
        req,
        duration_ns=v.duration_ns,
        queries=v.queries,
        judgements=judgements,
        final=terminal,
        rate_qps=v.queries / (v.duration_ns / 1e9) if v.duration_ns > 0 else None,
    )
    headline = again.headline()
    if v.submittable and again.result == "VALID":
        headline = "VALID"
    if again.result is not None and v.state in ("valid", "invalid"):
        # the aggregator's own decision (it knows whether the run was complete)
        headline = (
            headline if (v.state == "valid") == (again.result == "VALID") else v.state.upper()
        )
    rows = [
        (r.label, _live_answer(r.name, r.answer, terminal), r.figure, r.requirement)
        for r in again.reasons
    ]
    return headline, rows


def _live_answer(name: str, answer: str, terminal: bool) -> str:
    """Live, a count or a duration not reached yet is "not yet", not LoadGen's final NO."""
    if not terminal and answer == "NO" and name != "performance_constraints":
        return "not yet"
    return answer


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    return float(v) if math.isfinite(v) else None


def from_report(verdict: Mapping[str, Any]) -> VerdictView:
    """The view of a Report's ``verdict`` block."""
    rows = []
    for e in verdict.get("constraints") or []:
        if not isinstance(e, Mapping):
            continue
        over = int(_num(e.get("over_limit")) or 0)
        try:
            name = Constraint(e["series"], float(e["percentile"]), int(e["limit_ns"])).describe()
        except (KeyError, TypeError, ValueError):
            name = str(e.get("name", "?"))
        over_max = int(_num(e.get("over_limit_max")) or over)
        rows.append(
            ConstraintRow(
                name=name,
                limit=str(e.get("limit", "?")),
                samples=int(_num(e.get("samples")) or 0),
                over_limit=over,
                attainment=_num(e.get("attainment")),
                queries_needed=int(_num(e.get("queries_needed")) or 0),
                state=str(e.get("state", "?")),
                over_limit_max=over_max if over_max != over else None,
            )
        )
    good = _num(verdict.get("good_samples"))
    validity = verdict.get("validity")
    headline = None
    vrows: list[tuple[str, str, str, str]] = []
    if isinstance(validity, Mapping):
        headline = str(validity.get("headline", ""))
        for r in validity.get("reasons") or []:
            if isinstance(r, Mapping):
                vrows.append(
                    (
                        REASON_LABELS.get(str(r.get("name")), str(r.get("name"))),
                        str(r.get("answer", "?")),
                        str(r.get("figure", "")),
                        str(r.get("requirement", "")),
                    )
                )
    state = verdict.get("state") if validity is not None else None
    return VerdictView(
        state=str(state or verdict.get("decision") or verdict.get("state") or "?"),
        rows=rows,
        good_samples=int(good) if good is not None else None,
        goodput=_num(verdict.get("goodput")),
        token_goodput=_num(verdict.get("token_goodput")),
        ruleset=verdict.get("ruleset") if isinstance(verdict.get("ruleset"), str) else None,
        reasons=[str(r) for r in verdict.get("reasons") or []],
        validity_headline=headline,
        validity_rows=vrows,
    )


def _attainment(v: float | None) -> str:
    return "-" if v is None else f"{100.0 * v:.2f}%"


def _row_state(state: str, view: VerdictView) -> Text:
    """A constraint's state; on a run that is not VALID a passed one reads "met", never PASS."""
    if state == "pass" and view.validity_headline is not None and view.state != "pass":
        return Text(" met ", style="green")
    return verdict_state_text(state)


def verdict_panel(view: VerdictView, *, title: str = "Verdict") -> RenderableType:
    """The run's state, the constraint table, goodput and the reasons."""
    head = Text.assemble((f"{title} ", "bold"), verdict_state_text(view.state))
    if view.validity_headline:
        bad = view.validity_headline.startswith(("INVALID", "FAILING"))
        text = view.validity_headline
        badge = view.state.upper().replace("_", " ")
        text = text[len(badge) :].lstrip(" ,") if text.startswith(badge) else text
        if text:
            head.append("  " + text, style="bold red" if bad else "bold")
    if view.ruleset:
        head.append(f"  ruleset {view.ruleset}", style="dim")
    table = Table(box=None, pad_edge=False)
    for col, justify in (
        ("constraint", "left"),
        ("samples", "right"),
        ("over", "right"),
        ("within", "right"),
        ("needed", "right"),
        ("state", "left"),
    ):
        table.add_column(col, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for r in view.rows:
        table.add_row(
            r.name,
            format_count(r.samples),
            format_count(r.over_limit)
            + (f"..{format_count(r.over_limit_max)}" if r.over_limit_max is not None else ""),
            _attainment(r.attainment),
            format_count(r.queries_needed) if r.queries_needed else "0",
            _row_state(r.state, view),
        )
    parts: list[RenderableType] = [head]
    if view.validity_rows:
        vt = Table(box=None, pad_edge=False)
        for col in ("LoadGen reason", "satisfied", "figure", "requirement"):
            vt.add_column(col, no_wrap=True)
        for label, answer, figure, requirement in view.validity_rows:
            vt.add_row(
                label, Text(answer, style=_ANSWER_STYLES.get(answer, "")), figure, requirement
            )
        parts.append(vt)
    if view.rows:
        parts.append(table)
    if view.good_samples is not None:
        parts.append(
            Text.assemble(
                ("Good samples ", "dim"),
                (format_count(view.good_samples), "bold"),
                ("   Goodput ", "dim"),
                (format_rate(view.goodput, "/s"), "bold"),
                ("   Token goodput ", "dim"),
                (format_rate(view.token_goodput, " tok/s"), "bold"),
            )
        )
    # passing constraints speak for themselves in the table; say why the others do not pass
    # the validity rows already say what the reason lines would repeat
    skip = ("PASS:", "on_track:", "VALID", "INVALID", "Performance constraints satisfied")
    parts += [
        Text(r, style="dim")
        for r in view.reasons
        if not r.startswith(skip) and not (view.validity_rows and " satisfied: " in r)
    ]
    return Group(*parts)
