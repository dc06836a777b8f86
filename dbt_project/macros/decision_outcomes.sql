{#- The outcomes of every acted or held-out decision whose window of `window_days` (a column of
    stg_journeyman__decisions: attribution_window_days for reporting, learning_window_days for
    learning) has closed by the as-of instant: orders, revenue, conversion, unsubscribes,
    complaints, how the customer engaged with the message (0 not opened, 1 opened or tapped,
    2 clicked), the goal reward and the learning reward (reward minus penalties). Outcomes count in
    (reference_at, window_end]: an order at the send does not count, one at exactly window_end
    does. Duplicate orders / events count once. -#}
{% macro decision_outcomes(window_days) -%}
with

decisions as (

    select * from {{ ref('stg_journeyman__decisions') }}
    where exclusion_reason is null
        or exclusion_reason = 'holdout'

),

deliveries as (

    select distinct decision_id
    from {{ ref('stg_journeyman__deliveries') }}
    where status = 'delivered'

),

referenced as (

    select
        decisions.*,
        case
            when decisions.message_id is not null and decisions.send_at is not null
                then decisions.send_at
            else cast(decisions.decision_date as timestamp)
        end as reference_at,
        case when deliveries.decision_id is not null then 1 else 0 end as was_delivered

    from decisions
    left join deliveries
        on decisions.decision_id = deliveries.decision_id

),

windows as (

    select
        referenced.*,
        {{ add_days('reference_at', window_days) }} as window_end

    from referenced

),

closed as (

    select * from windows
    where window_end <= {{ as_of() }}

),

orders_ranked as (

    select
        order_id,
        customer_id,
        ordered_at,
        amount,
        row_number() over (
            partition by order_id
            order by loaded_at nulls last, ordered_at, amount
        ) as copy_rank

    from {{ ref('stg_raw__orders') }}

),

orders as (

    select * from orders_ranked
    where copy_rank = 1

),

order_outcomes as (

    select
        closed.decision_id,
        count(*) as orders,
        sum(orders.amount) as revenue

    from closed
    inner join orders
        on closed.customer_id = orders.customer_id
        and orders.ordered_at > closed.reference_at
        and orders.ordered_at <= closed.window_end
    group by closed.decision_id

),

events as (

    select distinct decision_id, event_type, occurred_at
    from {{ ref('stg_raw__message_events') }}
    where event_type in ('unsubscribe', 'complaint', 'open', 'click')

),

event_outcomes as (

    select
        closed.decision_id,
        max(case when events.event_type = 'unsubscribe' then 1 else 0 end) as unsubscribed,
        max(case when events.event_type = 'complaint' then 1 else 0 end) as complained,
        max(
            case events.event_type when 'click' then 2 when 'open' then 1 else 0 end
        ) as engagement

    from closed
    inner join events
        on closed.decision_id = events.decision_id
        and events.occurred_at <= closed.window_end
    group by closed.decision_id

),

rewards as (

    select
        closed.decision_id,
        closed.agent,
        closed.customer_id,
        closed.decision_date,
        closed.policy,
        closed.policy_version,
        closed.experiment_group,
        closed.action_id,
        closed.message_id,
        closed.channel,
        closed.local_hour,
        closed.send_at,
        closed.propensity,
        closed.goal_metric,
        closed.attribution_window_days,
        closed.penalty_unsubscribe,
        closed.penalty_complaint,
        closed.reference_at,
        closed.window_end,
        closed.was_delivered,
        cast(coalesce(order_outcomes.orders, 0) as integer) as orders,
        cast(coalesce(order_outcomes.revenue, 0) as double precision) as revenue,
        case when coalesce(order_outcomes.orders, 0) > 0 then 1 else 0 end as converted,
        coalesce(event_outcomes.unsubscribed, 0) as unsubscribed,
        coalesce(event_outcomes.complained, 0) as complained,
        coalesce(event_outcomes.engagement, 0) as engagement,
        cast(
            case
                when closed.goal_metric = 'revenue' then coalesce(order_outcomes.revenue, 0)
                when coalesce(order_outcomes.orders, 0) > 0 then 1
                else 0
            end as double precision
        ) as reward,
        cast(
            case
                when closed.goal_metric = 'revenue' then coalesce(order_outcomes.revenue, 0)
                when coalesce(order_outcomes.orders, 0) > 0 then 1
                else 0
            end
            - closed.penalty_unsubscribe * coalesce(event_outcomes.unsubscribed, 0)
            - closed.penalty_complaint * coalesce(event_outcomes.complained, 0)
            as double precision
        ) as learning_reward

    from closed
    left join order_outcomes
        on closed.decision_id = order_outcomes.decision_id
    left join event_outcomes
        on closed.decision_id = event_outcomes.decision_id

)

select * from rewards
{%- endmacro %}
