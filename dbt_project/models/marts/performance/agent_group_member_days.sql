-- The outcomes of the agents' group members, one row per agent × experiment_group × customer ×
-- UTC day on which the member had any (a delivered send, an order, an unsubscribe or a
-- complaint): sparse, never a members × days grid. Members and the counting rules are those of
-- agent_group_members (which sums these rows per member); agent_group_daily sums them per day.
-- Incremental by day: a build replaces the days from the day after the newest it holds, or
-- raw_reload_days before the as-of date if earlier (late orders and events), and reads the
-- membership only of the customers with an order or event on those days
-- (macros/reload_window.sql).
{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='append_new_columns',
        pre_hook="{{ delete_days_since('day') }}"
    )
}}
{%- set since = days_since('day') %}
with

decisions as (

    select * from {{ ref('stg_journeyman__decisions') }}
    where decision_date < {{ as_of_date() }}
        and exclusion_reason is distinct from 'not_eligible'

),

orders as (

    select * from {{ ref('int_orders_as_of') }}
    {%- if since %}
    where ordered_at >= cast({{ since }} as timestamp)
    {%- endif %}

),

events as (

    select * from {{ ref('stg_raw__message_events') }}
    where event_type in ('unsubscribe', 'complaint')
        and occurred_at < {{ as_of() }}
    {%- if since %}
        and occurred_at >= cast({{ since }} as timestamp)
    {%- endif %}

),

delivered as (

    select decision_id
    from {{ ref('stg_journeyman__deliveries') }}
    where status = 'delivered'

),

members as (

    select
        agent,
        experiment_group,
        customer_id,
        min(decision_date) as first_decision_date

    from decisions
    {%- if since %}
    -- on the days replaced, only the customers with an order or event count as members
    where customer_id in (
        select customer_id from orders
        union
        select customer_id from events
    )
    {%- endif %}
    group by agent, experiment_group, customer_id

),

send_days as (

    select
        agent,
        experiment_group,
        customer_id,
        decision_date as day,
        count(*) as sends,
        0 as conversions,
        cast(0 as double precision) as revenue,
        0 as unsubscribes,
        0 as complaints

    from decisions
    where decision_id in (select decision_id from delivered)
    {%- if since %}
        and decision_date >= {{ since }}
    {%- endif %}
    group by agent, experiment_group, customer_id, decision_date

),

order_days as (

    select
        members.agent,
        members.experiment_group,
        members.customer_id,
        cast(orders.ordered_at as date) as day,
        0 as sends,
        count(*) as conversions,
        cast(sum(orders.amount) as double precision) as revenue,
        0 as unsubscribes,
        0 as complaints

    from members
    inner join orders
        on members.customer_id = orders.customer_id
        and orders.ordered_at >= cast(members.first_decision_date as timestamp)
    group by
        members.agent,
        members.experiment_group,
        members.customer_id,
        cast(orders.ordered_at as date)

),

event_days as (

    select
        members.agent,
        members.experiment_group,
        members.customer_id,
        cast(events.occurred_at as date) as day,
        0 as sends,
        0 as conversions,
        cast(0 as double precision) as revenue,
        sum(case when events.event_type = 'unsubscribe' then 1 else 0 end) as unsubscribes,
        sum(case when events.event_type = 'complaint' then 1 else 0 end) as complaints

    from members
    inner join events
        on members.customer_id = events.customer_id
        and events.occurred_at >= cast(members.first_decision_date as timestamp)
    group by
        members.agent,
        members.experiment_group,
        members.customer_id,
        cast(events.occurred_at as date)

),

outcome_days as (

    select * from send_days
    union all
    select * from order_days
    union all
    select * from event_days

),

final as (

    select
        agent,
        experiment_group,
        customer_id,
        day,
        cast(sum(sends) as integer) as sends,
        cast(sum(conversions) as integer) as conversions,
        cast(sum(revenue) as double precision) as revenue,
        cast(sum(unsubscribes) as integer) as unsubscribes,
        cast(sum(complaints) as integer) as complaints

    from outcome_days
    group by agent, experiment_group, customer_id, day

)

select * from final
