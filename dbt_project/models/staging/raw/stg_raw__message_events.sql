-- Valid message events, one row per event_id (the first loaded copy).
with

message_events as (

    select * from {{ ref('base_raw__message_events') }}
    where exclusion_reason is null

),

renamed as (

    select
        event_id,
        decision_id,
        customer_id,
        channel,
        event_type,
        occurred_at,
        loaded_at

    from message_events

)

select * from renamed
