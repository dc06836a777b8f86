"""The demo records its simulated days in the persistent project instance (`dagster/` next to the
warehouse, with the project's dagster.yaml), where `dagster dev` finds the runs, the assets'
metadata and the health checks' results."""

from __future__ import annotations

import shlex
from datetime import date, timedelta

import dagster as dg
import pytest
from dagster._core.instance.ref import InstanceRef

from journeyman import settings
from journeyman.orchestration.defs.partitions import WAREHOUSE_POOL
from journeyman.orchestration.demo import (
    DEMO_TAG,
    DemoOptions,
    demo_delivery,
    prepare_warehouse,
    run_demo,
)
from journeyman.orchestration.run import HOST_TAG, PID_TAG, PROJECT_INSTANCE_CONFIG

START = date(2026, 3, 2)
OPTIONS = DemoOptions(customers=150, days=1, seed=3, start=START)
AGENTS = ("cross_sell", "recurring_purchase", "winback")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """A one-day demo (file delivery) with DAGSTER_HOME unset; then its instance, opened from
    the folder the way `DAGSTER_HOME=<folder> dagster dev` opens it."""
    root = tmp_path_factory.mktemp("demo")
    path = root / "warehouse.duckdb"
    mp = pytest.MonkeyPatch()
    mp.setenv(settings.WAREHOUSE_ENV, str(path))
    mp.delenv("DAGSTER_HOME", raising=False)
    try:
        from journeyman.orchestration.definitions import defs

        with demo_delivery("file", root, path, OPTIONS.seed) as delivery:
            warehouse = prepare_warehouse(path, root / "outbox")
            run_demo(OPTIONS, defs(), warehouse, root / "outbox", delivery=delivery)
        home = root / "dagster"
        with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
            yield {"root": root, "home": home, "instance": instance, "path": path, "mp": mp}
    finally:
        mp.undo()


def _metadata(instance: dg.DagsterInstance, key: str) -> dict[str, dict]:
    """partition → the asset's materialization metadata."""
    records = instance.fetch_materializations(dg.AssetKey(key.split("/")), limit=100).records
    return {r.partition_key: r.asset_materialization.metadata for r in records}


def test_the_instance_folder_holds_the_project_settings(demo):
    config = demo["home"] / "dagster.yaml"
    assert config.read_text() == PROJECT_INSTANCE_CONFIG.read_text()
    instance = demo["instance"]
    assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
    info = instance.event_log_storage.get_concurrency_info(WAREHOUSE_POOL)
    assert info.claimed_slots == []  # every step gave the warehouse slot back


def test_each_simulated_day_is_a_recorded_run(demo):
    runs = sorted(
        demo["instance"].get_runs(filters=dg.RunsFilter(job_name="daily_loop")),
        key=lambda r: r.tags["dagster/partition"],
    )
    days = [(START + timedelta(days=i)).isoformat() for i in range(OPTIONS.days + 1)]
    assert [r.tags["dagster/partition"] for r in runs] == days  # the last one settles outcomes
    assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
    assert all(DEMO_TAG in r.tags and HOST_TAG in r.tags and PID_TAG in r.tags for r in runs)
    assert "150 customers, seed 3" in runs[0].tags[DEMO_TAG]


def test_decisions_carry_a_markdown_table_per_agent(demo):
    by_day = _metadata(demo["instance"], "decisions")
    assert sorted(by_day) == [START.isoformat()]  # not in the settling run
    metadata = by_day[START.isoformat()]
    assert isinstance(metadata["decisions"], dg.IntMetadataValue)
    totals = {"decisions": 0, "messages planned": 0}
    for agent in AGENTS:
        table = metadata[f"agent_{agent}"]
        assert isinstance(table, dg.MarkdownMetadataValue)
        for figure in ("held out", "excluded: not_eligible", "normalized entropy", "top action"):
            assert figure in table.value, (agent, figure)
        for line in table.value.splitlines():
            cells = [c.strip() for c in line.strip("|").split("|")]
            if cells[0] in totals:
                totals[cells[0]] += int(cells[1])
    assert totals["decisions"] == metadata["decisions"].value
    assert totals["messages planned"] == metadata["messages_planned"].value > 0


def test_each_sync_carries_its_outcomes_as_a_markdown_table(demo):
    metadata = _metadata(demo["instance"], "sync_sendgrid")[START.isoformat()]
    summary = metadata["summary"].value
    assert summary.splitlines()[0].startswith("| destination | decisions routed | sent |")
    sent, delivered = metadata["sent"].value, metadata["delivered"].value
    assert isinstance(metadata["sent"], dg.IntMetadataValue) and sent == delivered > 0
    assert f"| sendgrid | {metadata['decisions_routed'].value} | {sent} | {delivered} | 0 |" in (
        summary
    )


def _evaluations(instance: dg.DagsterInstance, key: dg.AssetCheckKey) -> list:
    """The check's recorded evaluations, newest first (not the rows of planned executions)."""
    history = instance.event_log_storage.get_asset_check_execution_history(key, limit=20)
    events = [h.event.dagster_event.event_specific_data for h in history if h.event]
    return [e for e in events if isinstance(e, dg.AssetCheckEvaluation)]


def test_the_health_checks_results_are_recorded_per_day(demo):
    from journeyman.orchestration.defs.health import model_key

    volume = dg.AssetCheckKey(dg.AssetKey("decisions"), "decision_volume_stable")
    (first,) = _evaluations(demo["instance"], volume)
    assert first.passed and first.description.startswith("not enough data")  # no history yet
    events = dg.AssetCheckKey(model_key("stg_raw__message_events"), "message_events_fresh")
    evaluations = _evaluations(demo["instance"], events)
    assert len(evaluations) == OPTIONS.days + 1  # the settling run builds staging too
    assert all(e.passed for e in evaluations)


def test_dev_command_line_opens_the_ui_on_the_demo_s_instance(demo):
    from journeyman.orchestration.run import dev_command_line

    command = dev_command_line()
    assert command[:3] == [
        "env",
        f"DAGSTER_HOME={demo['home']}",
        f"{settings.WAREHOUSE_ENV}={demo['path']}",
    ]
    assert command[3].endswith("dagster")
    workspace = demo["home"] / "workspace.yaml"
    assert command[4:] == ["dev", "-w", str(workspace)]
    assert "module_name: journeyman.orchestration.definitions" in workspace.read_text()
    assert shlex.split(shlex.join(command)) == command


def test_each_dbt_step_reuses_one_target_folder_of_the_warehouse(demo):
    """dbt's target folders live in the instance's storage, one per warehouse and step, reused
    from run to run: dbt's partial parsing carries over (its log says so on the later builds),
    and another warehouse's builds would write elsewhere."""
    folders = sorted((demo["home"] / "storage" / "dbt").glob("*/daily_*"))
    assert [f.name for f in folders] == ["daily_feature_models", "daily_warehouse_models"]
    assert len({f.parent for f in folders}) == 1  # one warehouse: one folder
    log = (folders[1] / "dbt.log").read_text()
    assert log.count("Running with dbt=") >= 2  # several builds in the same folder
    assert "skipping partial parsing" in log or "Partial parsing enabled" in log
