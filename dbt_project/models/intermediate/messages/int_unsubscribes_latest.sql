-- Per customer x channel: the latest unsubscribe or complaint event before the as-of instant.
-- The channel and customer come from the event, else from the decision the event carries.
with

events as (

    select * from {{ ref('stg_raw__message_events') }}
    where occurred_at < {{ as_of() }}
        and event_type in ('unsubscribe', 'complaint')

),

decisions as (

    select decision_id, customer_id, channel from {{ ref('stg_journeyman__decisions') }}

),

resolved as (

    select
        coalesce(events.customer_id, decisions.customer_id) as customer_id,
        coalesce(events.channel, decisions.channel) as channel,
        events.occurred_at

    from events
    left join decisions
        on events.decision_id = decisions.decision_id

),

latest as (

    select
        customer_id,
        channel,
        max(occurred_at) as last_unsubscribed_at

    from resolved
    where customer_id is not null
        and channel is not null
    group by customer_id, channel

)

select * from latest
