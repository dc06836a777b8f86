"""The marketer's report: one self-contained HTML file (inline CSS, inline SVG charts, no
scripts, no external resources) built from the performance marts.

    write_report(warehouse, out_dir, agent=None, since=None, off_policy=None) -> Path

Per agent, in order: summary, KPI cards, cumulative outcomes, uplift, driver tree, action shares,
send-hour × channel, per-segment preferences, messages, off-policy estimates and shadow group,
diagnostics. Every text is escaped; exact mart values sit in `data-value` attributes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import UTC, date, datetime
from html import escape
from pathlib import Path
from typing import Any

from journeyman.insights import charts
from journeyman.insights.charts import Cell, Estimate, Series
from journeyman.insights.report_data import (
    SEGMENT_DAYS,
    AgentData,
    ReportError,
    Rows,
    check_marts,
    load_agent,
    report_agents,
)
from journeyman.insights.summary import (
    Figure,
    Statement,
    amount,
    group_name,
    metric_format,
    money,
    relative,
    summary,
)
from journeyman.warehouse import Warehouse

__all__ = ["ReportError", "render_report", "write_report"]

SECTIONS = (
    ("summary", "Summary"),
    ("kpis", "Key figures per group"),
    ("outcomes", "Cumulative outcomes per customer"),
    ("uplift", "Uplift: treatment against each comparison group"),
    ("driver-tree", "Driver tree"),
    ("actions", "What the agent chooses"),
    ("hour-channel", "Send hour × channel"),
    ("segments", "Preferences per customer segment"),
    ("messages", "Messages"),
    ("off-policy", "Candidate policies and shadow group"),
    ("diagnostics", "Diagnostics"),
)
DIMENSIONS = ("send", "channel", "local_hour", "message")
SEGMENT_TYPES = ("recency", "frequency", "monetary")
#: a stacked chart shows this many options; the rest are pooled as "other"
MAX_LAYERS = 7
ESTIMATOR_NAMES = {
    "ipw": "inverse propensity weighting (IPW)",
    "snipw": "self-normalised IPW",
    "dm": "direct method (reward model)",
    "dr": "doubly robust",
}
OffPolicy = Sequence[tuple[str, Mapping[str, Any]]]


def write_report(
    warehouse: Warehouse,
    out_dir: str | Path,
    agent: str | None = None,
    since: date | None = None,
    off_policy: OffPolicy | None = None,
    *,
    configured_agents: Collection[str] = (),
) -> Path:
    """Write the report of `agent` (default: every agent with data) and return its path.

    `since` limits the charts over time; uplift, driver tree and message figures cover the
    whole experiment. `off_policy`: (candidate name, OffPolicyEstimate.to_json()) pairs.
    Raises ReportError when the marts are missing, the agent is unknown or has no data."""
    check_marts(warehouse)
    agents = report_agents(warehouse, agent, configured_agents)
    data = [load_agent(warehouse, a, since) for a in agents]
    page = render_report(data, since=since, off_policy=off_policy or ())
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"journeyman-report-{_slug(agent) if agent else 'all-agents'}.html"
    path.write_text(page, encoding="utf-8")
    return path


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-") or "agent"


def render_report(
    data: Sequence[AgentData], *, since: date | None = None, off_policy: OffPolicy = ()
) -> str:
    """The whole HTML page for the agents' data."""
    names = ", ".join(d.agent for d in data)
    last = max(d.last_day for d in data)
    body = [_agent_section(d, since, off_policy if len(data) == 1 else ()) for d in data]
    if off_policy and len(data) > 1:
        body.append(f'<section class="report-section">{_off_policy(off_policy)}</section>')
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    period = f"from {since} " if since else ""
    meta = f"Charts over time {period}through {last}; generated {generated}."
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">"
        f"<title>journeyman report: {escape(names)}</title><style>{CSS}</style></head>"
        f'<body><header><h1>journeyman report: {escape(names)}</h1><p class="meta">'
        f"{escape(meta)}</p>{_nav(data)}</header><main>{''.join(body)}</main>"
        "<footer>Made by journeyman from the performance marts (schema marts). Intervals are "
        "95 %. Self-contained: no scripts, no external resources.</footer></body></html>\n"
    )


