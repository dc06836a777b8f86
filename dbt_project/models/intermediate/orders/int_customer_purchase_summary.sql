-- Per customer with at least one order before the as-of instant: the summary the repurchase
-- models (BG/NBD, gamma-gamma; journeyman/decisioning/repurchase.py) are fitted on, in days.
-- A purchase is a calendar day (UTC) with orders, as in Fader, Hardie & Lee (2005): frequency is
-- the number of repeat purchase days, recency the days from the first purchase day to the last,
-- age the days from the first purchase day to the as-of date, and repeat_order_value the mean
-- spend of a repeat purchase day (0 without one).
with

orders as (

    select * from {{ ref('int_orders_as_of') }}

),

purchase_days as (

    select
        customer_id,
        cast(ordered_at as date) as purchase_date,
        sum(amount) as spend

    from orders
    group by customer_id, cast(ordered_at as date)

),

ranked as (

    select
        customer_id,
        purchase_date,
        spend,
        min(purchase_date) over (partition by customer_id) as first_purchase_date

    from purchase_days

),

summarized as (

    select
        customer_id,
        count(*) - 1 as frequency,
        cast(max(purchase_date) - min(first_purchase_date) as integer) as recency_days,
        cast(cast({{ as_of() }} as date) - min(first_purchase_date) as integer) as age_days,
        coalesce(
            sum(case when purchase_date > first_purchase_date then spend end)
            / nullif(count(*) - 1, 0),
            0
        ) as repeat_order_value

    from ranked
    group by customer_id

)

select * from summarized
