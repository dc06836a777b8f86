"""Benchmark: one production day of `daily_loop` on a sandbox warehouse with 90 days of history.

What is real: the sandbox world's population, its two years of orders, its 26 weeks of the
brand's campaign events and consents (`SandboxWorld.create`, vectorised, starting on the
production day D); the production day itself, run through the same Dagster job and definitions
as `journeyman run` (in this process, recorded in a Dagster instance under the work folder):
journeyman_tables + dbt build, decisions, one run per `sync_<destination>` asset delivering to
the demo's SendGrid / Twilio / FCM emulators (`demo_delivery("emulators")`), then the world
answers what the emulators accepted and the e-mail events and SMS receipts come back through the
signed webhooks and the event intake into raw.message_events.

What is fabricated (DuckDB SQL, no day simulated): the 90 days of journeyman history before D, at
the volumes the demo writes per customer: one decision per agent x customer x day for the
project's agents (agents/*.yml, their real action ids, destinations, goals and penalties), stored
in `journeyman.decisions` for the customers in the agent's audience, with sticky hash groups (10 %
holdout, 20 % business as usual, 3 % random control), the audience share of each agent (win-back
45 %, the others 3 %), guardrail exclusions, "send nothing" and a uniform choice among the agent's
actions; decision-time features (hash-drawn, every marked feature) for the acted and held-out
decisions; the message tags; one ledger row per sent message (98.9 % delivered); the message
events of the delivered ones (e-mail opens 20 %, clicks 2.5 %, ...). On PostgreSQL the warehouse
is fabricated in a scratch DuckDB file and copied table by table (Arrow batches, COPY). Then a dbt
build as of D-1 (the Dagster job's dbt assets) builds everything once, incremental learning
statistics included: the "warm-up", timed but not a stage of the day.

    .venv/bin/python benchmarks/daily_cycle.py --customers 100000 [--backend duckdb|postgres]
        [--history-days 90] [--keep DIR] [--warehouse postgresql+psycopg://...]
        [--fabricate-only FILE | --from FILE]

The fabrication runs in a child process (this one starts the day without its memory);
`--fabricate-only FILE` writes the fabricated warehouse and stops, `--from FILE` starts a run
from a copy of it (the `customers` figure of the JSON then comes from the file).

Per stage: seconds and peak RSS (this process's VmHWM, reset per stage through
/proc/self/clear_refs, and this process plus its children, such as dbt, sampled every 0.2 s;
the PostgreSQL server's memory is not counted). Last line: one JSON object.
Targets (2 cores): 1M customers on DuckDB under 300 s end to end, peak RSS under 2 GB.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pyarrow as pa  # noqa: E402

from benchmarks.report import cpu_model  # noqa: E402
from journeyman import settings  # noqa: E402
from journeyman.decisioning.config import load_agents  # noqa: E402
from journeyman.decisioning.schema import AgentConfig  # noqa: E402
from journeyman.sandbox.state import SANDBOX_DDL  # noqa: E402
from journeyman.tables import (  # noqa: E402
    ensure_feature_columns,
    ensure_journeyman_tables,
    ensure_raw_tables,
)
from journeyman.warehouse import (  # noqa: E402
    MEMORY_LIMIT_ENV,
    Warehouse,
    append_arrow,
    duckdb_memory_limit,
    stream_arrow,
)

DAY = date(2026, 6, 1)  # the production day D (a past daily partition)
SEED = 1
AUDIENCE = {"winback": 0.45}  # share of customers in the agent's audience per day; else 3 %
NO_SEND = {"winback": 0.25}  # share of acted decisions that send nothing; else 50 %
GUARDRAIL_EXCLUDED = 0.5  # of eligible, non-holdout decisions
EVENTS = {  # message events of a delivered message: (kind, probability)
    "email": (("open", 0.2), ("click", 0.025), ("unsubscribe", 0.004), ("complaint", 0.0002)),
    "sms": (("click", 0.07), ("unsubscribe", 0.006)),
    "push": (("open", 0.04),),
}
TABLES = (  # what the Postgres copy carries over
    "raw.customers",
    "raw.orders",
    "raw.consents",
    "raw.message_events",
    "sandbox.world",
    "sandbox.customer_traits",
    "sandbox.customer_state",
    "journeyman.decisions",
    "journeyman.decision_features",
    "journeyman.message_tags",
    "journeyman.deliveries",
)


# --- measuring ----------------------------------------------------------------------------------


def _status_kb(pid: str, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _descendants(pid: str) -> list[str]:
    found: list[str] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return found
    for task in tasks:
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in children:
            found += [child, *_descendants(child)]
    return found


def _tree_rss_mb() -> float:
    pids = ["self", *_descendants(str(os.getpid()))]
    return sum(_status_kb(p, "VmRSS:") for p in pids) / 1024


@dataclass
class Meter:
    """Seconds and peak RSS per stage: VmHWM of this process (reset at each stage start) and a
    0.2 s sampler of this process plus its children."""

    stages: dict[str, dict[str, float]] = field(default_factory=dict)
    _peak: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            self._peak = max(self._peak, _tree_rss_mb())

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[dict[str, float]]:
        with contextlib.suppress(OSError):
            Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        self._peak = _tree_rss_mb()
        self._stop.clear()
        sampler = threading.Thread(target=self._sample, daemon=True)
        sampler.start()
        record: dict[str, float] = {}
        started = time.perf_counter()
        try:
            yield record
        finally:
            seconds = time.perf_counter() - started
            self._stop.set()
            sampler.join()
            own = _status_kb("self", "VmHWM:") / 1024
            record.update(
                seconds=round(seconds, 2),
                peak_rss_mb=round(max(own, self._peak), 1),
                self_peak_rss_mb=round(own, 1),
            )
            self.stages[name] = record
            print(
                f"  {name}: {seconds:.1f} s, peak RSS {record['peak_rss_mb']:.0f} MB",
                file=sys.stderr,
            )


# --- fabricating the history --------------------------------------------------------------------


def _values(rows: list[tuple[Any, ...]]) -> str:
    def literal(v: Any) -> str:
        if v is None:
            return "null"
        if isinstance(v, str):
            return "'" + v.replace("'", "''") + "'"
        return repr(v)

    return ", ".join("(" + ", ".join(literal(v) for v in row) + ")" for row in rows)


def _agent_tables(wh: Warehouse, agents: list[AgentConfig]) -> None:
    """Temporary tables of the agents' goals and actions (message/channel/hour)."""
    goals, actions = [], []
    for agent in agents:
        pen = agent.goal.penalties
        mine = [
            (agent.name, f"{m.id}/{c}/{h:02d}", m.id, c, h, agent.destinations[c])
            for m in agent.dimensions.messages
            for c in agent.dimensions.channels
            if m.content(c)
            for h in agent.dimensions.send_hours
        ]
        actions += [(a, k, *rest) for k, (a, *rest) in enumerate(mine)]
        goals.append(
            (
                agent.name,
                agent.goal.metric,
                agent.goal.attribution_window_days,
                agent.goal.learning_window_days,
                float(pen.get("unsubscribe", 0.0)),
                float(pen.get("complaint", 0.0)),
                AUDIENCE.get(agent.name, 0.03),
                NO_SEND.get(agent.name, 0.5),
                len(mine),
            )
        )
    wh.execute(
        f"""
        create or replace table bench_goals as select * from (values {_values(goals)})
            t(agent, goal, attribution, learning, pen_unsub, pen_complaint, audience, no_send,
              n_actions);
        create or replace table bench_actions as select * from (values {_values(actions)})
            t(agent, k, action_id, message_id, channel, local_hour, destination);
        """
    )


