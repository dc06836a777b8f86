-- Every raw message event, renamed and checked: exclusion_reason says why a row is dropped
-- (the first loaded copy of an event id wins; later copies are duplicates).
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

checked as (

    select
        event_id,
        decision_id,
        customer_id,
        channel,
        event_type,
        occurred_at,
        loaded_at,
        case
            when event_id is null then 'null_event_id'
            when load_rank > 1 then 'duplicate_event_id'
            when event_type is null
                or event_type not in (
                    'delivered', 'open', 'click', 'bounce', 'unsubscribe', 'complaint'
                )
                then 'unknown_event_type'
            when occurred_at is null then 'null_occurred_at'
        end as exclusion_reason

    from ranked

)

select * from checked
