-- One row per valid customer: how they respond to journeyman's messages with an offer and to
-- those without one. A response is a click (e-mail, SMS) or a push tap (reported as `open`)
-- before the as-of instant. A message has an offer when its `offer` tag, as it stood on the
-- decision day (the history in journeyman.message_tags), is present and not `none`. Rates are
-- Beta-smoothed toward the population rate (var engagement_prior_strength pseudo-messages),
-- which is smoothed toward var default_message_response_rate (var
-- engagement_population_prior_strength).
{%- set strength = var('engagement_prior_strength') %}
{%- set population_strength = var('engagement_population_prior_strength') %}
with

customers as (

    select customer_id from {{ ref('stg_raw__customers') }}

),

messages as (

    select delivered.*, decisions.decision_date
    from {{ ref('int_messages_delivered') }} as delivered
    inner join {{ ref('stg_journeyman__decisions') }} as decisions
        on delivered.decision_id = decisions.decision_id
    where delivered.agent is not null  -- journeyman's own

),

offers as (

    select agent, message_id, value as offer, valid_from, valid_to
    from {{ ref('stg_journeyman__message_tags') }}
    where tag = 'offer'

),

per_message as (

    select
        messages.customer_id,
        coalesce(offers.offer, 'none') <> 'none' as has_offer,
        case
            when messages.was_clicked = 1 then 1
            when messages.channel = 'push' and messages.was_opened = 1 then 1
            else 0
        end as responded

    from messages
    left join offers
        on messages.agent = offers.agent
        and messages.message_id = offers.message_id
        and messages.decision_date >= offers.valid_from
        and (offers.valid_to is null or messages.decision_date < offers.valid_to)

),

per_customer as (

    select
        customer_id,
        count(case when has_offer then 1 end) as offer_messages,
        sum(case when has_offer then responded else 0 end) as offer_responses,
        count(case when not has_offer then 1 end) as other_messages,
        sum(case when not has_offer then responded else 0 end) as other_responses

    from per_message
    group by customer_id

),

priors as (

    select
        {{ smoothed_rate('sum(offer_responses)', 'sum(offer_messages)',
            var('default_message_response_rate'), population_strength) }} as offer_prior,
        {{ smoothed_rate('sum(other_responses)', 'sum(other_messages)',
            var('default_message_response_rate'), population_strength) }} as other_prior

    from per_customer

),

smoothed as (

    select
        customers.customer_id,
        {{ smoothed_rate('per_customer.offer_responses', 'per_customer.offer_messages',
            'priors.offer_prior', strength) }} as offer_response_rate,
        {{ smoothed_rate('per_customer.other_responses', 'per_customer.other_messages',
            'priors.other_prior', strength) }} as no_offer_response_rate

    from customers
    cross join priors
    left join per_customer
        on customers.customer_id = per_customer.customer_id

)

select * from smoothed
