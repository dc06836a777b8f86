"""Turn stored decisions into rendered messages, one list per destination.

Templates arrive as plain data (the orchestration layer passes each agent's inputs), so this
module knows nothing of agents or policies.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from journeyman.connectors.destination import (
    DeliveryResult,
    DeliveryStatus,
    Destination,
)
from journeyman.connectors.ledger import LEDGER, DeliveryLedger
from journeyman.connectors.render import TemplateError, render, render_column
from journeyman.connectors.suppression import withdrawn_after_deciding
from journeyman.connectors.sync import SyncReport, sync
from journeyman.tables import SENT_GROUPS
from journeyman.warehouse import Warehouse

ADDRESS_COLUMN = {"email": "email", "sms": "phone", "push": "push_token"}


@dataclass(frozen=True)
class Creative:
    """One message's content for one channel, plus its tags."""

    body: str | None
    subject: str | None = None
    title: str | None = None
    subject_variants: tuple[str, ...] = ()  # when several: the decision's subject_variant picks
    template_id: str | None = None  # the vendor's own template, filled with `variables`
    tags: Mapping[str, str] = field(default_factory=dict)
    variables: Mapping[str, str] = field(default_factory=dict)  # name → Jinja template


# -- the columnar path (what the sync assets run) -------------------------------------------

_ISO = "%Y-%m-%dT%H:%M:%SZ"
OUTBOX_SCHEMA = pa.schema(
    [
        ("decision_id", pa.string()),
        ("idempotency_key", pa.string()),
        ("agent", pa.string()),
        ("customer_id", pa.string()),
        ("channel", pa.string()),
        ("message_id", pa.string()),
        ("to", pa.string()),
        ("subject", pa.string()),
        ("body", pa.string()),
        ("send_at", pa.string()),
        ("tags", pa.map_(pa.string(), pa.string())),
        ("send_until", pa.string()),
        ("template_id", pa.string()),
        ("variables", pa.map_(pa.string(), pa.string())),
    ]
)


@dataclass
class OutboxTable:
    """One destination's messages as an Arrow table (`OUTBOX_SCHEMA`, in decision order) and
    the records rejected before sending."""

    messages: pa.Table
    rejected: list[DeliveryResult] = field(default_factory=list)


#: earlier decision days a dispatch still reads: what a missed dispatch left is sent if its
#: send window is still open (and expired if not)
CARRY_OVER_DAYS = 1


def decisions_to_send_arrow(
    warehouse: Warehouse,
    day: date,
    routes: Iterable[tuple[str, str]] | None = None,
    *,
    unsettled_for: str | None = None,
    group: str = "treatment",
) -> pa.Table:
    """The day's decisions of the sent groups that carry a message, with the customer's
    columns, as one Arrow table in decision order; optionally only the (agent, channel) routes
    given (one destination's share) and only decisions that destination has not settled yet
    (delivered, failed permanently, cancelled, expired or suppressed: a repeated dispatch run
    reads only the rest). Decisions of the day before are read too (`CARRY_OVER_DAYS`)."""
    groups = SENT_GROUPS if group == "treatment" else (group,)
    params: dict[str, Any] = {"earliest": day - timedelta(days=CARRY_OVER_DAYS), "day": day}
    params.update({f"g{i}": g for i, g in enumerate(groups)})
    where = ""
    if unsettled_for is not None:
        params["destination"] = unsettled_for
        where += (
            f" and not exists (select 1 from {LEDGER} l where l.decision_id = d.decision_id "
            "and l.destination = :destination "
            "and l.status in ('delivered', 'failed_permanent', 'cancelled', 'expired', "
            "'suppressed'))"
        )
    if routes is not None:
        pairs = sorted(set(routes))
        params.update({f"a{i}": a for i, (a, _) in enumerate(pairs)})
        params.update({f"c{i}": c for i, (_, c) in enumerate(pairs)})
        either = " or ".join(f"(d.agent = :a{i} and d.channel = :c{i})" for i in range(len(pairs)))
        where += f" and ({either})" if pairs else " and false"
    sql = f"""
        select f.*, d.decision_id, d.agent, d.message_id, d.channel, d.send_at,
               d.send_until, d.subject_variant
        from journeyman.decisions d
        join marts.customer_features f using (customer_id)
        where d.decision_date between :earliest and :day
          and d.message_id is not null
          and d.experiment_group in ({", ".join(f":g{i}" for i in range(len(groups)))})
          and d.exclusion_reason is null{where}
        order by d.decision_id
    """
    return warehouse.read_arrow(sql, params)


def _iso_text(send_at: Any) -> Any:
    """UTC timestamps → `YYYY-MM-DDTHH:MM:SSZ` (seconds truncated, like `strftime`)."""
    if getattr(send_at.type, "tz", None) is not None:
        return pc.strftime(pc.cast(send_at, pa.timestamp("s", "UTC"), safe=False), format=_ISO)
    text = pc.cast(pc.cast(send_at, pa.timestamp("s"), safe=False), pa.string())
    return pc.binary_join_element_wise(
        pc.replace_substring(text, " ", "T", max_replacements=1), "Z", ""
    )


