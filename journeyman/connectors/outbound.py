"""Turn stored decisions into rendered messages, one list per destination.

Templates arrive as plain data (the orchestration layer passes each agent's inputs), so this
module knows nothing of agents or policies.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import sqlalchemy as sa

from journeyman.connectors.destination import DeliveryResult, DeliveryStatus, OutboundMessage
from journeyman.connectors.ledger import idempotency_key
from journeyman.connectors.render import TemplateError, render
from journeyman.warehouse import Warehouse

ADDRESS_COLUMN = {"email": "email", "sms": "phone", "push": "push_token"}


@dataclass(frozen=True)
class Creative:
    """One message's content for one channel, plus its tags."""

    body: str | None
    subject: str | None = None
    title: str | None = None
    subject_variants: tuple[str, ...] = ()  # when several: the decision's subject_variant picks
    template_id: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Outbox:
    """Messages ready to send and records rejected before sending, for one destination."""

    messages: list[OutboundMessage] = field(default_factory=list)
    rejected: list[DeliveryResult] = field(default_factory=list)


def decisions_to_send(warehouse: Warehouse, day: date) -> list[dict[str, Any]]:
    """The day's treatment decisions that carry a message, with the customer's columns."""
    sql = """
        select f.*, d.decision_id, d.agent, d.message_id, d.channel, d.send_at,
               d.subject_variant
        from journeyman.decisions d
        join marts.customer_features f using (customer_id)
        where d.decision_date = :day and d.message_id is not null
          and d.experiment_group = 'treatment' and d.exclusion_reason is null
        order by d.decision_id
    """
    with warehouse.connect() as conn:
        result = conn.execute(sa.text(sql), {"day": day})
        keys = list(result.keys())
        return [dict(zip(keys, row, strict=True)) for row in result]


def build_outboxes(
    rows: list[dict[str, Any]],
    creatives: Mapping[tuple[str, str, str], Creative],
    destination_for: Mapping[tuple[str, str], str],
) -> dict[str, Outbox]:
    """Render each decision for its channel's destination; bad records are rejected, not raised.

    creatives: (agent, message_id, channel) → Creative; destination_for: (agent, channel) → name.
    """
    outboxes: dict[str, Outbox] = {}
    for row in rows:
        agent, channel = row["agent"], row["channel"]
        name = destination_for[(agent, channel)]
        box = outboxes.setdefault(name, Outbox())
        address = row.get(ADDRESS_COLUMN[channel])
        if not address:
            box.rejected.append(
                DeliveryResult(
                    row["decision_id"], DeliveryStatus.FAILED_PERMANENT, "missing_contact"
                )
            )
            continue
        creative = creatives[(agent, row["message_id"], channel)]
        try:
            variant = row.get("subject_variant") or 0
            chosen = (
                creative.subject_variants[variant]
                if variant < len(creative.subject_variants)
                else creative.subject
            )
            subject = render(chosen or creative.title, row)
            body = render(creative.body, row) or ""
        except TemplateError as exc:
            box.rejected.append(
                DeliveryResult(
                    row["decision_id"], DeliveryStatus.FAILED_PERMANENT, f"template_error: {exc}"
                )
            )
            continue
        send_at = row["send_at"]
        box.messages.append(
            OutboundMessage(
                decision_id=row["decision_id"],
                idempotency_key=idempotency_key(row["decision_id"], name),
                agent=agent,
                customer_id=row["customer_id"],
                channel=channel,
                message_id=row["message_id"],
                to=str(address),
                subject=subject,
                body=body,
                send_at=send_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                tags=dict(creative.tags),
            )
        )
    return outboxes
