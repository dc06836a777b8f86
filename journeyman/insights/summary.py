"""The report's plain-language summary: a few sentences a marketer can act on, honest about
uncertainty and thin data.

Sentences are lists of parts: plain text, or a `Figure` that carries a mart's exact value next to
the rounded text shown (the report puts the exact value in a `data-value` attribute).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: fewer customers than this in a group: the summary says the figures are still thin
THIN_CUSTOMERS = 100
MINUS = "\u2212"
GROUP_NAMES = {
    "treatment": "treatment",
    "holdout": "the holdout",
    "business_as_usual": "business as usual",
    "random_control": "random control",
    "challenger": "the challenger",
    "shadow": "shadow",
}
METRIC_VERBS = {
    "revenue": ("earns", "revenue per customer"),
    "conversions": ("makes", "conversions per customer"),
    "unsubscribes": ("causes", "unsubscribes per customer"),
    "complaints": ("draws", "complaints per customer"),
    "retained": ("keeps", "retained customers per customer"),
}


@dataclass(frozen=True)
class Figure:
    """A number as shown (`text`) and as stored in the mart (`value`, column `field`)."""

    field: str
    value: float | None
    text: str


Part = str | Figure
Sentence = list[Part]


@dataclass(frozen=True)
class Statement:
    """One sentence of the summary and, for a comparison, the agent_uplift row it states."""

    parts: Sentence
    metric: str | None = None
    comparison_group: str | None = None


def group_name(group: str) -> str:
    """How an experiment group reads in a sentence ('the holdout', 'random control', …)."""
    return GROUP_NAMES.get(group, group.replace("_", " "))


def _finite(value: Any) -> bool:
    return value is not None and isinstance(value, int | float) and math.isfinite(value)


def money(value: float | None, signed: bool = False) -> str:
    """$0.42, −$0.10 (a real minus), $1,234; 'n/a' when missing."""
    return _signed(value, signed, "$", small_below=0.01)


def amount(value: float | None, signed: bool = False) -> str:
    """A count per customer with 2 significant digits (at least 2 decimals)."""
    return _signed(value, signed, "", small_below=0.1)


def _signed(value: float | None, signed: bool, unit: str, *, small_below: float) -> str:
    """Sign (a real minus; + when `signed`), unit, then 2 decimals with thousands separators,
    or 2 significant digits for magnitudes below `small_below`; 'n/a' when missing."""
    if not _finite(value):
        return "n/a"
    magnitude = abs(value)
    small = 0 < magnitude < small_below
    body = significant(magnitude) if small else f"{magnitude:,.2f}"
    sign = MINUS if value < 0 else ("+" if signed and value > 0 else "")
    return f"{sign}{unit}{body}"


def significant(magnitude: float, digits: int = 2) -> str:
    """A positive number below 1 with `digits` significant digits, never in e-notation."""
    decimals = max(digits - 1 - math.floor(math.log10(magnitude)), 0)
    return f"{magnitude:.{decimals}f}"


def relative(value: float | None) -> str:
    """A relative difference as a signed percentage, e.g. +12 %."""
    if not _finite(value):
        return "n/a"
    points = abs(value) * 100
    text = f"{points:.1f} %" if points < 10 else f"{points:,.0f} %"
    return (MINUS if value < 0 else "+") + text


def metric_format(metric: str) -> Callable[[float | None], str]:
    """The formatter of a per-customer metric: money for revenue, counts otherwise."""
    return money if metric == "revenue" else amount


def plain(sentence: Sentence) -> str:
    """A sentence as plain text (the command line prints these)."""
    return "".join(p.text if isinstance(p, Figure) else p for p in sentence)


def uplift_sentence(row: Mapping[str, Any]) -> Sentence:
    """One comparison of treatment with another group on one metric (an agent_uplift row)."""
    metric, group = row["metric"], row["comparison_group"]
    verb, unit = METRIC_VERBS.get(metric, ("has", f"{metric} per customer"))
    fmt = metric_format(metric)
    diff = row["absolute_difference"]
    if not _finite(diff):
        return [f"Treatment and {group_name(group)} cannot be compared on {unit} yet."]
    if row["treatment_mean"] == 0 and row["comparison_mean"] == 0:
        return [
            f"No {unit.split(' per ')[0]} yet in treatment or {group_name(group)} (a difference "
            "of ",
            Figure("absolute_difference", diff, fmt(diff)),
            " per customer): too early to compare.",
            *_thin_note(row),
        ]
    direction = "more" if diff >= 0 else ("less" if metric == "revenue" else "fewer")
    parts: Sentence = [
        f"Treatment {verb} ",
        Figure("absolute_difference", diff, fmt(abs(diff))),
        f" {direction} {unit} than {group_name(group)}",
    ]
    low, high = row["absolute_low"], row["absolute_high"]
    if _finite(low) and _finite(high):
        parts += [
            " (95 % interval ",
            Figure("absolute_low", low, fmt(low)),
            " to ",
            Figure("absolute_high", high, fmt(high)),
        ]
        parts += _relative_parts(row) + ["): ", _verdict(row), "."]
    else:
        parts.append(": too few customers for an interval yet.")
    return parts + _thin_note(row)


def _relative_parts(row: Mapping[str, Any]) -> Sentence:
    rel, low, high = row["relative_difference"], row["relative_low"], row["relative_high"]
    if not (_finite(rel) and _finite(low) and _finite(high)):
        return []
    return [
        "; ",
        Figure("relative_difference", rel, relative(rel)),
        " relative, from ",
        Figure("relative_low", low, relative(low)),
        " to ",
        Figure("relative_high", high, relative(high)),
    ]


def _verdict(row: Mapping[str, Any]) -> str:
    if not row["is_significant"]:
        return "not yet significant"
    ahead = row["absolute_difference"] > 0
    if row["metric"] in ("unsubscribes", "complaints"):
        ahead = not ahead  # fewer is better
    return "significant, treatment is " + ("ahead" if ahead else "behind")


def _thin_note(row: Mapping[str, Any]) -> Sentence:
    counts = {
        "treatment": row["treatment_customers"],
        row["comparison_group"]: row["comparison_customers"],
    }
    thin = [(g, n) for g, n in counts.items() if (n or 0) < THIN_CUSTOMERS]
    if not thin:
        return []
    listed = " and ".join(f"{n or 0:,} customers in {group_name(g)}" for g, n in thin)
    return [f" Data are still thin ({listed}): read this with care."]


def summary(
    agent: str,
    uplift: Sequence[Mapping[str, Any]],
    groups: Sequence[str],
    customers: int,
    first_day: Any,
    last_day: Any,
) -> list[Statement]:
    """The summary sentences of one agent, goal metric first, then any significant harm."""
    lead = Statement(
        [
            f"{agent}: {customers:,} customers entered its audience from {first_day} "
            f"to {last_day} ({', '.join(group_name(g) for g in groups)})."
        ]
    )
    goal = [r for r in uplift if r["is_goal_metric"]]
    sentences = [lead] + [_statement(r) for r in goal]
    if not goal:
        sentences.append(Statement(_no_comparison(groups)))
    harm = [
        r
        for r in uplift
        if r["metric"] in ("unsubscribes", "complaints")
        and r["is_significant"]
        and (r["absolute_difference"] or 0) > 0
    ]
    sentences += [_statement(r) for r in harm]
    return sentences


def _statement(row: Mapping[str, Any]) -> Statement:
    return Statement(uplift_sentence(row), row["metric"], row["comparison_group"])


def _no_comparison(groups: Sequence[str]) -> Sentence:
    if "treatment" not in groups and "shadow" in groups:
        return [
            "This agent runs in shadow mode: it decides and logs but sends nothing, so there "
            "is no uplift to report yet (see the shadow section)."
        ]
    return [
        "There is no comparison group with customers yet (a holdout or a baseline), so the "
        "report cannot tell what the agent adds."
    ]