def _render_rows(
    source: str | None, rows: list[dict[str, Any]]
) -> tuple[list[str | None], list[str | None]]:
    """Per-row Jinja (the reference semantics): (rendered or None, error or None) per row."""
    out: list[str | None] = []
    errors: list[str | None] = []
    for row in rows:
        try:
            out.append(render(source, row))
            errors.append(None)
        except TemplateError as exc:
            out.append(None)
            errors.append(f"template_error: {exc}")
    return out, errors


def _render_group(
    subject: str | None, body: str | None, group: pa.Table
) -> tuple[pa.Array, pa.Array, list[str | None] | None]:
    """Subject and body for every row of one creative's rows: column-wise when the templates
    allow it, else (or on any error) row by row with per-row errors."""
    try:
        rendered_subject = render_column(subject, group)
        rendered_body = render_column(body, group)
        return rendered_subject, pc.fill_null(rendered_body, ""), None
    except TemplateError:
        pass
    rows = group.to_pylist()
    subjects, subject_errors = _render_rows(subject, rows)
    bodies, body_errors = _render_rows(body, rows)
    errors = [s or b for s, b in zip(subject_errors, body_errors, strict=True)]
    return (
        pa.array(subjects, pa.string()),
        pa.array([b or "" for b in bodies], pa.string()),
        errors,
    )


_VARIABLES = OUTBOX_SCHEMA.field("variables").type


def _render_variables(
    templates: Mapping[str, str], group: pa.Table
) -> tuple[pa.Array, list[str | None] | None]:
    """A vendor template's variables for every row (name → rendered text); per-row errors."""
    n = group.num_rows
    if not templates:
        return pa.array([[]] * n, _VARIABLES), None
    rows = group.to_pylist()
    values: list[list[tuple[str, str]]] = [[] for _ in range(n)]
    errors: list[str | None] = [None] * n
    for name, source in sorted(templates.items()):
        rendered, failed = _render_rows(source, rows)
        for i, (text, error) in enumerate(zip(rendered, failed, strict=True)):
            if error:
                errors[i] = errors[i] or error
            else:
                values[i].append((name, text or ""))
    return pa.array(values, _VARIABLES), errors if any(errors) else None


def _with_contact(group: pa.Table, channel: str, refused: list[DeliveryResult]) -> pa.Table:
    """The rows with an address for the channel; the others are refused (`missing_contact`)."""
    column = ADDRESS_COLUMN[channel]
    if column in group.schema.names:
        address = group.column(column)
        if not pa.types.is_string(address.type):
            address = address.cast(pa.string())
        reachable = pc.fill_null(pc.not_equal(address, ""), False)
    else:
        reachable = pa.repeat(pa.scalar(False), group.num_rows)
    if pc.all(reachable).as_py():
        return group
    missing = group.filter(pc.invert(reachable)).column("decision_id").to_pylist()
    refused.extend(
        DeliveryResult(d, DeliveryStatus.FAILED_PERMANENT, "missing_contact") for d in missing
    )
    return group.filter(reachable)


def _rendered(
    creative: Creative, variant: int, group: pa.Table, refused: list[DeliveryResult]
) -> tuple[pa.Table, pa.Array, pa.Array, pa.Array] | None:
    """(rows, subject, body, variables) rendered for one creative's rows; rows whose templates
    fail are refused with their error; None when none is left."""
    chosen = (
        creative.subject_variants[variant]
        if variant < len(creative.subject_variants)
        else creative.subject
    )
    subject, body, errors = _render_group(chosen or creative.title, creative.body, group)
    variables, variable_errors = _render_variables(creative.variables, group)
    if variable_errors is not None:
        errors = [a or b for a, b in zip(errors or variable_errors, variable_errors, strict=True)]
    if errors is None or not any(errors):
        return group, subject, body, variables
    ids = group.column("decision_id").to_pylist()
    refused.extend(
        DeliveryResult(d, DeliveryStatus.FAILED_PERMANENT, e)
        for d, e in zip(ids, errors, strict=True)
        if e
    )
    ok = pa.array([e is None for e in errors])
    if not pc.any(ok).as_py():
        return None
    return group.filter(ok), subject.filter(ok), body.filter(ok), variables.filter(ok)


