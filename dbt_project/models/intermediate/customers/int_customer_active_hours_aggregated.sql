-- Per customer: when in their own day they are active, from every moment they acted before the
-- as-of instant — their orders and their first open / click of each delivered message (any
-- sender, int_messages_delivered) that came at least var active_hour_engagement_delay_hours
-- after the delivery: an open right at delivery says when the message was sent (or is a
-- machine open, such as Apple Mail Privacy Protection's), one that came later says when the
-- customer chose to look. The mean direction of those local hours on the 24-hour circle, shrunk
-- by one pseudo-moment at the centre: length n / (n + 1) grows with consistent evidence.
{%- set delay_hours = var('active_hour_engagement_delay_hours') %}
with

customers as (

    select customer_id, time_zone from {{ ref('stg_raw__customers') }}

),

orders as (

    select customer_id, ordered_at as acted_at
    from {{ ref('int_orders_as_of') }}

),

engagements as (

    select customer_id, first_engaged_at as acted_at
    from {{ ref('int_messages_delivered') }}
    where first_engaged_at is not null
        and {{ hours_between('delivered_at', 'first_engaged_at') }} >= {{ delay_hours }}

),

moments as (

    select customer_id, acted_at, 'order' as kind from orders
    union all
    select customer_id, acted_at, 'engagement' as kind from engagements

),

angled as (

    select
        moments.customer_id,
        moments.kind,
        {{ local_hour('moments.acted_at', 'customers.time_zone') }} * pi() / 12 as local_angle

    from moments
    inner join customers
        on moments.customer_id = customers.customer_id

),

aggregated as (

    select
        customer_id,
        count(local_angle) as active_moments,
        count(case when kind = 'engagement' then local_angle end) as engagement_moments,
        sum(cos(local_angle)) / (count(local_angle) + 1) as active_hour_cos,
        sum(sin(local_angle)) / (count(local_angle) + 1) as active_hour_sin

    from angled
    group by customer_id

)

select * from aggregated