def _decisions(wh: Warehouse, first: date, days: int) -> None:
    """One decision per agent x customer x day of the history, stored for the customers in the
    agent's audience (see the module docstring)."""
    wh.execute(
        f"""
        insert into journeyman.decisions (decision_id, agent, decision_date, customer_id, policy,
            policy_version, experiment_group, action_id, message_id, channel, local_hour,
            subject_variant, send_at, send_until, propensity, exclusion_reason, goal_metric,
            attribution_window_days, learning_window_days, penalty_unsubscribe,
            penalty_complaint, created_at)
        with drawn as (
        select g.*, d.day, c.customer_id,
            g.agent || '-' || strftime(d.day, '%Y%m%d') || '-' || c.customer_id as decision_id,
            hash(c.customer_id, g.agent) % 100 as grp,
            hash(c.customer_id, g.agent, d.day) as h
        from bench_goals g
        cross join (select (date '{first}' + to_days(j::integer))::date as day
                    from range({days}) r(j)) d
        cross join (select customer_id from sandbox.customer_traits) c
        ), grouped as (
            select *,
                case when grp < 10 then 'holdout' when grp < 30 then 'business_as_usual'
                    when grp < 33 then 'random_control' else 'treatment' end as experiment_group,
                case when (h % 1000000) / 1e6 >= audience then 'not_eligible'
                    when grp < 10 then 'holdout'
                    when ((h >> 20) % 1000000) / 1e6 < {GUARDRAIL_EXCLUDED}
                    then ['cap_reached', 'min_gap', 'no_consent'][1 + ((h >> 60) % 3)::integer]
                    end as exclusion_reason,
                ((h >> 40) % 1000) / 1e3 < no_send as no_send_drawn,
                ((h >> 50) % n_actions)::integer as k
            from drawn
        )
        select decision_id, g.agent, day, customer_id,
            case experiment_group when 'business_as_usual' then 'rule_based'
                when 'random_control' then 'uniform_random' else 'linear_ts' end,
            'bench', experiment_group,
            case when exclusion_reason is not null then null when no_send_drawn then 'no_send'
                else a.action_id end,
            case when exclusion_reason is null and not no_send_drawn then a.message_id end,
            case when exclusion_reason is null and not no_send_drawn then a.channel end,
            case when exclusion_reason is null and not no_send_drawn then a.local_hour end,
            0,
            case when exclusion_reason is null and not no_send_drawn
                then day + to_hours(a.local_hour) end,
            case when exclusion_reason is null and not no_send_drawn
                then day + to_hours(a.local_hour + 3) end,
            case when exclusion_reason is null then 1.0 / (n_actions + 1) end,
            exclusion_reason, goal, attribution, learning, pen_unsub, pen_complaint,
            day::timestamp
        from grouped g left join bench_actions a on a.agent = g.agent and a.k = g.k
        where exclusion_reason is distinct from 'not_eligible'  -- counted, never stored
        """
    )


