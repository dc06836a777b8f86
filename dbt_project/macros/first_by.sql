{#-
    Aggregate: the value of `value` on the row with the smallest `order_by` in the group (ties:
    any one of them). DuckDB has arg_min; Postgres takes the first element of an ordered
    array_agg.
-#}
{% macro first_by(value, order_by) -%}
    {{ return(adapter.dispatch('first_by', 'journeyman')(value, order_by)) }}
{%- endmacro %}

{% macro default__first_by(value, order_by) -%}
    (array_agg({{ value }} order by {{ order_by }}))[1]
{%- endmacro %}

{% macro duckdb__first_by(value, order_by) -%}
    arg_min({{ value }}, {{ order_by }})
{%- endmacro %}
