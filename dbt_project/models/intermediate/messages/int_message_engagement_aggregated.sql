-- Per customer x channel: messages sent and how many of them were opened / clicked (at least one
-- event of that type before the as-of instant; duplicate events count once).
with

messages as (

    select * from {{ ref('int_messages_sent') }}

),

events as (

    select decision_id, event_type
    from {{ ref('stg_raw__message_events') }}
    where occurred_at < {{ as_of() }}
        and event_type in ('open', 'click')

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
