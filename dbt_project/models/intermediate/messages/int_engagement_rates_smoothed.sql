-- One row per valid customer: per-channel engagement rates, Beta-smoothed toward the population
-- rate (var engagement_prior_strength pseudo-messages); the population rate is itself smoothed
-- toward a default (var engagement_population_prior_strength), so a new customer gets the prior.
{%- set strength = var('engagement_prior_strength') %}
{%- set population_strength = var('engagement_population_prior_strength') %}
with

customers as (

    select customer_id from {{ ref('stg_raw__customers') }}

),

engagement as (

    select * from {{ ref('int_message_engagement_aggregated') }}

),

population as (

    select
        sum(case when channel = 'email' then messages_sent else 0 end) as email_sent,
        sum(case when channel = 'email' then messages_opened else 0 end) as email_opened,
        sum(case when channel = 'email' then messages_clicked else 0 end) as email_clicked,
        sum(case when channel = 'sms' then messages_sent else 0 end) as sms_sent,
        sum(case when channel = 'sms' then messages_clicked else 0 end) as sms_clicked,
        sum(case when channel = 'push' then messages_sent else 0 end) as push_sent,
        sum(case when channel = 'push' then messages_opened else 0 end) as push_opened

    from engagement

),

priors as (

    select
        {{ smoothed_rate('email_opened', 'email_sent',
            var('default_email_open_rate'), population_strength) }} as email_open_prior,
        {{ smoothed_rate('email_clicked', 'email_sent',
            var('default_email_click_rate'), population_strength) }} as email_click_prior,
        {{ smoothed_rate('sms_clicked', 'sms_sent',
            var('default_sms_click_rate'), population_strength) }} as sms_click_prior,
        {{ smoothed_rate('push_opened', 'push_sent',
            var('default_push_open_rate'), population_strength) }} as push_open_prior

    from population

),

customer_engagement as (

    select
        customer_id,
        sum(case when channel = 'email' then messages_sent else 0 end) as email_sent,
        sum(case when channel = 'email' then messages_opened else 0 end) as email_opened,
        sum(case when channel = 'email' then messages_clicked else 0 end) as email_clicked,
        sum(case when channel = 'sms' then messages_sent else 0 end) as sms_sent,
        sum(case when channel = 'sms' then messages_clicked else 0 end) as sms_clicked,
        sum(case when channel = 'push' then messages_sent else 0 end) as push_sent,
        sum(case when channel = 'push' then messages_opened else 0 end) as push_opened

    from engagement
    group by customer_id

),

smoothed as (

    select
        customers.customer_id,
        {{ smoothed_rate('customer_engagement.email_opened', 'customer_engagement.email_sent',
            'priors.email_open_prior', strength) }} as email_open_rate,
        {{ smoothed_rate('customer_engagement.email_clicked', 'customer_engagement.email_sent',
            'priors.email_click_prior', strength) }} as email_click_rate,
        {{ smoothed_rate('customer_engagement.sms_clicked', 'customer_engagement.sms_sent',
            'priors.sms_click_prior', strength) }} as sms_click_rate,
        {{ smoothed_rate('customer_engagement.push_opened', 'customer_engagement.push_sent',
            'priors.push_open_prior', strength) }} as push_open_rate

    from customers
    cross join priors
    left join customer_engagement
        on customers.customer_id = customer_engagement.customer_id

)

select * from smoothed