def _features(wh: Warehouse, features: list[str]) -> None:
    """Hash-drawn decision-time features of the acted and held-out decisions."""
    ensure_feature_columns(wh, features)
    values = ", ".join(
        f"((h >> {3 * (i % 16)}) % 1000) / "
        + ("1000.0" if any(s in f for s in ("rate", "cos", "sin", "affinity", "share")) else "10.0")
        for i, f in enumerate(features)
    )
    columns = ", ".join(f'"{f}"' for f in features)
    wh.execute(
        f"""
        insert into journeyman.decision_features (decision_id, agent, decision_date, {columns})
        select decision_id, agent, decision_date, {values}
        from (select decision_id, agent, decision_date, hash(decision_id, 'f') as h
              from journeyman.decisions
              where exclusion_reason is null or exclusion_reason = 'holdout')
        """
    )


def _ledger_and_events(wh: Warehouse, agents: list[AgentConfig]) -> None:
    """A ledger row per sent message of a non-holdout group; events of the delivered ones."""
    tags = [
        (a.name, m.id, tag, value)
        for a in agents
        for m in a.dimensions.messages
        for tag, value in sorted(m.tags.items())
    ]
    events = [("delivered", c, 1.0) for c in EVENTS] + [
        (kind, c, p) for c, kinds in EVENTS.items() for kind, p in kinds
    ]
    wh.execute(
        f"""
        insert into journeyman.message_tags (agent, message_id, tag, value)
        values {_values(tags)};
        insert into journeyman.deliveries (decision_id, destination, status, idempotency_key,
            attempts, updated_at, delivered_at, send_at, attempted_at, send_until)
        select decision_id, a.destination,
            case when u < 0.01 then 'failed_permanent' when u < 0.011 then 'expired'
                else 'delivered' end,
            decision_id, 1, d.send_at, case when u >= 0.011 then d.send_at end, d.send_at,
            d.send_at, d.send_until
        from (select *, (hash(decision_id, 'ledger') % 1000000) / 1e6 as u
              from journeyman.decisions where message_id is not null) d
        join bench_actions a using (action_id)
        where d.agent = a.agent;
        insert into raw.message_events
        select 'evt-' || l.decision_id || '-' || e.kind, l.decision_id, d.customer_id,
            d.channel, e.kind,
            d.send_at + to_seconds((30 + hash(l.decision_id, e.kind) % 36000)::bigint),
            d.decision_date + interval 26 hour
        from journeyman.deliveries l join journeyman.decisions d using (decision_id)
        join (values {_values(events)}) e(kind, channel, p) on e.channel = d.channel
        where l.status = 'delivered' and (hash(l.decision_id, e.kind) % 100000) / 1e5 < e.p;
        drop table bench_goals;
        drop table bench_actions;
        """
    )


