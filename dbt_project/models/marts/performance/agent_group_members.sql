-- Intention to treat, one row per agent × experiment_group × customer: everyone who entered the
-- agent's audience (a decision not excluded as not_eligible, decided before run_date), counted
-- from their first such decision_date (00:00 UTC) up to the as-of instant, whether or not
-- anything was sent (outcomes: agent_group_member_days). The member outcomes agent_uplift and
-- agent_driver_tree compare.
with

decisions as (

    select * from {{ ref('stg_journeyman__decisions') }}
    where decision_date < {{ as_of_date() }}
        and exclusion_reason is distinct from 'not_eligible'

),

members as (

    select
        agent,
        experiment_group,
        customer_id,
        {{ first_by('policy', 'decision_date') }} as policy,
        min(decision_date) as first_decision_date,
        count(*) as decisions

    from decisions
    group by agent, experiment_group, customer_id

),

member_days as (

    select * from {{ ref('agent_group_member_days') }}

),

member_outcomes as (

    select
        agent,
        experiment_group,
        customer_id,
        sum(sends) as sends,
        sum(conversions) as conversions,
        sum(revenue) as revenue,
        sum(unsubscribes) as unsubscribes,
        sum(complaints) as complaints

    from member_days
    group by agent, experiment_group, customer_id

),

final as (

    select
        members.agent,
        members.experiment_group,
        members.policy,
        members.customer_id,
        members.first_decision_date,
        cast(members.decisions as integer) as decisions,
        cast(coalesce(member_outcomes.sends, 0) as integer) as sends,
        cast(coalesce(member_outcomes.conversions, 0) as integer) as conversions,
        cast(coalesce(member_outcomes.revenue, 0) as double precision) as revenue,
        cast(coalesce(member_outcomes.unsubscribes, 0) as integer) as unsubscribes,
        cast(coalesce(member_outcomes.complaints, 0) as integer) as complaints,
        case
            when coalesce(member_outcomes.conversions, 0) > 0
                and coalesce(member_outcomes.unsubscribes, 0) = 0
                then 1
            else 0
        end as retained

    from members
    left join member_outcomes
        on members.agent = member_outcomes.agent
        and members.experiment_group = member_outcomes.experiment_group
        and members.customer_id = member_outcomes.customer_id

)

select * from final
