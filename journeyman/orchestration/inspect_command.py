"""`journeyman inspect CUSTOMER_ID`: why did this customer get that message (or none)?

One customer's timeline per agent over the last N decision days: experiment group and serving
policy, each day's decision with its exclusion reason in words, the alternatives the policy
weighed (recomputed from the warehouse as of that day), what was delivered, and the events and
orders that followed. The logic is `journeyman.decisioning.inspection`; this prints it.
"""

from __future__ import annotations

import json
import sys

import click
from rich.console import Console, Group
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from journeyman import settings
from journeyman.decisioning.config import AgentConfigError, load_agents
from journeyman.decisioning.inspection import (
    DEFAULT_DAYS,
    AgentView,
    CustomerTimeline,
    DecisionView,
    InspectionError,
    Recomputation,
    inspect_customer,
)
from journeyman.warehouse import Warehouse, WarehouseError

out = Console(width=None if sys.stdout.isatty() else 120)
_STYLE = {"sent": "green", "shadow": "cyan", "send nothing": "yellow", "excluded": "red"}


@click.command("inspect")
@click.argument("customer_id")
@click.option("--agent", "agent_name", help="Only this agent (default: every agent).")
@click.option(
    "--days",
    type=int,
    default=DEFAULT_DAYS,
    show_default=True,
    help="Decision days to show, ending on the warehouse's latest decision date.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object on the last line.")
def inspect(customer_id: str, agent_name: str | None, days: int, as_json: bool) -> None:
    """Why CUSTOMER_ID got that message: each agent's decisions for the customer, their
    reasons, the alternatives the policy weighed (recomputed), deliveries, events and orders."""
    from journeyman.orchestration.console import fail

    if days < 1:
        fail(f"--days must be at least 1; got {days}")
    try:
        timeline = _timeline(customer_id, agent_name, days)
    except (InspectionError, AgentConfigError, WarehouseError) as exc:
        fail(str(exc))
        return
    if as_json:
        click.echo(json.dumps(timeline.to_json(), ensure_ascii=False))
        return
    _print(timeline)


def _timeline(customer_id: str, agent_name: str | None, days: int) -> CustomerTimeline:
    """Gather the timeline from the warehouse named by JOURNEYMAN_WAREHOUSE (read-only)."""
    warehouse = Warehouse.configured(
        "run `journeyman demo` or the daily job first, or set "
        f"{settings.WAREHOUSE_ENV} to your warehouse file or URL",
        read_only=True,
    )
    return inspect_customer(
        warehouse,
        load_agents(settings.agents_dir()),
        customer_id,
        agent=agent_name,
        days=days,
        available_features=_available_features(),
    )


def _available_features() -> list[str] | None:
    """The feature columns the decisions asset reads (the dbt manifest's), None if unknown."""
    from journeyman.decisioning.features import discover_features
    from journeyman.orchestration.project import dbt_project

    try:
        return discover_features(dbt_project.manifest_path)
    except (OSError, LookupError, ValueError):
        return None


# -- printing -------------------------------------------------------------------------------


def _print(timeline: CustomerTimeline) -> None:
    zone = timeline.time_zone or "unknown time zone"
    out.print(
        f"[bold]customer {escape(timeline.customer_id)}[/bold] · {escape(zone)} · decisions "
        f"{timeline.start} … {timeline.end}",
        soft_wrap=True,
    )
    for view in timeline.agents:
        out.print(_agent_tree(view))


def _agent_tree(view: AgentView) -> Tree:
    group = view.experiment_group or "?"
    serving = "never sent (control)" if group == "holdout" else f"policy {view.policy}"
    tree = Tree(Text.assemble((view.agent, "bold"), f" — group {group}, {serving}"))
    if view.note:
        tree.add(Text(view.note, style="dim"))
    if not view.decisions:
        tree.add(Text("no decisions in this window", style="dim"))
    for decision in view.decisions:
        _decision_node(tree, decision)
    return tree


def _decision_node(tree: Tree, d: DecisionView) -> None:
    style = _STYLE.get(d.outcome, "")
    label = Text.assemble((str(d.decision_date), "bold"), "  ", (d.outcome, style))
    if d.message_id:
        label.append(f"  {d.message_id} · {d.channel} · {d.local_hour:02d}:00 local")
        label.append(f" · subject {(d.subject_variant or 0) + 1}")
    node = tree.add(label)
    if d.explanation:
        node.add(Text(d.explanation, style=style))
    if d.send_at is not None:
        local = f" ({d.send_at_local:%Y-%m-%d %H:%M %Z})" if d.send_at_local else ""
        until = f", until {d.send_until:%Y-%m-%d %H:%M} UTC" if d.send_until else ""
        node.add(f"send at {d.send_at:%Y-%m-%d %H:%M} UTC{local}{until}")
    propensity = "—" if d.propensity is None else f"{d.propensity:.6g}"
    node.add(
        Text(
            f"{d.policy} ({d.policy_version}), group {d.experiment_group}, "
            f"propensity {propensity}, {d.decision_id}",
            style="dim",
        )
    )
    if d.recomputed is not None:
        node.add(_alternatives(d.recomputed))
    for line in _followed(d):
        node.add(line)


def _alternatives(r: Recomputation) -> Group | Text:
    if not r.alternatives:
        return Text(f"alternatives not recomputed: {r.note}", style="yellow")
    check = Text()
    if r.matches:
        check.append(f"recomputed P(logged action) = {r.probability:.6g} = propensity ✓", "green")
    if r.note:
        check.append(f"{'; ' if r.matches else ''}note: {r.note}", "yellow")
    table = Table(title=None, show_edge=False, pad_edge=False, box=None, padding=(0, 2))
    for name, justify in (("", "left"), ("action", "left"), ("probability", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    table.add_column("expected reward", justify="right")
    for i, a in enumerate(r.alternatives, start=1):
        table.add_row(
            "→" if a.logged else str(i),
            a.action_id,
            f"{a.probability:.4f}",
            "—" if a.score is None else f"{a.score:.4f}",
        )
    title = Text(f"alternatives weighed (recomputed, {r.policy_version}):", style="bold")
    return Group(title, table, check)


def _followed(d: DecisionView) -> list[str]:
    """What was delivered, and the events and orders that followed."""
    lines = []
    for x in d.deliveries:
        parts = [f"delivery: {x.destination} {x.status}", f"{x.attempts} attempt(s)"]
        if x.provider_message_id:
            parts.append(f"id {x.provider_message_id}")
        if x.delivered_at:
            parts.append(f"at {x.delivered_at:%Y-%m-%d %H:%M}")
        if x.error:
            parts.append(f"error {x.error}")
        lines.append(escape(", ".join(parts)))
    if d.events:
        events = ", ".join(
            f"{e.event_type} {e.occurred_at:%m-%d %H:%M}" if e.occurred_at else e.event_type
            for e in d.events
        )
        lines.append(escape(f"events: {events}"))
    if d.orders:
        orders = ", ".join(
            f"{o.order_id} ({_money(o.amount)}{f', {o.category}' if o.category else ''}) "
            f"at {o.ordered_at:%m-%d %H:%M}"
            for o in d.orders
        )
        lines.append(escape(f"orders within {d.attribution_window_days} days: {orders}"))
    return lines


def _money(amount: float | None) -> str:
    return "amount unknown" if amount is None else f"{amount:.2f}"
