"""The deliveries asset: sync the day's decisions to each destination, at most once each."""

from datetime import UTC, date, datetime

import dagster as dg

from journeyman.connectors.ledger import DeliveryLedger
from journeyman.connectors.outbound import Creative, build_outboxes, decisions_to_send
from journeyman.connectors.sync import sync
from journeyman.decisioning.config import AgentConfig
from journeyman.orchestration.defs.partitions import ONE_DAY_PER_RUN, WAREHOUSE_POOL, daily
from journeyman.orchestration.defs.resources import (
    AgentsResource,
    DestinationsResource,
    WarehouseResource,
)


def creatives_of(agents: list[AgentConfig]) -> dict[tuple[str, str, str], Creative]:
    """Each agent's inputs as plain data for the connectors."""
    out = {}
    for agent in agents:
        for message in agent.dimensions.messages:
            for channel in agent.dimensions.channels:
                content = message.content(channel)
                if content is not None:
                    out[(agent.name, message.id, channel)] = Creative(
                        body=content.body,
                        subject=content.subject,
                        title=content.title,
                        template_id=content.template_id,
                        tags=message.tags,
                    )
    return out


@dg.asset(
    partitions_def=daily,
    backfill_policy=ONE_DAY_PER_RUN,
    deps=["decisions"],
    pool=WAREHOUSE_POOL,
    kinds={"python", "duckdb"},
    group_name="delivery",
)
def deliveries(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    agents: AgentsResource,
    destinations: DestinationsResource,
) -> dg.MaterializeResult:
    """Render and deliver the day's messages; the ledger (journeyman.deliveries) records each."""
    day = date.fromisoformat(context.partition_key)
    configs = agents.load()
    wh = warehouse.open()
    rows = decisions_to_send(wh, day)
    destination_for = {(a.name, c): d for a in configs for c, d in a.destinations.items()}
    outboxes = build_outboxes(rows, creatives_of(configs), destination_for)
    metadata: dict[str, object] = {"decisions_with_message": len(rows)}
    now = datetime.now(UTC).replace(tzinfo=None)  # audit stamp only; decides nothing
    for name, box in sorted(outboxes.items()):
        destination = destinations.get(name)
        destination.check()
        report = sync(
            destination, DeliveryLedger(wh, name), box.messages, now, rejected=box.rejected
        )
        metadata[name] = {
            "sent": report.sent,
            "delivered": report.delivered,
            "failed_retryable": report.failed_retryable,
            "failed_permanent": report.failed_permanent,
            "skipped_already_settled": report.skipped_already_settled,
            "reconciled": report.reconciled,
            "errors": dict(report.errors),
        }
    return dg.MaterializeResult(metadata=metadata)
