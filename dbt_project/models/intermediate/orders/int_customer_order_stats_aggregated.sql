-- Per customer with at least one order as of run_date: frequency, monetary, recency and
-- inter-purchase interval (IPI) statistics. IPI columns are NULL with < 2 (mean) / < 3 (std) orders;
-- customer_features fills them with documented defaults.
with

orders as (

    select * from {{ ref('int_orders_as_of') }}

),

intervals as (

    select
        customer_id,
        ordered_at,
        amount,
        {{ days_between(
            'lag(ordered_at) over (partition by customer_id order by ordered_at, order_id)',
            'ordered_at'
        ) }} as days_since_previous_order

    from orders

),

aggregated as (

    select
        customer_id,
        count(*) as order_count,
        sum(
            case when ordered_at >= {{ add_days(as_of(), -90) }} then 1 else 0 end
        ) as orders_last_90d,
        sum(amount) as total_revenue,
        min(ordered_at) as first_ordered_at,
        max(ordered_at) as last_ordered_at,
        avg(days_since_previous_order) as ipi_mean_days,
        stddev_samp(days_since_previous_order) as ipi_std_days

    from intervals
    group by customer_id

)

select * from aggregated
