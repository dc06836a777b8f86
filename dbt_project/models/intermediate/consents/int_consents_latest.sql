-- The latest consent status per customer x channel as of run_date. No row = no consent.
-- Two changes at the same instant: opted_out wins.
with

consents as (

    select * from {{ ref('stg_raw__consents') }}
    where recorded_at < {{ as_of() }}

),

ranked as (

    select
        customer_id,
        channel,
        status,
        recorded_at,
        row_number() over (
            partition by customer_id, channel
            order by
                recorded_at desc,
                case when status = 'opted_out' then 0 else 1 end,
                loaded_at desc nulls last
        ) as recency_rank

    from consents

),

latest as (

    select
        customer_id,
        channel,
        status,
        recorded_at,
        status = 'opted_in' as is_opted_in

    from ranked
    where recency_rank = 1

)

select * from latest