def fabricate(path: Path, customers: int, history_days: int) -> dict[str, int]:
    """The world (population, orders, campaigns) and the fabricated journeyman history."""
    from journeyman.decisioning.features import discover_features
    from journeyman.orchestration.project import prepare_manifest
    from journeyman.sandbox import SandboxWorld

    wh = Warehouse(path)
    SandboxWorld(wh, seed=SEED).create(n_customers=customers, start=DAY)
    ensure_journeyman_tables(wh)
    agents = load_agents(settings.agents_dir())
    # every marked feature, as the decisions asset snapshots them (the learning statistics
    # count a decision only when all are present)
    features = discover_features(prepare_manifest())
    _agent_tables(wh, agents)
    _decisions(wh, DAY - timedelta(days=history_days), history_days)
    _features(wh, features)
    _ledger_and_events(wh, agents)
    wh.execute("checkpoint")
    return _counts(wh)


def _counts(wh: Warehouse) -> dict[str, int]:
    return {t: int(wh.scalar(f"select count(*) from {t}")) for t in TABLES if "." in t}


def copy_to_postgres(source: Path, target: Warehouse, batch: int = 200_000) -> None:
    """Every table of TABLES from the scratch DuckDB file into the server, in Arrow batches."""
    src = Warehouse(source, read_only=True)
    ensure_raw_tables(target)
    target.execute(SANDBOX_DDL)
    ensure_journeyman_tables(target)
    features = [
        r[0]
        for r in src.rows(
            "select column_name from information_schema.columns where table_schema = "
            "'journeyman' and table_name = 'decision_features' order by ordinal_position"
        )
    ][3:]
    ensure_feature_columns(target, features)
    with src.connect() as read:
        for table in TABLES:
            with target.connect() as write:
                for chunk in stream_arrow(read, f"select * from {table}", batch):
                    append_arrow(write, table, pa.Table.from_batches([chunk]))
    target.execute("analyze")


# --- the production day ---------------------------------------------------------------------------


@dataclass
class TimedReporter:
    """The vendors' webhooks to the intake, timed: the intake's share of the world's answer."""

    inner: Any  # journeyman.sandbox.vendors.SandboxVendors
    seconds: float = 0.0
    posted: int = 0

    def report(self, events: pa.Table) -> pa.Table:
        started = time.perf_counter()
        rest = self.inner.report(events)
        self.seconds += time.perf_counter() - started
        self.posted += events.num_rows - rest.num_rows
        return rest


def _run(instance: Any, job: Any, day: date, keys: list[Any]) -> None:
    """One run of `job` for partition `day` limited to `keys`, as `journeyman run --select`."""
    from journeyman.orchestration.failures import describe_failure
    from journeyman.orchestration.run import execute_recorded

    result, output = execute_recorded(instance, job, day.isoformat(), keys)
    if not result.success:
        tail = "\n".join(output.splitlines()[-20:])
        sys.exit(f"{day} {[k.to_user_string() for k in keys]}: {describe_failure(result)}\n{tail}")


