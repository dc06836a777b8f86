-- Every raw customer row, renamed and checked: exclusion_reason says why a row is dropped,
-- is_malformed_email / is_malformed_phone say which contact point staging nulls out.
with

source as (

    select * from {{ source('raw', 'customers') }}

),

renamed as (

    select
        nullif(trim(customer_id), '') as customer_id,
        nullif(lower(trim(email)), '') as email,
        nullif(trim(phone), '') as phone,
        nullif(trim(push_token), '') as push_token,
        nullif(trim(time_zone), '') as time_zone,
        nullif(upper(trim(country)), '') as country,
        signup_at,
        _loaded_at as loaded_at

    from source

),

ranked as (

    select
        renamed.*,
        -- the latest load of a customer wins; the other columns only make ties deterministic
        row_number() over (
            partition by customer_id
            order by
                loaded_at desc nulls last,
                signup_at desc nulls last,
                email nulls last,
                phone nulls last,
                push_token nulls last,
                time_zone nulls last
        ) as load_rank

    from renamed

),

time_zones as (

    select time_zone from {{ ref('iana_time_zones') }}

),

checked as (

    select
        ranked.customer_id,
        ranked.email,
        ranked.phone,
        ranked.push_token,
        ranked.time_zone,
        ranked.country,
        ranked.signup_at,
        ranked.loaded_at,
        case
            when ranked.customer_id is null then 'null_customer_id'
            when ranked.load_rank > 1 then 'duplicate_customer_id'
            when time_zones.time_zone is null then 'unknown_time_zone'
            when ranked.signup_at is null then 'null_signup_at'
        end as exclusion_reason,
        coalesce(
            ranked.email is not null
            and not (ranked.email ~ '^[^@[:space:]]+@[^@[:space:]]+\.[^@[:space:].]+$'),
            false
        ) as is_malformed_email,
        coalesce(
            ranked.phone is not null and not (ranked.phone ~ '^\+[1-9][0-9]{7,14}$'),
            false
        ) as is_malformed_phone

    from ranked
    left join time_zones
        on ranked.time_zone = time_zones.time_zone

)

select * from checked
