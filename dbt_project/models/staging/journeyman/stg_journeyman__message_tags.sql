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
        -- a warehouse that journeyman has not run on since upgrading has no history columns yet
        coalesce(
            cast({{ optional_column(source('journeyman', 'message_tags'), 'valid_from') }} as date),
            cast('1900-01-01' as date)
        ) as valid_from,
        cast({{ optional_column(source('journeyman', 'message_tags'), 'valid_to') }} as date)
            as valid_to

    from source

)

select * from renamed
