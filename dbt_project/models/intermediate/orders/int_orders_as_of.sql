-- Valid orders placed strictly before the as-of instant.
with

orders as (

    select * from {{ ref('stg_raw__orders') }}

),

as_of as (

    select
        order_id,
        customer_id,
        ordered_at,
        amount,
        discount_amount,
        category

    from orders
    where ordered_at < {{ as_of() }}

)

select * from as_of
