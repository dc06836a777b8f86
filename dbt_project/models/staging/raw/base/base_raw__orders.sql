-- Every raw order row, renamed and checked: exclusion_reason says why a row is dropped
-- (the first loaded copy of an order wins; later copies are duplicates). discount_amount is
-- optional in the source: without the column, or when NULL, an order had no discount. Amounts
-- above var('max_order_amount') are implausible, an order dated in the future cannot have
-- happened yet (macros/plausibility.sql), and an order must name a customer raw.customers has.
{%- set max_amount = max_order_amount() %}
with

source as (

    select * from {{ source('raw', 'orders') }}

),

renamed as (

    select
        nullif(trim(order_id), '') as order_id,
        nullif(trim(customer_id), '') as customer_id,
        ordered_at,
        cast(amount as double precision) as amount,
        coalesce(
            cast({{ optional_column(source('raw', 'orders'), 'discount_amount') }}
                as double precision),
            0
        ) as discount_amount,
        nullif(lower(trim(category)), '') as category,
        _loaded_at as loaded_at

    from source

),

ranked as (

    select
        renamed.*,
        row_number() over (
            partition by order_id
            order by
                loaded_at asc nulls last,
                ordered_at asc nulls last,
                customer_id nulls last,
                amount nulls last,
                category nulls last
        ) as load_rank

    from renamed

),

categories as (

    select category from {{ ref('product_categories') }}

),

known_customers as (

    -- any load of the customer counts, even one staging excludes (its orders stay valid)
    select distinct customer_id
    from {{ ref('base_raw__customers') }}
    where customer_id is not null

),

checked as (

    select
        ranked.order_id,
        ranked.customer_id,
        ranked.ordered_at,
        ranked.amount,
        ranked.discount_amount,
        ranked.category,
        ranked.loaded_at,
        case
            when ranked.order_id is null then 'null_order_id'
            when ranked.load_rank > 1 then 'duplicate_order_id'
            when ranked.customer_id is null then 'null_customer_id'
            when known_customers.customer_id is null then 'unknown_customer'
            when ranked.ordered_at is null then 'null_ordered_at'
            when {{ is_future_dated('ranked.ordered_at', 'ranked.loaded_at') }}
                then 'future_ordered_at'
            when ranked.amount is null then 'null_amount'
            when not {{ is_finite('ranked.amount') }} then 'invalid_amount'
            when ranked.amount < 0 then 'negative_amount'
            when ranked.amount > {{ max_amount }} then 'amount_above_max'
            when not {{ is_finite('ranked.discount_amount') }} then 'invalid_discount'
            when ranked.discount_amount < 0 then 'negative_discount'
            when ranked.discount_amount > {{ max_amount }} then 'discount_above_max'
            when categories.category is null then 'unknown_category'
        end as exclusion_reason

    from ranked
    left join categories
        on ranked.category = categories.category
    left join known_customers
        on ranked.customer_id = known_customers.customer_id

)

select * from checked
