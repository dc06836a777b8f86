-- Revenue per customer broken into its drivers, one row per agent × experiment_group as of
-- run_date (intention to treat over agent_group_members):
-- revenue_per_customer = conversions_per_customer × revenue_per_conversion.
with

members as (

    select * from {{ ref('agent_group_members') }}

),

groups as (

    select
        agent,
        experiment_group,
        count(*) as customers,
        sum(case when conversions > 0 then 1 else 0 end) as converted_customers,
        sum(conversions) as conversions,
        sum(revenue) as revenue

    from members
    group by agent, experiment_group

),

final as (

    select
        agent,
        experiment_group,
        cast(customers as integer) as customers,
        cast(converted_customers as integer) as converted_customers,
        cast(conversions as integer) as conversions,
        cast(revenue as double precision) as revenue,
        cast(conversions as double precision) / customers as conversions_per_customer,
        cast(revenue as double precision) / nullif(conversions, 0) as revenue_per_conversion,
        cast(revenue as double precision) / customers as revenue_per_customer

    from groups

)

select * from final
