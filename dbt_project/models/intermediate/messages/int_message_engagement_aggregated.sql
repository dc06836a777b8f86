-- Per customer x channel: messages delivered (any sender, int_messages_delivered) and how many of
-- them were opened / clicked before the as-of instant.
with

messages as (

    select * from {{ ref('int_messages_delivered') }}

),

aggregated as (

    select
        customer_id,
        channel,
        count(*) as messages_sent,
        sum(was_opened) as messages_opened,
        sum(was_clicked) as messages_clicked

    from messages
    group by customer_id, channel

)

select * from aggregated
