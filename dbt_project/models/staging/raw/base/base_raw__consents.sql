-- Every raw consent row, renamed and checked: exclusion_reason says why a row is dropped (a
-- consent change dated in the future cannot have happened yet: macros/plausibility.sql).
with

source as (

    select * from {{ source('raw', 'consents') }}

),

renamed as (

    select
        nullif(trim(customer_id), '') as customer_id,
        nullif(lower(trim(channel)), '') as channel,
        nullif(lower(trim(status)), '') as status,
        recorded_at,
        _loaded_at as loaded_at

    from source

),

checked as (

    select
        renamed.*,
        case
            when customer_id is null then 'null_customer_id'
            when channel is null or channel not in ('email', 'sms', 'push') then 'unknown_channel'
            when status is null or status not in ('opted_in', 'opted_out') then 'unknown_status'
            when recorded_at is null then 'null_recorded_at'
            when {{ is_future_dated('recorded_at', 'loaded_at') }} then 'future_recorded_at'
        end as exclusion_reason

    from renamed

)

select * from checked
