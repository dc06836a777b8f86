-- Valid customers, one row per customer_id; a malformed e-mail or phone is nulled out
-- (that channel becomes unreachable) and listed in dq_excluded_rows.
with

customers as (

    select * from {{ ref('base_raw__customers') }}
    where exclusion_reason is null

),

cleaned as (

    select
        customer_id,
        case when is_malformed_email then null else email end as email,
        case when is_malformed_phone then null else phone end as phone,
        push_token,
        time_zone,
        country,
        signup_at,
        loaded_at

    from customers

)

select * from cleaned
