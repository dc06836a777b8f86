-- Valid consent changes (known channel and status).
with

consents as (

    select * from {{ ref('base_raw__consents') }}
    where exclusion_reason is null

),

renamed as (

    select
        customer_id,
        channel,
        status,
        recorded_at,
        loaded_at

    from consents

)

select * from renamed
