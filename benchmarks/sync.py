"""Benchmark: decisions → SendGrid emulator (own process), end to end, vs a naive loop.

End to end = exactly what the Dagster sync asset runs (`outbound.deliver_day`): read the day's
decisions joined to customer features from a DuckDB warehouse, render subject and body
column-wise (Arrow, per creative), build Mail Send payloads (1000 personalizations each,
encoded column-wise), POST them over loopback HTTP, and write the delivery ledger (each wave
of `concurrency` requests marked in flight just before it leaves, settled after with one
UPDATE). The peer, measured in the same run against the same emulator: a naive
one-request-per-recipient `requests.post` loop (time-bounded sample, rate extrapolated). The
emulator validates one request in `--sample-every` against SendGrid's OpenAPI document
(`--validate sample`) and counts deliveries per decision id, so the run also checks that every
decision arrived exactly once.

    .venv/bin/python benchmarks/sync.py [--recipients 1000000] [--naive-requests 3000] [--profile]

Last line: one JSON object (recipients_per_s, naive_recipients_per_s, ratio_vs_naive,
peak_rss_mb, ...).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import resource
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from journeyman.connectors.ledger import LEDGER  # noqa: E402
from journeyman.connectors.outbound import Creative, deliver_day  # noqa: E402
from journeyman.connectors.sendgrid import SendGridDestination  # noqa: E402
from journeyman.orchestration.defs.syncs import CONCURRENCY  # noqa: E402
from journeyman.sandbox.emulators import EmulatorProcess  # noqa: E402
from journeyman.tables import ensure_journeyman_tables  # noqa: E402
from journeyman.warehouse import Warehouse  # noqa: E402

API_KEY = "SG.benchmark-key"
SUBJECT = "{{ first_name }}, your {{ discount }}% is waiting"
BODY = "Hi {{ first_name }}, it has been {{ days_since }} days. Come back for {{ discount }}% off."
CREATIVES = {
    ("winback", "ten_off", "email"): Creative(
        body=BODY, subject=SUBJECT, subject_variants=(SUBJECT,), tags={"offer": "ten_off"}
    )
}
ROUTES = {("winback", "email"): "sendgrid"}


def build_warehouse(path: Path, n: int, day: date, send_at: datetime) -> Warehouse:
    """A warehouse holding n treatment decisions for `day` and their customers' features."""
    wh = Warehouse(path)
    ensure_journeyman_tables(wh)
    wh.execute(
        f"""
        create schema if not exists marts;
        create or replace table marts.customer_features as
        select
            'c' || lpad(i::varchar, 8, '0') as customer_id,
            'u' || i::varchar || '@example.com' as email,
            (['Ada', 'Grace', 'Alan', 'Edsger', 'Barbara'])[1 + i % 5] as first_name,
            (i % 90 + 30)::integer as days_since,
            (5 + 5 * (i % 3))::integer as discount
        from range({n}) t(i);
        insert into journeyman.decisions (
            decision_id, agent, decision_date, customer_id, policy, policy_version,
            experiment_group, action_id, message_id, channel, local_hour, subject_variant,
            send_at, propensity, goal_metric, attribution_window_days, created_at)
        select
            'winback-{day:%Y%m%d}-c' || lpad(i::varchar, 8, '0'),
            'winback', date '{day.isoformat()}', 'c' || lpad(i::varchar, 8, '0'),
            'linear_ts', 'v1', 'treatment', 'ten_off|email', 'ten_off', 'email', 10, 0,
            timestamp '{send_at:%Y-%m-%d %H:%M:%S}' + to_minutes((i % 600)::bigint),
            0.5, 'conversion', 7, timestamp '{send_at:%Y-%m-%d %H:%M:%S}'
        from range({n}) t(i)
        """
    )
    return wh


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU seconds of this process, or of process `pid` (Linux /proc)."""
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def naive_rate(url: str, now: datetime, max_requests: int, max_seconds: float) -> float:
    """Recipients/s of one `requests.post` per recipient (no session, no batching)."""
    started = time.perf_counter()
    done = 0
    while done < max_requests and time.perf_counter() - started < max_seconds:
        payload = {
            "personalizations": [
                {
                    "to": [{"email": f"naive{done}@example.com"}],
                    "subject": "Ada, your 10% is waiting",
                    "custom_args": {"decision_id": f"naive-{done}"},
                }
            ],
            "from": {"email": "news@shop.example"},
            "content": [{"type": "text/plain", "value": "Hi Ada, come back for 10% off."}],
        }
        response = requests.post(
            f"{url}/v3/mail/send",
            json=payload,
            headers={"Authorization": f"Bearer {API_KEY}"},
            timeout=10,
        )
        if response.status_code != 202:
            raise RuntimeError(f"naive loop: HTTP {response.status_code} {response.text[:200]}")
        done += 1
    return done / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=1_000_000)
    parser.add_argument("--naive-requests", type=int, default=3000)
    parser.add_argument("--naive-seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY)
    parser.add_argument("--sample-every", type=int, default=100)
    parser.add_argument(
        "--profile", action="store_true", help="cProfile the sync (main thread) to stderr"
    )
    args = parser.parse_args()
    n = args.recipients
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    day = now.date()
    server = EmulatorProcess(
        "sendgrid",
        "--api-key",
        API_KEY,
        "--validate",
        "sample",
        "--sample-every",
        str(args.sample_every),
        "--record",
        "counts",
    )
    with tempfile.TemporaryDirectory() as tmp, server as emulator:
        t0 = time.perf_counter()
        wh = build_warehouse(Path(tmp) / "warehouse.duckdb", n, day, now + timedelta(hours=1))
        print(
            f"warehouse with {n:,} decisions built in {time.perf_counter() - t0:.1f}s",
            file=sys.stderr,
        )
        dest = SendGridDestination(
            api_key=API_KEY, from_email="news@shop.example", base_url=emulator.url
        )
        dest.check()

        profile = cProfile.Profile() if args.profile else None
        emulator_pid = server.process.pid if server.process else None
        cpu_client, cpu_emulator = cpu_seconds(), cpu_seconds(emulator_pid)
        started = time.perf_counter()
        if profile is not None:
            profile.enable()
        report, routed = deliver_day(
            wh,
            day,
            dest,
            CREATIVES,
            ROUTES,
            now,
            concurrency=args.concurrency,
        )
        if profile is not None:
            profile.disable()
        elapsed = time.perf_counter() - started
        cpu_client = cpu_seconds() - cpu_client
        cpu_emulator = cpu_seconds(emulator_pid) - cpu_emulator
        rate = report.delivered / elapsed
        if profile is not None:
            out = io.StringIO()
            order = os.environ.get("PROFILE_SORT", "cumulative")  # or tottime
            pstats.Stats(profile, stream=out).sort_stats(order).print_stats(30)
            print(out.getvalue(), file=sys.stderr)

        stats = emulator.stats()
        delivered_rows = wh.scalar(
            f"select count(*) from {LEDGER} where destination = 'sendgrid' and status = 'delivered'"
        )
        naive = naive_rate(emulator.url, now, args.naive_requests, args.naive_seconds)
    ok = (
        routed == n
        and stats["unique_decisions"] == n
        and stats["duplicates"] == 0
        and delivered_rows == n
        and not stats["validation_errors"]
    )
    print(
        f"end to end: {report.delivered:,} recipients in {elapsed:.2f}s = {rate:,.0f}/s over "
        f"{stats['requests']:,} requests; naive loop {naive:,.0f}/s; ratio {rate / naive:.1f}x; "
        f"exactly once: {ok}",
        file=sys.stderr,
    )
    result = {
        "recipients": n,
        "recipients_per_s": round(rate),
        "naive_recipients_per_s": round(naive),
        "ratio_vs_naive": round(rate / naive, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "seconds": round(elapsed, 2),
        "client_cpu_s": round(cpu_client, 2),
        "emulator_cpu_s": round(cpu_emulator, 2),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "requests": stats["requests"],
        "concurrency": args.concurrency,
        "exactly_once": ok,
        "validation_errors": len(stats["validation_errors"]),
        "peer": "naive one-request-per-recipient requests.post loop, same emulator, same run",
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
