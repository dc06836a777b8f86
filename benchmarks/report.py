"""Benchmark: `journeyman report` (`write_report`) on a warehouse of 1,000,000 decisions.

The warehouse is fabricated directly with DuckDB SQL at scale (no simulated days): customers,
orders, message events, the agents' decisions (treatment, holdout, business as usual, random
control, shadow), their decision-time features and the delivery ledger; then `dbt build` builds
the performance marts and what they need, as of a day after every attribution window closed.
The report then runs in its own process (so its peak RSS is its own). The peer, measured in the
same run: the dbt build that feeds it.

    .venv/bin/python benchmarks/report.py [--decisions 1000000] [--days 10] [--keep DIR]

Last line: one JSON object (report_seconds, dbt_build_seconds, ratio_vs_dbt_build,
report_peak_rss_mb, decisions, ...). Target: report_seconds < 30 on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from journeyman.tables import (  # noqa: E402
    ensure_feature_columns,
    ensure_journeyman_tables,
    ensure_raw_tables,
)
from journeyman.warehouse import Warehouse  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DBT = Path(sys.executable).parent / "dbt"
START = date(2026, 1, 5)
AGENTS = (("winback", "revenue"), ("cross_sell", "conversion"))
FEATURES = ("days_since_last_order", "order_count", "avg_order_value")
MESSAGES = ("we_miss_you", "ten_off", "twenty_off_urgent", "free_shipping")
CHANNELS = ("email", "sms", "push")
DESTINATIONS = {"email": "sendgrid", "sms": "twilio", "push": "fcm"}
HOURS = (8, 10, 12, 18, 20)


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def peak_rss_mb() -> float:
    """This process's peak RSS: VmHWM (ru_maxrss would carry the parent's over fork/exec)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _list(values: tuple) -> str:
    return "[" + ", ".join(f"'{v}'" for v in values) + "]"


def fabricate(wh: Warehouse, decisions: int, days: int) -> dict[str, int]:
    """Customers, orders, events, decisions, features and the ledger at scale, in SQL."""
    ensure_raw_tables(wh)
    ensure_journeyman_tables(wh)
    ensure_feature_columns(wh, list(FEATURES))
    per_day = decisions // (len(AGENTS) * days)
    customers = per_day * 4
    end = START + timedelta(days=days)
    wh.execute(
        f"""
        insert into raw.customers
        select 'c' || lpad(i::varchar, 8, '0'), 'u' || i || '@example.com', null, null,
            'UTC', 'US', timestamp '2024-01-01' + to_hours(i % 5000), timestamp '2025-01-01'
        from range({customers}) t(i);
        -- a year of history and the experiment's days: about one order per customer per 80 days
        insert into raw.orders
        select 'o' || i, 'c' || lpad((hash(i) % {customers})::varchar, 8, '0'),
            timestamp '{START - timedelta(days=365)}' + to_seconds(
                (hash(i || 't') % ({365 + days + 8} * 86400))::bigint),
            10 + (hash(i || 'a') % 19000) / 100.0, 0.0, 'home', timestamp '2025-01-01'
        from range({customers * (365 + days) // 80}) t(i);
        """
    )
    _decisions(wh, per_day, customers, days)
    _ledger_and_events(wh)
    _features(wh, end)
    counts = {
        name: wh.scalar(f"select count(*) from {name}")
        for name in ("journeyman.decisions", "journeyman.deliveries", "raw.orders")
    }
    return {**counts, "customers": customers}


