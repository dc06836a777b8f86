"""The whole loop through Dagster, in-process, on a real DuckDB file with real dbt builds."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, date, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from journeyman import settings
from journeyman.sandbox import SandboxWorld, read_outbox
from journeyman.warehouse import Warehouse

START = date(2026, 3, 2)
N = 400


def _defs() -> dg.Definitions:
    from journeyman.orchestration.definitions import defs

    return defs()


def _assets(defs: dg.Definitions, names: set[str] | None = None) -> list[dg.AssetsDefinition]:
    """The project's assets definitions (optionally only those producing the named keys)."""
    out = [a for a in defs.assets if isinstance(a, dg.AssetsDefinition)]
    if names is not None:
        out = [a for a in out if {k.path[-1] for k in a.keys} & names]
    return out


@pytest.fixture(scope="module")
def loop(tmp_path_factory):
    """A small world run for three days through the whole asset graph; shared below."""
    root = tmp_path_factory.mktemp("loop")
    path = root / "warehouse.duckdb"
    mp = pytest.MonkeyPatch()
    mp.setenv(settings.WAREHOUSE_ENV, str(path))
    mp.setenv(settings.SIMULATION_ENV, "1")  # past days, simulated: dispatch is on time
    try:
        defs = _defs()
        resources = dict(defs.resources)
        warehouse = Warehouse(path)
        world = SandboxWorld(warehouse, seed=7)
        world.create(n_customers=N, start=START)
        results = []
        for i in range(3):
            day = START + timedelta(days=i)
            results.append(
                dg.materialize(_assets(defs), partition_key=day.isoformat(), resources=resources)
            )
            sent = [m for m in read_outbox(root / "outbox") if m.send_at.startswith(str(day))]
            world.simulate_day(day, sent)
        yield {
            "root": root,
            "warehouse": warehouse,
            "results": results,
            "defs": defs,
            "resources": resources,
        }
    finally:
        mp.undo()


def test_definitions_load_and_validate():
    defs = _defs()
    dg.Definitions.validate_loadable(defs)
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {"marts/customer_features", "marts/decision_rewards", "decisions"} <= keys
    assert {"sync_sendgrid", "sync_twilio", "sync_fcm"} <= keys  # the agents' destinations
    graph = defs.resolve_asset_graph()
    upstream = {k.to_user_string() for k in graph.get(dg.AssetKey("decisions")).parent_keys}
    assert "marts/customer_features" in upstream
    assert defs.resolve_job_def("daily_loop") is not None
    assert any(s.name == "daily_loop_schedule" for s in defs.schedules)


