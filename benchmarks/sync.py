"""Benchmark: decisions → SendGrid emulator (own process), end to end, vs a naive loop.

End to end = read the decisions from a DuckDB warehouse, render subject and body (Arrow,
templates compiled once), build Mail Send payloads (1000 personalizations each, orjson), POST
them over loopback HTTP, and write the delivery ledger (bulk Arrow inserts, committed in flight
before the calls and settled after). The peer, measured in the same run against the same
emulator: a naive one-request-per-recipient `requests.post` loop (time-bounded sample, rate
extrapolated). The emulator validates one request in `--sample-every` against SendGrid's
OpenAPI document (`--validate sample`) and counts deliveries per decision id, so the run also
checks that every decision arrived exactly once.

    .venv/bin/python benchmarks/sync.py [--recipients 1000000] [--naive-requests 3000]

Last line: one JSON object (recipients_per_s, naive_recipients_per_s, ratio_vs_naive,
peak_rss_mb, ...).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from journeyman.connectors.ledger import LEDGER, DeliveryLedger  # noqa: E402
from journeyman.connectors.render import render_column  # noqa: E402
from journeyman.connectors.sendgrid import SendGridDestination  # noqa: E402
from journeyman.connectors.sync import sync  # noqa: E402
from journeyman.sandbox.emulators import EmulatorProcess  # noqa: E402
from journeyman.tables import ensure_journeyman_tables  # noqa: E402
from journeyman.warehouse import Warehouse  # noqa: E402

API_KEY = "SG.benchmark-key"
SUBJECT = "{{ first_name }}, your {{ discount }}% is waiting"
BODY = "Hi {{ first_name }}, it has been {{ days_since }} days. Come back for {{ discount }}% off."


def build_warehouse(path: Path, n: int, send_at: datetime) -> Warehouse:
    """A warehouse holding n decisions with the customer columns the templates use."""
    wh = Warehouse(path)
    ensure_journeyman_tables(wh)
    wh.execute(
        f"""
        create schema if not exists bench;
        create or replace table bench.outbound as
        select
            'winback-20260302-c' || lpad(i::varchar, 8, '0') as decision_id,
            'winback' as agent,
            'c' || lpad(i::varchar, 8, '0') as customer_id,
            'email' as channel,
            'ten_off' as message_id,
            'u' || i::varchar || '@example.com' as email,
            (['Ada', 'Grace', 'Alan', 'Edsger', 'Barbara'])[1 + i % 5] as first_name,
            (i % 90 + 30)::integer as days_since,
            (5 + 5 * (i % 3))::integer as discount,
            timestamp '{send_at:%Y-%m-%d %H:%M:%S}' + to_minutes((i % 600)::bigint) as send_at
        from range({n}) t(i)
        """
    )
    return wh


def read_and_render(wh: Warehouse, destination: str) -> pa.Table:
    """The outbound messages: decisions not yet settled, rendered column-wise."""
    table = wh.read_arrow(
        "select o.*, strftime(o.send_at, '%Y-%m-%dT%H:%M:%SZ') as send_at_iso "
        "from bench.outbound o "
        f"anti join (select decision_id from {LEDGER} where destination = '{destination}' "
        "and status in ('delivered', 'failed_permanent')) l using (decision_id) "
        "order by decision_id"
    )
    ids = table.column("decision_id")
    return pa.table(
        {
            "decision_id": ids,
            "idempotency_key": pc.binary_join_element_wise(f"{destination}:", ids, ""),
            "agent": table.column("agent"),
            "customer_id": table.column("customer_id"),
            "channel": table.column("channel"),
            "message_id": table.column("message_id"),
            "to": table.column("email"),
            "subject": render_column(SUBJECT, table),
            "body": render_column(BODY, table),
            "send_at": table.column("send_at_iso"),
        }
    )


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
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--sample-every", type=int, default=100)
    args = parser.parse_args()
    n = args.recipients
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    with (
        tempfile.TemporaryDirectory() as tmp,
        EmulatorProcess(
            "sendgrid",
            "--api-key",
            API_KEY,
            "--validate",
            "sample",
            "--sample-every",
            str(args.sample_every),
            "--record",
            "counts",
        ) as emulator,
    ):
        t0 = time.perf_counter()
        wh = build_warehouse(Path(tmp) / "warehouse.duckdb", n, now + timedelta(hours=1))
        print(
            f"warehouse with {n:,} decisions built in {time.perf_counter() - t0:.1f}s",
            file=sys.stderr,
        )
        dest = SendGridDestination(
            api_key=API_KEY, from_email="news@shop.example", base_url=emulator.url
        )
        dest.check()
        ledger = DeliveryLedger(wh, "sendgrid")

        started = time.perf_counter()
        messages = read_and_render(wh, "sendgrid")
        t_read = time.perf_counter() - started
        report = sync(
            dest, ledger, messages, now, concurrency=args.concurrency, ledger_chunk=50_000
        )
        elapsed = time.perf_counter() - started
        rate = report.delivered / elapsed

        stats = emulator.stats()
        delivered_rows = wh.scalar(
            f"select count(*) from {LEDGER} where destination = 'sendgrid' and status = 'delivered'"
        )
        naive = naive_rate(emulator.url, now, args.naive_requests, args.naive_seconds)
    ok = (
        stats["unique_decisions"] == n
        and stats["duplicates"] == 0
        and delivered_rows == n
        and not stats["validation_errors"]
    )
    print(
        f"end to end: {report.delivered:,} recipients in {elapsed:.2f}s "
        f"(read+render {t_read:.2f}s) = {rate:,.0f}/s over {stats['requests']:,} requests; "
        f"naive loop {naive:,.0f}/s; ratio {rate / naive:.1f}x; exactly once: {ok}",
        file=sys.stderr,
    )
    result = {
        "recipients": n,
        "recipients_per_s": round(rate),
        "naive_recipients_per_s": round(naive),
        "ratio_vs_naive": round(rate / naive, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "seconds": round(elapsed, 2),
        "read_render_s": round(t_read, 2),
        "requests": stats["requests"],
        "exactly_once": ok,
        "validation_errors": len(stats["validation_errors"]),
        "peer": "naive one-request-per-recipient requests.post loop, same emulator, same run",
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
