{#- The outcomes of every acted or held-out decision whose window of `window_days` (a column of
    stg_journeyman__decisions: attribution_window_days for reporting, learning_window_days for
    learning) has closed by the as-of instant: orders, revenue, conversion, unsubscribes,
    complaints, retention (an order in the window and no opt-out of the customer from any channel
    by its end: an unsubscribe event or an opted_out consent change after the reference instant), how the customer engaged with the message (0 not opened, 1 opened or tapped,
    2 clicked), the goal reward and the learning reward (reward minus penalties). Outcomes count in
    (reference_at, window_end]: an order at the send does not count, one at exactly window_end
    does. Duplicate orders / events count once. -#}
{% macro decision_outcomes(window_days) -%}
{#- Incremental: a build recomputes the windows that closed since `since` (the latest window_end
    the table holds, at most rewards_lookback_days before the as-of instant, so late-loaded
    orders and events of those days still count) and reads only the decisions, events and
    opt-outs that can touch them; `reach` is how long before `since` those can lie (the longest
    attribution window, plus the days a send can follow its decision date). -#}
{%- set since, reach = rewards_since() %}
with

decisions as (

    select * from {{ ref('stg_journeyman__decisions') }}
    where (exclusion_reason is null
        or exclusion_reason = 'holdout')
    {%- if since %}
        and decision_date >= cast({{ add_days(since, -reach) }} as date)
    {%- endif %}

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
    {%- if since %}
        and window_end > {{ since }}
    {%- endif %}

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
    {%- if since %}
        and occurred_at > {{ add_days(since, -reach) }}
    {%- endif %}

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

opt_outs as (

    select customer_id, occurred_at as opted_out_at
    from {{ ref('stg_raw__message_events') }}
    where event_type = 'unsubscribe'
    {%- if since %}
        and occurred_at > {{ add_days(since, -reach) }}
    {%- endif %}
    union all
    select customer_id, recorded_at as opted_out_at
    from {{ ref('stg_raw__consents') }}
    where status = 'opted_out'

),

opt_out_outcomes as (

    select distinct closed.decision_id

    from closed
    inner join opt_outs
        on closed.customer_id = opt_outs.customer_id
        and opt_outs.opted_out_at > closed.reference_at
        and opt_outs.opted_out_at <= closed.window_end

),

outcomes as (

    select
        closed.*,
        coalesce(order_outcomes.orders, 0) as order_count,
        coalesce(order_outcomes.revenue, 0) as order_revenue,
        case
            when coalesce(order_outcomes.orders, 0) > 0 and opt_out_outcomes.decision_id is null
                then 1
            else 0
        end as retained_flag,
        coalesce(event_outcomes.unsubscribed, 0) as unsubscribed_flag,
        coalesce(event_outcomes.complained, 0) as complained_flag,
        coalesce(event_outcomes.engagement, 0) as engagement_level

    from closed
    left join order_outcomes
        on closed.decision_id = order_outcomes.decision_id
    left join event_outcomes
        on closed.decision_id = event_outcomes.decision_id
    left join opt_out_outcomes
        on closed.decision_id = opt_out_outcomes.decision_id

),

goal_rewards as (

    select
        outcomes.*,
        cast(
            case outcomes.goal_metric
                when 'revenue' then outcomes.order_revenue
                when 'retention' then outcomes.retained_flag
                else case when outcomes.order_count > 0 then 1 else 0 end
            end as double precision
        ) as goal_reward

    from outcomes

),

rewards as (

    select
        decision_id,
        agent,
        customer_id,
        decision_date,
        policy,
        policy_version,
        experiment_group,
        action_id,
        message_id,
        channel,
        local_hour,
        send_at,
        propensity,
        goal_metric,
        attribution_window_days,
        penalty_unsubscribe,
        penalty_complaint,
        reference_at,
        window_end,
        was_delivered,
        cast(order_count as integer) as orders,
        cast(order_revenue as double precision) as revenue,
        case when order_count > 0 then 1 else 0 end as converted,
        retained_flag as retained,
        unsubscribed_flag as unsubscribed,
        complained_flag as complained,
        engagement_level as engagement,
        goal_reward as reward,
        cast(
            goal_reward
            - penalty_unsubscribe * unsubscribed_flag
            - penalty_complaint * complained_flag
            as double precision
        ) as learning_reward

    from goal_rewards

)

select * from rewards
{%- endmacro %}


{#- (since, reach) of an incremental build of decision_outcomes: `since` a timestamp literal,
    `reach` days; (none, 0) for a full build. -#}
{% macro rewards_since() -%}
    {%- if not is_incremental() -%}
        {{ return((none, 0)) }}
    {%- endif -%}
    {%- set floor = add_days(as_of(), -(var('rewards_lookback_days') | int)) -%}
    {%- set query -%}
        select
            cast(
                case when max(window_end) is not null then least(max(window_end), {{ floor }}) end
                as varchar
            ),
            (select coalesce(max(attribution_window_days), 0)
             from {{ source('journeyman', 'decisions') }})
        from {{ this }}
    {%- endset -%}
    {%- set row = run_query(query).rows[0] -%}
    {%- if row[0] is none -%}  {#- nothing yet: every closed window #}
        {{ return((none, 0)) }}
    {%- endif -%}
    {{ return(("cast('" ~ row[0] ~ "' as timestamp)", (row[1] | int) + 3)) }}
{%- endmacro %}


{#- (since, reach) of an incremental build of arm_statistics_daily: `since` the latest
    available_on it holds, as a timestamp literal (that day's rows are replaced, later ones
    added), `reach` the days before it a decision of those rewards can lie (the longest
    learning window, plus the days a send can follow its decision date); (none, 0) for a full
    build or an empty table. -#}
{% macro arm_statistics_since() -%}
    {%- if not execute or not is_incremental() -%}
        {{ return((none, 0)) }}
    {%- endif -%}
    {%- set query -%}
        select
            cast(max(available_on) as varchar),
            (select coalesce(max(coalesce(learning_window_days, attribution_window_days)), 0)
             from {{ source('journeyman', 'decisions') }})
        from {{ this }}
    {%- endset -%}
    {%- set row = run_query(query).rows[0] -%}
    {%- if row[0] is none -%}
        {{ return((none, 0)) }}
    {%- endif -%}
    {{ return(("cast('" ~ row[0] ~ "' as timestamp)", (row[1] | int) + 3)) }}
{%- endmacro %}
