-- Per customer x channel: messages sent and how many of them were opened / clicked (at least one
-- event of that type before the as-of instant; duplicate events count once). Messages are those
-- journeyman sent and those the ESP reports from other sends (the brand's own campaigns: a
-- `delivered` event whose message key is no journeyman decision).
with

journeyman_messages as (

    select decision_id, customer_id, channel
    from {{ ref('int_messages_sent') }}

),

events as (

    select decision_id, customer_id, channel, event_type
    from {{ ref('stg_raw__message_events') }}
    where occurred_at < {{ as_of() }}
        and decision_id is not null

),

decisions as (

    select decision_id from {{ ref('stg_journeyman__decisions') }}

),

other_messages as (

    select
        events.decision_id,
        min(events.customer_id) as customer_id,
        min(events.channel) as channel

    from events
    left join decisions
        on events.decision_id = decisions.decision_id
    where events.event_type = 'delivered'
        and decisions.decision_id is null
    group by events.decision_id

),

messages as (

    select * from journeyman_messages
    union all
    select * from other_messages

),

per_message as (

    select
        messages.decision_id,
        messages.customer_id,
        messages.channel,
        max(case when events.event_type = 'open' then 1 else 0 end) as was_opened,
        max(case when events.event_type = 'click' then 1 else 0 end) as was_clicked

    from messages
    left join events
        on messages.decision_id = events.decision_id
        and events.event_type in ('open', 'click')
    group by messages.decision_id, messages.customer_id, messages.channel

),

aggregated as (

    select
        customer_id,
        channel,
        count(*) as messages_sent,
        sum(was_opened) as messages_opened,
        sum(was_clicked) as messages_clicked

    from per_message
    group by customer_id, channel

)

select * from aggregated
