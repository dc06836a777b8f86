"""Consent re-checked at dispatch: a customer who opted out of a channel, unsubscribed or
complained after the decision was made (its features were built as of the decision day's
start) is not sent the message, however the decision was reached."""

from __future__ import annotations

from datetime import datetime

import pyarrow as pa
import sqlalchemy as sa

from journeyman.warehouse import Warehouse, _driver

WITHDRAWN_SQL = """
with wanted as (
    select decision_id, customer_id, channel, decision_date from journeyman.decisions
    where decision_id in (select decision_id from _jm_dispatch)
),
consents as (
    -- normalised as staging does (ETL tools load 'Email ', 'OPTED_OUT', ...)
    select customer_id, lower(trim(channel)) as channel, lower(trim(status)) as status,
           recorded_at
    from raw.consents
    where recorded_at <= :now
      and customer_id in (select customer_id from wanted)
),
latest as (
    -- the latest consent change per customer and channel (an opt-out wins a tie)
    select customer_id, channel, status, recorded_at,
           row_number() over (
               partition by customer_id, channel
               order by recorded_at desc, case when status = 'opted_out' then 0 else 1 end
           ) as recency
    from consents
),
unsubscribes as (
    select coalesce(e.customer_id, d.customer_id) as customer_id,
           coalesce(lower(trim(e.channel)), d.channel) as channel,
           e.occurred_at
    from raw.message_events e
    left join journeyman.decisions d on d.decision_id = e.decision_id
    where lower(trim(e.event_type)) in ('unsubscribe', 'complaint') and e.occurred_at <= :now
)
select w.decision_id,
       case when exists (
           select 1 from unsubscribes u
           where u.customer_id = w.customer_id and u.channel = w.channel
             and u.occurred_at >= w.decision_date
       ) then 'unsubscribed' else 'consent_withdrawn' end as reason
from wanted w
where exists (
        select 1 from latest l
        where l.customer_id = w.customer_id and l.channel = w.channel and l.recency = 1
          and l.status = 'opted_out' and l.recorded_at >= w.decision_date
    )
   or exists (
        select 1 from unsubscribes u
        where u.customer_id = w.customer_id and u.channel = w.channel
          and u.occurred_at >= w.decision_date
    )
"""


def withdrawn_after_deciding(
    warehouse: Warehouse, decision_ids: pa.Array | list[str], now: datetime
) -> dict[str, str]:
    """decision_id → `consent_withdrawn` | `unsubscribed`, for the decisions about to be sent
    whose customer withdrew consent for the channel (the latest change since the decision day
    began is an opt-out) or unsubscribed / complained since, up to `now`."""
    ids = decision_ids if isinstance(decision_ids, list) else decision_ids.to_pylist()
    if not ids or not (
        warehouse.table_exists("raw", "consents")
        and warehouse.table_exists("raw", "message_events")
    ):
        return {}
    with warehouse.connect() as conn:
        raw = _driver(conn)
        if raw is None:  # portable path: the ids as an expanding parameter
            sql = WITHDRAWN_SQL.replace("(select decision_id from _jm_dispatch)", ":ids")
            query = sa.text(sql).bindparams(sa.bindparam("ids", expanding=True))
            rows = conn.execute(query, {"ids": ids, "now": now}).fetchall()
        else:
            raw.register("_jm_dispatch", pa.table({"decision_id": pa.array(ids, pa.string())}))
            try:
                rows = raw.execute(WITHDRAWN_SQL.replace(":now", "$now"), {"now": now}).fetchall()
            finally:
                raw.unregister("_jm_dispatch")
    return {d: reason for d, reason in rows}
