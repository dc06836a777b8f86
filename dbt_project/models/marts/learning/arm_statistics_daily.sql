-- Sufficient statistics for learning (from decision_learning_rewards), per agent × action ×
-- availability date × engagement (0 not opened, 1 opened, 2 clicked: the cells of the
-- engagement surrogate, docs/learning.md) × ordered (1 when the decision led to an order in its
-- learning window: a revenue goal learns P(order) and the value of an order from the two
-- sides, docs/agents.md): the count, Σr, Σr², and over the decision-time features x: Σx, Σx·r
-- and Σxᵢxⱼ (i ≤ j). The columns are generated from the feature list (macro feature_columns),
-- so only these small sums leave the warehouse. Held-out decisions count as "send nothing"
-- (action_id no_send). The sums are exact (macro exact_sum): the same data gives the same
-- statistics to the last bit on every run, so two runs of one seed decide alike.
--
-- available_on is the first run date whose as-of instant is at or after the decision's
-- window_end: the day its reward became known. Each run adds the rewards that became available
-- since the last run (incremental), and re-running a day replaces exactly that day's rows, so
-- the accumulated statistics equal a full rebuild on the same data. Learning for day D reads the
-- rows with available_on <= D.
{{
    config(
        materialized='incremental',
        unique_key=['agent', 'action_id', 'available_on'],
        incremental_strategy='delete+insert',
        on_schema_change='append_new_columns'
    )
}}

{%- set features = feature_columns() %}
{%- set since, reach = arm_statistics_since() %}

with

rewards as (

    select
        decision_id,
        agent,
        coalesce(action_id, 'no_send') as action_id,
        case when action_id is null then 'none' else coalesce(channel, 'none') end as channel,
        engagement,
        converted as ordered,
        cast(
            case
                when window_end = cast(cast(window_end as date) as timestamp)
                    then cast(window_end as date)
                else {{ add_days('cast(window_end as date)', 1) }}
            end as date
        ) as available_on,
        learning_reward as r

    from {{ ref('decision_learning_rewards') }}
    -- a shadow decision was never sent: nothing to learn about its action
    where experiment_group != 'shadow'
    {%- if since %}
        -- available_on >= since, as a range the scan can skip row groups on
        and window_end > {{ add_days(since, -1) }}
    {%- endif %}

),

features as (

    select * from {{ ref('stg_journeyman__decision_features') }}
    {%- if since %}
    -- the decisions whose windows can close from `since` on (the rewards' own bound)
    where decision_date >= cast({{ add_days(since, -reach) }} as date)
    {%- endif %}

),

observations as (

    select
        rewards.agent,
        rewards.action_id,
        rewards.available_on,
        rewards.channel,
        rewards.engagement,
        rewards.ordered,
        rewards.r
        {%- for f in features %},
        cast(features.{{ f }} as double precision) as {{ f }}
        {%- endfor %}

    from rewards
    inner join features
        on rewards.decision_id = features.decision_id
    where true
        {%- for f in features %}
        and features.{{ f }} is not null
        {%- endfor %}
    {%- if since %}
        and rewards.available_on >= cast({{ since }} as date)
    {%- endif %}

)

select
    agent,
    action_id,
    available_on,
    channel,
    engagement,
    ordered,
    count(*) as n,
    {{ exact_sum('r') }} as sum_r,
    {{ exact_sum('r * r') }} as sum_rr
    {%- for f in features %},
    {{ exact_sum(f) }} as x__{{ f }},
    {{ exact_sum(f ~ ' * r') }} as xr__{{ f }}
    {%- endfor %}
    {%- for fi in features %}
    {%- set outer = loop.index0 %}
    {%- for fj in features %}
    {%- if loop.index0 >= outer %},
    {{ exact_sum(fi ~ ' * ' ~ fj) }} as xx__{{ fi }}__{{ fj }}
    {%- endif %}
    {%- endfor %}
    {%- endfor %}

from observations
group by agent, action_id, available_on, channel, engagement, ordered
