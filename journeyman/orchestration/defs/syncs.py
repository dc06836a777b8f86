"""One sync asset per destination: deliver the day's decisions at most once each, with run
metadata and an asset check on the failure share; plus frequent dispatch for sends that are due."""

from datetime import UTC, date, datetime

import dagster as dg

from journeyman import settings
from journeyman.connectors.cancel import CancelReport, cancel_scheduled
from journeyman.connectors.ledger import DeliveryLedger
from journeyman.connectors.outbound import Creative, deliver_day
from journeyman.connectors.report import SyncReport
from journeyman.decisioning.config import AgentConfig, load_agents
from journeyman.orchestration.defs.destinations import destination_resources, shadow_resource
from journeyman.orchestration.defs.health import md_table
from journeyman.orchestration.defs.partitions import ONE_DAY_PER_RUN, WAREHOUSE_POOL, daily
from journeyman.tables import ensure_journeyman_tables
from journeyman.warehouse import Warehouse

SYNC_PREFIX = "sync_"
#: where shadow decisions (an agent's or a policy's `mode: shadow`) are logged: a file
#: destination under the outbox folder, never a vendor
SHADOW = "shadow"


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
                        subject=content.subjects[0],
                        subject_variants=tuple(v or "" for v in content.subjects),
                        title=content.title,
                        template_id=content.template_id,
                        tags=message.tags,
                        variables=dict(content.variables),
                    )
    return out


#: the columns of a sync's Markdown summary: what this run did, and the unknown outcomes left
SUMMARY_COLUMNS = (
    "sent",
    "delivered",
    "failed",
    "unknown",
    "unknown_total",
    "expired",
    "suppressed",
    "skipped",
    "deferred",
)


def sync_metadata(report: SyncReport, routed: int) -> dict[str, object]:
    """The report's figures (counts typed as integers) and a Markdown table of the outcomes."""
    counts = {c: int(getattr(report, c)) for c in SUMMARY_COLUMNS}
    headers = ["destination", "decisions routed", *SUMMARY_COLUMNS]
    headers[headers.index("unknown_total")] = "unknown (ledger)"
    table = md_table(headers, [[report.destination, routed, *counts.values()]])
    return {
        **report.as_metadata(),
        **{c: dg.MetadataValue.int(n) for c, n in counts.items()},
        "decisions_routed": dg.MetadataValue.int(routed),
        "summary": dg.MetadataValue.md(table),
    }


def _sync_asset(name: str, group: str = "treatment") -> dg.AssetsDefinition:
    check = dg.AssetCheckSpec("failure_share_within_threshold", asset=f"{SYNC_PREFIX}{name}")
    unknown = dg.AssetCheckSpec(
        "unknown_within_threshold",
        asset=f"{SYNC_PREFIX}{name}",
        description="Records whose outcome is unknown (the vendor may hold them; they are never "
        "re-sent without a lookup) stay within the destination's max_unknown.",
    )

    @dg.asset(
        name=f"{SYNC_PREFIX}{name}",
        partitions_def=daily,
        backfill_policy=ONE_DAY_PER_RUN,
        deps=["decisions"],
        pool=WAREHOUSE_POOL,
        kinds={"python"},
        group_name="delivery",
        required_resource_keys={"warehouse", "agents", f"destination_{name}"},
        check_specs=[check, unknown],
        description=f"Deliver the day's decisions routed to `{name}`; the ledger "
        "(journeyman.deliveries) records each record's status."
        if group != SHADOW
        else "Log the day's shadow decisions to the shadow outbox (never sent to a vendor).",
    )
    def _asset(context: dg.AssetExecutionContext):
        day = date.fromisoformat(context.partition_key)
        resource = getattr(context.resources, f"destination_{name}")
        configs = context.resources.agents.load()
        wh = context.resources.warehouse.open()
        routes = {
            (a.name, c): d if group != SHADOW else SHADOW
            for a in configs
            for c, d in a.destinations.items()
        }
        destination = resource.build()
        destination.check()
        # Real time decides only *when* a message may leave (dispatch, send windows), never
        # what; a simulation's dispatch is on time by construction (settings.simulation).
        now = datetime.now(UTC).replace(tzinfo=None)
        concurrency = resource.concurrency or destination.default_concurrency
        report, routed = deliver_day(
            wh,
            day,
            destination,
            creatives_of(configs),
            routes,
            now,
            concurrency=concurrency,
            group=group,
            expire=not settings.simulation(),
        )
        attempted = report.delivered + report.failed
        share = report.failed / attempted if attempted else 0.0
        metadata = sync_metadata(report, routed)
        metadata["concurrency"] = dg.MetadataValue.int(concurrency)
        yield dg.MaterializeResult(metadata=metadata)
        yield dg.AssetCheckResult(
            check_name=check.name,
            passed=share <= resource.max_failure_share,
            metadata={"failure_share": share, "threshold": resource.max_failure_share},
        )
        yield dg.AssetCheckResult(
            check_name=unknown.name,
            passed=report.unknown_total <= resource.max_unknown,
            metadata={"unknown": report.unknown_total, "threshold": resource.max_unknown},
            description=None
            if report.unknown_total <= resource.max_unknown
            else f"`journeyman deliveries list {name} --status unknown` lists them; resolve "
            f"with `journeyman deliveries resolve {name} --as sent|failed`",
        )

    return _asset


def cancel_scheduled_sends(
    name: str, batch_ids: list[str] | None = None, now: datetime | None = None
) -> CancelReport:
    """Cancel destination `name`'s scheduled, not-yet-sent batches (SendGrid) and mark their
    records cancelled in the ledger (the `journeyman cancel-scheduled` command)."""
    resource = destination_resources({name})[f"destination_{name}"]
    destination = resource.build()
    wh = Warehouse(settings.warehouse_setting())
    ensure_journeyman_tables(wh)
    now = now or datetime.now(UTC).replace(tzinfo=None)
    return cancel_scheduled(destination, DeliveryLedger(wh, name), now, batch_ids=batch_ids)


def _destination_names() -> set[str]:
    return {d for a in load_agents(settings.agents_dir()) for d in a.destinations.values()}


def _has_shadow() -> bool:
    """Whether an agent, or one of its policies, runs in shadow mode."""
    return any(
        a.mode == SHADOW or any(p.mode == SHADOW for p in (a.policy, *a.baselines))
        for a in load_agents(settings.agents_dir())
    )


@dg.definitions
def syncs() -> dg.Definitions:
    names = _destination_names()
    assets = [_sync_asset(n) for n in sorted(names)]
    dispatch = dg.define_asset_job(
        "dispatch_due_messages",
        selection=dg.AssetSelection.assets(*[a.key for a in assets]),
        partitions_def=daily,
        description="Send messages whose send time has come, for destinations that cannot "
        "schedule ahead (FCM, webhook, Twilio outside its window).",
    )

    @dg.schedule(job=dispatch, cron_schedule="*/15 * * * *", execution_timezone="UTC")
    def dispatch_every_15_minutes(context: dg.ScheduleEvaluationContext):
        day = context.scheduled_execution_time.date().isoformat()
        return dg.RunRequest(partition_key=day, run_key=None)

    resources = destination_resources(names)
    if _has_shadow():
        shadow = _sync_asset(SHADOW, group=SHADOW)
        assets.append(shadow)
        resources[f"destination_{SHADOW}"] = shadow_resource()
    return dg.Definitions(
        assets=assets,
        jobs=[dispatch],
        schedules=[dispatch_every_15_minutes],
        resources=resources,
    )
