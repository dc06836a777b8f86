-- What each message brought per delivered send, one row per agent × experiment_group ×
-- message_id × channel × subject_variant × local_hour: delivered sends whose attribution window
-- has closed (decision_rewards), outcomes attributed inside the window. Sums and sums of squares
-- are additive: re-aggregate any margin and recompute its interval from n, sum and sum of
-- squares (macro mean_interval).
with

rewards as (

    select * from {{ ref('decision_rewards') }}
    where was_delivered = 1

),

decisions as (

    select
        decision_id,
        subject_variant

    from {{ ref('stg_journeyman__decisions') }}

),

sends as (

    select
        rewards.agent,
        rewards.experiment_group,
        rewards.message_id,
        rewards.channel,
        coalesce(decisions.subject_variant, 0) as subject_variant,
        rewards.local_hour,
        rewards.orders,
        rewards.revenue

    from rewards
    left join decisions
        on rewards.decision_id = decisions.decision_id

),

cells as (

    select
        agent,
        experiment_group,
        message_id,
        channel,
        subject_variant,
        local_hour,
        count(*) as sends,
        sum(orders) as conversions,
        sum(orders * orders) as conversions_sq,
        sum(revenue) as revenue,
        sum(revenue * revenue) as revenue_sq

    from sends
    group by agent, experiment_group, message_id, channel, subject_variant, local_hour

),

final as (

    select
        agent,
        experiment_group,
        message_id,
        channel,
        cast(subject_variant as integer) as subject_variant,
        cast(local_hour as integer) as local_hour,
        cast(sends as integer) as sends,
        cast(conversions as integer) as conversions,
        cast(conversions_sq as integer) as conversions_sq,
        cast(revenue as double precision) as revenue,
        cast(revenue_sq as double precision) as revenue_sq,
        cast(conversions as double precision) / sends as conversions_per_send,
        cast({{ mean_interval('sends', 'conversions', 'conversions_sq', 'low') }}
            as double precision) as conversions_per_send_low,
        cast({{ mean_interval('sends', 'conversions', 'conversions_sq', 'high') }}
            as double precision) as conversions_per_send_high,
        cast(revenue as double precision) / sends as revenue_per_send,
        cast({{ mean_interval('sends', 'revenue', 'revenue_sq', 'low') }}
            as double precision) as revenue_per_send_low,
        cast({{ mean_interval('sends', 'revenue', 'revenue_sq', 'high') }}
            as double precision) as revenue_per_send_high

    from cells

)

select * from final
