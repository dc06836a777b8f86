-- A table: read by the contact counts, the delivered messages and customer_agent_contacts.
{{ config(materialized='table') }}

-- Messages actually sent as of run_date: decisions with a message, a delivered ledger row and
-- send_at strictly before the as-of instant. One row per decision.
with

decisions as (

    select * from {{ ref('stg_journeyman__decisions') }}
    where message_id is not null
        and experiment_group != 'shadow'  -- logged to the shadow outbox, never sent
        and send_at is not null
        and send_at < {{ as_of() }}

),

deliveries as (

    select
        decision_id,
        min(delivered_at) as delivered_at

    from {{ ref('stg_journeyman__deliveries') }}
    where status = 'delivered'
    group by decision_id

),

sent as (

    select
        decisions.decision_id,
        decisions.agent,
        decisions.customer_id,
        decisions.channel,
        decisions.message_id,
        decisions.action_id,
        decisions.send_at,
        deliveries.delivered_at

    from decisions
    inner join deliveries
        on decisions.decision_id = deliveries.decision_id

)

select * from sent
