"""Consent re-checked at dispatch: a customer who opted out of a channel, unsubscribed or
complained after the decision was made (its features were built as of the decision day's
start) is not sent the message, however the decision was reached."""

from __future__ import annotations

from datetime import datetime

import pyarrow as pa

from journeyman.warehouse import Warehouse, id_relation, read_arrow

WITHDRAWN_SQL = """
with wanted as (
    select decision_id, customer_id, channel, decision_date from journeyman.decisions
    where decision_id in (:dispatch)
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
    warehouse: Warehouse, decision_ids: pa.Array | pa.ChunkedArray | list[str], now: datetime
) -> dict[str, str]:
    """decision_id → `consent_withdrawn` | `unsubscribed`, for the decisions about to be sent
    whose customer withdrew consent for the channel (the latest change since the decision day
    began is an opt-out) or unsubscribed / complained since, up to `now`."""
    if not len(decision_ids) or not (
        warehouse.table_exists("raw", "consents")
        and warehouse.table_exists("raw", "message_events")
    ):
        return {}
    with warehouse.connect() as conn, id_relation(conn, decision_ids) as (dispatch, params):
        sql = WITHDRAWN_SQL.replace(":dispatch", dispatch)
        found = read_arrow(conn, sql, {**params, "now": now})
    return dict(zip(found.column(0).to_pylist(), found.column(1).to_pylist(), strict=True))
