-- A table, not a view: every message-event consumer (staging, data quality, the outcome marts)
-- would otherwise re-rank the whole event history (docs/scaling.md).
{{ config(materialized='table') }}

-- Every raw message event, renamed and checked: exclusion_reason says why a row is dropped
-- (the first loaded copy of an event id wins; later copies are duplicates). An event dated in
-- the future cannot have happened yet (macros/plausibility.sql). An open or click must belong to
-- a known message: a journeyman decision with a message, or a message the vendor reported `delivered` (the
-- brand's own sends). Deliveries, bounces, unsubscribes and complaints are kept whatever message
-- they name: they are facts about the customer's address and wishes, never to be lost.
with

source as (

    select * from {{ source('raw', 'message_events') }}

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

decisions as (

    -- only a decision with a message can be opened or clicked
    select distinct decision_id from {{ source('journeyman', 'decisions') }}
    where message_id is not null

),

delivered_messages as (

    select distinct decision_id
    from renamed
    where event_type = 'delivered'
        and decision_id is not null

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
            when ranked.load_rank > 1 then 'duplicate_event_id'
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
    left join decisions
        on ranked.decision_id = decisions.decision_id
    left join delivered_messages
        on ranked.decision_id = delivered_messages.decision_id

)

select * from checked
