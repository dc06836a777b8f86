-- Valid orders, one row per order_id (the first loaded copy).
with

orders as (

    select * from {{ ref('base_raw__orders') }}
    where exclusion_reason is null

),

renamed as (

    select
        order_id,
        customer_id,
        ordered_at,
        amount,
        discount_amount,
        category,
        loaded_at

    from orders

)

select * from renamed