def _nav(data: Sequence[AgentData]) -> str:
    links = []
    for d in data:
        items = "".join(
            f'<li><a href="#{_slug(d.agent)}-{key}">{escape(title)}</a></li>'
            for key, title in SECTIONS
        )
        links.append(f"<li>{escape(d.agent)}<ul>{items}</ul></li>")
    return f'<nav aria-label="Contents"><ul>{"".join(links)}</ul></nav>'


def _section(d: AgentData, key: str, content: str, note: str = "") -> str:
    title = dict(SECTIONS)[key]
    note_html = f'<p class="note">{escape(note)}</p>' if note else ""
    return (
        f'<section class="report-section" id="{_slug(d.agent)}-{key}" data-section="{key}">'
        f"<h3>{escape(title)}</h3>{note_html}{content}</section>"
    )


def _agent_section(d: AgentData, since: date | None, off_policy: OffPolicy) -> str:
    whole = "The whole experiment as of the marts' run date" + (
        f" (not only from {since})." if since else "."
    )
    live = [g for g in d.groups if g != "shadow"]
    parts = [
        _section(d, "summary", _summary(d)),
        _section(d, "kpis", _kpis(d, live), whole),
        _section(d, "outcomes", _outcomes(d, live)),
        _section(d, "uplift", _uplift(d), whole),
        _section(d, "driver-tree", _driver_tree(d, live), whole),
        _section(d, "actions", _actions(d)),
        _section(d, "hour-channel", _hour_channel(d)),
        _section(d, "segments", _segments(d)),
        _section(d, "messages", _messages(d), whole),
        _section(d, "off-policy", _off_policy(off_policy) + _shadow(d)),
        _section(d, "diagnostics", _diagnostics(d)),
    ]
    return (
        f'<section class="agent" id="{_slug(d.agent)}" data-agent="{escape(d.agent)}">'
        f"<h2>Agent {escape(d.agent)}</h2>{''.join(parts)}</section>"
    )


# -- small HTML helpers ------------------------------------------------------------------------


def _value(value: Any, text: str, field: str = "") -> str:
    """A displayed number with the mart's exact value in `data-value`."""
    exact = "" if value is None else repr(float(value)) if _is_number(value) else str(value)
    field_attr = f' data-field="{escape(field)}"' if field else ""
    return f'<span class="value"{field_attr} data-value="{escape(exact)}">{escape(text)}</span>'


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _finite(value: Any) -> bool:
    return _is_number(value) and math.isfinite(value)