def _answer(location: str, delivery: Any, meter: Meter) -> dict[str, int]:
    """The world answers what the emulators accepted; the webhooks go through the intake."""
    from journeyman.sandbox import SandboxWorld

    wh = Warehouse(location)
    reporter = TimedReporter(delivery.vendors)
    with meter.stage("world_and_intake") as record:
        messages = delivery.delivered(DAY, wh)
        summary = SandboxWorld(wh, seed=SEED).simulate_day(DAY, messages, reporter=reporter)
    record["intake_seconds"] = round(reporter.seconds, 2)
    record["world_seconds"] = round(record["seconds"] - reporter.seconds, 2)
    return {
        "answered_messages": summary.messages,
        "webhook_events": reporter.posted,
        "events": sum(summary.events.values()),
    }


@contextlib.contextmanager
def _memory_limit(limit: str | None) -> Iterator[None]:
    """JOURNEYMAN_DUCKDB_MEMORY_LIMIT set to `limit` inside (dbt's profile reads it), if given."""
    before = os.environ.get(MEMORY_LIMIT_ENV)
    if limit:
        os.environ[MEMORY_LIMIT_ENV] = limit
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(MEMORY_LIMIT_ENV, None)
        else:
            os.environ[MEMORY_LIMIT_ENV] = before


def run_day(
    location: str, workdir: Path, meter: Meter, warmup_limit: str | None = None
) -> dict[str, int]:
    """The warm-up build as of D-1, then day D through `daily_loop`, stage by stage.
    `warmup_limit`: DuckDB's memory limit for the warm-up only (a first full build of the whole
    history needs more than a day's incremental build)."""
    import dagster as dg

    os.environ[settings.WAREHOUSE_ENV] = location
    os.environ[settings.SIMULATION_ENV] = "1"  # as the demo: the day's sends are due now
    settings.export_dbt_environment(location)
    from journeyman.orchestration.project import prepare_manifest

    prepare_manifest()
    from journeyman.orchestration.definitions import defs
    from journeyman.orchestration.demo import demo_delivery
    from journeyman.orchestration.run import project_instance

    with (
        demo_delivery("emulators", workdir, location, SEED) as delivery,
        project_instance(workdir / "dagster") as instance,
    ):
        job = defs().resolve_job_def("daily_loop")
        keys = sorted(job.asset_layer.executable_asset_keys, key=lambda k: k.to_user_string())
        syncs = [k for k in keys if k.path[-1].startswith("sync_")]
        decide = dg.AssetKey("decisions")
        build = [k for k in keys if k != decide and k not in syncs]
        with meter.stage("warmup_dbt"), _memory_limit(warmup_limit):  # once: not the day's
            _run(instance, job, DAY - timedelta(days=1), build)
        with meter.stage("tables_dbt"):
            _run(instance, job, DAY, build)
        with meter.stage("decisions"):
            _run(instance, job, DAY, [decide])
        for key in syncs:
            with meter.stage(key.path[-1]):
                _run(instance, job, DAY, [key])
        counts = _answer(location, delivery, meter)
    wh = Warehouse(location)
    counts["decisions_today"] = int(
        wh.scalar(f"select count(*) from journeyman.decisions where decision_date = '{DAY}'")
    )
    counts["sent_today"] = int(
        wh.scalar(
            "select count(*) from journeyman.deliveries l join journeyman.decisions d "
            f"using (decision_id) where d.decision_date = '{DAY}' and l.status = 'delivered'"
        )
    )
    return counts


# --- the whole run ------------------------------------------------------------------------------

SETUP = ("fabricate", "copy_to_postgres", "warmup_dbt")


