-- How much the agent's learning policy still explores, one row per agent × decision_date before
-- run_date: the Shannon entropy (natural log) of its chosen actions (experiment_group treatment,
-- acted: exclusion_reason NULL, "send nothing" included), and that entropy over its maximum,
-- ln(the distinct actions chosen that day across all of the agent's decisions, any group).
with

decisions as (

    select * from {{ ref('stg_journeyman__decisions') }}
    where decision_date < {{ as_of_date() }}
        and action_id is not null

),

treatment_actions as (

    select
        agent,
        decision_date,
        action_id,
        count(*) as decisions

    from decisions
    where experiment_group = 'treatment'
        and exclusion_reason is null
    group by agent, decision_date, action_id

),

action_shares as (

    select
        treatment_actions.*,
        cast(decisions as double precision)
        / sum(decisions) over (partition by agent, decision_date) as share

    from treatment_actions

),

treatment_days as (

    select
        agent,
        decision_date,
        sum(decisions) as decisions,
        count(*) as distinct_actions,
        -sum(share * ln(share)) as action_entropy

    from action_shares
    group by agent, decision_date

),

offered_actions as (

    select
        agent,
        decision_date,
        count(distinct action_id) as offered_actions

    from decisions
    group by agent, decision_date

),

final as (

    select
        treatment_days.agent,
        treatment_days.decision_date,
        cast(treatment_days.decisions as integer) as decisions,
        cast(treatment_days.distinct_actions as integer) as distinct_actions,
        cast(treatment_days.action_entropy as double precision) as action_entropy,
        cast(
            case
                when offered_actions.offered_actions >= 2
                    then treatment_days.action_entropy / ln(offered_actions.offered_actions)
            end as double precision
        ) as normalized_entropy

    from treatment_days
    inner join offered_actions
        on treatment_days.agent = offered_actions.agent
        and treatment_days.decision_date = offered_actions.decision_date

)

select * from final