def _decisions(wh: Warehouse, per_day: int, customers: int, days: int) -> None:
    """One decision per agent × customer × day; groups sticky per customer (hash of agent)."""
    agents = ", ".join(f"('{a}', '{g}', {k})" for k, (a, g) in enumerate(AGENTS))
    wh.execute(
        f"""
        create temporary table slots as
        select a.agent, a.goal, d.day, 'c' || lpad(
                ((i + hash(a.agent || d.day::varchar) % {customers}) % {customers})::varchar,
                8, '0') as customer_id
        from (values {agents}) a(agent, goal, k)
        cross join (select (date '{START}' + to_days(j::integer))::date as day
                    from range({days}) r(j)) d
        cross join range({per_day}) s(i);
        create temporary table drawn as
        select *, agent || '-' || strftime(day, '%Y%m%d') || '-' || customer_id as decision_id,
            (hash(customer_id || agent) % 100)::integer as g,
            (hash(customer_id || agent || day::varchar) % 1000000) / 1e6 as u,
            (hash(customer_id || day::varchar || 'action') >> 1)::bigint as h
        from slots;
        insert into journeyman.decisions (decision_id, agent, decision_date, customer_id, policy,
            policy_version, experiment_group, action_id, message_id, channel, local_hour,
            subject_variant, send_at, send_until, propensity, exclusion_reason, goal_metric,
            attribution_window_days, learning_window_days, created_at)
        with grouped as (
            select *,
                case when g < 10 then 'holdout' when g < 25 then 'business_as_usual'
                    when g < 30 then 'random_control'
                    when g < 33 and agent = 'cross_sell' then 'shadow'
                    else 'treatment' end as experiment_group,
                case when u < 0.03 then 'not_eligible' when g < 10 then 'holdout'
                    when u < 0.06 then 'cap_reached' end as exclusion_reason,
                {_list(MESSAGES)}[1 + h % {len(MESSAGES)}] as m,
                {_list(CHANNELS)}[1 + (h // 7) % {len(CHANNELS)}] as c,
                {list(HOURS)}[1 + (h // 31) % {len(HOURS)}] as hr,
                u > 0.75 as no_send
            from drawn
        )
        select decision_id, agent, day, customer_id,
            case experiment_group when 'business_as_usual' then 'rule_based'
                when 'random_control' then 'uniform_random' else 'linear_ts' end,
            'v1', experiment_group,
            case when exclusion_reason is not null then null when no_send then 'no_send'
                else m || '/' || c || '/' || hr end,
            case when exclusion_reason is null and not no_send then m end,
            case when exclusion_reason is null and not no_send then c end,
            case when exclusion_reason is null and not no_send then hr end,
            case when exclusion_reason is null and not no_send and c = 'email'
                then (h // 101) % 2 else 0 end,
            case when exclusion_reason is null and not no_send
                then day + to_hours(hr) end,
            case when exclusion_reason is null and not no_send
                then day + to_hours(hr + 3) end,
            case when exclusion_reason is null then 1.0 / 61 end,
            exclusion_reason, goal, 7, 1, day::timestamp
        from grouped
        where exclusion_reason is distinct from 'not_eligible';  -- counted, never stored
        """
    )


def _ledger_and_events(wh: Warehouse) -> None:
    """A ledger row per planned message of a sending group; events for the delivered ones."""
    destination = " ".join(f"when '{c}' then '{d}'" for c, d in DESTINATIONS.items())
    wh.execute(
        f"""
        insert into journeyman.deliveries (decision_id, destination, status, idempotency_key,
            attempts, updated_at, delivered_at, send_at, attempted_at, send_until)
        select decision_id, case channel {destination} end,
            case when u < 0.015 then 'failed_permanent' when u < 0.02 then 'expired'
                when u < 0.021 then 'unknown' else 'delivered' end,
            decision_id, 1, send_at, case when u >= 0.021 then send_at end, send_at, send_at,
            send_until
        from (select *, (hash(decision_id || 'ledger') % 1000000) / 1e6 as u
              from journeyman.decisions
              where message_id is not null and experiment_group not in ('holdout', 'shadow'));
        insert into raw.message_events
        select decision_id || '-' || kind, decision_id, d.customer_id, d.channel, kind,
            d.send_at + to_minutes((5 + hash(decision_id || kind) % 600)::bigint),
            d.send_at + interval 1 day
        from journeyman.deliveries l join journeyman.decisions d using (decision_id)
        cross join (values ('delivered', 1.0), ('open', 0.2), ('click', 0.03),
                           ('unsubscribe', 0.003), ('complaint', 0.0003)) e(kind, p)
        where l.status = 'delivered' and (hash(decision_id || kind) % 100000) / 1e5 < p;
        """
    )