def benchmark(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    from journeyman.orchestration.demo import prepare_warehouse

    meter = Meter()
    if args.backend == "postgres":
        location = args.warehouse or os.environ.get("JOURNEYMAN_TEST_POSTGRES_URL", "")
        if not location.startswith("postgresql"):
            sys.exit("--backend postgres needs --warehouse URL or JOURNEYMAN_TEST_POSTGRES_URL")
        scratch = workdir / "scratch.duckdb"
    else:
        location = str(workdir / "warehouse.duckdb")
        scratch = Path(location)
    target = prepare_warehouse(location, workdir / "outbox")
    with meter.stage("fabricate"):
        if args.source:  # a warehouse `--fabricate-only` wrote
            shutil.copyfile(args.source, scratch)
            counts = _counts(Warehouse(scratch, read_only=True))
        else:  # in a child process, so that this one starts the day without its memory
            spawn = multiprocessing.get_context("spawn")
            with spawn.Pool(1) as pool:
                counts = pool.apply(fabricate, (scratch, args.customers, args.history_days))
    print(f"fabricated {counts}", file=sys.stderr)
    if args.backend == "postgres":
        with meter.stage("copy_to_postgres"):
            copy_to_postgres(scratch, target)
        scratch.unlink()
    counts |= run_day(location, workdir, meter, args.warmup_memory_limit)
    day = {k: v for k, v in meter.stages.items() if k not in SETUP}
    total = sum(v["seconds"] for v in day.values())
    peak = max(v["peak_rss_mb"] for v in day.values())
    return {
        "benchmark": "daily_cycle",
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "backend": args.backend,
        "duckdb_memory_limit": duckdb_memory_limit(),
        "warmup_duckdb_memory_limit": args.warmup_memory_limit or duckdb_memory_limit(),
        "customers": counts.get("sandbox.customer_traits", args.customers),
        "history_days": args.history_days,
        "day": DAY.isoformat(),
        "day_seconds": round(total, 1),
        "day_peak_rss_mb": peak,
        "stages": meter.stages,
        "counts": counts,
        "target_seconds": 300,
        "target_peak_rss_mb": 2048,
        "ok": total < 300 and peak < 2048,
    }


def growth(small: Path, large: Path) -> dict[str, Any]:
    """Per-stage growth factors between two runs' JSON lines (e.g. 1M over 100k customers)."""
    a, b = (json.loads(p.read_text().strip().splitlines()[-1]) for p in (small, large))
    scale = b["customers"] / a["customers"]
    factors = {
        name: {
            "seconds": round(b["stages"][name]["seconds"] / max(s["seconds"], 1e-9), 2),
            "peak_rss_mb": round(b["stages"][name]["peak_rss_mb"] / s["peak_rss_mb"], 2),
        }
        for name, s in a["stages"].items()
        if name in b["stages"]
    }
    return {"benchmark": "daily_cycle_growth", "customers_ratio": scale, "stages": factors}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--backend", choices=("duckdb", "postgres"), default="duckdb")
    parser.add_argument("--history-days", type=int, default=90)
    parser.add_argument("--warehouse", help="PostgreSQL URL (default JOURNEYMAN_TEST_POSTGRES_URL)")
    parser.add_argument("--keep", type=Path, help="Work (and keep the warehouse) in this folder.")
    parser.add_argument(
        "--warmup-memory-limit",
        help="DuckDB's memory limit for the warm-up build only (e.g. 4GB; default: the day's)",
    )
    parser.add_argument("--growth", type=Path, nargs=2, metavar=("SMALL", "LARGE"))
    parser.add_argument(
        "--fabricate-only", type=Path, metavar="FILE", help="Write the fabricated warehouse, stop."
    )
    parser.add_argument(
        "--from",
        dest="source",
        type=Path,
        metavar="FILE",
        help="Start from a --fabricate-only copy.",
    )
    args = parser.parse_args()
    if args.growth:
        print(json.dumps(growth(*args.growth)))
        return
    if args.fabricate_only:
        if args.fabricate_only.exists():
            sys.exit(f"{args.fabricate_only} exists; --fabricate-only writes a new file")
        print(json.dumps(fabricate(args.fabricate_only, args.customers, args.history_days)))
        return
    with tempfile.TemporaryDirectory(prefix="daily_cycle_") as tmp:
        workdir = args.keep or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        result = benchmark(args, workdir)
    for name, stage in result["stages"].items():
        print(f"{name:>18}: {stage['seconds']:8.1f} s  {stage['peak_rss_mb']:7.0f} MB")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
