-- One row per valid customer: the share of the customer's orders (as of run_date) in each product
-- category, smoothed toward the population share with var('affinity_prior_strength') pseudo-orders.
-- Customers without orders get the population share; an empty population gets a uniform share.
{%- set categories = var('product_categories') %}
{%- set strength = var('affinity_prior_strength') %}
with

customers as (

    select customer_id from {{ ref('stg_raw__customers') }}

),

orders as (

    select customer_id, category from {{ ref('int_orders_as_of') }}

),

population as (

    select
        count(*) as order_count,
        {%- for category in categories %}
        sum(case when category = '{{ category }}' then 1 else 0 end) as {{ category }}_orders
        {{- "," if not loop.last }}
        {%- endfor %}

    from orders

),

population_shares as (

    select
        {%- for category in categories %}
        case
            when order_count > 0
                then cast({{ category }}_orders as double precision) / order_count
            else 1.0 / {{ categories | length }}
        end as {{ category }}_share
        {{- "," if not loop.last }}
        {%- endfor %}

    from population

),

customer_orders as (

    select
        customer_id,
        count(*) as order_count,
        {%- for category in categories %}
        sum(case when category = '{{ category }}' then 1 else 0 end) as {{ category }}_orders
        {{- "," if not loop.last }}
        {%- endfor %}

    from orders
    group by customer_id

),

pivoted as (

    select
        customers.customer_id,
        {%- for category in categories %}
        {{ smoothed_rate(
            'customer_orders.' ~ category ~ '_orders',
            'customer_orders.order_count',
            'population_shares.' ~ category ~ '_share',
            strength
        ) }} as affinity_{{ category }}
        {{- "," if not loop.last }}
        {%- endfor %}

    from customers
    cross join population_shares
    left join customer_orders
        on customers.customer_id = customer_orders.customer_id

)

select * from pivoted
