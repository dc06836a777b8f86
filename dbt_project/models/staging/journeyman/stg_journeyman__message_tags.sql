with

source as (

    select * from {{ source('journeyman', 'message_tags') }}

),

renamed as (

    select
        agent,
        message_id,
        lower(tag) as tag,
        value,
        coalesce(valid_from, cast('1900-01-01' as date)) as valid_from,
        valid_to

    from source

)

select * from renamed
