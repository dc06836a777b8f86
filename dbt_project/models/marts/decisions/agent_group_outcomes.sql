-- The demo's intention-to-treat summary, one row per (agent, policy, experiment_group): everyone
-- in the audience (a decision not excluded as not_eligible, decided before run_date) counts,
-- whether or not a message could be sent.
with

decisions as (

    select * from {{ ref('stg_journeyman__decisions') }}
    where decision_date < {{ as_of_date() }}
        and exclusion_reason is distinct from 'not_eligible'

),

deliveries as (

    select distinct decision_id
    from {{ ref('stg_journeyman__deliveries') }}
    where status = 'delivered'

),

members as (

    select
        decisions.agent,
        decisions.policy,
        decisions.experiment_group,
        decisions.customer_id,
        min(decisions.decision_date) as first_decision_date,
        count(*) as decisions,
        sum(case when deliveries.decision_id is not null then 1 else 0 end) as messages_sent

    from decisions
    left join deliveries
        on decisions.decision_id = deliveries.decision_id
    group by
        decisions.agent,
        decisions.policy,
        decisions.experiment_group,
        decisions.customer_id

),

orders as (

    select * from {{ ref('int_orders_as_of') }}

),

member_orders as (

    select
        members.agent,
        members.policy,
        members.experiment_group,
        members.customer_id,
        count(orders.order_id) as conversions,
        coalesce(sum(orders.amount), 0) as revenue

    from members
    left join orders
        on members.customer_id = orders.customer_id
        and orders.ordered_at >= cast(members.first_decision_date as timestamp)
    group by
        members.agent,
        members.policy,
        members.experiment_group,
        members.customer_id

),

unsubscribes as (

    select
        decisions.agent,
        decisions.policy,
        decisions.experiment_group,
        count(distinct decisions.decision_id) as unsubscribes

    from decisions
    inner join {{ ref('stg_raw__message_events') }} as events
        on decisions.decision_id = events.decision_id
    where events.event_type = 'unsubscribe'
        and events.occurred_at < {{ as_of() }}
    group by
        decisions.agent,
        decisions.policy,
        decisions.experiment_group

),

groups as (

    select
        members.agent,
        members.policy,
        members.experiment_group,
        count(*) as customers,
        sum(members.decisions) as decisions,
        sum(members.messages_sent) as messages_sent,
        sum(member_orders.conversions) as conversions,
        sum(case when member_orders.conversions > 0 then 1 else 0 end) as converted_customers,
        sum(member_orders.revenue) as revenue

    from members
    inner join member_orders
        on members.agent = member_orders.agent
        and members.policy = member_orders.policy
        and members.experiment_group = member_orders.experiment_group
        and members.customer_id = member_orders.customer_id
    group by
        members.agent,
        members.policy,
        members.experiment_group

),

final as (

    select
        groups.agent,
        groups.policy,
        groups.experiment_group,
        cast(groups.customers as integer) as customers,
        cast(groups.decisions as integer) as decisions,
        cast(groups.messages_sent as integer) as messages_sent,
        cast(groups.conversions as integer) as conversions,
        cast(groups.converted_customers as integer) as converted_customers,
        cast(groups.converted_customers as double precision) / groups.customers
            as conversion_rate,
        cast(groups.revenue as double precision) as revenue,
        cast(groups.revenue as double precision) / groups.customers as revenue_per_customer,
        cast(coalesce(unsubscribes.unsubscribes, 0) as integer) as unsubscribes

    from groups
    left join unsubscribes
        on groups.agent = unsubscribes.agent
        and groups.policy = unsubscribes.policy
        and groups.experiment_group = unsubscribes.experiment_group

)

select * from final
