-- The repurchase model's predictions as of the run date (none before the model's first fit:
-- customer_features then falls back to its documented defaults).
with

source as (

    select * from {{ source('journeyman', 'repurchase_predictions') }}

),

as_of as (

    select
        customer_id,
        probability_alive,
        expected_orders_7d,
        expected_orders_30d,
        probability_order_7d,
        median_days_to_next_order,
        expected_order_value

    from source
    where run_date = cast({{ as_of() }} as date)

)

select * from as_of
