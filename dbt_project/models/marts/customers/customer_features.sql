-- One row per valid customer who signed up before the as-of instant: contact points, channel
-- permissions and the numeric features the bandit reads. Numeric features are never NULL; the
-- defaults are documented in _customers__models.yml. Staging bounds every order amount
-- (var max_order_amount), so sums cannot overflow; money and interval features still pass
-- through finite_or, so a NaN or infinity can never reach the decisioner (or fail the build).
{%- set hours_cap = var('hours_since_last_message_cap') %}
with

customers as (

    select * from {{ ref('stg_raw__customers') }}
    where signup_at < {{ as_of() }}

),

consents as (

    select * from {{ ref('int_consents_latest') }}

),

unsubscribes as (

    select * from {{ ref('int_unsubscribes_latest') }}

),

permissions as (

    -- opted in by the latest consent, and no unsubscribe / complaint since that consent
    select
        coalesce(consents.customer_id, unsubscribes.customer_id) as customer_id,
        coalesce(consents.channel, unsubscribes.channel) as channel,
        coalesce(consents.is_opted_in, false) as is_opted_in,
        unsubscribes.last_unsubscribed_at is not null
        and (
            consents.recorded_at is null
            or unsubscribes.last_unsubscribed_at >= consents.recorded_at
        ) as is_unsubscribed

    from consents
    full outer join unsubscribes
        on consents.customer_id = unsubscribes.customer_id
        and consents.channel = unsubscribes.channel

),

permissions_pivoted as (

    select
        customer_id,
        {%- for channel in ['email', 'sms', 'push'] %}
        max(case when channel = '{{ channel }}' and is_opted_in then 1 else 0 end)
            as {{ channel }}_opted_in,
        max(case when channel = '{{ channel }}' and is_unsubscribed then 1 else 0 end)
            as {{ channel }}_unsubscribed
        {{- "," if not loop.last }}
        {%- endfor %}

    from permissions
    group by customer_id

),

order_stats as (

    select * from {{ ref('int_customer_order_stats_aggregated') }}

),

ipi_population as (

    -- defaults for customers with too few orders: the population's mean IPI statistics
    select
        coalesce(avg(ipi_mean_days), {{ var('default_ipi_mean_days') }}) as ipi_mean_days,
        coalesce(avg(ipi_std_days), {{ var('default_ipi_std_days') }}) as ipi_std_days

    from order_stats

),

discount_population as (

    -- the population's share of orders placed with a discount: each customer's prior
    select
        coalesce(
            cast(sum(discounted_order_count) as double precision) / nullif(sum(order_count), 0),
            {{ var('default_discounted_order_share') }}
        ) as discounted_order_share

    from order_stats

),

affinities as (

    select * from {{ ref('int_category_affinities_pivoted') }}

),

active_hours as (

    select * from {{ ref('int_customer_active_hours_aggregated') }}

),

engagement as (

    select * from {{ ref('int_engagement_rates_smoothed') }}

),

offer_responses as (

    select * from {{ ref('int_offer_response_rates_smoothed') }}

),

message_counts as (

    select * from {{ ref('int_customer_message_counts_aggregated') }}

),

repurchase as (

    select * from {{ ref('stg_journeyman__repurchase_predictions') }}

),

