{#- Small portable time helpers (standard SQL that runs on DuckDB and Postgres). -#}

{# Fractional days from start_ts to end_ts. #}
{% macro days_between(start_ts, end_ts) -%}
    ((extract(epoch from {{ end_ts }}) - extract(epoch from {{ start_ts }})) / 86400.0)
{%- endmacro %}

{# Fractional hours from start_ts to end_ts. #}
{% macro hours_between(start_ts, end_ts) -%}
    ((extract(epoch from {{ end_ts }}) - extract(epoch from {{ start_ts }})) / 3600.0)
{%- endmacro %}

{# Whole calendar days from the date of start to the date of end. #}
{% macro date_diff_days(start_ts, end_ts) -%}
    cast(cast({{ end_ts }} as date) - cast({{ start_ts }} as date) as integer)
{%- endmacro %}

{# Timestamp shifted by a (possibly column-valued) number of days. #}
{% macro add_days(ts, days) -%}
    ({{ ts }} + ({{ days }}) * interval '1 day')
{%- endmacro %}
