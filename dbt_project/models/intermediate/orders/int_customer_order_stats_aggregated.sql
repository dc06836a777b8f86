-- Per customer with at least one order as of run_date: frequency, monetary, recency and
-- inter-purchase interval (IPI) statistics, how often they ordered with a discount, and when in
-- their own day they shop. IPI columns are NULL with < 2 (mean) / < 3 (std) orders;
-- customer_features fills them with documented defaults.
with

orders as (

    select * from {{ ref('int_orders_as_of') }}

),

customers as (

    select customer_id, time_zone from {{ ref('stg_raw__customers') }}

),

intervals as (

    select
        orders.customer_id,
        orders.ordered_at,
        orders.amount,
        orders.discount_amount,
        {{ local_hour('orders.ordered_at', 'customers.time_zone') }} * pi() / 12 as local_angle,
        {{ days_between(
            'lag(orders.ordered_at) over (
                partition by orders.customer_id order by orders.ordered_at, orders.order_id
            )',
            'orders.ordered_at'
        ) }} as days_since_previous_order

    from orders
    left join customers
        on orders.customer_id = customers.customer_id

),

aggregated as (

    select
        customer_id,
        count(*) as order_count,
        sum(
            case when ordered_at >= {{ add_days(as_of(), -90) }} then 1 else 0 end
        ) as orders_last_90d,
        sum(amount) as total_revenue,
        sum(case when discount_amount > 0 then 1 else 0 end) as discounted_order_count,
        min(ordered_at) as first_ordered_at,
        max(ordered_at) as last_ordered_at,
        avg(days_since_previous_order) as ipi_mean_days,
        stddev_samp(days_since_previous_order) as ipi_std_days,
        -- the mean direction of the local order hours on the 24-hour circle, shrunk by one
        -- pseudo-order at the centre: length n / (n + 1) grows with consistent evidence
        sum(cos(local_angle)) / (count(local_angle) + 1) as order_hour_cos,
        sum(sin(local_angle)) / (count(local_angle) + 1) as order_hour_sin

    from intervals
    group by customer_id

)

select * from aggregated