def _features(wh: Warehouse, end: date) -> None:
    """Decision-time features of the acted and held-out decisions (the segments' input)."""
    wh.execute(
        f"""
        insert into journeyman.decision_features (decision_id, agent, decision_date,
            {", ".join(FEATURES)})
        select decision_id, agent, decision_date,
            case when h % 20 = 0 then null else h % 400 end,
            1 + (h // 400) % 9,
            case when h % 20 = 0 then null else 15 + (h // 4000) % 250 end
        from (select *, (hash(decision_id || 'features') >> 1)::bigint as h
              from journeyman.decisions
              where exclusion_reason is null or exclusion_reason = 'holdout')
        where decision_date < date '{end}'
        """
    )


def dbt_build(path: Path, run_date: date, workdir: Path) -> float:
    """Build the performance marts and everything they need; the seconds it took."""
    env = {**os.environ, "JOURNEYMAN_WAREHOUSE": str(path)}
    env.pop("JOURNEYMAN_RUN_DATE", None)
    command = [
        str(DBT),
        "build",
        "--select",
        "+path:models/marts/performance",
        "--indirect-selection",
        "cautious",  # tests of these models only, not those reaching into unbuilt ones
        "--vars",
        json.dumps({"run_date": run_date.isoformat()}),
        "--project-dir",
        str(REPO / "dbt_project"),
        "--profiles-dir",
        str(REPO / "dbt_project"),
        "--target-path",
        str(workdir / "target"),
        "--log-path",
        str(workdir / "logs"),
    ]
    started = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(f"dbt build failed:\n{result.stdout[-4000:]}")
    return time.perf_counter() - started


def run_report(path: Path, out: Path) -> dict[str, float]:
    """write_report in this process (the child's side): seconds, peak RSS, report size."""
    from journeyman.insights import write_report

    started = time.perf_counter()
    written = write_report(Warehouse(path, read_only=True), out)
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "peak_rss_mb": peak_rss_mb(),
        "bytes": written.stat().st_size,
        "path": str(written),
    }


def report_in_child(path: Path, out: Path) -> dict[str, float]:
    result = subprocess.run(
        [sys.executable, __file__, "--report-only", str(path), "--out", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        sys.exit(f"report failed:\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--keep", type=Path, help="Build the warehouse here and keep it.")
    parser.add_argument("--report-only", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.report_only:
        print(json.dumps(run_report(args.report_only, args.out)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        path = root / "warehouse.duckdb"
        path.unlink(missing_ok=True)
        started = time.perf_counter()
        counts = fabricate(Warehouse(path), args.decisions, args.days)
        fabricate_s = time.perf_counter() - started
        print(f"fabricated {counts} in {fabricate_s:.1f}s", file=sys.stderr)
        run_date = START + timedelta(days=args.days + 8)  # every attribution window closed
        dbt_s = dbt_build(path, run_date, root)
        print(f"dbt build of the marts: {dbt_s:.1f}s", file=sys.stderr)
        report = report_in_child(path, root / "reports")
    result = {
        "benchmark": "report",
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "decisions": counts["journeyman.decisions"],
        "deliveries": counts["journeyman.deliveries"],
        "orders": counts["raw.orders"],
        "customers": counts["customers"],
        "days": args.days,
        "report_seconds": round(report["seconds"], 2),
        "report_peak_rss_mb": round(report["peak_rss_mb"], 1),
        "report_kb": round(report["bytes"] / 1024, 1),
        "dbt_build_seconds": round(dbt_s, 1),
        "ratio_vs_dbt_build": round(report["seconds"] / dbt_s, 3),
        "fabricate_seconds": round(fabricate_s, 1),
        "target_seconds": 30,
        "ok": report["seconds"] < 30,
    }
    print(f"CPU: {result['cpu']} ({result['cores']} cores)")
    print(
        f"write_report: {report['seconds']:.2f}s for {result['decisions']:,} decisions, "
        f"peak RSS {report['peak_rss_mb']:.0f} MB, {result['report_kb']:.0f} KB of HTML "
        f"({result['ratio_vs_dbt_build']:.3f}× the {dbt_s:.1f}s dbt build that feeds it)"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
