-- Per customer and agent that has sent them a message: that agent's own contact history as of
-- the run date. A business-as-usual journey (policy rule_based) reads it: "no message from this
-- journey since the step came due" must not count the other agents' messages.
with

sent as (

    select * from {{ ref('int_messages_sent') }}

),

aggregated as (

    select
        customer_id,
        agent,
        sum(case when send_at >= {{ add_days(as_of(), -30) }} then 1 else 0 end)
            as messages_last_30d,
        max(send_at) as last_message_at

    from sent
    group by customer_id, agent

)

select
    customer_id,
    agent,
    cast(messages_last_30d as integer) as messages_last_30d,
    last_message_at,
    cast({{ hours_between('last_message_at', as_of()) }} as double precision)
        as hours_since_last_message

from aggregated