joined as (

    select
        customers.customer_id,
        customers.time_zone,
        customers.country,
        customers.email,
        customers.phone,
        customers.push_token,

        coalesce(permissions_pivoted.email_opted_in, 0) = 1
        and coalesce(permissions_pivoted.email_unsubscribed, 0) = 0
        and customers.email is not null as consent_email,
        coalesce(permissions_pivoted.sms_opted_in, 0) = 1
        and coalesce(permissions_pivoted.sms_unsubscribed, 0) = 0
        and customers.phone is not null as consent_sms,
        coalesce(permissions_pivoted.push_opted_in, 0) = 1
        and coalesce(permissions_pivoted.push_unsubscribed, 0) = 0
        and customers.push_token is not null as consent_push,
        coalesce(permissions_pivoted.email_unsubscribed, 0) = 1 as unsubscribed_email,
        coalesce(permissions_pivoted.sms_unsubscribed, 0) = 1 as unsubscribed_sms,
        coalesce(permissions_pivoted.push_unsubscribed, 0) = 1 as unsubscribed_push,

        customers.signup_at,
        {{ date_diff_days('customers.signup_at', as_of()) }} as tenure_days,

        cast(coalesce(order_stats.order_count, 0) as integer) as order_count,
        cast(coalesce(order_stats.orders_last_90d, 0) as integer) as orders_last_90d,
        {{ finite_or('order_stats.total_revenue', '0') }} as total_revenue,
        {{ finite_or('order_stats.total_revenue / nullif(order_stats.order_count, 0)', '0') }}
            as avg_order_value,
        coalesce(
            {{ date_diff_days('order_stats.last_ordered_at', as_of()) }},
            {{ date_diff_days('customers.signup_at', as_of()) }}
        ) as days_since_last_order,
        case when order_stats.order_count > 0 then 1 else 0 end as has_ordered,
        {{ smoothed_rate(
            'order_stats.discounted_order_count',
            'order_stats.order_count',
            'discount_population.discounted_order_share',
            var('discount_prior_strength')
        ) }} as discounted_order_share,
        {{ finite_or(
            'coalesce(order_stats.ipi_mean_days, ipi_population.ipi_mean_days)',
            var('default_ipi_mean_days')
        ) }} as ipi_mean_days,
        {{ finite_or(
            'coalesce(order_stats.ipi_std_days, ipi_population.ipi_std_days)',
            var('default_ipi_std_days')
        ) }} as ipi_std_days,

        {%- for category in var('product_categories') %}
        affinities.affinity_{{ category }},
        {%- endfor %}

        cast(coalesce(order_stats.order_hour_cos, 0) as double precision) as order_hour_cos,
        cast(coalesce(order_stats.order_hour_sin, 0) as double precision) as order_hour_sin,
        cast(coalesce(active_hours.active_hour_cos, 0) as double precision) as active_hour_cos,
        cast(coalesce(active_hours.active_hour_sin, 0) as double precision) as active_hour_sin,

        engagement.email_open_rate,
        engagement.email_click_rate,
        engagement.sms_click_rate,
        engagement.push_open_rate,
        offer_responses.offer_response_rate,
        offer_responses.no_offer_response_rate,

        cast(coalesce(message_counts.messages_last_1d, 0) as integer) as messages_last_1d,
        cast(coalesce(message_counts.messages_last_7d, 0) as integer) as messages_last_7d,
        cast(coalesce(message_counts.messages_last_30d, 0) as integer) as messages_last_30d,
        {%- for channel in ['email', 'sms', 'push'] %}
        cast(coalesce(message_counts.{{ channel }}_messages_last_7d, 0) as integer)
            as {{ channel }}_messages_last_7d,
        {%- endfor %}
        cast(
            coalesce(
                least({{ hours_between('message_counts.last_message_at', as_of()) }}, {{ hours_cap }}),
                {{ hours_cap }}
            ) as double precision
        ) as hours_since_last_message,
        message_counts.last_message_at,

        -- the repurchase model of the day (0, and the cap for the days, without a prediction:
        -- no order yet, or no fit that day); short names: Postgres truncates identifiers at 63
        -- characters and arm_statistics_daily names a column after each pair of features
        {%- for column, name in [('probability_alive', 'p_alive'),
                                 ('expected_orders_7d', 'orders_7d'),
                                 ('expected_orders_30d', 'orders_30d'),
                                 ('probability_order_7d', 'p_order_7d')] %}
        {{ finite_or('repurchase.' ~ column, '0') }} as repurchase_{{ name }},
        {%- endfor %}
        {{ finite_or(
            'least(repurchase.median_days_to_next_order, ' ~ var('repurchase_days_cap') ~ ')',
            var('repurchase_days_cap')
        ) }} as repurchase_days_to_next,
        {{ finite_or(
            'repurchase.expected_order_value',
            finite_or('order_stats.total_revenue / nullif(order_stats.order_count, 0)', '0')
        ) }} as repurchase_order_value

    from customers
    cross join ipi_population
    cross join discount_population
    left join permissions_pivoted
        on customers.customer_id = permissions_pivoted.customer_id
    left join order_stats
        on customers.customer_id = order_stats.customer_id
    left join affinities
        on customers.customer_id = affinities.customer_id
    left join active_hours
        on customers.customer_id = active_hours.customer_id
    left join engagement
        on customers.customer_id = engagement.customer_id
    left join offer_responses
        on customers.customer_id = offer_responses.customer_id
    left join message_counts
        on customers.customer_id = message_counts.customer_id
    left join repurchase
        on customers.customer_id = repurchase.customer_id

)

select * from joined