def test_dg_cli_lists_the_project_definitions():
    dg_exe = Path(sys.executable).parent / "dg"
    out = subprocess.run(
        [str(dg_exe), "list", "defs", "--json"],
        cwd=settings.PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "decisions" in out.stdout and "customer_features" in out.stdout


def test_whole_graph_materializes_each_day(loop):
    assert all(r.success for r in loop["results"])
    materialized = {
        e.asset_key.to_user_string() for e in loop["results"][0].get_asset_materialization_events()
    }
    assert {"marts/customer_features", "decisions", "sync_sendgrid"} <= materialized
    wh = loop["warehouse"]
    per_day = wh.rows(
        "select decision_date, count(*), count(message_id) from journeyman.decisions "
        "group by 1 order by 1"
    )
    assert [r[0] for r in per_day] == [START + timedelta(days=i) for i in range(3)]
    assert all(r[2] > 0 for r in per_day)
    delivered = wh.scalar("select count(*) from journeyman.deliveries where status = 'delivered'")
    sent = wh.scalar("select count(*) from journeyman.decisions where message_id is not null")
    assert delivered == sent
    assert len(read_outbox(loop["root"] / "outbox")) == sent


def test_no_message_without_consent(loop):
    wh = loop["warehouse"]
    violations = wh.scalar(
        """
        select count(*) from journeyman.decisions d
        join raw.consents c on c.customer_id = d.customer_id and c.channel = d.channel
        where d.message_id is not null
          and c.recorded_at < d.decision_date
          and c.recorded_at = (select max(recorded_at) from raw.consents c2
                               where c2.customer_id = c.customer_id and c2.channel = c.channel
                                 and c2.recorded_at < d.decision_date)
          and c.status <> 'opted_in'
        """
    )
    assert violations == 0
    never_consented = wh.scalar(
        """
        select count(*) from journeyman.decisions d
        where d.message_id is not null and not exists (
            select 1 from raw.consents c where c.customer_id = d.customer_id
            and c.channel = d.channel and c.status = 'opted_in'
            and c.recorded_at < d.decision_date)
        """
    )
    assert never_consented == 0
    reasons = {r[0] for r in wh.rows("select distinct exclusion_reason from journeyman.decisions")}
    assert "no_consent" in reasons and "holdout" in reasons


def test_holdout_is_sticky_across_days(loop):
    wh = loop["warehouse"]
    flips = wh.scalar(
        "select count(*) from (select agent, customer_id from journeyman.decisions "
        "group by 1, 2 having count(distinct experiment_group) > 1 or count(distinct policy) > 1)"
    )
    assert flips == 0
    assert (
        wh.scalar(
            "select count(*) from journeyman.decisions where experiment_group = 'holdout' "
            "and message_id is not null"
        )
        == 0
    )


def test_rerunning_a_day_changes_nothing_and_sends_nothing_twice(loop):
    wh = loop["warehouse"]
    day = START + timedelta(days=2)
    before = wh.read_arrow(
        f"select * exclude (created_at) from journeyman.decisions where decision_date = '{day}' "
        "order by decision_id"
    )
    outbox_before = len(read_outbox(loop["root"] / "outbox"))
    defs = loop["defs"]
    result = dg.materialize(
        _assets(defs, {"decisions", "sync_sendgrid", "sync_twilio", "sync_fcm"}),
        partition_key=day.isoformat(),
        resources=loop["resources"],
    )
    assert result.success
    after = wh.read_arrow(
        f"select * exclude (created_at) from journeyman.decisions where decision_date = '{day}' "
        "order by decision_id"
    )
    assert before.equals(after)
    assert len(read_outbox(loop["root"] / "outbox")) == outbox_before


def test_message_tags_mirror_the_agent_files_and_feed_offer_responses(loop):
    """Each decision run records the agents' message tags (three runs with the same files: one
    current row per tag, open since the first day, no copies); dbt turns them into per-customer
    responses to messages with and without an offer."""
    from journeyman.decisioning.config import load_agents

    wh = loop["warehouse"]
    assert wh.rows(
        "select count(distinct valid_from), count(valid_to) from journeyman.message_tags"
    ) == [(1, 0)]
    stored = sorted(wh.rows("select agent, message_id, tag, value from journeyman.message_tags"))
    expected = sorted(
        (agent.name, message.id, tag, value)
        for agent in load_agents(settings.agents_dir())
        for message in agent.dimensions.messages
        for tag, value in message.tags.items()
    )
    assert stored == expected
    low, high = wh.rows(
        "select min(offer_response_rate), max(offer_response_rate) from marts.customer_features"
    )[0]
    assert 0 < low < high < 1  # some customers have answered (or ignored) offers by day three


def test_staging_exclusions_match_the_bad_rows_the_feed_sent(loop):
    import zoneinfo

    wh = loop["warehouse"]
    counts = {
        (r[0], r[1]): r[2]
        for r in wh.rows(
            "select source_table, reason_code, row_count from marts.dq_exclusion_counts"
        )
    }
    raw = wh.rows("select customer_id, time_zone from raw.customers")
    zones = zoneinfo.available_timezones()
    null_ids = sum(1 for cid, _ in raw if cid is None)
    bad_zones = sum(1 for cid, tz in raw if cid is not None and tz not in zones)
    assert null_ids > 0
    assert counts.get(("raw.customers", "null_customer_id"), 0) == null_ids
    assert counts.get(("raw.customers", "unknown_time_zone"), 0) <= bad_zones
    features = {r[0] for r in wh.rows("select customer_id from marts.customer_features")}
    assert not any(tz not in zones and cid in features for cid, tz in raw)


def test_missing_source_tables_fail_with_a_clear_message(tmp_path, monkeypatch):
    monkeypatch.setenv(settings.WAREHOUSE_ENV, str(tmp_path / "empty.duckdb"))
    defs = _defs()
    result = dg.materialize(
        _assets(defs),
        partition_key=START.isoformat(),
        resources=dict(defs.resources),
        raise_on_error=False,
    )
    assert not result.success
    failures = [e for e in result.all_events if e.is_step_failure]
    message = failures[0].step_failure_data.error.message
    assert "has no raw.customers" in message and "journeyman demo" in message


def test_each_destination_sync_reports_and_checks_its_failure_share(loop):
    result = loop["results"][-1]
    checks = [
        c
        for c in result.get_asset_check_evaluations()
        if c.check_name == "failure_share_within_threshold"
    ]
    assert sorted(c.asset_key.to_user_string() for c in checks) == [
        "sync_fcm",
        "sync_sendgrid",
        "sync_twilio",
    ]
    assert all(c.passed for c in checks)
    assert all(c.metadata["failure_share"].value == 0.0 for c in checks)
    materialization = [
        e
        for e in result.get_asset_materialization_events()
        if e.asset_key.to_user_string() == "sync_sendgrid"
    ][0]
    metadata = materialization.event_specific_data.materialization.metadata
    assert metadata["delivered"].value == metadata["sent"].value > 0
    assert metadata["unknown_total"].value == 0 and metadata["expired"].value == 0
    unknown = [
        c
        for c in result.get_asset_check_evaluations()
        if c.check_name == "unknown_within_threshold"
    ]
    assert len(unknown) == 3 and all(c.passed for c in unknown)


def test_each_sync_sends_as_many_requests_at_once_as_its_vendor_wants(loop):
    """A sync's waves are as wide as its destination wants (here the file destination's
    default); one message per request (FCM, Twilio) → wide waves, batch APIs → two."""
    from journeyman.connectors.fcm import FcmDestination
    from journeyman.connectors.sendgrid import SendGridDestination
    from journeyman.connectors.twilio import TwilioDestination

    result = loop["results"][-1]
    used = {
        e.asset_key.to_user_string(): e.event_specific_data.materialization.metadata[
            "concurrency"
        ].value
        for e in result.get_asset_materialization_events()
        if e.asset_key.to_user_string().startswith("sync_")
    }
    wanted = {}
    for key in used:
        resource = loop["resources"][f"destination_{key.removeprefix('sync_')}"]
        wanted[key] = resource.concurrency or resource.build().default_concurrency
    assert used == wanted and len(used) == 3
    assert FcmDestination.default_concurrency == TwilioDestination.default_concurrency == 16
    assert SendGridDestination.default_concurrency == 2


def test_destination_catalog_rejects_secrets_in_the_file(tmp_path, monkeypatch):
    from journeyman.connectors.catalog import DestinationConfigError, load_catalog

    path = tmp_path / "destinations.yml"
    path.write_text("sendgrid:\n  kind: sendgrid\n  api_key: SG.sentinel-not-a-real-key\n")
    with pytest.raises(DestinationConfigError) as err:
        load_catalog(path)
    assert "SENDGRID_API_KEY" in str(err.value) and "sentinel" not in str(err.value)
    path.write_text("esp:\n  kind: carrier_pigeon\n")
    with pytest.raises(DestinationConfigError, match="`kind`"):
        load_catalog(path)


@pytest.mark.parametrize("value", ["0", "65", "many", "2.5", "true"])
def test_destination_catalog_names_a_bad_concurrency_and_its_range(tmp_path, value):
    from journeyman.connectors.catalog import DestinationConfigError, load_catalog

    path = tmp_path / "destinations.yml"
    path.write_text(f"push:\n  kind: fcm\n  concurrency: {value}\n")
    with pytest.raises(DestinationConfigError) as err:
        load_catalog(path)
    assert str(path) in str(err.value) and "`push` field `concurrency`" in str(err.value)
    assert "1 to 64" in str(err.value)


def test_a_catalog_concurrency_overrides_the_vendor_default(tmp_path, monkeypatch):
    from journeyman.connectors.catalog import CATALOG_ENV
    from journeyman.orchestration.defs.destinations import destination_resources

    path = tmp_path / "destinations.yml"
    path.write_text("push:\n  kind: fcm\n  concurrency: 4\nsms:\n  kind: twilio\n")
    monkeypatch.setenv(CATALOG_ENV, str(path))
    resources = destination_resources({"push", "sms"})
    assert resources["destination_push"].concurrency == 4
    assert "concurrency" not in resources["destination_push"].options
    assert resources["destination_sms"].concurrency == 0  # → TwilioDestination's 16


def test_every_send_carries_its_window_closing_at_the_agents_quiet_hours(loop):
    """The shipped agents' quiet hours start at 21:00 local, after every send hour they offer:
    each planned send may still leave late, until 21:00 in the customer's own zone."""
    rows = loop["warehouse"].rows(
        "select d.send_at, d.send_until, f.time_zone from journeyman.decisions d "
        "join marts.customer_features f using (customer_id) where d.message_id is not null"
    )
    assert rows
    for send_at, send_until, zone in rows:
        assert send_until is not None and send_until > send_at
        local = send_until.replace(tzinfo=UTC).astimezone(ZoneInfo(zone))
        assert (local.hour, local.minute) == (21, 0)


def test_an_empty_secret_is_reported_like_a_missing_one(monkeypatch):
    from journeyman.orchestration.defs.destinations import DestinationResource

    monkeypatch.setenv("JM_TEST_SENDGRID_KEY", "")  # e.g. a blank line copied from .env.example
    resource = DestinationResource(
        name="sendgrid",
        kind="sendgrid",
        options={"from_email": "news@shop.example"},
        secrets={"api_key": "JM_TEST_SENDGRID_KEY"},
    )
    with pytest.raises(dg.Failure, match="JM_TEST_SENDGRID_KEY"):
        resource.build()
