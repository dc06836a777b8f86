"""A sync run in its own process (the SIGKILL test kills it mid-run)."""

from __future__ import annotations

import sys
from datetime import timedelta

from connector_helpers import make_messages, utc_now

from journeyman.connectors.ledger import DeliveryLedger
from journeyman.connectors.pacing import RateLimit, RetryPolicy
from journeyman.connectors.sendgrid import SendGridDestination
from journeyman.connectors.sync import sync
from journeyman.tables import ensure_journeyman_tables
from journeyman.warehouse import Warehouse


def main(url: str, warehouse: str, n: int) -> None:
    wh = Warehouse(warehouse)
    ensure_journeyman_tables(wh)
    dest = SendGridDestination(
        api_key="SG.kill-test",
        from_email="news@shop.example",
        base_url=url,
        activity_lookup=True,
        lookup_lag_s=0,  # the emulator's activity index has no lag
    )
    dest.max_batch_size = 25
    dest.lookup_rate_limit = RateLimit(100, 100)  # the emulator does not limit its lookups
    messages = make_messages(n, send_at=utc_now() - timedelta(minutes=1), prefix="kill")
    report = sync(
        dest,
        DeliveryLedger(wh, "sendgrid"),
        messages,
        utc_now(),
        retry=RetryPolicy(base_delay_s=0.01, max_delay_s=0.05),
    )
    print(
        f"DONE reconciled={report.reconciled} sent={report.sent} delivered={report.delivered}",
        flush=True,
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
