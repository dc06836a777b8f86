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

{# Local clock hour (fractional, 0 ≤ h < 24) of a naive UTC timestamp in an IANA time zone.
   Postgres: extract(epoch from ((ts at time zone 'UTC') at time zone tz)::time) / 3600. #}
{% macro local_hour(utc_ts, time_zone) -%}
    (extract(epoch from cast(timezone({{ time_zone }}, timezone('UTC', {{ utc_ts }})) as time)) / 3600.0)
{%- endmacro %}
