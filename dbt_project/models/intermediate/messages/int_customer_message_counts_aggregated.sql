-- Per customer with at least one sent message: how many messages (all channels, and per channel
-- for 7 days) were sent in the windows just before the as-of instant, and when the last one was.
with

messages as (

    select * from {{ ref('int_messages_sent') }}

),

aggregated as (

    select
        customer_id,
        sum(case when send_at >= {{ add_days(as_of(), -1) }} then 1 else 0 end)
            as messages_last_1d,
        sum(case when send_at >= {{ add_days(as_of(), -7) }} then 1 else 0 end)
            as messages_last_7d,
        sum(case when send_at >= {{ add_days(as_of(), -30) }} then 1 else 0 end)
            as messages_last_30d,
        {%- for channel in ['email', 'sms', 'push'] %}
        sum(
            case
                when channel = '{{ channel }}' and send_at >= {{ add_days(as_of(), -7) }} then 1
                else 0
            end
        ) as {{ channel }}_messages_last_7d,
        {%- endfor %}
        max(send_at) as last_message_at

    from messages
    group by customer_id

)

select * from aggregated