def _outbox_rows(
    name: str,
    creative: Creative,
    channel: str,
    group: pa.Table,
    subject: pa.Array,
    body: pa.Array,
    variables: pa.Array,
) -> pa.Table:
    """One creative's rendered rows in `OUTBOX_SCHEMA`."""
    ids = group.column("decision_id")
    m = group.num_rows
    tags = pa.array([list(creative.tags.items())], OUTBOX_SCHEMA.field("tags").type)
    to = group.column(ADDRESS_COLUMN[channel])
    return pa.Table.from_arrays(
        [
            ids,
            pc.binary_join_element_wise(f"{name}:", ids, ""),
            group.column("agent"),
            group.column("customer_id").cast(pa.string()),
            group.column("channel"),
            group.column("message_id"),
            to if pa.types.is_string(to.type) else to.cast(pa.string()),
            subject,
            body,
            _iso_text(group.column("send_at")),
            tags.take(pa.repeat(pa.scalar(0, pa.int32()), m)),
            _iso_text(group.column("send_until"))
            if "send_until" in group.schema.names
            else pa.nulls(m, pa.string()),
            pa.repeat(pa.scalar(creative.template_id, pa.string()), m),
            variables,
        ],
        schema=OUTBOX_SCHEMA,
    )


def build_outbox_tables(
    table: pa.Table,
    creatives: Mapping[tuple[str, str, str], Creative],
    destination_for: Mapping[tuple[str, str], str],
) -> dict[str, OutboxTable]:
    """Render each decision for its channel's destination, column-wise: messages and records
    rejected before sending (missing contact, template error), rendered per creative with Arrow
    (no Python per record for plain `{{ var }}` templates)."""
    n = table.num_rows
    names = set(table.schema.names)
    variant = (
        pc.fill_null(table.column("subject_variant"), 0).cast(pa.int64())
        if "subject_variant" in names
        else pa.repeat(pa.scalar(0, pa.int64()), n)
    )
    key_columns = {
        "agent": table.column("agent"),
        "channel": table.column("channel"),
        "message_id": table.column("message_id"),
        "variant": variant,
    }
    keys = pa.table(key_columns).group_by(list(key_columns)).aggregate([]).to_pylist()
    pieces: dict[str, list[pa.Table]] = {}
    rejected: dict[str, list[DeliveryResult]] = {}
    for key in keys:
        agent, channel, message_id, v = (
            key["agent"],
            key["channel"],
            key["message_id"],
            key["variant"],
        )
        name = destination_for[(agent, channel)]
        pieces.setdefault(name, [])
        refused = rejected.setdefault(name, [])
        mask = pc.and_(
            pc.and_(
                pc.equal(key_columns["agent"], agent), pc.equal(key_columns["channel"], channel)
            ),
            pc.and_(pc.equal(key_columns["message_id"], message_id), pc.equal(variant, v)),
        )
        group = table if pc.all(mask).as_py() else table.filter(mask)
        group = _with_contact(group, channel, refused)
        if not group.num_rows:
            continue
        creative = creatives[(agent, message_id, channel)]
        rendered = _rendered(creative, v, group, refused)
        if rendered is not None:
            pieces[name].append(_outbox_rows(name, creative, channel, *rendered))
    out: dict[str, OutboxTable] = {}
    for name, parts in pieces.items():
        messages = pa.concat_tables(parts) if parts else OUTBOX_SCHEMA.empty_table()
        if len(parts) > 1:
            messages = messages.take(pc.sort_indices(messages, [("decision_id", "ascending")]))
        refused = sorted(rejected[name], key=lambda r: r.decision_id)
        out[name] = OutboxTable(messages, refused)
    return out


def deliver_day(
    warehouse: Warehouse,
    day: date,
    destination: Destination,
    creatives: Mapping[tuple[str, str, str], Creative],
    destination_for: Mapping[tuple[str, str], str],
    now: datetime,
    *,
    concurrency: int = 2,
    group: str = "treatment",
    **options: Any,
) -> tuple[SyncReport, int]:
    """Deliver the decisions routed to `destination` that it has not settled yet (the day's and
    the carry-over days'; what a sync asset runs): consent re-checked as of `now`, rendered
    column-wise, synced through the ledger. Returns the report and the number of unsettled
    decisions routed here."""
    name = destination.name
    routes = [route for route, target in destination_for.items() if target == name]
    table = decisions_to_send_arrow(warehouse, day, routes, unsettled_for=name, group=group)
    suppressed = _suppressed(warehouse, table, now)
    if suppressed:
        keep = pc.invert(pc.is_in(table.column("decision_id"), pa.array(list(suppressed))))
        table = table.filter(keep)
    box = build_outbox_tables(table, creatives, destination_for).get(name)
    report = sync(
        destination,
        DeliveryLedger(warehouse, name),
        box.messages if box else [],
        now,
        rejected=[*(box.rejected if box else ()), *suppressed.values()],
        concurrency=concurrency,
        **options,
    )
    return report, table.num_rows + len(suppressed)


def _suppressed(warehouse: Warehouse, table: pa.Table, now: datetime) -> dict[str, DeliveryResult]:
    """Decisions whose customer withdrew consent or unsubscribed after deciding."""
    withdrawn = withdrawn_after_deciding(warehouse, table.column("decision_id"), now)
    return {
        d: DeliveryResult(d, DeliveryStatus.SUPPRESSED, reason)
        for d, reason in sorted(withdrawn.items())
    }
