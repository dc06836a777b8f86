-- Where the agent's planned messages went, one row per agent × decision_date × destination for
-- decisions before run_date: the ledger's rows by status (stg_journeyman__deliveries, its current
-- state; shadow decisions, logged to the shadow outbox and never sent, are not deliveries), and
-- on destination `none` the planned messages no destination has attempted. Every
-- agent-day with audience decisions has at least one row (`none` with zeros when nothing was
-- planned and nothing attempted).
-- Incremental by decision_date: a day's ledger rows settle within its send windows, so a build
-- replaces the days from the day after the newest it holds, or raw_reload_days before the as-of
-- date if earlier (macros/reload_window.sql); a delivery re-run for an older day needs
-- `dbt build --full-refresh`.
{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='append_new_columns',
        pre_hook="{{ delete_days_since('decision_date') }}"
    )
}}
{%- set since = days_since('decision_date') %}
with

decisions as (

    select * from {{ ref('stg_journeyman__decisions') }}
    where decision_date < {{ as_of_date() }}
        and exclusion_reason is distinct from 'not_eligible'
    {%- if since %}
        and decision_date >= {{ since }}
    {%- endif %}

),

deliveries as (

    select * from {{ ref('stg_journeyman__deliveries') }}

),

planned as (

    select
        decision_id,
        agent,
        decision_date

    from decisions
    where message_id is not null
        and exclusion_reason is null
        and experiment_group not in ('holdout', 'shadow')

),

agent_days as (

    select
        agent,
        decision_date,
        count(*) as decisions

    from decisions
    group by agent, decision_date

),

planned_days as (

    select
        agent,
        decision_date,
        count(*) as messages_planned

    from planned
    group by agent, decision_date

),

ledger_rows as (

    select
        decisions.agent,
        decisions.decision_date,
        deliveries.destination,
        count(*) as attempted,
        sum(case when deliveries.status = 'delivered' then 1 else 0 end) as delivered,
        sum(
            case when deliveries.status in ('failed_retryable', 'failed_permanent') then 1 else 0 end
        ) as failed,
        sum(case when deliveries.status = 'in_flight' then 1 else 0 end) as in_flight,
        sum(case when deliveries.status = 'unknown' then 1 else 0 end) as unknown,
        sum(case when deliveries.status = 'expired' then 1 else 0 end) as expired,
        sum(case when deliveries.status = 'suppressed' then 1 else 0 end) as suppressed,
        sum(case when deliveries.status = 'cancelled' then 1 else 0 end) as cancelled,
        0 as not_attempted

    from decisions
    inner join deliveries
        on decisions.decision_id = deliveries.decision_id
    -- a shadow decision's record in the shadow outbox is a log, not a delivery
    where decisions.experiment_group != 'shadow'
    group by decisions.agent, decisions.decision_date, deliveries.destination

),

unattempted as (

    select
        planned.agent,
        planned.decision_date,
        count(*) as not_attempted

    from planned
    left join deliveries
        on planned.decision_id = deliveries.decision_id
    where deliveries.decision_id is null
    group by planned.agent, planned.decision_date

),

ledger_days as (

    select distinct agent, decision_date
    from ledger_rows

),

none_rows as (

    select
        agent_days.agent,
        agent_days.decision_date,
        'none' as destination,
        0 as attempted,
        0 as delivered,
        0 as failed,
        0 as in_flight,
        0 as unknown,
        0 as expired,
        0 as suppressed,
        0 as cancelled,
        coalesce(unattempted.not_attempted, 0) as not_attempted

    from agent_days
    left join unattempted
        on agent_days.agent = unattempted.agent
        and agent_days.decision_date = unattempted.decision_date
    left join ledger_days
        on agent_days.agent = ledger_days.agent
        and agent_days.decision_date = ledger_days.decision_date
    where unattempted.not_attempted is not null
        or ledger_days.agent is null

),

destination_rows as (

    select * from ledger_rows
    union all
    select * from none_rows

),

final as (

    select
        destination_rows.agent,
        destination_rows.decision_date,
        destination_rows.destination,
        cast(agent_days.decisions as integer) as decisions,
        cast(coalesce(planned_days.messages_planned, 0) as integer) as messages_planned,
        cast(destination_rows.attempted as integer) as attempted,
        cast(destination_rows.delivered as integer) as delivered,
        cast(destination_rows.failed as integer) as failed,
        cast(destination_rows.in_flight as integer) as in_flight,
        cast(destination_rows.unknown as integer) as unknown,
        cast(destination_rows.expired as integer) as expired,
        cast(destination_rows.suppressed as integer) as suppressed,
        cast(destination_rows.cancelled as integer) as cancelled,
        cast(destination_rows.not_attempted as integer) as not_attempted

    from destination_rows
    inner join agent_days
        on destination_rows.agent = agent_days.agent
        and destination_rows.decision_date = agent_days.decision_date
    left join planned_days
        on destination_rows.agent = planned_days.agent
        and destination_rows.decision_date = planned_days.decision_date

)

select * from final