def _count(value: Any) -> str:
    return f"{int(value):,}" if _finite(value) else "n/a"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], caption: str) -> str:
    """A table; `rows` hold ready HTML (escape text before)."""
    head = "".join(f'<th scope="col">{escape(h)}</th>' for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return (
        f'<div class="table-wrap"><table><caption>{escape(caption)}</caption>'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"
    )


def _interval(
    low: Any, high: Any, fmt: Callable[[Any], str], field: str = "", brackets: bool = False
) -> str:
    if not (_finite(low) and _finite(high)):
        return "" if brackets else "n/a"
    low_field, high_field = (f"{field}_low", f"{field}_high") if field else ("", "")
    text = f"{_value(low, fmt(low), low_field)} to {_value(high, fmt(high), high_field)}"
    return f" ({text})" if brackets else text


def _label(group: str) -> str:
    """An experiment group as a label: 'business as usual'."""
    return group.replace("_", " ")


GROUP_COLORS = dict(
    zip(
        ("treatment", "holdout", "business_as_usual", "random_control", "challenger", "shadow"),
        charts.PALETTE,
        strict=False,
    )
)


def _colors(groups: Sequence[str]) -> dict[str, str]:
    """One palette colour per experiment group, the same in every chart and report."""
    spare = [c for c in charts.PALETTE if c not in GROUP_COLORS.values()]
    others = [g for g in groups if g not in GROUP_COLORS]
    extra = {g: spare[i % len(spare)] for i, g in enumerate(others)}
    return {g: GROUP_COLORS.get(g) or extra[g] for g in groups}


def _sentence(statement: Statement) -> str:
    parts = "".join(
        _value(p.value, p.text, p.field) if isinstance(p, Figure) else escape(p)
        for p in statement.parts
    )
    attrs = ""
    if statement.metric:
        attrs = (
            f' data-metric="{escape(statement.metric)}"'
            f' data-comparison-group="{escape(statement.comparison_group or "")}"'
        )
    return f'<p class="sentence"{attrs}>{parts}</p>'


# -- sections ----------------------------------------------------------------------------------


def _summary(d: AgentData) -> str:
    customers = sum(int(r["customers"] or 0) for r in d.driver_tree)
    statements = summary(d.agent, d.uplift, d.groups, customers, d.first_day, d.last_day)
    return '<div class="summary">' + "".join(_sentence(s) for s in statements) + "</div>"


KPI_FIELDS: tuple[tuple[str, str, Callable[[Any], str]], ...] = (
    ("customers", "customers", _count),
    ("cumulative_sends", "messages delivered", _count),
    ("conversions_per_customer", "conversions per customer", amount),
    ("revenue_per_customer", "revenue per customer", money),
    ("unsubscribes_per_customer", "unsubscribes per customer", amount),
)


def _kpis(d: AgentData, groups: Sequence[str]) -> str:
    tree = {r["experiment_group"]: r for r in d.driver_tree}
    last = {r["experiment_group"]: r for r in d.last_daily}
    cards = []
    for group in groups:
        merged = {**last.get(group, {}), **tree.get(group, {})}
        items = "".join(
            f"<dt>{escape(label)}</dt><dd>{_value(merged.get(f), fmt(merged.get(f)), f)}</dd>"
            for f, label, fmt in KPI_FIELDS
        )
        cards.append(
            f'<article class="card" data-group="{escape(group)}"><h4>{escape(_label(group))}</h4>'
            f"<dl>{items}</dl></article>"
        )
    if not cards:
        return charts.empty("Groups", "no group has customers yet.")
    return f'<div class="cards">{"".join(cards)}</div>'


def _days(rows: Rows, column: str) -> list[date]:
    return sorted({r[column] for r in rows})


def _by_day(rows: Rows, days: Sequence[date], day_col: str, column: str) -> list[Any]:
    found = {r[day_col]: r[column] for r in rows}
    return [found.get(day) for day in days]


def _outcomes(d: AgentData, groups: Sequence[str]) -> str:
    days = _days(d.daily, "day")
    colors = _colors(d.groups)
    out = []
    for metric, label, fmt in (
        ("revenue_per_customer", "revenue per customer ($)", money),
        ("conversions_per_customer", "conversions per customer", charts.number),
    ):
        series = []
        for group in groups:
            rows = [r for r in d.daily if r["experiment_group"] == group]
            series.append(
                Series(
                    _label(group),
                    _by_day(rows, days, "day", metric),
                    _by_day(rows, days, "day", f"{metric}_low"),
                    _by_day(rows, days, "day", f"{metric}_high"),
                    colors[group],
                )
            )
        out.append(
            charts.line_chart(
                f"{_slug(d.agent)}-{metric}",
                f"Cumulative {label.split(' (')[0]} by group",
                days,
                series,
                x_label="day (UTC)",
                y_label=label,
                fmt=fmt,
                note="Since each customer's first decision; shaded: 95 % interval.",
            )
        )
    return '<div class="chart-grid">' + "".join(out) + "</div>"


UPLIFT_UNITS = {
    "revenue": "revenue per customer ($)",
    "conversions": "conversions per customer",
    "unsubscribes": "unsubscribes per customer",
    "complaints": "complaints per customer",
    "retained": "retained customers per customer (ordered, no unsubscribe)",
}


def _uplift(d: AgentData) -> str:
    if not d.uplift:
        return charts.empty("Uplift", "no comparison group (holdout or baseline) yet.")
    metrics = list(dict.fromkeys(r["metric"] for r in d.uplift))
    plots = []
    for metric in metrics:
        rows = [r for r in d.uplift if r["metric"] == metric]
        goal = " (goal metric)" if rows[0]["is_goal_metric"] else ""
        plots.append(
            charts.forest_plot(
                f"{_slug(d.agent)}-uplift-{_slug(metric)}",
                f"Absolute difference in {UPLIFT_UNITS.get(metric, metric)}{goal}",
                [_estimate(r, "absolute") for r in rows],
                x_label=f"treatment − comparison, {UPLIFT_UNITS.get(metric, metric)}",
                fmt=metric_format(metric),
            )
        )
    plots.append(
        charts.forest_plot(
            f"{_slug(d.agent)}-uplift-relative",
            "Relative difference, every metric",
            [_estimate(r, "relative") for r in d.uplift],
            x_label="treatment ÷ comparison − 1 (%)",
            fmt=charts.percent,
            note="Left out where the comparison group's mean is 0.",
            label_width=230,
        )
    )
    return '<div class="chart-grid">' + "".join(plots) + "</div>" + _uplift_table(d.uplift)


def _estimate(row: Mapping[str, Any], kind: str) -> Estimate:
    label = f"vs {group_name(row['comparison_group'])}"
    if kind == "relative":
        label = f"{row['metric']} · {_label(row['comparison_group'])}"
    value = row[f"{kind}_difference"]
    significant = bool(row["is_significant"])
    note = "significant" if significant else "not significant"
    return Estimate(label, value, row[f"{kind}_low"], row[f"{kind}_high"], note, significant)


def _uplift_table(rows: Rows) -> str:
    body = []
    for r in rows:
        fmt = metric_format(r["metric"])
        body.append(
            [
                escape(r["metric"]) + (" (goal)" if r["is_goal_metric"] else ""),
                escape(group_name(r["comparison_group"])),
                _value(r["treatment_mean"], fmt(r["treatment_mean"]), "treatment_mean")
                + f" ({_count(r['treatment_customers'])})",
                _value(r["comparison_mean"], fmt(r["comparison_mean"]), "comparison_mean")
                + f" ({_count(r['comparison_customers'])})",
                _value(
                    r["absolute_difference"], fmt(r["absolute_difference"]), "absolute_difference"
                ),
                _interval(r["absolute_low"], r["absolute_high"], fmt, "absolute"),
                _value(
                    r["relative_difference"],
                    relative(r["relative_difference"]),
                    "relative_difference",
                )
                + _interval(r["relative_low"], r["relative_high"], relative, "relative", True),
                "yes" if r["is_significant"] else "not yet",
            ]
        )
    headers = (
        "metric per customer",
        "compared with",
        "treatment (customers)",
        "comparison (customers)",
        "difference",
        "95 % interval",
        "relative (95 % interval)",
        "significant",
    )
    return _table(headers, body, "Uplift of treatment over each comparison group (Welch)")


def _driver_tree(d: AgentData, groups: Sequence[str]) -> str:
    tree = {r["experiment_group"]: r for r in d.driver_tree}
    rows = []
    for group in groups:
        r = tree.get(group)
        if r is None:
            continue
        rows.append(
            [
                f"<strong>{escape(_label(group))}</strong>",
                _value(r["customers"], _count(r["customers"]), "customers"),
                _value(r["converted_customers"], _count(r["converted_customers"]), "converted"),
                _value(r["conversions_per_customer"], amount(r["conversions_per_customer"])),
                '<span class="op">×</span>',
                _value(r["revenue_per_conversion"], money(r["revenue_per_conversion"])),
                '<span class="op">=</span>',
                _value(r["revenue_per_customer"], money(r["revenue_per_customer"])),
            ]
        )
    headers = (
        "group",
        "customers",
        "converted customers",
        "conversions per customer",
        "",
        "revenue per conversion",
        "",
        "revenue per customer",
    )
    caption = "Revenue per customer = conversions per customer × revenue per conversion"
    return _table(headers, rows, caption)


def _option_label(dimension: str, option: Any) -> str:
    if dimension == "local_hour" and str(option).isdigit():
        return f"{int(option):02d}:00"
    return str(option).replace("_", " ")


def _ranked_options(rows: Rows) -> list[Any]:
    """Options by decisions, most first ('send' before 'no_send')."""
    totals: dict[Any, float] = {}
    for r in rows:
        totals[r["option"]] = totals.get(r["option"], 0) + (r["decisions"] or 0)
    if all(str(o).isdigit() for o in totals):  # hours: in order of the day
        return sorted(totals, key=lambda o: int(o))
    return sorted(totals, key=lambda o: (o != "send", -totals[o], str(o)))


def _actions(d: AgentData) -> str:
    charts_html = []
    for dimension in DIMENSIONS:
        rows = [r for r in d.action_shares if r["dimension"] == dimension]
        days = _days(rows, "decision_date")
        options = _ranked_options(rows)
        shown, pooled = options[:MAX_LAYERS], options[MAX_LAYERS:]
        series = [
            Series(
                _option_label(dimension, o),
                _by_day([r for r in rows if r["option"] == o], days, "decision_date", "share"),
            )
            for o in shown
        ]
        if pooled:
            other = [0.0] * len(days)
            for r in rows:
                if r["option"] in pooled:
                    other[days.index(r["decision_date"])] += r["share"] or 0.0
            series.append(Series("other", other))
        title = f"Treatment's choices by {dimension.replace('_', ' ')}, share of decisions"
        charts_html.append(
            charts.stacked_area(
                f"{_slug(d.agent)}-actions-{dimension}",
                title,
                days,
                series,
                x_label="decision day (UTC)",
                note="Decisions of the learning policy; 'send' includes every message sent."
                if dimension == "send"
                else "Among decisions that send a message.",
            )
        )
    return '<div class="chart-grid">' + "".join(charts_html) + "</div>"


HOUR_CHANNEL_METRICS = (
    ("conversions_per_send", "Conversions per delivered message", "conversions per send"),
    ("revenue_per_send", "Revenue per delivered message", "revenue per send ($)"),
)


def _hour_channel(d: AgentData) -> str:
    cells = {(r["channel"], r["local_hour"]): r for r in d.hour_channel}
    channels = sorted({r["channel"] for r in d.hour_channel if not r["all_channels"]})
    hours = sorted({r["local_hour"] for r in d.hour_channel if not r["all_hours"]})
    maps = []
    for metric, title, unit in HOUR_CHANNEL_METRICS:
        grid = [
            [_hour_cell(cells.get((c, h)), c, h, metric, unit) for h in [*hours, None]]
            for c in [*channels, None]
        ]
        maps.append(
            charts.heat_map(
                f"{_slug(d.agent)}-hour-channel-{metric}",
                f"{title} by send hour and channel",
                [*channels, "all channels"],
                [f"{h:02d}:00" for h in hours] + ["all"],
                grid,
                x_label="send hour (customer's local time)",
                y_label="channel",
                scale_label=unit,
                label_width=110,
            )
        )
    note = (
        "Every group's delivered messages whose attribution window has closed; the last row "
        "and column pool the channels and hours. Hover a cell for its 95 % interval."
    )
    return f'<p class="note">{escape(note)}</p><div class="chart-grid">{"".join(maps)}</div>'


def _hour_cell(
    r: Mapping[str, Any] | None, channel: str | None, hour: int | None, metric: str, unit: str
) -> Cell | None:
    if r is None:
        return None
    fmt = money if metric == "revenue_per_send" else charts.number
    where = f"{channel or 'all channels'}, {f'{hour:02d}:00' if hour is not None else 'all hours'}"
    value = r[metric]
    tip = (
        f"{where}: {fmt(value)} {unit.split(' (')[0]} (95 % interval "
        f"{fmt(r[f'{metric}_low'])} to {fmt(r[f'{metric}_high'])}; {_count(r['sends'])} sends)"
    )
    return Cell(value, fmt(value), tip)


def _segment_key(segment: Any) -> tuple[bool, float, bool, str]:
    """Tiers in order of their lower bound ('<50' before '50-100'), unknown ones last."""
    text = str(segment)
    found = re.match(r"\D*?(\d+(?:\.\d+)?)", text)
    bound = float(found.group(1)) if found else math.inf
    return (not found, bound, not text.startswith("<"), text)


def _segments(d: AgentData) -> str:
    if not d.segments:
        return charts.empty("Preferences per segment", "no decisions in the last days yet.")
    out = []
    for dimension in DIMENSIONS:
        rows = [r for r in d.segments if r["dimension"] == dimension]
        options = _ranked_options(rows)
        keys = [
            (t, s)
            for t in SEGMENT_TYPES
            for s in sorted(
                {r["segment"] for r in rows if r["segment_type"] == t}, key=_segment_key
            )
        ]
        by_key = {(r["segment_type"], r["segment"], r["option"]): r for r in rows}
        totals = {
            k: sum(r["decisions"] or 0 for r in rows if (r["segment_type"], r["segment"]) == k)
            for k in keys
        }
        grid = [
            [_segment_cell(by_key.get((*k, o)), k, o, dimension) for o in options] for k in keys
        ]
        out.append(
            charts.heat_map(
                f"{_slug(d.agent)}-segments-{dimension}",
                f"Share of decisions by {dimension.replace('_', ' ')}, per segment",
                [f"{t}: {s} ({totals[(t, s)]:,})" for t, s in keys],
                [_option_label(dimension, o) for o in options],
                grid,
                x_label=dimension.replace("_", " "),
                y_label="segment (decisions)",
                scale_label="share",
                domain=(0.0, 1.0),
            )
        )
    note = (
        f"The treatment's decisions of the last {SEGMENT_DAYS} days pooled; segments from the "
        "decision-time features (recency: days since the last order, frequency: orders, "
        "monetary: average order value)."
    )
    return f'<p class="note">{escape(note)}</p><div class="chart-grid">{"".join(out)}</div>'


def _segment_cell(
    r: Mapping[str, Any] | None, key: tuple[str, str], option: Any, dimension: str
) -> Cell:
    if r is None:
        return Cell(0.0, "0 %", f"{key[0]} {key[1]}: never {_option_label(dimension, option)}")
    tip = (
        f"{key[0]} {key[1]}: {_option_label(dimension, option)} in {charts.percent(r['share'])} "
        f"of decisions ({_count(r['decisions'])})"
    )
    return Cell(r["share"], charts.percent(r["share"]), tip)


def _goal(d: AgentData) -> str:
    goal = [r["metric"] for r in d.uplift if r["is_goal_metric"]]
    return goal[0] if goal else "revenue"


def _messages(d: AgentData) -> str:
    if not d.messages:
        return charts.empty("Messages", "no delivered message has a closed attribution window yet.")
    per_send = "revenue_per_send" if _goal(d) == "revenue" else "conversions_per_send"
    fmt = money if per_send == "revenue_per_send" else charts.number
    sends = sum(r["sends"] or 0 for r in d.messages)
    total = sum((r["revenue"] if fmt is money else r["conversions"]) or 0 for r in d.messages)
    plot = charts.forest_plot(
        f"{_slug(d.agent)}-messages",
        f"{per_send.replace('_', ' ').capitalize()} by message, channel and subject line",
        [
            Estimate(_message_label(r), r[per_send], r[f"{per_send}_low"], r[f"{per_send}_high"])
            for r in d.messages
        ],
        x_label=per_send.replace("_", " ") + (" ($)" if fmt is money else ""),
        fmt=fmt,
        reference=total / sends if sends else None,
        note="Vertical line: all delivered messages of the agent.",
        width=1000,
        label_width=320,
    )
    rows = [
        [
            escape(str(r["message_id"])),
            escape(str(r["channel"])),
            escape(f"#{int(r['subject_variant']) + 1}"),
            _value(r["sends"], _count(r["sends"]), "sends"),
            _value(r["conversions_per_send"], charts.number(r["conversions_per_send"]))
            + _interval(
                r["conversions_per_send_low"],
                r["conversions_per_send_high"],
                charts.number,
                "",
                True,
            ),
            _value(r["revenue_per_send"], money(r["revenue_per_send"]))
            + _interval(r["revenue_per_send_low"], r["revenue_per_send_high"], money, "", True),
        ]
        for r in d.messages
    ]
    headers = (
        "message",
        "channel",
        "subject line",
        "delivered",
        "conversions per send (95 % interval)",
        "revenue per send (95 % interval)",
    )
    caption = "Every group's delivered messages whose attribution window has closed"
    return plot + _table(headers, rows, caption)


def _message_label(r: Mapping[str, Any]) -> str:
    label = f"{r['message_id']} · {r['channel']}"
    return label + (f" · subject #{int(r['subject_variant']) + 1}" if r["subject_variant"] else "")


def _off_policy(estimates: OffPolicy) -> str:
    if not estimates:
        return '<p class="note">No candidate policy was evaluated off-policy for this report.</p>'
    rows, points, warnings = [], [], []
    for name, est in estimates:
        logged = est.get("logged") or {}
        for key, label in ESTIMATOR_NAMES.items():
            e = est.get(key)
            if not isinstance(e, Mapping):
                continue
            rows.append(_off_policy_row(name, label, e, logged, est))
            points.append(
                Estimate(f"{name} · {key.upper()}", e.get("value"), e.get("low"), e.get("high"))
            )
        warnings += [f"{name}: {w}" for w in est.get("warnings") or []]
    logged_values = {(est.get("logged") or {}).get("value") for _, est in estimates}
    reference = logged_values.pop() if len(logged_values) == 1 else None
    plot = charts.forest_plot(
        "off-policy",
        "Estimated value per decision of each candidate policy",
        points,
        x_label="reward per decision",
        reference=reference if _finite(reference) else None,
        note="Vertical line: what the logged (serving) policy earned per decision.",
    )
    headers = ("candidate", "estimator", "value", "95 % interval", "logged policy", "decisions")
    headers += ("effective sample size", "share outside the logs' support")
    table = _table(headers, rows, "Off-policy estimates (bootstrap intervals)")
    items = "".join(f"<li>{escape(w)}</li>" for w in warnings)
    warn = f'<ul class="warnings" aria-label="Warnings">{items}</ul>' if items else ""
    return "<h4>Candidate policies (off-policy estimates)</h4>" + plot + table + warn


def _off_policy_row(
    name: str, label: str, e: Mapping[str, Any], logged: Mapping[str, Any], est: Mapping
) -> list[str]:
    fmt = charts.number
    return [
        escape(name),
        escape(label),
        _value(e.get("value"), fmt(e.get("value")), "value"),
        _interval(e.get("low"), e.get("high"), fmt),
        _value(logged.get("value"), fmt(logged.get("value")), "logged")
        + _interval(logged.get("low"), logged.get("high"), fmt, "", True),
        _count(est.get("n")),
        charts.number(est.get("effective_sample_size")),
        charts.percent(est.get("support_gap")),
    ]


def _shadow(d: AgentData) -> str:
    shadow = next((r for r in d.driver_tree if r["experiment_group"] == "shadow"), None)
    if shadow is None:
        return ""
    figures = (
        ("customers", "customers", _count),
        ("conversions_per_customer", "conversions per customer", amount),
        ("revenue_per_conversion", "revenue per conversion", money),
        ("revenue_per_customer", "revenue per customer", money),
    )
    items = "".join(
        f"<dt>{escape(label)}</dt><dd>{_value(shadow[f], fmt(shadow[f]), f)}</dd>"
        for f, label, fmt in figures
    )
    text = (
        "The shadow group's decisions were logged with their propensities and never sent: "
        "these are its customers' own outcomes without this agent's messages, a baseline for "
        "what the shadow policy would change once it goes live."
    )
    return (
        '<h4>Shadow group</h4><p class="note">' + escape(text) + "</p>"
        f'<div class="cards"><article class="card" data-group="shadow"><h4>shadow</h4>'
        f"<dl>{items}</dl></article></div>"
    )


DIAGNOSTIC_COLUMNS = (
    ("decisions", "decisions"),
    ("messages_planned", "planned"),
    ("attempted", "attempted"),
    ("delivered", "delivered"),
    ("failed", "failed"),
    ("unknown", "unknown"),
    ("expired", "expired"),
    ("suppressed", "suppressed"),
    ("not_attempted", "not attempted"),
)


def _diagnostics(d: AgentData) -> str:
    days = _days(d.diagnostics, "decision_date")
    per_day = {day: [r for r in d.diagnostics if r["decision_date"] == day] for day in days}
    series = [  # decisions and planned repeat on each destination row of a day
        Series(label, [max(r[column] or 0 for r in per_day[day]) for day in days])
        for column, label in (("decisions", "decisions"), ("messages_planned", "planned"))
    ]
    series += [
        Series(label, [sum(r[column] or 0 for r in per_day[day]) for day in days])
        for column, label in (("delivered", "delivered"), ("failed", "failed"))
    ]
    bars = charts.bar_chart(
        f"{_slug(d.agent)}-delivery",
        "Decisions, planned, delivered and failed messages per day",
        [f"{day:%b %d}" for day in days],
        series,
        x_label="decision day (UTC)",
        y_label="messages",
        note="Delivered and failed are summed over destinations; planned: messages of the "
        "groups that send (not holdout, not shadow).",
    )
    rows = [
        [escape(f"{r['decision_date']}"), escape(str(r["destination"]))]
        + [_count(r[c]) for c, _ in DIAGNOSTIC_COLUMNS]
        for r in d.diagnostics
    ]
    headers = ("day", "destination", *(label for _, label in DIAGNOSTIC_COLUMNS))
    table = _table(headers, rows, "Delivery per destination and day")
    details = f"<details><summary>Per destination and day</summary>{table}</details>"
    return f'<div class="chart-grid">{bars}{_exploration(d)}</div>{details}'


def _exploration(d: AgentData) -> str:
    days = [r["decision_date"] for r in d.exploration]
    chart = charts.line_chart(
        f"{_slug(d.agent)}-exploration",
        "Exploration: how evenly the treatment spreads its choices",
        days,
        [Series("normalized entropy", [r["normalized_entropy"] for r in d.exploration])],
        x_label="decision day (UTC)",
        y_label="normalized entropy (0 to 1)",
        domain=(0.0, 1.0),
        note="1: choices spread evenly over every action offered that day; near 0: the agent "
        "has settled on a few actions. A slow fall is learning; a sudden drop to 0 is worth a "
        "look.",
    )
    return chart


CSS = """
:root{--ink:#1b1b1b;--muted:#555;--line:#d0d0d0;--bg:#fff;--panel:#f6f7f9;--accent:#0072B2}
*{box-sizing:border-box}
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,
sans-serif;color:var(--ink);background:var(--bg)}
header,main,footer{max-width:1180px;margin:0 auto;padding:0 24px}
header{padding-top:24px}
h1{font-size:1.6rem;margin:0 0 4px}
h2{font-size:1.35rem;margin:32px 0 8px;border-bottom:2px solid var(--accent);padding-bottom:4px}
h3{font-size:1.1rem;margin:28px 0 8px}
h4{font-size:1rem;margin:16px 0 6px}
.meta,.note,footer{color:var(--muted);font-size:.9rem}
footer{margin:40px auto 24px}
nav ul{list-style:none;padding:0;margin:8px 0}
nav>ul>li{font-weight:600}
nav ul ul{display:flex;flex-wrap:wrap;gap:4px 14px;font-weight:400}
a{color:var(--accent)}
.summary{background:var(--panel);border-left:4px solid var(--accent);padding:8px 16px}
.sentence{margin:8px 0;font-size:1.02rem}
.value{font-variant-numeric:tabular-nums;font-weight:600}
.cards{display:flex;flex-wrap:wrap;gap:12px}
.card{background:var(--panel);border:1px solid var(--line);border-radius:6px;padding:8px 14px;
min-width:200px;flex:1 1 200px}
.card h4{margin:4px 0 8px}
.card dl{display:grid;grid-template-columns:1fr auto;gap:2px 12px;margin:0}
.card dt{color:var(--muted)}
.card dd{margin:0;text-align:right}
.chart-grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(480px,100%),1fr));gap:16px}
figure.chart-figure{margin:8px 0;background:#fff;border:1px solid var(--line);border-radius:6px;
padding:8px 10px}
figure.chart-figure figcaption{font-weight:600;margin-bottom:4px}
svg.chart{width:100%;height:auto;display:block}
svg.chart .grid{stroke:#e4e4e4;stroke-width:1}
svg.chart .axis{stroke:#888;stroke-width:1}
svg.chart .reference{stroke:#333;stroke-width:1.5;stroke-dasharray:4 3}
svg.chart text{font:12px system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;fill:#333}
svg.chart .axis-label{font-size:12.5px;fill:#222;font-weight:600}
svg.chart .cell-text{font-size:11.5px}
svg.chart text.light{fill:#fff}
svg.chart text.dark{fill:#000}
svg.chart .row-label{font-size:12px}
.legend{list-style:none;display:flex;flex-wrap:wrap;gap:4px 16px;padding:0;margin:6px 0 0;
font-size:.88rem}
.swatch{display:inline-block;width:12px;height:12px;border-radius:2px;margin-right:6px;
border:1px solid rgba(0,0,0,.35);
vertical-align:-1px}
.empty{color:var(--muted);background:var(--panel);padding:8px 12px;border-radius:6px}
.table-wrap{overflow-x:auto;margin:8px 0}
table{border-collapse:collapse;font-size:.9rem;font-variant-numeric:tabular-nums}
caption{text-align:left;color:var(--muted);padding:4px 0}
th,td{border-bottom:1px solid var(--line);padding:4px 10px;text-align:right;vertical-align:top}
th:first-child,td:first-child,th:nth-child(2),td:nth-child(2){text-align:left}
th{background:var(--panel)}
.op{font-size:1.2rem;color:var(--muted)}
.warnings{color:#8a3b00}
details{margin:8px 0}
summary{cursor:pointer;color:var(--accent)}
@media print{nav{display:none}.chart-grid{grid-template-columns:1fr}}
"""
