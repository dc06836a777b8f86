"""The row-by-row rendering the columnar outbox path (outbound.build_outbox_tables) is checked
against: one decision at a time, in plain Python, easy to read."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from journeyman.connectors.destination import DeliveryResult, DeliveryStatus, OutboundMessage
from journeyman.connectors.ledger import idempotency_key
from journeyman.connectors.outbound import ADDRESS_COLUMN, Creative
from journeyman.connectors.render import TemplateError, render


@dataclass
class Outbox:
    """Messages ready to send and records rejected before sending, for one destination."""

    messages: list[OutboundMessage] = field(default_factory=list)
    rejected: list[DeliveryResult] = field(default_factory=list)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _rendered(row: Mapping[str, Any], creative: Creative) -> tuple[str | None, str, dict]:
    variant = row.get("subject_variant") or 0
    variants = creative.subject_variants
    chosen = variants[variant] if variant < len(variants) else creative.subject
    subject = render(chosen or creative.title, row)
    body = render(creative.body, row) or ""
    variables = {k: render(v, row) or "" for k, v in sorted(creative.variables.items())}
    return subject, body, variables


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
        failed = DeliveryStatus.FAILED_PERMANENT
        if not address:
            box.rejected.append(DeliveryResult(row["decision_id"], failed, "missing_contact"))
            continue
        creative = creatives[(agent, row["message_id"], channel)]
        try:
            subject, body, variables = _rendered(row, creative)
        except TemplateError as exc:
            error = f"template_error: {exc}"
            box.rejected.append(DeliveryResult(row["decision_id"], failed, error))
            continue
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
                send_at=row["send_at"].strftime("%Y-%m-%dT%H:%M:%SZ"),
                tags=dict(creative.tags),
                send_until=_iso(row.get("send_until")),
                template_id=creative.template_id,
                variables=variables,
            )
        )
    return outboxes
