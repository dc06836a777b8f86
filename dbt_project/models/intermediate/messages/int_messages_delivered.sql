-- A table: three customer-feature models read it (docs/scaling.md). Incremental: a build
-- replaces the messages that anything touched in the last raw_reload_days before the as-of (or
-- the newest delivery it holds, if earlier): an event occurred or loaded, a send, a ledger change
-- (macros/reload_window.sql); `dbt build --full-refresh` rebuilds every message.
{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        pre_hook="{{ delete_touched_messages() }}",
        post_hook="{{ drop_touched_messages() }}"
    )
}}
{%- set since = messages_touched_since() %}
{%- do stage_touched_messages(since) %}
-- depends_on: {{ ref('stg_journeyman__deliveries') }}

-- Every message delivered to a customer before the as-of instant, whoever sent it, with how the
-- customer engaged with it: journeyman's (int_messages_sent) and those the ESP reports from other
-- sends (the brand's own campaigns: a `delivered` event whose message key is no journeyman
-- decision). Opens and clicks count once per message, duplicates included. delivered_at is the
-- first `delivered` event (for journeyman's messages without one: the decision's send_at).
with

{%- if since %}

touched as (

    select decision_id from {{ touched_messages_table() }}

),
{%- endif %}

journeyman_messages as (

    select decision_id, customer_id, channel, agent, message_id, send_at
    from {{ ref('int_messages_sent') }}
    {%- if since %}
    where decision_id in (select decision_id from touched)
    {%- endif %}

),

events as (

    select decision_id, customer_id, channel, event_type, occurred_at
    from {{ ref('stg_raw__message_events') }}
    where occurred_at < {{ as_of() }}
        and decision_id is not null
    {%- if since %}
        and decision_id in (select decision_id from touched)
    {%- endif %}

),

decisions as (

    -- journeyman's messages: only a decision with a message is ever delivered
    select decision_id from {{ ref('stg_journeyman__decisions') }}
    where message_id is not null
    {%- if since %}
        and decision_id in (select decision_id from touched)
    {%- endif %}

),

other_messages as (

    select
        events.decision_id,
        min(events.customer_id) as customer_id,
        min(events.channel) as channel,
        cast(null as varchar) as agent,
        cast(null as varchar) as message_id,
        min(events.occurred_at) as send_at

    from events
    left join decisions
        on events.decision_id = decisions.decision_id
    where events.event_type = 'delivered'
        and decisions.decision_id is null
    group by events.decision_id

),

messages as (

    select * from journeyman_messages
    union all
    select * from other_messages

),

engaged as (

    select
        messages.decision_id,
        messages.customer_id,
        messages.channel,
        messages.agent,
        messages.message_id,
        coalesce(
            min(case when events.event_type = 'delivered' then events.occurred_at end),
            min(messages.send_at)
        ) as delivered_at,
        max(case when events.event_type = 'open' then 1 else 0 end) as was_opened,
        max(case when events.event_type = 'click' then 1 else 0 end) as was_clicked,
        min(
            case when events.event_type in ('open', 'click') then events.occurred_at end
        ) as first_engaged_at

    from messages
    left join events
        on messages.decision_id = events.decision_id
        and events.event_type in ('delivered', 'open', 'click')
    group by
        messages.decision_id,
        messages.customer_id,
        messages.channel,
        messages.agent,
        messages.message_id

)

select * from engaged
