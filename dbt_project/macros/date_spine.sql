{#-
    One row per calendar day from start_date to end_date inclusive (column `day`, a date); no row
    when either bound is NULL. Bounds may be scalar subqueries. generate_series over timestamps
    is a set-returning function in both DuckDB and Postgres; another adapter overrides
    <adapter>__date_spine.
-#}
{% macro date_spine(start_date, end_date) -%}
    {{ return(adapter.dispatch('date_spine', 'journeyman')(start_date, end_date)) }}
{%- endmacro %}

{% macro default__date_spine(start_date, end_date) -%}
    select cast(spine.day_at as date) as day
    from generate_series(
        cast({{ start_date }} as timestamp),
        cast({{ end_date }} as timestamp),
        interval '1 day'
    ) as spine (day_at)
{%- endmacro %}
