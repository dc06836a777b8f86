-- One row per agent × day × experiment_group, from the agent's first audience day up to the day
-- before run_date, every day present for every group of the agent: the day's outcomes of the
-- group's members (agent_group_member_days), their running totals, per-customer means and 95 %
-- intervals of the mean of the members' cumulative outcome (agent_group_members: members count
-- from their first_decision_date on, with 0 until something happens).
--
-- The interval needs, per day, the sum over members of (cumulative outcome up to the day)²
-- without a members × days grid: it grows only on the days a member has an outcome x, by
-- (P + x)² − P² = 2·P·x + x², where P is the member's cumulative outcome before that day (a
-- running sum over that member's own order days); members without orders add 0.
with

members as (

    select
        agent,
        experiment_group,
        customer_id,
        first_decision_date

    from {{ ref('agent_group_members') }}

),

member_days as (

    select * from {{ ref('agent_group_member_days') }}

),

order_days as (

    select
        agent,
        experiment_group,
        customer_id,
        day,
        conversions,
        revenue,
        coalesce(
            sum(conversions) over member_history,
            0
        ) as conversions_before,
        coalesce(
            sum(revenue) over member_history,
            0
        ) as revenue_before

    from member_days
    where conversions > 0
    window member_history as (
        partition by agent, experiment_group, customer_id
        order by day
        rows between unbounded preceding and 1 preceding
    )

),

square_increments as (

    select
        agent,
        experiment_group,
        day,
        sum(2 * conversions_before * conversions + conversions * conversions)
            as conversions_sq_increment,
        sum(2 * revenue_before * revenue + revenue * revenue) as revenue_sq_increment

    from order_days
    group by agent, experiment_group, day

),

outcome_totals as (

    select
        agent,
        experiment_group,
        day,
        sum(sends) as sends,
        sum(conversions) as conversions,
        sum(revenue) as revenue,
        sum(unsubscribes) as unsubscribes,
        sum(complaints) as complaints

    from member_days
    group by agent, experiment_group, day

),

group_days as (

    select
        outcome_totals.*,
        coalesce(square_increments.conversions_sq_increment, 0) as conversions_sq_increment,
        coalesce(square_increments.revenue_sq_increment, 0) as revenue_sq_increment

    from outcome_totals
    left join square_increments
        on outcome_totals.agent = square_increments.agent
        and outcome_totals.experiment_group = square_increments.experiment_group
        and outcome_totals.day = square_increments.day

),

group_entries as (

    select
        agent,
        experiment_group,
        first_decision_date as day,
        count(*) as new_customers

    from members
    group by agent, experiment_group, first_decision_date

),

agent_groups as (

    select distinct agent, experiment_group
    from members

),

agent_starts as (

    select
        agent,
        min(first_decision_date) as first_day

    from members
    group by agent

),

days as (

    {{ date_spine(
        '(select min(first_decision_date) from members)',
        add_days(as_of_date(), -1)
    ) }}

),

grid as (

    select
        agent_groups.agent,
        agent_groups.experiment_group,
        days.day

    from agent_groups
    inner join agent_starts
        on agent_groups.agent = agent_starts.agent
    inner join days
        on days.day >= agent_starts.first_day

),

daily as (

    select
        grid.agent,
        grid.day,
        grid.experiment_group,
        coalesce(group_entries.new_customers, 0) as new_customers,
        coalesce(group_days.sends, 0) as sends,
        coalesce(group_days.conversions, 0) as conversions,
        coalesce(group_days.revenue, 0) as revenue,
        coalesce(group_days.unsubscribes, 0) as unsubscribes,
        coalesce(group_days.complaints, 0) as complaints,
        coalesce(group_days.conversions_sq_increment, 0) as conversions_sq_increment,
        coalesce(group_days.revenue_sq_increment, 0) as revenue_sq_increment

    from grid
    left join group_entries
        on grid.agent = group_entries.agent
        and grid.experiment_group = group_entries.experiment_group
        and grid.day = group_entries.day
    left join group_days
        on grid.agent = group_days.agent
        and grid.experiment_group = group_days.experiment_group
        and grid.day = group_days.day

),

cumulative as (

    select
        daily.*,
        sum(new_customers) over running_days as customers,
        sum(sends) over running_days as cumulative_sends,
        sum(conversions) over running_days as cumulative_conversions,
        sum(revenue) over running_days as cumulative_revenue,
        sum(unsubscribes) over running_days as cumulative_unsubscribes,
        sum(complaints) over running_days as cumulative_complaints,
        sum(conversions_sq_increment) over running_days as conversions_sum_sq,
        sum(revenue_sq_increment) over running_days as revenue_sum_sq

    from daily
    window running_days as (
        partition by agent, experiment_group
        order by day
        rows between unbounded preceding and current row
    )

),

final as (

    select
        agent,
        day,
        experiment_group,
        cast(customers as integer) as customers,
        cast(new_customers as integer) as new_customers,
        cast(sends as integer) as sends,
        cast(conversions as integer) as conversions,
        cast(revenue as double precision) as revenue,
        cast(unsubscribes as integer) as unsubscribes,
        cast(complaints as integer) as complaints,
        cast(cumulative_sends as integer) as cumulative_sends,
        cast(cumulative_conversions as integer) as cumulative_conversions,
        cast(cumulative_revenue as double precision) as cumulative_revenue,
        cast(cumulative_unsubscribes as integer) as cumulative_unsubscribes,
        cast(cumulative_complaints as integer) as cumulative_complaints,
        cast(cumulative_sends as double precision) / nullif(customers, 0) as sends_per_customer,
        cast(cumulative_conversions as double precision) / nullif(customers, 0)
            as conversions_per_customer,
        cast(cumulative_revenue as double precision) / nullif(customers, 0)
            as revenue_per_customer,
        cast(cumulative_unsubscribes as double precision) / nullif(customers, 0)
            as unsubscribes_per_customer,
        cast(cumulative_complaints as double precision) / nullif(customers, 0)
            as complaints_per_customer,
        cast(
            {{ mean_interval('customers', 'cumulative_conversions', 'conversions_sum_sq', 'low') }}
            as double precision
        ) as conversions_per_customer_low,
        cast(
            {{ mean_interval('customers', 'cumulative_conversions', 'conversions_sum_sq', 'high') }}
            as double precision
        ) as conversions_per_customer_high,
        cast(
            {{ mean_interval('customers', 'cumulative_revenue', 'revenue_sum_sq', 'low') }}
            as double precision
        ) as revenue_per_customer_low,
        cast(
            {{ mean_interval('customers', 'cumulative_revenue', 'revenue_sum_sq', 'high') }}
            as double precision
        ) as revenue_per_customer_high

    from cumulative

)

select * from final
