-- What the agent's learning policy chooses, and for whom: one row per agent × decision_date ×
-- dimension × segment_type × segment × option over its decisions (experiment_group treatment,
-- acted: exclusion_reason NULL, "send nothing" included), decided before run_date. Dimension
-- send splits send / no_send; channel, local_hour and message count only the decisions that
-- chose a message. Segments are tiers of the decision-time features (vars segment_*).
-- Incremental: a decision day's rows never change once its decisions are made, so a build
-- replaces the days from the earlier of the day after the newest it holds and
-- raw_reload_days before the as-of date (a re-decided day), macros/reload_window.sql.
{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='append_new_columns',
        pre_hook="{{ delete_days_since('decision_date') }}"
    )
}}
{%- set since = days_since('decision_date') %}
{#- a feature customer_features no longer marks reads as NULL (segment unknown) -#}
{%- set marked = feature_columns() %}
{%- set feature = {} %}
{%- for name in ['days_since_last_order', 'order_count', 'avg_order_value'] %}
    {%- do feature.update({
        name: ('features.' ~ name) if (not execute or name in marked)
        else 'cast(null as double precision)'
    }) %}
{%- endfor %}
with

decisions as (

    select * from {{ ref('stg_journeyman__decisions') }}
    where decision_date < {{ as_of_date() }}
        and experiment_group = 'treatment'
        and exclusion_reason is null
    {%- if since %}
        and decision_date >= {{ since }}
    {%- endif %}

),

features as (

    select * from {{ ref('stg_journeyman__decision_features') }}
    {%- if since %}
    where decision_date >= {{ since }}
    {%- endif %}

),

segmented_decisions as (

    select
        decisions.agent,
        decisions.decision_date,
        case when decisions.message_id is not null then 1 else 0 end as is_send,
        decisions.channel,
        decisions.local_hour,
        decisions.message_id,
        case
            when {{ feature.order_count }} = 0 then 'never_ordered'
            else {{ segment_tier(feature.days_since_last_order, var('segment_recency_days'), suffix='d') }}
        end as recency_segment,
        {{ segment_tier(feature.order_count, var('segment_frequency_orders')) }}
            as frequency_segment,
        case
            when {{ feature.order_count }} = 0 then 'never_ordered'
            else {{ segment_tier(feature.avg_order_value, var('segment_monetary_order_value'), whole_numbers=false) }}
        end as monetary_segment

    from decisions
    left join features
        on decisions.decision_id = features.decision_id

),

cells as (

    select
        agent,
        decision_date,
        is_send,
        channel,
        local_hour,
        message_id,
        recency_segment,
        frequency_segment,
        monetary_segment,
        count(*) as decisions

    from segmented_decisions
    group by
        agent,
        decision_date,
        is_send,
        channel,
        local_hour,
        message_id,
        recency_segment,
        frequency_segment,
        monetary_segment

),

segment_cells as (

    {%- for segment_type, column in [
        ('all', "'all'"),
        ('recency', 'recency_segment'),
        ('frequency', 'frequency_segment'),
        ('monetary', 'monetary_segment'),
    ] %}
    {% if not loop.first %}union all{% endif %}
    select
        agent,
        decision_date,
        '{{ segment_type }}' as segment_type,
        {{ column }} as segment,
        is_send,
        channel,
        local_hour,
        message_id,
        decisions
    from cells
    {%- endfor %}

),

options as (

    select
        agent,
        decision_date,
        'send' as dimension,
        segment_type,
        segment,
        case when is_send = 1 then 'send' else 'no_send' end as option,
        decisions
    from segment_cells

    union all

    select
        agent,
        decision_date,
        'channel' as dimension,
        segment_type,
        segment,
        channel as option,
        decisions
    from segment_cells
    where is_send = 1

    union all

    select
        agent,
        decision_date,
        'local_hour' as dimension,
        segment_type,
        segment,
        cast(local_hour as varchar) as option,
        decisions
    from segment_cells
    where is_send = 1

    union all

    select
        agent,
        decision_date,
        'message' as dimension,
        segment_type,
        segment,
        message_id as option,
        decisions
    from segment_cells
    where is_send = 1

),

option_counts as (

    select
        agent,
        decision_date,
        dimension,
        segment_type,
        segment,
        option,
        sum(decisions) as decisions

    from options
    group by agent, decision_date, dimension, segment_type, segment, option

),

final as (

    select
        agent,
        decision_date,
        dimension,
        segment_type,
        segment,
        option,
        cast(decisions as integer) as decisions,
        cast(decisions as double precision) / sum(decisions) over (
            partition by agent, decision_date, dimension, segment_type, segment
        ) as share

    from option_counts

)

select * from final
