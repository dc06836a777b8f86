with

source as (

    select * from {{ source('journeyman', 'decision_features') }}

),

renamed as (

    select
        *,
        row_number() over (partition by decision_id order by decision_date) as copy_rank

    from source

)

select * exclude (copy_rank) from renamed
where copy_rank = 1
