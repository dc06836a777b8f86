-- The agent's learning policy (experiment_group treatment) against every other group of the
-- agent except shadow (decided, never sent), per metric, as of run_date: intention to treat over
-- agent_group_members (every member counts, with 0 when nothing happened). One row per agent ×
-- comparison_group × metric: the groups' means and sample standard deviations, the Welch 95 %
-- interval of the difference of means, and the delta-method 95 % interval of the relative
-- difference treatment_mean / comparison_mean − 1, both with the Welch-Satterthwaite df.
with

members as (

    select * from {{ ref('agent_group_members') }}

),

decisions as (

    select * from {{ ref('stg_journeyman__decisions') }}
    where decision_date < {{ as_of_date() }}

),

latest_days as (

    select
        agent,
        max(decision_date) as decision_date

    from decisions
    group by agent

),

agent_goals as (

    select
        decisions.agent,
        max(decisions.goal_metric) as goal_metric

    from decisions
    inner join latest_days
        on decisions.agent = latest_days.agent
        and decisions.decision_date = latest_days.decision_date
    group by decisions.agent

),

group_sums as (

    select
        agent,
        experiment_group,
        count(*) as customers,
        sum(cast(conversions as double precision)) as conversions_sum,
        sum(cast(conversions as double precision) * conversions) as conversions_sum_sq,
        sum(revenue) as revenue_sum,
        sum(revenue * revenue) as revenue_sum_sq,
        sum(cast(unsubscribes as double precision)) as unsubscribes_sum,
        sum(cast(unsubscribes as double precision) * unsubscribes) as unsubscribes_sum_sq,
        sum(cast(complaints as double precision)) as complaints_sum,
        sum(cast(complaints as double precision) * complaints) as complaints_sum_sq,
        sum(cast(retained as double precision)) as retained_sum,
        sum(cast(retained as double precision) * retained) as retained_sum_sq

    from members
    group by agent, experiment_group

),

metric_sums as (

    {%- for metric in ['conversions', 'revenue', 'unsubscribes', 'complaints', 'retained'] %}
    {% if not loop.first %}union all{% endif %}
    select
        agent,
        experiment_group,
        '{{ metric }}' as metric,
        customers,
        {{ metric }}_sum as outcome_sum,
        {{ metric }}_sum_sq as outcome_sum_sq
    from group_sums
    {%- endfor %}

),

group_moments as (

    select
        agent,
        experiment_group,
        metric,
        customers,
        outcome_sum / customers as mean,
        {{ sample_variance('customers', 'outcome_sum', 'outcome_sum_sq') }} as variance

    from metric_sums

),

comparisons as (

    select
        treatment.agent,
        treatment.metric,
        comparison.experiment_group as comparison_group,
        treatment.customers as treatment_customers,
        treatment.mean as treatment_mean,
        treatment.variance as treatment_variance,
        comparison.customers as comparison_customers,
        comparison.mean as comparison_mean,
        comparison.variance as comparison_variance

    from group_moments as treatment
    inner join group_moments as comparison
        on treatment.agent = comparison.agent
        and treatment.metric = comparison.metric
        and comparison.experiment_group not in ('treatment', 'shadow')
    where treatment.experiment_group = 'treatment'

),

welch as (

    select
        comparisons.*,
        treatment_mean - comparison_mean as absolute_difference,
        {{ welch_standard_error(
            'treatment_variance', 'treatment_customers', 'comparison_variance', 'comparison_customers'
        ) }} as standard_error,
        {{ welch_degrees_of_freedom(
            'treatment_variance', 'treatment_customers', 'comparison_variance', 'comparison_customers'
        ) }} as degrees_of_freedom,
        treatment_mean / nullif(comparison_mean, 0) - 1 as relative_difference,
        {{ ratio_standard_error(
            'treatment_mean', 'treatment_variance', 'treatment_customers',
            'comparison_mean', 'comparison_variance', 'comparison_customers'
        ) }} as relative_standard_error

    from comparisons

),

quantiles as (

    select
        welch.*,
        -- no spread at all (both variances 0): the interval is the point, whatever the df
        case
            when standard_error = 0 then 0
            else {{ t_quantile_975('degrees_of_freedom') }}
        end as t_quantile

    from welch

),

intervals as (

    select
        quantiles.*,
        absolute_difference - t_quantile * standard_error as absolute_low,
        absolute_difference + t_quantile * standard_error as absolute_high,
        -- a group without spread (e.g. no revenue yet) leaves the delta method nothing to
        -- scale: its interval would collapse onto the point, so there is none
        case
            when treatment_variance > 0 and comparison_variance > 0
                then relative_difference - t_quantile * relative_standard_error
        end as relative_low,
        case
            when treatment_variance > 0 and comparison_variance > 0
                then relative_difference + t_quantile * relative_standard_error
        end as relative_high

    from quantiles

),

final as (

    select
        intervals.agent,
        intervals.metric,
        coalesce(
            (agent_goals.goal_metric = 'revenue' and intervals.metric = 'revenue')
            or (agent_goals.goal_metric = 'conversion' and intervals.metric = 'conversions')
            or (agent_goals.goal_metric = 'retention' and intervals.metric = 'retained'),
            false
        ) as is_goal_metric,
        intervals.comparison_group,
        cast(intervals.treatment_customers as integer) as treatment_customers,
        cast(intervals.treatment_mean as double precision) as treatment_mean,
        cast(sqrt(intervals.treatment_variance) as double precision) as treatment_sd,
        cast(intervals.comparison_customers as integer) as comparison_customers,
        cast(intervals.comparison_mean as double precision) as comparison_mean,
        cast(sqrt(intervals.comparison_variance) as double precision) as comparison_sd,
        cast(intervals.absolute_difference as double precision) as absolute_difference,
        cast(intervals.absolute_low as double precision) as absolute_low,
        cast(intervals.absolute_high as double precision) as absolute_high,
        cast(intervals.relative_difference as double precision) as relative_difference,
        cast(intervals.relative_low as double precision) as relative_low,
        cast(intervals.relative_high as double precision) as relative_high,
        cast(intervals.degrees_of_freedom as double precision) as degrees_of_freedom,
        coalesce(intervals.absolute_low > 0 or intervals.absolute_high < 0, false)
            as is_significant

    from intervals
    left join agent_goals
        on intervals.agent = agent_goals.agent

)

select * from final
