with

source as (

    select * from {{ source('journeyman', 'message_tags') }}

),

renamed as (

    select
        agent,
        message_id,
        lower(tag) as tag,
        value

    from source

)

select * from renamed
