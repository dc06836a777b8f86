-- Decision-time feature values, normalized to the current feature list: a feature the snapshot
-- table does not have yet (added to customer_features after those decisions) reads as NULL, so
-- those rows simply do not count toward its statistics. One copy of a decision id is kept.
{%- set features = feature_columns() %}
{%- set present = [] %}
{%- if execute %}
    {%- for column in adapter.get_columns_in_relation(source('journeyman', 'decision_features')) %}
        {%- do present.append(column.name | lower) %}
    {%- endfor %}
{%- endif %}

with

source as (

    select * from {{ source('journeyman', 'decision_features') }}

),

renamed as (

    select
        decision_id,
        agent,
        decision_date
        {%- for f in features %},
        {% if f | lower in present -%}
        cast({{ f }} as double precision)
        {%- else -%}
        cast(null as double precision)
        {%- endif %} as {{ f }}
        {%- endfor %},
        -- partitioned by day too (an id names its day): a filter on decision_date then reaches
        -- the table's scan, past the window
        row_number() over (partition by decision_date, decision_id) as copy_rank

    from source

)

select
    decision_id,
    agent,
    decision_date
    {%- for f in features %},
    {{ f }}
    {%- endfor %}

from renamed
where copy_rank = 1
