-- Incremental (macros/reload_window.sql): a build replaces the rows loaded in the last
-- raw_reload_days before the newest row it holds (and those without a load time), and re-checks
-- the rows an earlier build excluded as future-dated or of an unknown message; the rest of the
-- history, checked once, stays. `dbt build --full-refresh` checks everything again.
{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        pre_hook="{{ delete_reload_window('loaded_at') }}",
        post_hook="{{ recheck_message_events() }}"
    )
}}
{%- set since = reload_window_start('loaded_at') %}

-- Every raw message event, renamed and checked: exclusion_reason says why a row is dropped
-- (the first loaded copy of an event id wins; later copies are duplicates). An event dated in
-- the future cannot have happened yet (macros/plausibility.sql). An open or click must belong to
-- a known message: a journeyman decision with a message, or a message the vendor reported
-- `delivered` (the brand's own sends). Deliveries, bounces, unsubscribes and complaints are kept
-- whatever message they name: they are facts about the customer's address and wishes, never to
-- be lost.
with

source as (

    select * from {{ source('raw', 'message_events') }}
    {%- if since %}
    where _loaded_at >= {{ since }} or _loaded_at is null
    {%- endif %}

),

renamed as (

    select
        nullif(trim(event_id), '') as event_id,
        nullif(trim(decision_id), '') as decision_id,
        nullif(trim(customer_id), '') as customer_id,
        nullif(lower(trim(channel)), '') as channel,
        nullif(lower(trim(event_type)), '') as event_type,
        occurred_at,
        _loaded_at as loaded_at

    from source

),

ranked as (

    select
        renamed.*,
        row_number() over (
            partition by event_id
            order by
                loaded_at asc nulls last,
                occurred_at asc nulls last,
                event_type nulls last,
                decision_id nulls last
        ) as load_rank

    from renamed

),

{%- if since %}

loaded_before as (

    -- event ids the table holds from before the window: their copies here are duplicates
    select distinct event_id from {{ this }}
    where event_id in (select event_id from renamed)

),

engaged_messages as (

    select decision_id from renamed
    where event_type in ('open', 'click')

),
{%- endif %}

decisions as (

    -- only a decision with a message can be opened or clicked
    select distinct decision_id from {{ source('journeyman', 'decisions') }}
    where message_id is not null
    {%- if since %}
        and decision_id in (select decision_id from engaged_messages)
    {%- endif %}

),

delivered_messages as (

    select distinct decision_id
    from renamed
    where event_type = 'delivered'
        and decision_id is not null
    {%- if since %}

    union

    select decision_id from {{ this }}
    where event_type = 'delivered'
        and decision_id in (select decision_id from engaged_messages)
    {%- endif %}

),

checked as (

    select
        ranked.event_id,
        ranked.decision_id,
        ranked.customer_id,
        ranked.channel,
        ranked.event_type,
        ranked.occurred_at,
        ranked.loaded_at,
        case
            when ranked.event_id is null then 'null_event_id'
            when ranked.load_rank > 1 {% if since %}or loaded_before.event_id is not null{% endif %}
                then 'duplicate_event_id'
            when ranked.event_type is null
                or ranked.event_type not in (
                    'delivered', 'open', 'click', 'bounce', 'unsubscribe', 'complaint'
                )
                then 'unknown_event_type'
            when ranked.occurred_at is null then 'null_occurred_at'
            when {{ is_future_dated('ranked.occurred_at', 'ranked.loaded_at') }}
                then 'future_occurred_at'
            when ranked.event_type in ('open', 'click')
                and ranked.decision_id is not null
                and decisions.decision_id is null
                and delivered_messages.decision_id is null
                then 'unknown_decision'
        end as exclusion_reason

    from ranked
    {%- if since %}
    left join loaded_before
        on ranked.event_id = loaded_before.event_id
    {%- endif %}
    left join decisions
        on ranked.decision_id = decisions.decision_id
    left join delivered_messages
        on ranked.decision_id = delivered_messages.decision_id

)

select * from checked
