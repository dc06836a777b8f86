with

source as (

    select * from {{ source('journeyman', 'deliveries') }}

),

renamed as (

    select
        decision_id,
        destination,
        lower(status) as status,
        idempotency_key,
        attempts,
        error,
        provider_message_id,
        updated_at,
        delivered_at

    from source

)

select * from renamed
